"""A ``Kind=ddp`` config on Ray Train: the per-worker loop, ``fit``, and the final weights.

``fit`` (driver side) builds a ``TorchTrainer`` whose ``train_loop_per_worker`` is
``train_loop`` below. Every worker puts the config's ``python_path`` on ``sys.path``,
works in the YAML's folder (relative paths in ``params`` then mean what they say),
imports the entry, and either

* runs a ``Trainer`` subclass: ``build(params)`` gives model, optimizer, scheduler and
  loaders (other keys go to the constructor); the class gets ``MultiGPUAddon``,
  ``StateManagerAddon`` and ``WandBLoggerAddon``; or
* calls a user's ``train_loop_per_worker(config)`` with ``params`` plus ``epochs`` and
  ``pretrained_path``.

The same storage path and name resume a run (Ray Train restores its checkpoint
manager from ``<storage>/<name>``), which is how a retried row continues.
"""

from __future__ import annotations

import inspect
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from orchestrator.infra.storage import local_copy
from trainers.configfile import TargetError
from trainers.configfile import import_target as _import_target
from trainers.forked import one_line
from trainers.torch.config import DDPConfig

__all__ = ["EntryError", "fit", "train_loop", "loop_config", "import_target", "entry_kind",
           "export_weights", "describe_failure"]


class EntryError(Exception):
    """The config's entry or build cannot be imported or used."""


# -- importing the user's code ------------------------------------------------------------------

def import_target(target: str, python_path=()):
    """``"module:name"`` → the object; an ``EntryError`` with the fix when it cannot be."""
    try:
        return _import_target(target, python_path)
    except TargetError as e:
        raise EntryError(f"{e} — set python_path: in the config to the folder that holds "
                         "it") from None


def entry_kind(cfg: DDPConfig) -> str:
    """``"trainer"`` or ``"function"``; imports the entry (and build) to check them."""
    from trainers.torch.trainer import Trainer

    entry = import_target(cfg.entry, cfg.python_path)
    if isinstance(entry, type) and issubclass(entry, Trainer):
        if not cfg.build:
            raise EntryError(f"{cfg.path}: entry {cfg.entry} is a Trainer class — set build: "
                             "module:function returning dict(model, optimizer, train_loader, ...)")
        if not callable(import_target(cfg.build, cfg.python_path)):
            raise EntryError(f"{cfg.path}: build {cfg.build} is not callable")
        return "trainer"
    if inspect.isfunction(entry) or (callable(entry) and not isinstance(entry, type)):
        return "function"
    raise EntryError(f"{cfg.path}: entry {cfg.entry} is a {type(entry).__name__}; use a "
                     "Trainer subclass or a function train_loop_per_worker(config)")


# -- the worker side --------------------------------------------------------------------------

def loop_config(cfg: DDPConfig, *, pretrained_path: str | None = None,
                metrics_file: str | None = None) -> dict:
    """The ``train_loop_config``: plain values only (it travels to every worker)."""
    return {"entry": cfg.entry, "build": cfg.build, "params": dict(cfg.params),
            "epochs": cfg.epochs, "scheduler_step": cfg.scheduler_step,
            "gradient_clip": cfg.gradient_clip, "num_to_keep": cfg.num_to_keep,
            "checkpoint_format": cfg.checkpoint_format, "metric": cfg.metric,
            "wandb": {**asdict(cfg.wandb), "config": dict(cfg.params)},
            "python_path": list(cfg.python_path), "folder": str(cfg.folder),
            "pretrained_path": pretrained_path, "metrics_file": metrics_file}


def train_loop(config: dict) -> None:
    """Ray Train's ``train_loop_per_worker`` for every ``Kind=ddp`` run."""
    _prepare_worker(config)
    if config["pretrained_path"]:  # a URI (s3://…) is fetched onto this worker's node
        config = {**config, "pretrained_path": local_copy(config["pretrained_path"])}
        print(f"[ddp] starting from the weights in {config['pretrained_path']}", flush=True)
    entry = import_target(config["entry"], config["python_path"])
    if isinstance(entry, type):
        _run_trainer(entry, config)
    else:
        entry({**config["params"], "epochs": config["epochs"],
               "pretrained_path": config["pretrained_path"]})


def _prepare_worker(config: dict) -> None:
    os.chdir(config["folder"])
    metrics = config.get("metrics_file")
    if metrics and Path(metrics).parent.is_dir():  # not on another node's disk
        os.environ["ORCH_METRICS_FILE"] = metrics
    else:
        os.environ.pop("ORCH_METRICS_FILE", None)


