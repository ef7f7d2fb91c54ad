"""Running a Ray Train training function on one node without Ray Train's actors.

Ray Train starts a controller actor and one actor per worker, each a fresh interpreter
that imports torch and Ray Train (and transformers) before the process group forms:
10-15 s before a 2-worker run's first step on a 2-core machine, where ``torchrun`` takes
4-5. When every worker of a row fits on one node, the row's runner holds all of their
resources and its job calls ``fork_workers`` instead: ``torch.multiprocessing`` *forks*
one process per worker from the job, which has already imported torch, Ray Train's API
and the user's code, so a worker costs a fork rather than an interpreter and its imports,
and the group meets through torch's own env:// rendezvous on a free local port. (torch's
elastic agent is not used: it forks from a process running its store's threads, and a
restarted group hung in init there; it also ignores SIGTERM, which is how a row is
stopped.)

Each worker runs the training function inside Ray Train's local mode
(``ray.train.report``, ``get_checkpoint``, ``get_context`` and
``ray.train.torch.prepare_model`` answer as on Ray Train). What local mode does not do,
this module does: rank 0's reported checkpoints are kept in the run's folder under the
name the trainer gives them (``epoch_0004``; else ``checkpoint_NNNNNN``), the best
``keep`` by the metric (else the latest), each with what was reported beside it;
``report`` waits for every rank, as on Ray Train; and a run started again with the same
folder resumes from the newest (``get_checkpoint``), which is how a retried row
continues. A failed worker stops the others; the group starts again from the last
checkpoint up to ``restarts`` times.

GPUs: a worker gets ``gpus`` whole GPUs of those the runner holds (``CUDA_VISIBLE_DEVICES``
narrowed before CUDA starts in it) and NCCL joins them; without GPUs, gloo. CUDA must not
start in the job before the fork (``--launcher torch`` makes ``torch.cuda.is_available()``
ask NVML); if the user's code started it on import anyway, the workers are spawned as new
interpreters instead of forked.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from orchestrator.infra.errors import OrchestratorError

__all__ = ["fork_workers", "fits", "kept_checkpoints", "add_launcher_option", "WorkersFailed"]

_METRICS = ".orch_metrics.json"   # beside each kept checkpoint: what was reported with it


def fits(gpus_per_worker: float, storage) -> bool:
    """Whether a run's workers can be forked: whole GPUs each (NCCL takes one process per
    GPU) and its folder on this machine."""
    return (gpus_per_worker == 0 or float(gpus_per_worker).is_integer()) \
        and isinstance(storage, Path)


def add_launcher_option(parser) -> None:
    """A job's ``--launcher ray|torch``. Parsing ``torch`` makes
    ``torch.cuda.is_available()`` ask NVML from then on instead of starting CUDA (a forked
    child cannot use CUDA started in its parent, and user code often asks on import)."""
    import argparse

    class Launcher(argparse.Action):
        def __call__(self, parser, namespace, value, option_string=None):
            if value == "torch":
                os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
            setattr(namespace, self.dest, value)

    parser.add_argument("--launcher", choices=("ray", "torch"), default="ray", action=Launcher,
                        help="ray: Ray Train's workers, on one node or several; torch: the "
                        "workers are forked on this node, which holds their resources (the "
                        "runner of a row whose workers fit one node; no Ray)")


def fork_workers(train: Callable[[dict], object], config: dict, *, folder: Path, workers: int,
                 gpus_per_worker: float = 0, restarts: int = 0, keep: int | None = None,
                 metric: str = "", goal: str = "max", label: str = "the training function"
                 ) -> None:
    """Run ``train(config)`` on ``workers`` processes of this node, as Ray Train's
    ``train_loop_per_worker``, its checkpoints kept in ``folder``. Raises
    ``WorkersFailed`` (the first failed rank and why) when the workers fail more than
    ``restarts`` times; ``label`` names what failed."""
    import ray.train  # noqa: F401 - imported once here; every forked worker has it
    import ray.train.torch  # noqa: F401
    import torch
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    # a child cannot use CUDA its parent started: if importing the user's code started
    # it, each worker is a fresh interpreter instead (slower, but it works)
    start = "spawn" if torch.cuda.is_initialized() else "fork"
    if start == "spawn":
        print(f"[workers] importing {label} started CUDA in the job, so the workers start "
              "as new processes rather than forks (start CUDA inside the training function "
              "to start faster)", flush=True)
    print(f"[workers] {workers} worker(s) forked on this node (they fit one node; "
          "fork_workers = false in the config runs them on Ray Train)", flush=True)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keeping = {"keep": keep, "metric": metric, "goal": goal}
    errors = Path(tempfile.mkdtemp(prefix="worker-errors-"))
    try:
        for attempt in range(restarts + 1):
            for note in errors.iterdir():   # what the last group's ranks said
                note.unlink()
            group = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                     "WORLD_SIZE": str(workers), "LOCAL_WORLD_SIZE": str(workers)}
            context = mp.start_processes(
                _worker, args=(os.getpid(), group, train, config, str(folder), keeping,
                               int(gpus_per_worker), str(errors)),
                nprocs=workers, join=False, start_method=start)
            try:
                while not context.join():
                    pass
                return
            except ProcessException as e:   # the others were stopped by join()
                failed = _said(errors, e)
                if attempt == restarts:
                    raise WorkersFailed(label, failed, folder) from None
                print(f"[workers] {WorkersFailed(label, failed, folder)}; starting the "
                      f"workers again from the last checkpoint ({attempt + 1} of "
                      f"{restarts} restarts)", flush=True)
    finally:
        shutil.rmtree(errors, ignore_errors=True)


def kept_checkpoints(folder: Path) -> list[tuple[Path, dict]]:
    """The checkpoints ``fork_workers`` kept in ``folder``, oldest first, each with the
    metrics reported with it."""
    return [(path, _metrics_of(path)) for path in _checkpoints(Path(folder))] \
        if Path(folder).is_dir() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkersFailed(OrchestratorError):
    """The workers failed more often than allowed: the first failed rank, and why."""

    def __init__(self, label: str, failure: tuple[int, str], folder: Path):
        self.rank, self.why, self.folder = *failure, folder
        super().__init__(f"{label} failed on rank {self.rank}: {self.why} — see the "
                         f"workers' output above; the run (checkpoints) is in {folder}")


def _said(errors: Path, error) -> tuple[int, str]:
    """The failed rank and its one line: what its worker wrote, else how it ended."""
    rank = error.error_index
    note = errors / f"rank-{rank}"
    if note.is_file():
        return rank, note.read_text(encoding="utf-8")
    killed_by = getattr(error, "signal_name", None)
    return rank, f"killed by {killed_by}" if killed_by else \
        f"exit code {getattr(error, 'exit_code', '?')}"


# -- a worker (a forked process) -------------------------------------------------------------

def _worker(local: int, job: int, group: dict, train: Callable, config: dict, folder: str,
            keeping: dict, gpus: int, errors: str) -> None:
    """One rank (``local``: one node, so its rank too), in a process forked for it."""
    _die_with(job)
    os.environ.update(group, RANK=str(local), LOCAL_RANK=str(local))
    try:
        _run_worker(train, config, Path(folder), keeping, gpus)
    except BaseException as e:
        traceback.print_exc()
        Path(errors, f"rank-{local}").write_text(one_line(e), encoding="utf-8")
        raise


def _die_with(job: int) -> None:
    """End this worker when the job that forked it ends, however it ends (a job killed by
    the kernel's OOM killer must not leave its workers holding the GPUs the row's next
    attempt gets): Linux's parent-death signal, SIGKILL rather than torch's SIGINT, which
    a worker blocked in a collective, or a user's bare ``except:``, does not act on."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):   # not Linux: the runner's group kill still applies
        return
    if os.getppid() != job:   # the job ended before the signal was set
        os._exit(1)


