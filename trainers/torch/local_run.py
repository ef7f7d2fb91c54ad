"""A ``Kind=ddp`` run whose workers fit one node: forked by torch's own launcher
(``trainers.forked``) instead of started as Ray Train's actors — torchrun's start, with
Ray Train's API (report, checkpoints, resume) answering as on Ray Train. ``fit_local``
gives back what ``ray_run.export_weights`` reads of Ray Train's ``Result``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["fit_local", "LocalResult"]


@dataclass
class LocalResult:
    """What ``ray_run.best_checkpoint``/``export_weights`` read of Ray Train's ``Result``."""

    checkpoint: object | None
    metrics: dict
    best_checkpoints: list = field(default_factory=list)


def fit_local(cfg, *, storage: Path, name: str, workers: int, gpus_per_worker: float = 0,
              max_failures: int | None = None, pretrained_path: str | None = None,
              metrics_file: str | None = None) -> LocalResult:
    """Run ``cfg`` on ``workers`` forked processes of this node; the kept checkpoints as
    a ``LocalResult``. Raises ``trainers.forked.WorkersFailed`` when the workers fail
    more than ``max_failures`` times."""
    from ray.train import Checkpoint

    from trainers.forked import fork_workers, kept_checkpoints
    from trainers.torch.ray_run import entry_kind, loop_config, train_loop

    entry_kind(cfg)
    folder = Path(storage) / name
    fork_workers(train_loop, loop_config(cfg, pretrained_path=pretrained_path,
                                         metrics_file=metrics_file),
                 folder=folder, workers=workers, gpus_per_worker=gpus_per_worker,
                 restarts=cfg.max_failures if max_failures is None else max_failures,
                 keep=cfg.num_to_keep, metric=cfg.metric, goal=cfg.goal,
                 label=f"ddp entry {cfg.entry}")
    kept = [(Checkpoint.from_directory(path), metrics)
            for path, metrics in kept_checkpoints(folder)]
    latest = kept[-1] if kept else (None, {})
    return LocalResult(checkpoint=latest[0], metrics=latest[1], best_checkpoints=kept)
