"""The job runner: a Ray actor that runs one job at a time in its own process tree.

Runners are detached (a driver that dies does not kill training) and reused for
the next job of the same resource shape, so a freed slot starts its next job in
milliseconds instead of the ~0.5–1 s a fresh Ray worker costs. Each runner says
which job it runs (``current()``, and its ``repr`` in the Ray dashboard).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from orchestrator.metrics import read_metrics
from trainers import storage

__all__ = ["LaunchSpec", "JobResult", "JobRunner", "find_weight_file", "log_tail",
           "collect_result", "upload_outputs", "finished_exit_code"]

_SUPERVISOR = str(Path(__file__).with_name("_supervise.py"))


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a runner needs to run one attempt (built by the scheduler)."""

    job_id: str
    attempt: int
    label: str                     # "<queue>/<ID>"
    script: str                    # the bash script (trainers.job_script)
    run_dir: str
    env: tuple[tuple[str, str], ...] = ()
    pinned_gpus: tuple[int, ...] | None = None   # None: the GPUs Ray gave this runner
    stop_grace: float = 10.0
    weight_globs: tuple[str, ...] = ()
    metric: str = ""
    metric_goal: str = "max"
    fetch: tuple[tuple[str, str], ...] = ()   # (URI, local folder): parent weights to download
    upload_to: str = ""            # storage URI of this attempt: its weights and log go there


@dataclass
class JobResult:
    job_id: str
    attempt: int
    exit_code: int | None = None
    stopped: bool = False
    started: float | None = None
    ended: float | None = None
    node: str = ""
    gpu_ids: str = ""
    pid: int | None = None
    log_path: str = ""
    weight_file: str = ""
    best_metric: float | None = None
    metric: str = ""              # what best_metric is the best of (the row's metric)
    metric_goal: str = "max"
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)   # metric lines, oldest first
    log_tail: str = ""
    error: str = ""               # set when the job could not start

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped and not self.error


def log_tail(path: str | Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:]) if lines > 0 else ""


def find_weight_file(run_dir: Path, globs: tuple[str, ...], reported_best: str | None,
                     reported_last: str | None) -> str:
    """What the job reported (the best by metric, else the last), else the weights it left
    in its run dir: one file, else one named like "best", else the newest."""
    for reported in (reported_best, reported_last):
        if reported and (storage.is_uri(reported) or Path(reported).exists()):
            return str(reported)   # a URI: already in storage (a sweep's best trial)
    found = {p for g in globs for p in run_dir.rglob(g) if p.is_file()}
    if not found:
        return ""
    best = [p for p in found if "best" in p.name.lower()]
    pool = best or list(found)
    return str(max(pool, key=lambda p: (p.stat().st_mtime, str(p))))


def collect_result(result: JobResult, run_dir: Path, exit_code: int, weight_globs, metric: str,
                   goal: str) -> JobResult:
    """Fill ``result`` from what the attempt left in ``run_dir`` (also used by a restarted
    driver for an attempt that finished while no driver was watching)."""
    result.exit_code, result.metric, result.metric_goal = exit_code, metric, goal
    summary = read_metrics(run_dir / "metrics.jsonl", metric, goal)
    result.metrics, result.best_metric = summary.last, summary.best
    result.history = summary.history
    if exit_code == 0:
        result.weight_file = find_weight_file(run_dir, tuple(weight_globs), summary.best_weight,
                                              summary.last_weight)
    result.log_path = result.log_path or str(run_dir / "run.log")
    result.log_tail = log_tail(result.log_path)
    return result


def upload_outputs(result: JobResult, run_dir: Path, uri: str) -> None:
    """Copy an attempt's log and metrics, and the weights of one that succeeded, to its
    storage URI; ``result.weight_file`` becomes the weights' (public) URI, which any node
    can fetch. Weights that cannot be uploaded fail the attempt (a child on another node
    could not use them); a log that cannot is only a line in the log."""
    if result.ok and result.weight_file and not storage.is_uri(result.weight_file):
        weights = Path(result.weight_file)
        try:
            relative = weights.relative_to(run_dir).parts
        except ValueError:  # reported from elsewhere (the trainer's own folder)
            relative = ("weights", weights.name)
        try:
            result.weight_file = storage.upload(weights, storage.join(uri, *relative))
        except storage.StorageError as e:
            result.error = (f"{e} — the weights stay on {result.node} at {weights}; check "
                            "the storage's credentials and space (Retries rerun the row)")
            result.weight_file = ""
            _log_line(run_dir, f"[orchestrator] {result.error}")
    for name in ("run.log", "metrics.jsonl"):
        if (run_dir / name).is_file():
            try:
                storage.upload(run_dir / name, storage.join(uri, name))
            except storage.StorageError as e:
                _log_line(run_dir, f"[orchestrator] {e}")