def _run_worker(train: Callable, config: dict, folder: Path, keeping: dict, gpus: int) -> None:
    import torch.distributed as dist
    from ray.train.v2._internal.execution.train_fn_utils import set_train_fn_utils

    local = int(os.environ["LOCAL_RANK"])
    if gpus:   # this worker's GPUs only, before CUDA starts in this process
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        mine = visible[local * gpus:(local + 1) * gpus] if visible else \
            [str(i) for i in range(local * gpus, (local + 1) * gpus)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    import torch

    cuda = bool(gpus) and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(0)   # the first of its own GPUs, before NCCL meets
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    kept = _kept_class()
    set_train_fn_utils(kept(folder, **keeping, experiment_name=folder.name,
                            world_size=dist.get_world_size(), world_rank=dist.get_rank(),
                            local_rank=local,
                            local_world_size=int(os.environ["LOCAL_WORLD_SIZE"]), node_rank=0))
    try:
        train(config)
    finally:
        dist.destroy_process_group()


@functools.cache
def _kept_class():
    """Made on first use: Ray Train's classes load with the launcher, not with this module."""
    from ray.train import Checkpoint
    from ray.train.v2._internal.execution.train_fn_utils import LocalTrainFnUtils

    class Kept(LocalTrainFnUtils):
        """Ray Train's local-mode API, with rank 0's checkpoints kept in ``folder``."""

        def __init__(self, folder: Path, *, keep, metric: str, goal: str, **context):
            super().__init__(**context)
            self._folder, self._keep, self._metric, self._goal = folder, keep, metric, goal
            latest = _checkpoints(folder)
            self._last_checkpoint = Checkpoint.from_directory(latest[-1]) if latest else None

        def report(self, metrics, checkpoint=None, checkpoint_dir_name=None, **_):
            import torch.distributed as dist

            self._last_metrics = dict(metrics)
            if checkpoint is not None and self._context.get_world_rank() == 0:
                self._last_checkpoint = Checkpoint.from_directory(self._keep_one(
                    Path(checkpoint.path), metrics, checkpoint_dir_name))
            if dist.is_initialized():   # as on Ray Train: every rank reports, then goes on
                dist.barrier()

        def _keep_one(self, source: Path, metrics: dict, name: str | None) -> Path:
            kept = _checkpoints(self._folder)
            number = _order(kept[-1]) + 1 if kept else 1
            target = self._folder / (name or f"checkpoint_{number:06d}")
            if target in kept:   # the same name again: the newer one stands
                kept.remove(target)
                shutil.rmtree(target)
            shutil.copytree(source, target)
            (target / _METRICS).write_text(json.dumps({"order": number,
                                                       "metrics": _plain(metrics)}),
                                           encoding="utf-8")
            self._prune([*kept, target])
            return target

        def _prune(self, kept: list[Path]) -> None:
            if not self._keep or len(kept) <= self._keep:
                return
            scored = [(p, _metrics_of(p).get(self._metric)) for p in kept]
            if all(isinstance(s, (int, float)) for _, s in scored):
                best = sorted(scored, key=lambda ps: ps[1], reverse=self._goal == "max")
                keep = {p for p, _ in best[:self._keep]} | {kept[-1]}
            else:
                keep = set(kept[-self._keep:])
            for path in kept:
                if path not in keep:
                    shutil.rmtree(path, ignore_errors=True)

        def is_distributed(self) -> bool:
            return False   # Ray Train's own device and data helpers take the local path

    return Kept


# -- reading back what was kept ------------------------------------------------------------

def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoints kept in ``folder``, oldest first."""
    return sorted((p for p in folder.iterdir() if (p / _METRICS).is_file()), key=_order)


def _kept(path: Path) -> dict:
    try:
        return json.loads((path / _METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _order(path: Path) -> int:
    return int(_kept(path).get("order", 0))


def _metrics_of(path: Path) -> dict:
    return dict(_kept(path).get("metrics") or {})


def _plain(metrics: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
            for k, v in metrics.items()}


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and its last line of text."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text and not text.startswith(name) else (text or name)