def _run_trainer(cls: type, config: dict) -> None:
    from trainers.torch.addons import MultiGPUAddon, StateManagerAddon, WandBLoggerAddon
    from trainers.torch.weights import load_weights

    parts = import_target(config["build"], config["python_path"])(dict(config["params"]))
    missing = [k for k in ("model", "train_loader")
               if not isinstance(parts, dict) or k not in parts]
    if missing:
        raise EntryError(f"build {config['build']} must return a dict with model, optimizer, "
                         f"train_loader (valid_loader, scheduler optional); missing {missing}")
    model, loader = parts.pop("model"), parts.pop("train_loader")
    valid_loader = parts.pop("valid_loader", None)
    if config["pretrained_path"]:
        load_weights(model, config["pretrained_path"])
    trainer = cls.add_on(MultiGPUAddon, StateManagerAddon, WandBLoggerAddon)(
        model, "cpu", scheduler_step=config["scheduler_step"],
        gradient_clip=config["gradient_clip"],
        log_bar=True,
        num_to_keep=config["num_to_keep"], checkpoint_format=config["checkpoint_format"],
        score_metric=config["metric"], wandb_config=config["wandb"], **parts)
    trainer.run(config["epochs"], loader, valid_loader)


# -- the driver side ----------------------------------------------------------------------------

def fit(cfg: DDPConfig, *, storage: str | Path, name: str, workers: int = 1,
        gpus_per_worker: float = 0, cpus_per_worker: float = 1, max_failures: int | None = None,
        pretrained_path: str | None = None, metrics_file: str | None = None):
    """Run ``cfg`` on the Ray this process is connected to; Ray Train's ``Result``.

    Raises ``ray.train.TrainingFailedError`` when the workers fail more than
    ``max_failures`` times (or the worker group cannot start), ``EntryError`` when the
    entry cannot be imported.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainers.ray_backend import AutoBackendTorchConfig

    kind = entry_kind(cfg)
    resources = {k: v for k, v in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)) if v}
    run_dir = Path(storage) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = CheckpointConfig(
        num_to_keep=cfg.num_to_keep, checkpoint_score_order=cfg.goal,
        checkpoint_score_attribute=cfg.metric if kind == "trainer" else None)
    failures = FailureConfig(
        max_failures=cfg.max_failures if max_failures is None else max_failures,
        controller_failure_limit=cfg.controller_failure_limit)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config(cfg, pretrained_path=pretrained_path,
                                      metrics_file=metrics_file),
        # GPU workers: NCCL where they see CUDA, gloo where the GPUs are logical only
        torch_config=AutoBackendTorchConfig() if gpus_per_worker else None,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                     resources_per_worker=resources or None),
        run_config=RunConfig(storage_path=str(storage), name=name,
                             checkpoint_config=checkpoints, failure_config=failures))
    return trainer.fit()


def best_checkpoint(result, metric: str, goal: str):
    """``(checkpoint, metrics)``: the best by ``metric`` among those kept, else the latest."""
    scored = [(c, m) for c, m in (result.best_checkpoints or [])
              if isinstance(m.get(metric), (int, float))]
    if scored:
        pick = max if goal == "max" else min
        return pick(scored, key=lambda cm: cm[1][metric])
    if result.checkpoint is not None:
        return result.checkpoint, dict(result.metrics or {})
    return None, dict(result.metrics or {})


def export_weights(result, cfg: DDPConfig, out_dir: str | Path) -> tuple[Path | None, dict]:
    """Write the best checkpoint's weights into ``out_dir``; ``(path or None, its metrics)``.

    A Trainer run gives ``model.pt`` (a plain state dict) or ``model.safetensors``; a
    function entry's checkpoint (any layout) is copied whole to ``out_dir/weights``.
    """
    from trainers.torch.weights import (
        CKPT_FILE,
        SAFETENSORS_FILE,
        checkpoint_state_dict,
        save_state_dict,
    )

    checkpoint, metrics = best_checkpoint(result, cfg.metric, cfg.goal)
    if checkpoint is None:
        return None, metrics
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as folder:
        folder = Path(folder)
        if cfg.checkpoint_format == "safetensors" and (folder / SAFETENSORS_FILE).is_file():
            target = out_dir / SAFETENSORS_FILE
            shutil.copyfile(folder / SAFETENSORS_FILE, target)
        elif (folder / CKPT_FILE).is_file() or (folder / SAFETENSORS_FILE).is_file():
            target = save_state_dict(checkpoint_state_dict(folder), out_dir / "model.pt")
        else:
            target = out_dir / "weights"
            shutil.copytree(folder, target, dirs_exist_ok=True)
    return target, metrics


def describe_failure(error: BaseException, cfg: DDPConfig, run_dir: Path | str) -> str:
    """One line: what failed, where, and what to do."""
    failures = getattr(error, "worker_failures", None)
    if failures:
        rank, exc = sorted(failures.items())[0]
        cause = getattr(exc, "cause", None) or exc
        return (f"ddp entry {cfg.entry} failed on rank {rank}: {one_line(cause)} — see the "
                f"worker logs; the run (checkpoints) is in {run_dir}")
    controller = getattr(error, "controller_failure", None)
    if controller is not None:
        return (f"Ray Train could not run {cfg.entry}: {one_line(controller)} — check that the "
                f"cluster has the CPUs/GPUs asked for (--workers, --gpus-per-worker)")
    return f"ddp entry {cfg.entry} failed: {one_line(error)} (run folder {run_dir})"
