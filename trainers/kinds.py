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

import functools
import importlib
import inspect
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuiltinKind", "BUILTIN", "check_config", "kind_metric", "kind_command"]


@dataclass(frozen=True)
class BuiltinKind:
    name: str
    package: str                 # trainers.<package>
    verb: str = ""               # the entry point's sub-command, if any
    ray_train: bool = False      # its workers hold the resources, not the row's runner
    loader: str = "load"         # the config module's validating loader
    uri_storage: bool = False    # the job itself reads and writes storage URIs (s3://…):
    #                              its checkpoints, and its parent's weights on each worker

    @property
    def module(self) -> str:
        return f"trainers.{self.package}"


BUILTIN = {k.name: k for k in (
    BuiltinKind("ddp", "torch", ray_train=True, uri_storage=True),
    BuiltinKind("hf", "hf", ray_train=True, uri_storage=True),
    BuiltinKind("yolo", "yolo", verb="train"),
    BuiltinKind("yolo_label", "yolo", verb="label", loader="load_label"),
)}


def _config_module(kind: BuiltinKind):
    return importlib.import_module(f"{kind.module}.config")


def check_config(kind: str, path: Path, *, check_paths: bool = True):
    """Load and validate a row's config; raises ``ConfigError``. ``check_paths=False``
    leaves out the checks that its data exist (a parent row may be what writes them).

    The driver re-reads every waiting row whenever the CSV changes: a config that passed
    is not checked again until its file changes."""
    try:
        stat = Path(path).stat()
        key = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None   # the loader says what is wrong with it
    return _checked(kind, Path(path), check_paths, key)


@functools.lru_cache(maxsize=512)
def _checked(kind: str, path: Path, check_paths: bool, _stat_key):
    spec = BUILTIN[kind]
    loader = getattr(_config_module(spec), spec.loader)
    if "check_paths" in inspect.signature(loader).parameters:
        return loader(path, check_paths=check_paths)
    return loader(path)


def kind_metric(kind: str, path: Path) -> tuple[str, str]:
    """The metric (and ``max``/``min``) a row of this kind is judged by."""
    return _config_module(BUILTIN[kind]).metric(check_config(kind, path, check_paths=False))


def kind_command(kind: str, config: Path, *, storage: Path | str, name: str, workers: int,
                 gpus: float, cpus: float, address: str) -> str:
    """The shell command a row of this kind runs (every value quoted). ``storage`` is per
    row, not per attempt, so a retried row resumes from its last checkpoint; a worker lost
    inside one attempt is the config's ``max_failures`` business."""
    spec = BUILTIN[kind]
    argv = [sys.executable, "-m", spec.module, *([spec.verb] if spec.verb else []), str(config)]
    if spec.ray_train:
        argv += ["--storage", str(storage), "--name", name, "--workers", str(workers),
                 "--gpus-per-worker", f"{gpus:g}", "--cpus-per-worker", f"{cpus:g}",
                 "--address", address]
    else:
        argv += ["--project", str(storage)]
    return shlex.join(argv)
