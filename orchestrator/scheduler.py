"""The scheduler: turns queue rows into running jobs and keeps the CSV current.

One loop, event driven: it waits on the runners' futures with ``ray.wait`` and
acts the moment a job starts or ends, so a freed slot starts its next job at
once. Every status change goes through ``_transition`` (a guarded
compare-and-set); the CSV, the run record and the console only observe it.

State ownership: for a row the driver is running (Queued/Training) the driver's
state wins; for every other row the file is the truth, so a user who clears
``TrainingCheck`` runs the row again, and a user who edits a row changes what
runs next.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ray

from orchestrator.config import Config
from orchestrator.deps import Readiness, find_cycles, resolve
from orchestrator.exceptions import OrchestratorError, QueueFileError
from orchestrator.gpus import GpuLedger
from orchestrator.jobs import TRANSITIONS, JobSpec, JobStatus
from orchestrator.launch import build_launch
from orchestrator.pool import RunnerPool, Shape
from orchestrator.queue import QueueFile, Table, safe_cell
from orchestrator.record import RunRecord
from orchestrator.registry import ModelRegistry
from orchestrator.runner import JobResult, collect_result, finished_exit_code, upload_outputs
from trainers.kinds import BUILTIN
from trainers.storage import is_uri
from trainers.storage import join as storage_join

__all__ = ["Scheduler", "Job"]

logger = logging.getLogger(__name__)
S = JobStatus
_DERIVED = frozenset({S.PENDING, S.BLOCKED, S.INVALID})
#: Runner losses (node died, actor killed) re-queued for free before a row counts as Crash.
MAX_LOSSES = 3
#: Rows queued on Ray for resources no node has yet (an autoscaler's demand), at most.
MAX_WAITING_FOR_NODES = 8
#: "Actor unavailable" answers in a row before a runner counts as lost.
MAX_UNAVAILABLE = 20


@dataclass
class Job:
    """The driver's view of one row."""

    id: str
    line: int
    row: dict
    spec: JobSpec | None = None
    invalid_reason: str = ""
    status: JobStatus = S.PENDING
    attempt: int = 0                  # attempts started so far (the Attempts column)
    crashes: int = 0                  # crashed attempts since the row last started fresh
    losses: int = 0                   # attempts lost with their runner
    unavailable: int = 0              # "runner unavailable" answers in a row
    not_before: float = 0.0           # retry backoff (monotonic clock)
    runner: object = None
    wandb_run_id: str = ""
    started: float | None = None
    gpus: str = ""                    # the GPU ids the running attempt got
    result: JobResult | None = None   # how the last attempt ended (observers read it)
    notes: set = field(default_factory=set)   # warnings already logged once


def _now_text(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time()).strftime("%Y-%m-%d %H:%M:%S")


