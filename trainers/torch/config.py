"""The ``Kind=ddp`` row's YAML: what to train, how long, and how to keep and score it.

The orchestrator calls ``load`` when it reads the queue (a bad row is rejected
before anything runs) and ``metric`` to pick the row's ``BestMetric``, so this module
imports only the standard library, yaml, pydantic (the file's schema,
``trainers/torch/schema.py``, loaded with the first file) and the job-side
``orchestrator.api`` — never torch.

    entry: ddp_dummy:DummyTrainer     # a Trainer subclass, or a train_loop_per_worker(config)
    build: ddp_dummy:build            # for a Trainer: build(params) -> dict(model, optimizer, ...)
    params: {lr: 0.01}
    epochs: 5
    scheduler_step: epoch             # or batch
    gradient_clip: 0                  # 0 = off
    checkpoint: {num_to_keep: 2, format: ckpt}   # or safetensors
    max_failures: 1
    metric: valid_loss                # goal defaults to min for *loss*/*error*, else max
    goal: min
    wandb: {enabled: false}
    python_path: ["."]                # relative to this file's folder
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.api import batch_divisor, goal_of
from trainers.configfile import located, read_mapping, validated
from trainers.errors import ConfigError

__all__ = ["DDPConfig", "WandbSettings", "load", "metric"]

FORMATS = ("ckpt", "safetensors")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class WandbSettings:
    enabled: bool = False
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DDPConfig:
    path: Path                        # the YAML file (absolute)
    entry: str                        # "module:attr"
    build: str = ""                   # "module:function" ("" for a function entry)
    params: dict = field(default_factory=dict)
    epochs: int = 1
    scheduler_step: str = "epoch"
    gradient_clip: float = 0.0
    num_to_keep: int = 2
    checkpoint_format: str = "ckpt"
    max_failures: int = 1
    controller_failure_limit: int = 3  # failed worker-group starts (60 s each) before giving up
    metric: str = "valid_loss"
    goal: str = "min"
    wandb: WandbSettings = WandbSettings()
    python_path: tuple[str, ...] = ()  # absolute folders

    @property
    def folder(self) -> Path:
        return self.path.parent


def metric(cfg: DDPConfig) -> tuple[str, str]:
    """The row's metric and goal (``"max"`` or ``"min"``)."""
    return cfg.metric, cfg.goal


@located
def load(path: str | Path, environ=None) -> DDPConfig:
    """Read and validate a ``Kind=ddp`` YAML; raises ConfigError naming the key and the fix.
    After an out-of-memory attempt under ``on_oom = halve_batch`` (``ORCH_BATCH_DIVISOR``
    in ``environ``), a whole ``params.batch_size`` is divided (never below 1)."""
    from trainers.torch.schema import File  # pydantic, loaded when a ddp row is read

    path = Path(path).expanduser().resolve()
    raw = read_mapping(path, example="examples/ddp_dummy.yaml")
    data = validated(File, raw, path)
    params = dict(data.params)
    size, divisor = params.get("batch_size"), batch_divisor(environ)
    if divisor > 1 and isinstance(size, int) and not isinstance(size, bool):
        params["batch_size"] = max(1, size // divisor)
    w = data.wandb
    return DDPConfig(
        path=path, entry=data.entry, build=data.build, params=params, epochs=data.epochs,
        scheduler_step=data.scheduler_step, gradient_clip=float(data.gradient_clip),
        num_to_keep=data.checkpoint.num_to_keep, checkpoint_format=data.checkpoint.format,
        max_failures=data.max_failures, controller_failure_limit=data.controller_failure_limit,
        metric=data.metric, goal=data.goal or goal_of(data.metric),
        wandb=WandbSettings(enabled=w.enabled, project=str(w.project or ""),
                            entity=str(w.entity or ""), name=str(w.name or ""),
                            group=str(w.group or ""), tags=tuple(map(str, w.tags))),
        python_path=_python_path(path, data.python_path))


def _python_path(path: Path, value: list[str]) -> tuple[str, ...]:
    folders = []
    for item in value:
        folder = (path.parent / Path(item).expanduser()).resolve()
        if not folder.is_dir():
            raise ConfigError(path, problem=f"folder {folder} does not exist", key="python_path",
                              value=item, fix="list folders relative to this YAML file")
        folders.append(str(folder))
    return tuple(folders)