def _log_line(run_dir: Path, line: str) -> None:
    try:
        with open(run_dir / "run.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")
    except OSError:
        pass


def finished_exit_code(run_dir: Path) -> int | None:
    """The exit code an attempt's supervisor wrote, or None if it never finished."""
    try:
        return int((run_dir / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None


class _Supervised:
    """The detached supervisor of one job (not our child: we poll it)."""

    def __init__(self, pid: int, run_dir: Path):
        self.pid, self._exit_file = pid, run_dir / "exit_code"

    def wait(self) -> int:
        while True:
            if self._exit_file.exists():
                return int(self._exit_file.read_text().strip() or -1)
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:  # it died without a word (killed with SIGKILL)
                if self._exit_file.exists():
                    continue
                return -1
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


@ray.remote(max_concurrency=8, max_restarts=0)
class JobRunner:
    """Runs the jobs handed to it, one at a time."""

    def __init__(self, name: str):
        self._name = name
        self._lock = threading.Lock()
        self._spec: LaunchSpec | None = None
        self._proc: _Supervised | None = None
        self._result: JobResult | None = None
        self._done = threading.Event()
        self._cond = threading.Condition()
        self._stop_requested = False
        node_id = ray.get_runtime_context().get_node_id()
        self._node = f"{socket.gethostname()}/{node_id[:8]}"

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

    def start(self, spec: LaunchSpec) -> JobResult:
        """Start ``spec``; returns at once with where and how it runs."""
        with self._lock:
            if self._spec is not None and not self._done.is_set():
                raise RuntimeError(f"runner {self._name} is busy with {self._spec.label}")
            self._spec, self._result, self._proc = spec, None, None
            self._stop_requested = False
            self._done.clear()
            result = JobResult(job_id=spec.job_id, attempt=spec.attempt, node=self._node,
                               started=time.time())
            try:
                self._launch(spec, result)
            except Exception as e:  # the process never ran
                result.error = f"could not start: {e}"
                result.ended = time.time()
                self._result = result
                self._finish()
                return result
            self._result = result
            threading.Thread(target=self._reap, daemon=True).start()
            return result

    def _launch(self, spec: LaunchSpec, result: JobResult) -> None:
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
        env["ORCH_RUN_DIR"] = str(run_dir)
        env.setdefault("ORCH_METRICS_FILE", str(run_dir / "metrics.jsonl"))
        env.pop("RAY_ADDRESS", None)
        result.gpu_ids, result.log_path = gpus, str(log_path)
        for stale in ("exit_code", "supervisor.pid", "pid"):
            (run_dir / stale).unlink(missing_ok=True)
        with open(log_path, "ab") as log:
            first = subprocess.Popen(
                [sys.executable, _SUPERVISOR, str(spec.stop_grace), str(os.getpid()), "--",
                 "bash", str(script)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(run_dir), start_new_session=True)  # out of reach of Ray's group kill
        if first.wait() != 0:
            raise RuntimeError(f"the job supervisor failed to start (see {log_path})")
        self._proc = _Supervised(int((run_dir / "supervisor.pid").read_text()), run_dir)
        result.pid = self._proc.pid

    def _reap(self) -> None:
        proc, spec, result = self._proc, self._spec, self._result
        rc = proc.wait()
        result.ended = time.time()
        result.stopped = self._stop_requested
        collect_result(result, Path(spec.run_dir), rc, spec.weight_globs, spec.metric,
                       spec.metric_goal)
        if spec.upload_to:
            upload_outputs(result, Path(spec.run_dir), spec.upload_to)
        self._finish()

    def _finish(self) -> None:
        with self._cond:
            self._done.set()
            self._cond.notify_all()

    def wait(self, job_id: str, attempt: int, timeout: float | None = None) -> JobResult | None:
        """Block until that attempt ends; its result (None on timeout).

        Calls on a threaded actor may start out of order, so this may run before the
        ``start`` it waits for: it waits for that job to appear first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                spec = self._spec
                if spec is not None and (spec.job_id, spec.attempt) == (job_id, attempt) \
                        and self._done.is_set():
                    return self._result
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