def new_run_id() -> str:
    """An 8-character id in W&B's style, assigned before the run starts."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


class Scheduler:
    """Runs one queue file until it is finished (or forever with ``watch``)."""

    def __init__(self, queue: QueueFile, config: Config, state_dir: Path, record: RunRecord, *,
                 queue_name: str, local_ray: bool,
                 observers: tuple[Callable[[Job, JobStatus, JobStatus, dict], None], ...] = ()):
        self.queue, self.config, self.state_dir, self.record = queue, config, state_dir, record
        self.queue_name, self.local_ray = queue_name, local_ray
        self.base_dir = queue.path.parent
        self.observers = observers
        self.jobs: dict[str, Job] = {}
        self.cells: dict[str, dict[str, str]] = {}   # CSV changes not written yet
        # ref -> (job id, "start" | "done", attempt)
        self.refs: dict[object, tuple[str, str, int]] = {}
        self.pool = RunnerPool(queue_name, config.namespace, record, token=secrets.token_hex(3))
        self.ledger = GpuLedger(config.slots) if config.gpu_mode != "ray" else None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.models = ModelRegistry(record.path)
        self._table_stat: tuple[int, int] = (0, 0)
        self._last_read = 0.0
        self._first_round_done = False
        self._interrupt = 0        # 1: stop launching and wind down
        self._stop_on_interrupt = False
        self._rewait: list[tuple[float, str, int]] = []  # (when, job id, attempt)

    # ================================================================ the loop
    def run(self) -> int:
        """Run until done; the exit code: 0 when no row ended failed, else 1."""
        self._sync(self.queue.read())
        self._reconcile()
        try:
            while True:
                self._maybe_reload()
                if not self._interrupt:
                    self._plan()
                self._flush()
                if self._finished():
                    break
                self._wait_events(self._wait_timeout())
                self.pool.reap_idle(self.config.runner_idle)
        finally:
            self._flush()
            self.pool.shutdown()
            self.models.close()
        failed = [j for j in self.jobs.values() if j.status.failed]
        return 1 if failed else 0

    def snapshot(self) -> list[dict]:
        """The rows as the driver sees them now (for a live display; any thread)."""
        for _ in range(3):
            try:
                jobs = list(self.jobs.values())
                cells = {k: dict(v) for k, v in self.cells.items()}
                break
            except RuntimeError:  # changed while we copied: try again
                continue
        else:
            return []
        now = time.time()
        rows = []
        for job in sorted(jobs, key=lambda j: j.line):
            row = {**job.row, **cells.get(job.id, {})}
            running = job.status == S.TRAINING and job.started
            rows.append({"id": job.id, "name": row.get("Name", ""),
                         "status": job.status.value or "Pending",
                         "attempts": row.get("Attempts", ""), "node": row.get("Node", ""),
                         "gpus": job.gpus if job.status.active else "",
                         "elapsed_s": now - job.started if running else None,
                         "best_metric": row.get("BestMetric", ""),
                         "weight_file": row.get("WeightFile", ""),
                         "wandb_run_id": row.get("WandbRunID", ""),
                         "error": row.get("Error", "")})
        return rows

    @property
    def interrupted(self) -> bool:
        return bool(self._interrupt)

    def interrupt(self, stop_jobs: bool | None = None) -> None:
        """Wind down: launch nothing more and exit. Running jobs are stopped (they go back
        to pending) when ``stop_jobs``, else left running for a rerun to re-attach; the
        default stops them only on a Ray we started (they could not outlive it)."""
        self._interrupt += 1
        self._stop_on_interrupt = self.local_ray if stop_jobs is None else stop_jobs
        if self._stop_on_interrupt:
            for job in self.jobs.values():
                if job.status.active and job.runner is not None:
                    job.runner.handle.stop.remote(job.id)

    def _finished(self) -> bool:
        active = any(j.status.active for j in self.jobs.values())
        if self._interrupt:
            return not active or not self._stop_on_interrupt
        if active:
            return False
        if self.config.watch:
            return False
        if not self.config.auto_continue and self._first_round_done:
            return True
        return not any(j.status == S.PENDING and j.spec is not None for j in self.jobs.values())

    def _wait_timeout(self) -> float:
        timeout = 0.5
        now = time.monotonic()
        for job in self.jobs.values():
            if job.status == S.PENDING and job.not_before > now:
                timeout = min(timeout, job.not_before - now)
        for when, _, _ in self._rewait:
            timeout = min(timeout, when - now)
        return max(timeout, 0.01)

    def _wait_events(self, timeout: float) -> None:
        now = time.monotonic()
        for when, job_id, attempt in [w for w in self._rewait if w[0] <= now]:
            self._rewait.remove((when, job_id, attempt))
            job = self.jobs.get(job_id)
            if job is not None and job.runner is not None and job.attempt == attempt:
                self.refs[job.runner.handle.wait.remote(job_id, attempt)] = (job_id, "done",
                                                                             attempt)
        if not self.refs:
            time.sleep(timeout)
            return
        refs = list(self.refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        # a job's "start" before its "done": both may be ready in one batch
        for ref in sorted(ready, key=lambda r: self.refs[r][1] != "start"):
            self._on_ready(ref)

    # ============================================================ the file
    def _maybe_reload(self) -> None:
        try:
            st = os.stat(self.queue.path)
        except FileNotFoundError:
            return  # the user is replacing it; keep the last good view
        changed = (st.st_mtime_ns, st.st_size) != self._table_stat
        if changed or time.monotonic() - self._last_read > self.config.check_interval:
            try:
                self._sync(self.queue.read(quiet=0.25 if changed else 0.0))
            except QueueFileError as e:
                self._note_once(None, str(e), logging.ERROR)

    def _flush(self) -> None:
        if not self.cells:
            return
        cells, self.cells = self.cells, {}
        try:
            table = self.queue.update(cells)
        except (QueueFileError, OSError) as e:
            logger.error("could not update %s (will retry): %s", self.queue.path, e)
            for job_id, row in cells.items():
                self.cells.setdefault(job_id, {}).update(row)
            return
        self._sync(table)

    def _cell(self, job: Job, column: str) -> str:
        """A cell as it will be once pending changes are written."""
        pending = self.cells.get(job.id, {})
        return pending[column] if column in pending else job.row.get(column, "")

    def _set(self, job: Job, **cells: str) -> None:
        self.cells.setdefault(job.id, {}).update({k: "" if v is None else str(v)
                                                  for k, v in cells.items()})

    def _sync(self, table: Table) -> None:
        """Bring ``self.jobs`` in line with the file's rows."""
        self._table_stat, self._last_read = table.stat, time.monotonic()
        rows = table.rows()
        lines_by_id: dict[str, list[int]] = {}
        for line, row in rows:
            job_id = (row.get("ID") or "").strip()
            if job_id:
                lines_by_id.setdefault(job_id, []).append(line)
            elif any(v.strip() for v in row.values()):
                self._note_once(None, f"{table.path} line {line}: the row has no ID, so it "
                                "cannot run — give it a unique ID", logging.WARNING)
        seen = set()
        for line, row in rows:
            job_id = (row.get("ID") or "").strip()
            if not job_id or job_id in seen:
                continue
            seen.add(job_id)
            self._sync_row(table, job_id, line, row, lines_by_id[job_id])
        for job_id in [j for j in self.jobs if j not in seen]:
            job = self.jobs[job_id]
            if job.status.active:
                self._note_once(job, f"row {job_id} was deleted from the CSV while running; "
                                "it keeps running and its status is not written")
            else:
                del self.jobs[job_id]

    def _sync_row(self, table: Table, job_id: str, line: int, row: dict,
                  lines: list[int]) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = Job(id=job_id, line=line, row=row)
        job.line, job.row = line, row
        if job.status.active:
            return  # ours until it ends
        if len(lines) > 1:
            job.spec = None
            job.invalid_reason = (f"ID {job_id!r} is used on lines "
                                  f"{', '.join(map(str, lines))} — give each row its own ID")
        else:
            try:
                job.spec = JobSpec.from_row(row, line, table.path, self.base_dir)
                job.invalid_reason = ""
            except QueueFileError as e:
                job.spec, job.invalid_reason = None, e.reason
                self._note_once(job, str(e), logging.ERROR)
        try:
            job.attempt = max(job.attempt, int(float(row.get("Attempts") or 0)))
        except ValueError:
            pass
        pending = self.cells.get(job_id, {})
        status = S.parse(pending.get("TrainingCheck", row.get("TrainingCheck", "")))
        if status.active:  # says running, but no runner of ours runs it: run it again
            status = S.PENDING
            self._set(job, TrainingCheck="", Error="re-queued: it was marked running but no "
                      "job was found for it")
        if status != job.status:
            if status == S.PENDING and job.status in (S.DONE, S.CRASH, S.STOPPED):
                job.crashes, job.losses, job.wandb_run_id = 0, 0, ""   # a fresh start
                job.not_before = 0.0
            job.status = status   # the user's edit: the file is the truth here

    # ========================================================= transitions
    def _transition(self, job: Job, to: JobStatus, allowed_from: frozenset | set | tuple,
                    **cells) -> bool:
        """Move ``job`` to ``to`` if it is in ``allowed_from`` (compare-and-set)."""
        old = job.status
        if old not in allowed_from or to not in TRANSITIONS[old]:
            return False
        job.status = to
        if to in (S.DONE, S.CRASH, S.STOPPED):
            cells.setdefault("Ended", _now_text())
        if "Error" in cells:
            cells["Error"] = safe_cell(cells["Error"])
        self._set(job, TrainingCheck=to.value, **cells)
        for observe in self.observers:
            try:
                observe(job, old, to, self.cells.get(job.id, {}))
            except Exception:  # an observer never decides or breaks state
                logger.exception("status observer failed")
        return True

    def _note_once(self, job: Job | None, message: str, level=logging.WARNING) -> None:
        notes = job.notes if job is not None else self.__dict__.setdefault("_notes", set())
        if message not in notes:
            notes.add(message)
            logger.log(level, message)

    # ============================================================== planning
    def _plan(self) -> None:
        readiness = self._derive_states()
        ready = [j for j in self.jobs.values() if j.status == S.PENDING and j.spec is not None
                 and readiness[j.id].state == "ready" and j.not_before <= time.monotonic()]
        ready.sort(key=lambda j: (-j.spec.priority, j.line))
        if self._first_round_done and not self.config.auto_continue:
            ready = [j for j in ready if j.crashes or j.losses]   # only retries
        cap = self.config.max_training_process
        for job in ready:
            if cap and sum(j.status.active for j in self.jobs.values()) >= cap:
                break
            self._launch(job, readiness[job.id])
        self._first_round_done = True

    def _derive_states(self) -> dict[str, Readiness]:
        """Invalid / Blocked / Pending for every idle row; repeats until chains settle."""
        parents = {j.id: j.spec.parent_id for j in self.jobs.values()
                   if j.spec is not None and j.spec.parent_id}
        cycles = find_cycles(parents)
        weights = {j.id: self._cell(j, "WeightFile") for j in self.jobs.values()}
        models = functools.lru_cache(maxsize=None)(self.models.resolve)  # one pass
        readiness: dict[str, Readiness] = {}
        for _ in range(len(self.jobs) + 1):
            statuses = {j.id: j.status for j in self.jobs.values()}
            changed = False
            for job in self.jobs.values():
                if job.status not in _DERIVED:
                    continue
                if job.spec is None:
                    r = Readiness("invalid", job.invalid_reason)
                else:
                    r = resolve(job.id, job.spec.parent_id, statuses, weights, cycles,
                                self.base_dir, models)
                readiness[job.id] = r
                target = {"invalid": S.INVALID, "blocked": S.BLOCKED}.get(r.state, S.PENDING)
                if target != job.status:
                    error = r.reason if target != S.PENDING else ""
                    changed |= self._transition(job, target, _DERIVED, Error=error)
            if not changed:
                break
        return readiness

    # ============================================================== launching
    def _shape(self, job: Job) -> tuple[Shape, tuple[int, ...] | None, bool] | None:
        """The runner shape, pinned GPUs, and whether to ask Ray even though the cluster
        is too small now (an autoscaler grows it for pending demand); None: wait."""
        spec, cfg = job.spec, self.config
        cpus = spec.cpus if spec.cpus is not None else cfg.default_cpus
        if spec.kind == "sweep":  # its trials ask for the resources, not its runner
            return Shape(0.0, 0.0, spec.resources), None, False
        if spec.kind in BUILTIN and BUILTIN[spec.kind].ray_train:
            return self._ray_train_shape(job)
        if self.ledger is not None:
            if cfg.gpu_mode == "slots":
                claimed = self.ledger.claim_slot(job.id)
                if claimed is None:
                    return None
                gpus = claimed[1]
            else:
                gpus = spec.gpu_ids or (cfg.default_gpu,)
                if len(gpus) > 1 and not cfg.allow_multi_gpu:
                    self._transition(job, S.INVALID, {S.PENDING}, Error=(
                        f"GpuID={'+'.join(map(str, gpus))!r} names several GPUs but "
                        "allow_multi_gpu = false — use one GPU or allow it in [gpu]"))
                    return None
                if not self.ledger.claim(job.id, gpus):
                    return None
            return Shape(0.0, cpus, spec.resources, node_id=self.node_id), gpus, False
        gpus = spec.gpus if spec.gpus is not None else self._default_gpus()
        if gpus > 1 and not cfg.allow_multi_gpu:
            self._transition(job, S.INVALID, {S.PENDING}, Error=(
                f"GPUs={gpus:g} but allow_multi_gpu = false — ask for 1 GPU or less, or set "
                "allow_multi_gpu = true in [gpu]"))
            return None
        shape = Shape(gpus, cpus, spec.resources)
        if not self.pool.can_ever_fit(shape):
            have = {k: v for k, v in self.pool.totals().items()
                    if k in shape.demand() and shape.demand()[k] > 0}
            message = (f"needs {dict((k, v) for k, v in shape.demand().items() if v > 0)} but "
                       f"the cluster has {have}")
            if self.local_ray:
                self._transition(job, S.INVALID, {S.PENDING}, Error=(
                    f"{message} — lower GPUs/CPUs, or start with --num-gpus N"))
                return None
            waiting = sum(j.status == S.QUEUED for j in self.jobs.values())
            if waiting >= MAX_WAITING_FOR_NODES:
                return None
            self._note_once(job, f"{job.id}: {message}; queued on Ray until a node that fits "
                            "joins (an autoscaler starts one for this demand)")
            return shape, None, True
        return shape, None, False

    def _default_gpus(self) -> float:
        """A row's GPUs when its cell is empty (per worker for a Ray Train row)."""
        if self.config.default_gpus == "auto":
            return 1.0 if self.pool.totals().get("GPU", 0) > 0 else 0.0
        return float(self.config.default_gpus)

    def _generation(self, job_id: str) -> int:
        """The attempt that began the row's current run: the one after its last Done
        attempt (a row run again after Done starts afresh; a retry, a lost runner or a
        restarted driver continue the run and resume from its checkpoints)."""
        done = [a["attempt"] for a in self.record.attempts(self.queue_name, job_id)
                if a["status"] == S.DONE.value]
        return max(done, default=0) + 1

    def _ray_train_shape(self, job: Job) -> tuple[Shape, None, bool] | None:
        """A Ray Train row: its runner holds nothing; its ``Workers`` workers hold ``GPUs``
        (and ``CPUs``, default 1) each, which the pool counts as held while it runs."""
        spec = job.spec
        per_gpu = spec.gpus if spec.gpus is not None else self._default_gpus()
        per_cpu = spec.cpus if spec.cpus is not None else 1.0
        workers = tuple((k, v * spec.workers) for k, v in (("CPU", per_cpu), ("GPU", per_gpu))
                        if v > 0)
        shape = Shape(0.0, 0.0, spec.resources, workers=workers)
        if not self.pool.can_ever_fit(shape):
            message = (f"{spec.workers} workers × {per_gpu:g} GPU, {per_cpu:g} CPU need "
                       f"{dict(workers)} but the cluster has "
                       f"{ {k: self.pool.totals().get(k, 0.0) for k, _ in workers} }")
            if self.local_ray:
                self._transition(job, S.INVALID, {S.PENDING}, Error=(
                    f"{message} — lower Workers/GPUs/CPUs, or start with --num-gpus N"))
                return None
            self._note_once(job, f"{job.id}: {message}; its trainer waits on Ray until nodes "
                            "that fit join")
            return shape, None, True
        return shape, None, False

    def _launch(self, job: Job, ready: Readiness) -> None:
        placed = self._shape(job)
        if placed is None:
            return
        shape, pinned, force = placed
        runner = self.pool.acquire(shape, job.id, force=force)
        if runner is None:
            if self.ledger is not None:
                self.ledger.release(job.id)
            return
        spec = job.spec
        attempt = job.attempt + 1
        cells = {}
        if ready.missing_weights:
            cells["PretrainedModelId"] = f"-{spec.parent_id}"
            self._note_once(job, f"{job.id}: {ready.reason}")
        if "BestConfig" in job.row:
            cells["BestConfig"] = ""
        job.wandb_run_id = job.wandb_run_id or new_run_id()
        if shape.workers:  # a Ray Train row: its trainer asks for what the pool counted
            per_worker = {k: v / spec.workers for k, v in shape.workers}
            spec = dataclasses.replace(spec, gpus=per_worker.get("GPU", 0.0),
                                       cpus=per_worker.get("CPU", 0.0))
        launch = build_launch(spec, self.config, queue=self.queue_name, attempt=attempt,
                              base_dir=self.base_dir, state_dir=self.state_dir,
                              wandb_run_id=job.wandb_run_id, pinned=pinned,
                              pretrained_path=ready.pretrained_path,
                              cluster_address=ray.get_runtime_context().gcs_address,
                              generation=self._generation(job.id))
        run_dir = Path(launch.run_dir)
        self.refs[runner.handle.start.remote(launch)] = (job.id, "start", attempt)
        self.refs[runner.handle.wait.remote(job.id, attempt)] = (job.id, "done", attempt)
        job.attempt, job.runner, job.started, job.result = attempt, runner, None, None
        log_path = self._display_path(run_dir / "run.log")
        self._transition(job, S.QUEUED, {S.PENDING}, Attempts=str(attempt),
                         WandbRunID=job.wandb_run_id, LogFile=log_path, Started="", Ended="",
                         Node="", WeightFile="", BestMetric="",
                         Error=ready.reason if ready.missing_weights else "", **cells)
        self.record.begin_attempt(self.queue_name, job.id, attempt, status=S.QUEUED.value,
                                  command=spec.command, runner=runner.name,
                                  log_path=str(run_dir / "run.log"),
                                  wandb_run_id=job.wandb_run_id,
                                  gpus=",".join(map(str, pinned)) if pinned else "")

    def _display_path(self, path: Path | str) -> str:
        if is_uri(path):
            return str(path)
        path = Path(path)
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    # ================================================================ events
    def _on_ready(self, ref) -> None:
        job_id, kind, attempt = self.refs.pop(ref)
        job = self.jobs.get(job_id)
        if job is None or job.attempt != attempt:
            return
        try:
            result: JobResult = ray.get(ref)
        except ray.exceptions.ActorUnavailableError as e:
            # maybe a blip: ask again; a runner that is really gone answers ActorDiedError
            if kind == "done" and job.runner is not None and job.unavailable < MAX_UNAVAILABLE:
                job.unavailable += 1   # ask again in a moment, without holding up the loop
                self._rewait.append((time.monotonic() + min(0.1 * job.unavailable, 1.0),
                                     job.id, attempt))
            elif kind == "done":
                self._lost(job, e)
            return
        except ray.exceptions.RayError as e:  # the runner died (node lost, killed)
            if kind == "done":
                self._lost(job, e)
            return
        job.unavailable = 0
        if kind == "start":
            if not result.error:
                job.started, job.gpus = result.started, result.gpu_ids
                self._transition(job, S.TRAINING, {S.QUEUED}, Started=_now_text(result.started),
                                 Node=result.node)
                self.record.update_attempt(self.queue_name, job.id, attempt,
                                           status=S.TRAINING.value, started=result.started,
                                           node=result.node, gpus=result.gpu_ids)
            return
        self._finish(job, result)

    def _release(self, job: Job, keep_runner: bool = True) -> None:
        if job.runner is not None:
            if keep_runner:
                self.pool.release(job.runner)
            else:
                self.pool.discard(job.runner)
        job.runner = None
        if self.ledger is not None:
            self.ledger.release(job.id)

    def _finish(self, job: Job, result: JobResult) -> None:
        self._release(job)
        job.result = result
        spec = job.spec
        cells = {"Node": result.node}
        if job.status == S.QUEUED and not result.error:   # it ran: pass through Training
            self._transition(job, S.TRAINING, {S.QUEUED}, Started=_now_text(result.started),
                             Node=result.node)
        if result.best_metric is not None:
            cells["BestMetric"] = f"{result.best_metric:g}"
        log = self._display_path(result.log_path) if result.log_path else ""
        if result.stopped and self._interrupt:
            to, record_status = S.PENDING, "Interrupted"
            cells["Error"] = f"interrupted when the driver stopped at {_now_text()}; runs again"
        elif result.stopped:
            to = record_status = S.STOPPED
            cells["Error"] = "stopped on request"
        elif result.ok:
            to = record_status = S.DONE
            if spec.kind == "sweep" and isinstance(result.metrics.get("best_config"), dict):
                cells["BestConfig"] = json.dumps(result.metrics["best_config"],
                                                 ensure_ascii=False, separators=(",", ":"))
            cells["WeightFile"] = self._display_path(result.weight_file) if result.weight_file \
                else ""  # Error keeps what the launch wrote ("" or a missing-weights warning)
        else:
            reason = result.error or f"exit code {result.exit_code}"
            last = next((ln for ln in reversed(result.log_tail.splitlines()) if ln.strip()), "")
            if job.crashes < spec.retries:
                job.crashes += 1
                delay = min(300.0, self.config.retry_backoff * 2 ** (job.crashes - 1))
                job.not_before = time.monotonic() + delay
                to, record_status = S.PENDING, S.CRASH
                cells["Error"] = (f"attempt {job.attempt} crashed ({reason}); retry "
                                  f"{job.crashes}/{spec.retries} in {delay:g}s")
            else:
                to = record_status = S.CRASH
                where = f" (log: {log})" if log else ""
                cells["Error"] = f"{reason}: {last[:300]}{where}" if last else f"{reason}{where}"
        self._transition(job, to, {S.QUEUED, S.TRAINING}, **cells)
        self.record.update_attempt(
            self.queue_name, job.id, result.attempt,
            status=getattr(record_status, "value", record_status), ended=result.ended,
            started=result.started, exit_code=result.exit_code, node=result.node,
            gpus=result.gpu_ids, weight_file=result.weight_file, metrics=result.metrics,
            best_metric=result.best_metric, error=cells.get("Error", ""))

    def _lost(self, job: Job, error: Exception) -> None:
        """The runner died (its node went away, or it was killed): re-queue for free."""
        self._release(job, keep_runner=False)
        job.result = None
        job.losses += 1
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        self.record.update_attempt(self.queue_name, job.id, job.attempt, status="Lost",
                                   ended=time.time(), error=first_line[:500])
        if job.losses > MAX_LOSSES:
            self._transition(job, S.CRASH, {S.QUEUED, S.TRAINING}, Error=(
                f"lost its runner {job.losses} times (last: {first_line[:200]}) — check the "
                "cluster's nodes"))
            return
        logger.warning("%s: attempt %d lost with its runner (%s); re-queued", job.id,
                       job.attempt, first_line[:200])
        self._transition(job, S.PENDING, {S.QUEUED, S.TRAINING}, Error=(
            f"attempt {job.attempt} lost with its node/runner; re-queued"))

    # ============================================================ reconcile
    def _reconcile(self) -> None:
        """After a driver restart: re-attach to live jobs, re-queue the ones that are gone."""
        known = self.record.runners(self.queue_name)
        adopted = set()
        for attempt in self.record.active(self.queue_name):
            job = self.jobs.get(attempt["job_id"])
            name = attempt.get("runner") or ""
            handle, current = None, None
            try:
                handle = ray.get_actor(name, namespace=self.config.namespace)
                current = ray.get(handle.current.remote(), timeout=15)
            except Exception:
                handle = None
            live = handle is not None and current is not None and (
                current["job_id"], current["attempt"]) == (attempt["job_id"], attempt["attempt"])
            if job is not None and not live and self._salvage(job, attempt):
                continue
            if job is None or not live:
                self.record.update_attempt(self.queue_name, attempt["job_id"], attempt["attempt"],
                                           status="Lost", ended=time.time(),
                                           error="its runner was gone when the driver restarted")
                if job is not None:
                    job.losses += 1
                    job.attempt = max(job.attempt, attempt["attempt"])
                    self._set(job, TrainingCheck="", Error=f"attempt {attempt['attempt']} was "
                              "lost while the driver was down; re-queued")
                    job.status = S.PENDING
                    logger.warning("%s: attempt %d was lost while the driver was down; "
                                   "re-queued", job.id, attempt["attempt"])
                continue
            described = known.get(name, {})
            shape = Shape(**{**described, **{k: tuple(sorted(described.get(k, {}).items()))
                                             for k in ("resources", "workers")}}) \
                if name in known else Shape()
            runner = self.pool.adopt(name, handle, shape, job.id)
            adopted.add(name)
            job.runner, job.attempt = runner, attempt["attempt"]
            job.wandb_run_id = attempt.get("wandb_run_id") or job.wandb_run_id
            job.status = S.TRAINING
            self._set(job, TrainingCheck=S.TRAINING.value, Error="")
            job.spec = job.spec or JobSpec(id=job.id, line=job.line)
            if self.ledger is not None and attempt.get("gpus"):
                self.ledger.claim(job.id, tuple(int(g) for g in attempt["gpus"].split(",")))
            self.refs[handle.wait.remote(job.id, job.attempt)] = (job.id, "done", job.attempt)
            logger.info("%s: re-attached to attempt %d (still running)", job.id, job.attempt)
        for name in set(known) - adopted:   # leftovers of a driver that died
            try:
                ray.kill(ray.get_actor(name, namespace=self.config.namespace), no_restart=True)
            except Exception:
                pass
            self.record.remove_runner(self.queue_name, name)


    def _salvage(self, job: Job, attempt: dict) -> bool:
        """An attempt that finished while no driver watched (its exit code is on disk):
        take its result instead of running the row again."""
        run_dir = Path(attempt["log_path"]).parent if attempt.get("log_path") else None
        code = finished_exit_code(run_dir) if run_dir else None
        if code is None:
            return False
        result = collect_result(
            JobResult(job_id=job.id, attempt=attempt["attempt"], node=attempt.get("node") or "",
                      gpu_ids=attempt.get("gpus") or "", started=attempt.get("started"),
                      ended=(run_dir / "exit_code").stat().st_mtime,
                      log_path=attempt["log_path"]),
            run_dir, code, self.config.weight_globs, self.config.metric,
            self.config.metric_goal)
        if self.config.storage:  # its runner is gone before it could upload them
            where = storage_join(self.config.storage, job.id, f"attempt-{attempt['attempt']}")
            upload_outputs(result, run_dir, where)
        job.attempt, job.status = attempt["attempt"], S.TRAINING
        self._set(job, Error="")
        if job.spec is None:
            job.spec = JobSpec(id=job.id, line=job.line)
        logger.info("%s: attempt %d finished while the driver was down (exit %d)", job.id,
                    job.attempt, code)
        self._finish(job, result)
        return True


def stop_job(job_id: str, runner_name: str, namespace: str) -> bool:
    """Ask the runner of ``job_id`` to stop it (used from another process)."""
    try:
        handle = ray.get_actor(runner_name, namespace=namespace)
    except ValueError:
        return False
    try:
        return bool(ray.get(handle.stop.remote(job_id), timeout=30))
    except ray.exceptions.RayError as e:
        raise OrchestratorError(f"could not reach the runner of {job_id}: {e}") from e
