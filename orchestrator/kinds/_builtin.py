"""The built-in kinds that run a config file instead of a shell command.

A row of one of these kinds names its YAML in ``Config``; the job is
``python -m trainers.<package> [verb] CONFIG ...`` run like any command (supervised, its
log kept, its metrics read back). Two ways to hold resources:

- **Ray Train kinds** (``ddp``, ``hf``): the row's runner holds nothing; the job joins
  the cluster and its ``TorchTrainer`` asks for ``Workers`` workers of ``GPUs`` (and
  ``CPUs``, default 1) each, so a run may span nodes. A runner holding even one CPU
  starves the trainer on a small machine (seen: "worker group startup timed out").
  A row whose workers fit one node (``fork_workers = true``) is held by its runner
  instead, whole, and its job forks the workers (``trainers.forked``): the start of
  torchrun, not of Ray Train's actors.
- **Local kinds** (``yolo``, ``yolo_label``): the runner holds the row's GPUs and the
  job sees them in ``CUDA_VISIBLE_DEVICES``; ultralytics runs its own DDP over them.

Checking a config imports only the kind's light ``config`` module (no torch), so a
bad row is refused when the queue is read.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import shlex
import sys
from pathlib import Path

from orchestrator.core import JobSpec
from orchestrator.kinds.base import Holds, Kind, KindError, LaunchContext, require_config
from trainers.errors import ConfigError

__all__ = ["BuiltinKind"]


class BuiltinKind(Kind):
    """A kind whose job is ``python -m trainers.<package> [verb] CONFIG``."""

    def __init__(self, name: str, package: str, *, verb: str = "", ray_train: bool = False,
                 loader: str = "load", knows_batch: bool = False,
                 requires: tuple[str, ...] = (), extra: str = "", forks_workers: bool = False):
        self.name, self.package, self.verb, self.loader = name, package, verb, loader
        self.requires, self.extra = requires, extra
        self.ray_train = ray_train
        self.forks_workers = forks_workers
        self.holds = Holds.WORKERS if ray_train else Holds.RUNNER
        self.uri_aware = ray_train    # Ray Train keeps its checkpoints at the storage URI
        self._knows_batch = knows_batch
        self.storage_name = name

    @property
    def module(self) -> str:
        return f"trainers.{self.package}"

    def check(self, spec: JobSpec, *, check_paths: bool = True) -> None:
        path = require_config(spec, "config file", f"put the {self.name} YAML's path in "
                              "Config (see examples/ for one)")
        try:
            self.load(path, check_paths=check_paths)
        except ConfigError as e:
            where = f"{e.path} line {e.line}" if e.line else ""
            key = (f" (key {e.key!r}" + (f" = {e.value!r}" if e.value is not None else "")
                   + (f", {where})" if where else ")") if e.key else "")
            raise KindError("Config", spec.config_text,
                            f"the {self.name} config cannot run: {e.problem}{key}",
                            e.fix or f"fix {path}") from None

    def load(self, path: Path, *, check_paths: bool = True):
        """Load and validate a config (raises ``trainers.errors.ConfigError``). A config
        that passed is not checked again until its file changes: the driver re-reads
        every waiting row whenever the CSV changes."""
        try:
            stat = Path(path).stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None   # the loader says what is wrong with it
        return _checked(self.package, self.loader, Path(path), check_paths, key)

    def halves_batch(self, spec: JobSpec) -> str:
        return "" if self._knows_batch else super().halves_batch(spec)

    def metric(self, spec: JobSpec, default: str, goal: str) -> tuple[str, str]:
        module = importlib.import_module(f"{self.module}.config")
        name, own_goal = module.metric(self.load(spec.config_path, check_paths=False))
        return (name, own_goal) if name else (default, goal)

    def params(self, spec: JobSpec) -> dict[str, str]:
        """Every number, flag and short word the config sets, by its key (the dotted path
        where two sections share a key); paths and long text are left out."""
        leaves: dict[str, list[tuple[str, str]]] = {}
        _leaves(self.load(spec.config_path, check_paths=False), (), leaves)
        return {(name if len(found) == 1 else path): value
                for name, found in leaves.items() for path, value in found}

    def command(self, spec: JobSpec, ctx: LaunchContext) -> str:
        """Every value quoted. ``ctx.storage`` is per run, not per attempt, so a retried
        row resumes from its last checkpoint; a worker lost inside one attempt is the
        config's ``max_failures`` business."""
        argv = [sys.executable, "-m", self.module, *([self.verb] if self.verb else []),
                str(spec.config_path)]
        if self.ray_train:
            argv += ["--storage", str(ctx.storage), "--name", spec.id, "--workers",
                     str(ctx.workers), "--gpus-per-worker", f"{ctx.gpus:g}",
                     "--cpus-per-worker", f"{ctx.cpus:g}", "--address", ctx.address]
            if ctx.launcher == "torch":
                argv += ["--launcher", "torch"]
        else:
            argv += ["--project", str(ctx.storage)]
        return shlex.join(argv)


def _leaves(value, path: tuple[str, ...], out: dict[str, list[tuple[str, str]]]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            _leaves(item, (*path, str(key)), out)
        return
    if isinstance(value, bool) or isinstance(value, (int, float)):
        text = str(value).lower() if isinstance(value, bool) else f"{value:g}"
    elif isinstance(value, str) and value and len(value) <= 24 and "/" not in value \
            and not value.endswith((".yaml", ".yml", ".json", ".csv", ".txt")):
        text = value
    else:
        return
    if path:
        out.setdefault(path[-1], []).append((".".join(path), text))


@functools.lru_cache(maxsize=512)
def _checked(package: str, loader_name: str, path: Path, check_paths: bool, _stat_key):
    loader = getattr(importlib.import_module(f"trainers.{package}.config"), loader_name)
    if "check_paths" in inspect.signature(loader).parameters:
        return loader(path, check_paths=check_paths)
    return loader(path)
