"""The job runner: a Ray actor that runs one job at a time in its own process tree.

Runners are detached (a driver that dies does not kill training) and reused for
the next job of the same resource shape, so a freed slot starts its next job in
milliseconds instead of the ~0.5–1 s a fresh Ray worker costs. Each runner says
which job it runs (``current()``, and its ``repr`` in the Ray dashboard).

A runner also enforces an attempt's limits where the job runs (so they hold on any
node, and while no driver watches): past its time limit, or silent (no log output,
no metric) for ``stall_timeout``, the job's process tree is stopped and the report
says which (``killed_for``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import ray

from orchestrator.api import METRICS_FILE_ENV, RUN_DIR_ENV
from orchestrator.core import AttemptReport, FailureKind
from orchestrator.execution.launch import LaunchSpec
from orchestrator.execution.outputs import collect, upload_outputs
from orchestrator.infra import storage
from orchestrator.infra.supervisors import Supervised, SupervisorServer
from orchestrator.store.record import refused_write, unwritable

__all__ = ["JobRunner"]

#: How often a running attempt's limits are checked (seconds).
_WATCH_S = 0.5


class _Activity:
    """When the attempt last wrote to its log or its metrics file."""

    def __init__(self, run_dir: Path):
        self._files = (run_dir / "run.log", run_dir / "metrics.jsonl")
        self._sizes = self._measure()
        self.last = time.monotonic()

    def _measure(self) -> tuple[int, ...]:
        sizes = []
        for path in self._files:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(-1)
        return tuple(sizes)

    def idle_for(self) -> float:
        sizes = self._measure()
        if sizes != self._sizes:
            self._sizes, self.last = sizes, time.monotonic()
        return time.monotonic() - self.last


@ray.remote(max_concurrency=8, max_restarts=0)
class JobRunner:
    """Runs the jobs handed to it, one at a time."""

    def __init__(self, name: str):
        self._name = name
        self._lock = threading.Lock()
        self._spec: LaunchSpec | None = None
        self._proc: Supervised | None = None
        self._report: AttemptReport | None = None
        self._done = threading.Event()
        self._cond = threading.Condition()
        self._stop_requested = False
        self._killed: tuple[str, str] = ("", "")   # (failure kind, note) of a limit it hit
        node_id = ray.get_runtime_context().get_node_id()
        self._node = f"{socket.gethostname()}/{node_id[:8]}"
        self._supervisors = SupervisorServer()
        threading.Thread(target=self._supervisors.prepare, daemon=True).start()

    def __repr__(self) -> str:  # shown in the Ray dashboard and as the log prefix
        spec = self._spec
        return spec.label if spec is not None and not self._done.is_set() else self._name

    def node(self) -> str:
        return self._node

    def current(self) -> dict | None:
        """The job this runner is running (or has just finished), or None."""
        spec = self._spec
        if spec is None:
            return None
        return {"job_id": spec.job_id, "attempt": spec.attempt, "done": self._done.is_set(),
                "pid": self._proc.pid if self._proc else None}

    def start(self, spec: LaunchSpec) -> AttemptReport:
        """Start ``spec``; returns at once with where and how it runs."""
        with self._lock:
            if self._spec is not None and not self._done.is_set():
                raise RuntimeError(f"runner {self._name} is busy with {self._spec.label}")
            with self._cond:   # a ``wait`` never sees the new attempt with the old end
                self._done.clear()
                self._spec, self._report, self._proc = spec, None, None
                self._stop_requested, self._killed = False, ("", "")
            report = AttemptReport(job_id=spec.job_id, attempt=spec.attempt, node=self._node,
                                   started=time.time())
            try:
                report = self._launch(spec, report)
            except Exception as e:  # the process never ran
                report = report.replace(error=str(e), ended=time.time(),
                                        unwritable=_unwritable(Path(spec.run_dir), e))
                self._report = report
                self._finish()
                return self._report
            self._report = report
            threading.Thread(target=self._reap, daemon=True).start()
            return report

    def _launch(self, spec: LaunchSpec, report: AttemptReport) -> AttemptReport:
        run_dir = Path(spec.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        for uri, folder in spec.fetch:  # the parent's weights, from storage onto this node
            try:
                storage.fetch(uri, folder)
            except storage.StorageError as e:
                raise RuntimeError(f"the parent's weights: {e} — run the parent row again "
                                   "(it uploads them) or change PretrainedModelId") from None
        script = run_dir / "job.sh"
        script.write_text(spec.script, encoding="utf-8")
        log_path = run_dir / "run.log"
        env = dict(os.environ)
        env.update(spec.env)
        if spec.pinned_gpus is not None:
            gpus = ",".join(str(g) for g in spec.pinned_gpus)
        else:
            ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
            gpus = ",".join(str(g) for g in ids)
        env["CUDA_VISIBLE_DEVICES"] = gpus  # "" for a CPU job: it must not see every GPU
        env[RUN_DIR_ENV] = str(run_dir)
        env.setdefault(METRICS_FILE_ENV, str(run_dir / "metrics.jsonl"))
        env.pop("RAY_ADDRESS", None)
        for stale in ("exit_code", "supervisor.pid", "pid"):
            (run_dir / stale).unlink(missing_ok=True)
        status = self._supervisors.launch({
            "grace": spec.stop_grace, "run_dir": str(run_dir), "log": str(log_path),
            "cwd": str(run_dir), "env": env, "argv": ["bash", str(script)]})
        if status != 0:
            raise RuntimeError(f"the job supervisor failed to start (status {status}; see "
                               f"{log_path} and the runner's Ray log)")
        self._proc = Supervised(int((run_dir / "supervisor.pid").read_text()), run_dir)
        return report.replace(gpu_ids=gpus, log_path=str(log_path), pid=self._proc.pid)

    def _reap(self) -> None:
        proc, spec, report = self._proc, self._spec, self._report
        try:
            rc = self._watch(proc, spec)
        finally:
            proc.close()
        report = report.replace(ended=time.time(), stopped=self._stop_requested,
                                killed_for=self._killed[0], kill_note=self._killed[1])
        if rc == -1:   # no exit code written: the disk under the folder may have refused it
            refused = refused_write(spec.run_dir)
            if refused is not None:
                report = report.replace(unwritable=f"{refused.path}: {refused.reason}")
        report = collect(report, Path(spec.run_dir), rc, spec.weight_globs, spec.metric,
                         spec.metric_goal)
        if spec.upload_to:
            report = upload_outputs(report, Path(spec.run_dir), spec.upload_to)
        self._report = report
        self._finish()

    def _watch(self, proc: Supervised, spec: LaunchSpec) -> int:
        """Wait for the job to end, stopping it when it passes one of its limits."""
        began = time.monotonic()
        activity = _Activity(Path(spec.run_dir)) if spec.stall_timeout else None
        checked = began
        while (rc := proc.poll()) is None:
            proc.wait(_WATCH_S)
            now = time.monotonic()
            if self._killed[0] or self._stop_requested or now - checked < _WATCH_S:
                continue
            checked = now
            if spec.time_limit and now - began > spec.time_limit:
                self._kill(proc, FailureKind.TIMEOUT,
                           f"it ran past its time limit of {_duration(spec.time_limit)}")
            elif activity is not None and activity.idle_for() > spec.stall_timeout:
                self._kill(proc, FailureKind.STALLED, "no log output and no metric for "
                           f"{_duration(spec.stall_timeout)} (stall_timeout)")
        return rc

    def _kill(self, proc: Supervised, kind: FailureKind, note: str) -> None:
        self._killed = (kind.value, note)
        try:
            with open(Path(self._spec.run_dir) / "run.log", "a", encoding="utf-8") as log:
                log.write(f"[orchestrator] {note}: stopping the job\n")
            proc.send_signal(signal.SIGTERM)
        except (OSError, ProcessLookupError):
            pass

    def _finish(self) -> None:
        with self._cond:
            self._done.set()
            self._cond.notify_all()

    def wait(self, job_id: str, attempt: int,
             timeout: float | None = None) -> AttemptReport | None:
        """Block until that attempt ends; its report (None on timeout).

        Calls on a threaded actor may start out of order, so this may run before the
        ``start`` it waits for, or while the previous attempt's end is still held: it
        answers only with the end report of that very attempt.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                report = self._report
                if self._done.is_set() and report is not None \
                        and (report.job_id, report.attempt) == (job_id, attempt):
                    return report
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(0.5 if left is None else min(0.5, left))

    def stop(self, job_id: str | None = None) -> bool:
        """Stop the running job (SIGTERM to its tree, grace, SIGKILL). Idempotent."""
        spec, proc = self._spec, self._proc
        if spec is None or proc is None or self._done.is_set():
            return False
        if job_id is not None and spec.job_id != job_id:
            return False
        self._stop_requested = True
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        return True


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    h, rem = divmod(seconds, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def _unwritable(run_dir: Path, error: Exception) -> str:
    """Why the attempt's folder cannot be written, as "path: reason" ("" when it can):
    from the error that stopped the launch, else from a probe (the supervisor only says
    it failed)."""
    refused = unwritable(error, run_dir) or refused_write(run_dir)
    return f"{refused.path}: {refused.reason}" if refused is not None else ""
