"""The built-in kinds that run a config file instead of a shell command.

A row of one of these kinds names its YAML in ``Config``; the job is
``python -m <module> [verb] CONFIG ...`` run like any command (supervised, its log
kept, its metrics read back). Two ways to hold resources:

- **Ray Train kinds** (``ddp``, ``hf``): the row's runner holds nothing; the job joins
  the cluster and its ``TorchTrainer`` asks for ``Workers`` workers of ``GPUs`` (and
  ``CPUs``, default 1) each, so a run may span nodes. A runner holding even one CPU
  starves the trainer on a small machine (seen: "worker group startup timed out").
- **Local kinds** (``yolo``, ``yolo_label``): the runner holds the row's GPUs and the
  job sees them in ``CUDA_VISIBLE_DEVICES``; ultralytics runs its own DDP over them.

Checking a config imports only the kind's light ``config`` module (no torch), so a
bad row is refused when the queue is read.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from trainers.errors import ConfigError

__all__ = ["BuiltinKind", "BUILTIN", "check_config", "kind_metric", "kind_command"]


@dataclass(frozen=True)
class BuiltinKind:
    name: str
    package: str                 # trainers.<package>
    verb: str = ""               # the entry point's sub-command, if any
    ray_train: bool = False      # its workers hold the resources, not the row's runner
    loader: str = "load"         # the config module's validating loader

    @property
    def module(self) -> str:
        return f"trainers.{self.package}"


BUILTIN = {k.name: k for k in (
    BuiltinKind("ddp", "torch", ray_train=True),
    BuiltinKind("hf", "hf", ray_train=True),
    BuiltinKind("yolo", "yolo", verb="train"),
    BuiltinKind("yolo_label", "yolo", verb="label", loader="load_label"),
)}


def _config_module(kind: BuiltinKind):
    return importlib.import_module(f"{kind.module}.config")


def check_config(kind: str, path: Path):
    """Load and validate a row's config; raises ``ConfigError``."""
    spec = BUILTIN[kind]
    return getattr(_config_module(spec), spec.loader)(path)


def kind_metric(kind: str, path: Path) -> tuple[str, str]:
    """The metric (and ``max``/``min``) a row of this kind is judged by."""
    spec = BUILTIN[kind]
    module = _config_module(spec)
    cfg = getattr(module, spec.loader)(path)
    metric = getattr(module, "metric" if spec.loader == "load" else "label_metric", None)
    return metric(cfg) if metric else ("", "max")


def kind_command(kind: str, config: Path, *, storage: Path, name: str, workers: int,
                 gpus: float, cpus: float, address: str, retries: int) -> str:
    """The shell command a row of this kind runs (every value quoted)."""
    spec = BUILTIN[kind]
    argv = [sys.executable, "-m", spec.module, *([spec.verb] if spec.verb else []), str(config)]
    if spec.ray_train:
        argv += ["--storage", str(storage), "--name", name, "--workers", str(workers),
                 "--gpus-per-worker", f"{gpus:g}", "--cpus-per-worker", f"{cpus:g}",
                 "--address", address, "--max-failures", str(retries)]
    elif spec.verb == "train":
        argv += ["--project", str(storage)]
    return shlex.join(argv)


def config_error_text(e: ConfigError) -> str:
    return e.problem + (f" ({e.key})" if e.key else "")
