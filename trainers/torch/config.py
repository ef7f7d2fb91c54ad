"""The ``Kind=ddp`` row's YAML: what to train, how long, and how to keep and score it.

The orchestrator calls ``load`` when it reads the queue (a bad row is rejected
before anything runs) and ``metric`` to pick the row's ``BestMetric``, so this module
imports only the standard library, yaml and the job-side ``orchestrator.api`` — never
torch.

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
from typing import Any

from orchestrator.api import batch_divisor, goal_of
from orchestrator.infra.validation import did_you_mean
from trainers.configfile import located, read_mapping
from trainers.errors import ConfigError

__all__ = ["DDPConfig", "WandbSettings", "load", "metric", "KEYS"]

KEYS = ("entry", "build", "params", "epochs", "scheduler_step", "gradient_clip", "checkpoint",
        "max_failures", "controller_failure_limit", "metric", "goal", "wandb", "python_path")
CHECKPOINT_KEYS = ("num_to_keep", "format")
WANDB_KEYS = ("enabled", "project", "entity", "name", "group", "tags")
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
    path = Path(path).expanduser().resolve()
    raw = read_mapping(path, example="examples/ddp_dummy.yaml")
    _no_unknown(path, raw, KEYS, "")
    entry = _target(path, raw, "entry", required=True)
    name = str(raw.get("metric", "valid_loss") or "")
    if not name:
        raise ConfigError(path, problem="is empty", key="metric",
                          fix="name a logged value: valid_loss")
    params = _mapping(path, raw, "params")
    size, divisor = params.get("batch_size"), batch_divisor(environ)
    if divisor > 1 and isinstance(size, int) and not isinstance(size, bool):
        params["batch_size"] = max(1, size // divisor)
    return DDPConfig(
        path=path, entry=entry, build=_target(path, raw, "build", required=False),
        params=params,
        epochs=_int(path, raw, "epochs", 1, low=1),
        scheduler_step=_choice(path, raw, "scheduler_step", "epoch", ("epoch", "batch")),
        gradient_clip=_number(path, raw, "gradient_clip", 0.0),
        **_checkpoint(path, raw.get("checkpoint")),
        max_failures=_int(path, raw, "max_failures", 1, low=-1),
        controller_failure_limit=_int(path, raw, "controller_failure_limit", 3, low=-1),
        metric=name, goal=_choice(path, raw, "goal", _default_goal(name), ("min", "max")),
        wandb=_wandb(path, raw.get("wandb")),
        python_path=_python_path(path, raw.get("python_path", ["."])),
    )


# -- pieces ---------------------------------------------------------------------------------

def _no_unknown(path: Path, raw: dict, valid: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in valid:
            hint = did_you_mean(key, valid, prefix + "{}")
            raise ConfigError(path, problem="unknown key", key=f"{prefix}{key}",
                              fix=f"{hint}valid keys: {', '.join(valid)}")


def _target(path: Path, raw: dict, key: str, *, required: bool) -> str:
    value = raw.get(key)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not _TARGET.match(value.strip()):
        example = "build" if key == "build" else "MyTrainer"
        raise ConfigError(path,
                          problem="must be 'module:name'" if value is not None else "is missing",
                          key=key, value=value, fix=f"write it as {key}: my_module:{example} "
                          "(the module is found on python_path)")
    return value.strip()


def _mapping(path: Path, raw: dict, key: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(path, problem="must be a mapping", key=key, value=value,
                          fix=f"write it as {key}: {{lr: 0.01, batch_size: 32}}")
    return dict(value)


def _int(path: Path, raw: dict, key: str, default: int, *, low: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(path, problem=f"must be a whole number >= {low}", key=key, value=value,
                          fix=f"e.g. {key}: {max(default, low)}")
    return value


def _number(path: Path, raw: dict, key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(path, problem="must be a number >= 0 (0 = off)", key=key, value=value,
                          fix=f"e.g. {key}: 1.0")
    return float(value)


def _choice(path: Path, raw: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(path, problem=f"must be one of {', '.join(choices)}", key=key,
                          value=value,
                          fix=f"e.g. {key}: {choices[0]}")
    return value


def _default_goal(name: str) -> str:
    return goal_of(name)


def _checkpoint(path: Path, value: Any) -> dict:
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(path, problem="must be a mapping", key="checkpoint", value=value,
                          fix="e.g. checkpoint: {num_to_keep: 2, format: ckpt}")
    _no_unknown(path, value, CHECKPOINT_KEYS, "checkpoint.")
    keep = _int(path, {"checkpoint.num_to_keep": value.get("num_to_keep", 2)},
                "checkpoint.num_to_keep", 2, low=1)
    fmt = _choice(path, {"checkpoint.format": value.get("format", "ckpt")}, "checkpoint.format",
                  "ckpt", FORMATS)
    return {"num_to_keep": keep, "checkpoint_format": fmt}


def _wandb(path: Path, value: Any) -> WandbSettings:
    if value is None or isinstance(value, bool):
        return WandbSettings(enabled=bool(value))
    if not isinstance(value, dict):
        raise ConfigError(path, problem="must be a mapping or true/false", key="wandb", value=value,
                          fix="e.g. wandb: {enabled: true, project: my-project}")
    _no_unknown(path, value, WANDB_KEYS, "wandb.")
    tags = value.get("tags") or ()
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, (list, tuple)):
        raise ConfigError(path, problem="must be a list of strings", key="wandb.tags", value=tags,
                          fix="e.g. tags: [baseline, ddp]")
    text = {k: str(value.get(k) or "") for k in ("project", "entity", "name", "group")}
    return WandbSettings(enabled=bool(value.get("enabled", True)), tags=tuple(map(str, tags)),
                         **text)


def _python_path(path: Path, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, problem="must be a list of folders", key="python_path", value=value,
                          fix='e.g. python_path: ["."] (relative to this file)')
    folders = []
    for item in value:
        folder = (path.parent / Path(item).expanduser()).resolve()
        if not folder.is_dir():
            raise ConfigError(path, problem=f"folder {folder} does not exist", key="python_path",
                              value=item, fix="list folders relative to this YAML file")
        folders.append(str(folder))
    return tuple(folders)
