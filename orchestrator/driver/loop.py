"""The driver's loop: what happened → ``core.apply`` → what must be done.

One loop, event driven: it waits on the runner pool (``Pool.poll``) and acts the
moment an attempt starts or ends, so a freed slot starts its next job at once. Every
status change is ``core.apply``'s; this module carries out the effects and feeds the
events in. Its rooms: ``filesync`` (when the file is read and written), ``readiness``
(which waiting rows to derive again), ``placement`` (runners, pinned GPUs, launches),
``reconcile`` (what a restarted driver finds), ``requests`` (stop requests from
other terminals) and ``rows`` (the rows, indexed by what the loop asks of them).

State ownership: for a row the driver is running (Queued/Training) the driver's state
wins; for every other row the file says what the user wants (``core.edits``), and
the orchestrator's own cells are restored when a stale save puts back older values.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from orchestrator.core import (
    ATTEMPT_ACTIVE,
    OWNED_COLUMNS,
    AttemptEnded,
    Context,
    Effect,
    Event,
    HandlingFailed,
    Kill,
    RecordAttempt,
    RowDeleted,
    RowRead,
    RowState,
    RowStatus,
    RunnerLost,
    RunnerStarted,
    StatusChanged,
    StopRequested,
    Warn,
    WriteCells,
    apply,
    can_progress,
    may_start,
    next_wake,
    room,
    why_waiting,
)
from orchestrator.driver import reconcile, requests
from orchestrator.driver.filesync import FileSync
from orchestrator.driver.placement import Placer, inherited_env
from orchestrator.driver.readiness import ReadinessTracker
from orchestrator.driver.rows import Rows
from orchestrator.driver.snapshots import Snapshots
from orchestrator.execution.pool import Ended, Lost, Pool, Started
from orchestrator.infra import failpoints
from orchestrator.infra.errors import QueueFileError, StateUnwritable
from orchestrator.infra.storage import is_uri
from orchestrator.kinds import KINDS, parse_row
from orchestrator.store.config import Config
from orchestrator.store.paths import QueuePaths
from orchestrator.store.queue_file import QueueFile, Table
from orchestrator.store.record import RunRecord, refused_write, unwritable
from orchestrator.store.registry import ModelRegistry

__all__ = ["Scheduler", "Observer"]

logger = logging.getLogger(__name__)
S = RowStatus
Observer = Callable[[StatusChanged], None]


class Scheduler:
    """Runs one queue file until it is finished (or forever with ``watch``)."""

    def __init__(self, queue_file: QueueFile, config: Config, state_dir: Path,
                 record: RunRecord, *, queue_name: str, local_ray: bool,
                 observers: tuple[Observer, ...] = (), pool: Pool | None = None,
                 said: Iterable[str] = (), owns_ray: bool | None = None):
        """``said``: messages the user was already shown (``run`` checks the rows before
        Ray starts); the loop does not repeat them. ``local_ray``: the Ray is this
        machine's, its resources fixed (a row that can never fit is Invalid);
        ``owns_ray`` (default: ``local_ray``): it ends with this driver, so running jobs
        are stopped when the driver is (a kept local Ray outlives it: they detach)."""
        self.queue = QueueFile(queue_file.path, writable=OWNED_COLUMNS,
                               encoding=queue_file.encoding)
        self.config, self.state_dir, self.record = config, state_dir, record
        self.queue_name, self.local_ray = queue_name, local_ray
        self.owns_ray = local_ray if owns_ray is None else owns_ray
        self.paths = QueuePaths(self.queue.path, state_dir, queue_name, queue_file.encoding or "")
        self.base_dir = self.queue.path.parent
        self.observers = observers
        self.policy = config.retry
        self.rows = Rows()   # by ID, with the running and the ready ones indexed
        if pool is None:
            from orchestrator.execution.pool import RunnerPool

            pool = RunnerPool(queue_name, config.namespace, record, token=secrets.token_hex(3))
        self.pool = pool
        self.file = FileSync(self.queue, check_interval=config.check_interval,
                             waiting_path=self.paths.waiting)
        self.placer = Placer(pool, config, record, queue_name, self.queue.path, state_dir,
                             local_ray, self.rows, self.apply, self.note, self.display_path)
        self.rows.group = self.placer.group
        if self.local_ray and not self.owns_ray:   # the kept local Ray: jobs get our shell's
            self.placer.driver_env = inherited_env(os.environ)
        own = self.paths.own_files(config.source)   # not the code a snapshot records
        self.snapshots = Snapshots(
            record, queue_name, self.base_dir, state_dir, leave_out=own,
            globs=config.snapshot_patterns,
            enabled=config.snapshot_mode != "off", run_from=config.snapshot_mode == "run",
            note=self.note, storage=config.storage)
        self.placer.frozen = self.snapshots.frozen
        self.models = ModelRegistry(record.path)
        self.readiness = ReadinessTracker(self.base_dir, self.models.resolve)
        self._first_round_done = False
        self._interrupt = 0        # 1: stop launching and wind down
        self._stop_on_interrupt = False
        self._stopping_sent = False
        self.inbox = requests.Inbox(self.paths)
        self._notes: set[str] = set(said)
        self._stale: list[str] = []
        self._why_not_placed: dict[str, str] = {}   # from the last plan
        self._full: dict[object, str] = {}   # the groups no runner was free for, then
        self._waiting_stale = False   # publish why rows wait with the next flush

    # ================================================================ the loop
    def load(self) -> None:
        """Read the queue as a driver first does (the run record says what ran before)."""
        self._read(self.file.read(), first=True)

    def flush(self) -> None:
        """Write what the core decided into the file now."""
        self._flush()

    def run(self) -> int:
        """Run until done; the exit code: 0 when no row ended failed, else 1. Raises
        ``StateUnwritable`` when the run record cannot be written: the driver stops
        there, writing nothing more, so the file keeps what the record backs."""
        broken: StateUnwritable | None = None
        try:
            self.load()
            reconcile.reconcile(self)
            while True:
                self._maybe_reload()
                self._take_requests()
                if not self._interrupt:
                    self._plan()
                # after the launches: writing the file never delays the next start
                if self.file.due():
                    self._flush()
                if self._finished():
                    break
                for event in self.pool.poll(self._wait_timeout()):
                    self._on_pool(event)
                self._record_ran()
                self.pool.reap_idle(self.config.runner_idle)
        except StateUnwritable as e:
            broken = e
            raise
        finally:
            self._wind_up(broken)
        self._say_what_waits()
        return 1 if any(st.status.is_failed for st in self.rows.values()) else 0

    def _wind_up(self, broken: StateUnwritable | None) -> None:
        """Leave: the last write (unless the record could not be written: then the file
        keeps what the record backs), idle runners killed, callers answered."""
        steps = [lambda: self._record_ran(wait=60), self.snapshots.close, self.pool.shutdown,
                 self.models.close,
                 lambda: self.inbox.close("the driver has stopped"),
                 lambda: self.paths.waiting.unlink(missing_ok=True)]
        if broken is None:
            steps.insert(0, self._flush)
        for step in steps:
            try:
                step()
            except (StateUnwritable, OSError) as e:
                if broken is None and step is self._flush:
                    raise
                logger.debug("while stopping: %s", e)

    def _record_ran(self, wait: float = 0.0) -> None:
        """Record the code the live folder held as attempts started (``wait``: seconds to
        wait for the scans still going)."""
        for job_id, attempt, snapshot, why_not in self.snapshots.ran(wait):
            if snapshot is not None:
                self.record.update_attempt(self.queue_name, job_id, attempt,
                                           ran_snapshot=snapshot)
            else:
                self.note(f"{job_id}: could not record the code its attempt {attempt} ran "
                          f"({why_not}); its snapshot is the code it was queued with")

    def apply(self, job_id: str, event: Event) -> RowState:
        """``core.apply`` for one row, and its effects carried out."""
        before = self.rows[job_id]
        state, effects = apply(before, event, Context.now(self.policy))
        self.rows[job_id] = state
        self.readiness.noticed(before, state)   # its readiness, and its children's
        for effect in effects:
            self._do(effect)
        return state

    def apply_gone(self, job_id: str, *events: Event) -> None:
        """``core.apply`` for an attempt whose row is no longer in the file: its effects
        are carried out (record, runner, observers); the row is not kept."""
        state = RowState(job_id)
        for event in events:
            state, effects = apply(state, event, Context.now(self.policy))
            for effect in effects:
                if not isinstance(effect, WriteCells):   # no row in the file to write
                    self._do(effect)

    def _do(self, effect: Effect) -> None:
        if isinstance(effect, WriteCells):
            self.file.stage(effect.job_id, effect.cells)
        elif isinstance(effect, RecordAttempt):
            fields = dict(effect.fields)
            if effect.begin:
                live = False
                if (snapshot := self.snapshots.of(effect.job_id)) is not None:
                    fields.setdefault("snapshot", snapshot)
                    fields.setdefault("frozen", self.snapshots.runs_from(effect.job_id) is not None)
                    live = not fields["frozen"]
                self.record.begin_attempt(self.queue_name, effect.job_id, effect.attempt,
                                          **fields)
                failpoints.reach("after-record-begin")
                spec = self.rows[effect.job_id].spec if effect.job_id in self.rows else None
                if live and spec is not None:   # what the live folder holds as it starts
                    self.snapshots.started(effect.job_id, effect.attempt, spec)
            else:
                self.record.update_attempt(self.queue_name, effect.job_id, effect.attempt,
                                           **fields)
                if fields.get("status") not in (None, *ATTEMPT_ACTIVE):
                    failpoints.reach("after-record-end")
        elif isinstance(effect, Kill):
            runner = self.placer.runners.get(effect.job_id)
            if runner is not None:
                self.pool.stop(runner, effect.job_id)
        elif isinstance(effect, Warn):
            if effect.stale:
                self._stale.append(effect.job_id)
            else:
                self.note(effect.message)
        elif isinstance(effect, StatusChanged):
            for observe in self.observers:
                try:
                    observe(effect)
                except Exception as e:  # noqa: BLE001 - an observer never decides or breaks state
                    refused = unwritable(e, self.record.path)
                    if refused is not None:   # the registry's disk: the driver stops
                        raise refused from None
                    logger.exception("status observer %r failed", observe)

    def snapshot(self) -> list[RowState]:
        """The rows as the driver sees them now, in file order (any thread)."""
        for _ in range(3):
            try:
                return sorted(list(self.rows.values()), key=lambda st: st.line)
            except RuntimeError:  # changed while we copied: try again
                continue
        return []

    @property
    def interrupted(self) -> bool:
        return bool(self._interrupt)

    def interrupt(self, stop_jobs: bool | None = None) -> None:
        """Wind down (any thread): launch nothing more and exit. Running jobs are stopped
        (they go back to pending) when ``stop_jobs``, else left running for a rerun to
        re-attach; the default stops them only on a Ray that ends with this driver (they
        could not outlive it)."""
        self._stop_on_interrupt = self.owns_ray if stop_jobs is None else stop_jobs
        self._interrupt += 1

    def request_stop(self, ids: list[str] | None, timeout: float = 30.0) -> dict[str, str]:
        """Stop rows (any thread; ``None``: every row not finished); what happened to each."""
        return self.inbox.ask(ids, timeout)

    def _finished(self) -> bool:
        active = bool(self.rows.active)
        if self._interrupt:
            return not active or not self._stop_on_interrupt
        if active or self.config.watch:
            return False
        if not self.config.auto_continue and self._first_round_done:
            return True
        return not can_progress(self.rows)

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        waits = [0.5, next_wake(self.rows.in_backoff(), now),
                 getattr(self.pool, "next_wake", lambda: None)(),
                 self.file.wake_in(publish=self._waiting_stale)]
        return max(min(w for w in waits if w is not None), 0.01)

    def _say_what_waits(self) -> None:
        for st in self.rows.values():
            if st.status is S.PENDING and st.spec is not None and st.spec.parent_id \
                    and not st.blocker and not self._interrupt:
                parent = self.rows.get(st.spec.parent_id)
                if parent is not None and parent.status is not S.DONE:
                    logger.warning("%s did not run: it waits for %s, which is %s", st.id,
                                   parent.id, parent.status.label)

    # ============================================================ the file
    def _maybe_reload(self) -> None:
        try:
            table = self.file.changed()
        except QueueFileError as e:
            self.note(str(e), logging.ERROR)
            return
        if table is not None:
            self._read(table)

    def _flush(self) -> None:
        """Write what the core decided into the file (and why rows wait, for the views);
        read the file back only when someone else changed it meanwhile."""
        if self._waiting_stale:
            self.file.publish_waiting(self._why_waiting())
            self._waiting_stale = False
        written, table = self.file.write()
        if written:
            self.record.save_cells(self.queue_name, {
                job_id: (dict(self.rows[job_id].cells),
                         self.rows[job_id].spec.command if self.rows[job_id].spec else "")
                for job_id in written if job_id in self.rows})
        if table is not None:
            self._read(table)

    def _read(self, table: Table, first: bool = False) -> None:
        """Tell the core how the file shows every row now."""
        self.file.seen(table)
        self.snapshots.new_read()
        self.readiness.everything()
        for notice in table.column_notices(self.config.own_column_names):
            self.note(notice)   # once each, before any row runs
        rows = table.rows()
        lines_by_id: dict[str, list[int]] = {}
        for line, row in rows:
            job_id = (row.get("ID") or "").strip()
            if job_id:
                lines_by_id.setdefault(job_id, []).append(line)
            elif any(v.strip() for v in row.values()):
                self.note(f"{table.path} line {line}: the row has no ID, so it cannot run — "
                          "give it a unique ID")
        recorded, written = {}, {}
        if first:
            for attempt in self.record.attempts(self.queue_name):
                recorded[attempt.job_id] = max(recorded.get(attempt.job_id, 0), attempt.attempt)
            written = self.record.written_cells(self.queue_name)
        for line, row in rows:
            job_id = (row.get("ID") or "").strip()
            if not job_id or job_id not in lines_by_id or line != lines_by_id[job_id][0]:
                continue
            state = self.rows.setdefault(job_id, RowState(job_id))
            # a row that ran before joins again: rerun by the user while we run (it was
            # finished), or found waiting by a new driver after its earlier attempts
            ended, first_sight = state.seen and state.status.is_finished, not state.seen
            before, command = written.get(job_id, ({}, ""))
            try:
                spec, problem = self._parse(table, job_id, line, row, lines_by_id[job_id],
                                            state)
                state = self.apply(job_id, RowRead(
                    line, spec, problem, cells={c: row.get(c, "") for c in OWNED_COLUMNS},
                    recorded_attempts=recorded.get(job_id, 0), recorded=before,
                    recorded_command=command, name=(row.get("Name") or "").strip()))
                if state.spec is not None and state.status is RowStatus.PENDING:
                    self.snapshots.joined(job_id, state.spec,
                                          again=ended or (first_sight and state.attempt > 0))
            except Exception as e:  # noqa: BLE001 - one row's failure never ends the driver
                self.fault(job_id, e)
        for job_id in [j for j in self.rows if j not in lines_by_id]:
            state = self.apply(job_id, RowDeleted())
            if not state.status.is_active:
                del self.rows[job_id]
        if self._stale:
            ids, self._stale = sorted(set(self._stale)), []
            logger.warning(
                "%s was saved from an older copy: the orchestrator's columns of %s held "
                "values from before (the file as it was before they ran, or values written "
                "since); restored them and kept your edits in your own columns. To run a row "
                "again, clear its TrainingCheck alone or write Rerun.", table.path,
                ", ".join(ids[:20]) + (" …" if len(ids) > 20 else ""))

    def _parse(self, table: Table, job_id: str, line: int, row: dict, lines: list[int],
               state: RowState):
        if state.status.is_active:
            return state.spec, state.problem   # the running attempt keeps what it started with
        if len(lines) > 1:
            return None, (f"ID {job_id!r} is used on lines {', '.join(map(str, lines))} — "
                          "give each row its own ID")
        try:
            return parse_row(row, line, table.path, self.base_dir), ""
        except QueueFileError as e:
            self.note(str(e), logging.ERROR)
            return None, e.reason

    def note(self, message: str, level=logging.WARNING) -> None:
        """Log ``message`` once."""
        if message not in self._notes:
            self._notes.add(message)
            logger.log(level, message)

    # ============================================================== planning
    def _plan(self) -> None:
        self.readiness.derive(self.rows, self.apply, self.fault)
        mono, cap = time.monotonic(), self.config.max_training_process
        retries_only = self._first_round_done and not self.config.auto_continue
        left = room(self._running(), cap)
        not_placed: dict[str, str] = {}
        full: dict[object, str] = {}   # placement groups no runner is free for, this turn

        def startable(state: RowState) -> bool:
            return may_start(state, mono, retries_only=retries_only)

        order = self.rows.in_start_order()   # core.start_order, one row at a time
        try:
            for state in order:
                if left == 0 or (full and self.rows.exhausted(full, startable)):
                    break   # the rows left wait for runners: not one of them can start
                if not startable(state):
                    continue
                try:
                    why = self.placer.launch(self.rows[state.id], full)
                except Exception as e:  # noqa: BLE001 - one row never ends the driver
                    self.fault(state.id, e)
                    continue
                if why:
                    not_placed[state.id] = why
                elif left is not None:
                    left -= 1
        finally:
            order.close()
        self._first_round_done = True
        self._why_not_placed = not_placed
        self._full = full
        self._waiting_stale = True   # worked out when it is published, not every turn

    def _running(self) -> list[RowState]:
        return [self.rows[job_id] for job_id in self.rows.active]

    def _why_waiting(self) -> dict[str, str]:
        """Why each pending row has not started: placement's word, else the rows'."""
        mono, cap = time.monotonic(), self.config.max_training_process
        retries_only = self._first_round_done and not self.config.auto_continue
        left = room(self._running(), cap)
        waiting = dict(self._why_not_placed)
        for st in self.rows.values():
            if st.id not in waiting and st.status is RowStatus.PENDING:
                why = why_waiting(st, mono, left=left, cap=cap, retries_only=retries_only)
                if not why and st.ready and self._full:   # not tried: its group was full
                    why = self._full.get(self.placer.group(st), "")
                if why:
                    waiting[st.id] = why
        return waiting

    # ================================================================ events
    def _on_pool(self, event) -> None:
        """One answer of the pool. An answer about an attempt the loop does not hold
        running (an old attempt, a row ended or deleted meanwhile) is dropped; an error
        while handling it ends that row Crash (internal) and the loop goes on."""
        state = self.rows.get(event.job_id)
        if state is None or state.attempt != event.attempt or not state.status.is_active:
            logger.debug("dropped %s: the row is %s", event,
                         "gone" if state is None else f"{state.status.label or 'pending'} "
                         f"at attempt {state.attempt}")
            return
        try:
            self._handle(event)
        except Exception as e:  # noqa: BLE001 - one row's failure never ends the driver
            self.fault(event.job_id, e)

    def _handle(self, event) -> None:
        if isinstance(event, Started):
            report = event.report
            self.apply(event.job_id, RunnerStarted(event.attempt, report.started, report.node,
                                                   report.gpu_ids))
        elif isinstance(event, Ended):
            self.placer.release(event.job_id)
            if event.report.unwritable:   # the disk, not the job
                path, _, reason = event.report.unwritable.rpartition(": ")
                if refused_write(path or self.state_dir) is not None:   # still: we stop
                    raise StateUnwritable(path or self.state_dir, reason)
                # it takes writes again (an end held by a runner while no driver ran):
                # what the attempt left is lost, it runs again without spending a retry
                self.apply(event.job_id, RunnerLost(
                    event.attempt, f"its end could not be written ({reason}); the disk "
                    "takes writes again"))
                return
            self.ended(event.job_id, event.report)
        elif isinstance(event, Lost):
            self.placer.release(event.job_id)
            self.apply(event.job_id, RunnerLost(event.attempt, event.error))

    def fault(self, job_id: str, error: BaseException) -> None:
        """The driver raised while handling ``job_id``: its attempt (if any) is stopped and
        its runner let go, and the row ends Crash with the error; the queue goes on. The
        run record refusing a write is no row's failure: that stops the driver."""
        if isinstance(error, StateUnwritable):
            raise error
        self.note(f"{job_id}: the driver failed handling this row ({type(error).__name__}: "
                  f"{error}); it is marked Crash and the other rows go on", logging.ERROR)
        logger.debug("the failure of %s", job_id, exc_info=error)
        runner = self.placer.release(job_id)
        if runner is not None:
            self.pool.stop(runner, job_id)
            self.pool.discard(runner)
        if job_id in self.rows:
            try:
                self.apply(job_id, HandlingFailed(f"{type(error).__name__}: {error}"))
            except Exception:  # noqa: BLE001 - nothing more can be done for the row
                logger.exception("could not mark %s as failed", job_id)

    def ended(self, job_id: str, report) -> RowState:
        """An attempt of ``job_id`` ended with ``report``: its kind adds what it knows."""
        state = self.rows[job_id]
        spec = state.spec
        kind = KINDS[spec.kind if spec is not None else "command"]
        extra = kind.ended(spec, report) if spec is not None else None
        weight = self.display_path(report.weight_file) if report.weight_file else ""
        workers = spec.workers if spec is not None else 1
        total = self.pool.totals().get("GPU", 0.0)
        return self.apply(job_id, AttemptEnded(
            report, now=time.monotonic(),
            max_gpus=total / workers if self.local_ray else None,
            halve_batch_ok=spec is not None and not kind.halves_batch(spec),
            cells={"WeightFile": weight, **dict(extra.cells if extra else ())},
            details=dict(extra.details if extra else ())))

    def _take_requests(self) -> None:
        """Stop requests: from this process's other threads (the UI), from other terminals
        (``orchestrator stop``, through the state dir), and the driver's own wind-down."""
        self.inbox.serve(self.stop_rows)
        if self._interrupt and self._stop_on_interrupt and not self._stopping_sent:
            self._stopping_sent = True
            for st in list(self.rows.values()):
                if st.status.is_active:
                    self.apply(st.id, StopRequested(by="driver"))

    def stop_rows(self, ids: list[str] | None) -> dict[str, str]:
        """Stop rows (``None``: every row not finished); what happened to each."""
        if ids is not None:
            unknown = [i for i in ids if i not in self.rows]
            if unknown:
                return {i: "no such row" for i in unknown}
        outcome = {}
        for job_id in ids if ids is not None else list(self.rows):
            before = self.rows[job_id].status
            if ids is None and before is S.HOLD:
                continue   # already kept from starting, by the user's own word
            after = self.apply(job_id, StopRequested(by="user")).status
            if before.is_active:
                outcome[job_id] = "stopping (SIGTERM, then SIGKILL after the grace period)"
            elif after is S.STOPPED and before is not S.STOPPED:
                outcome[job_id] = "Stopped (had not started)"
            elif ids is not None:
                outcome[job_id] = f"already {before.label if before.value else 'finished'}"
        self._flush()
        return outcome

    def display_path(self, path: Path | str) -> str:
        """A path as the CSV shows it: relative to the queue's folder when inside it."""
        if is_uri(path):
            return str(path)
        path = Path(path)
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def kind_metric(self, state: RowState) -> tuple[str, str]:
        if state.spec is None:
            return self.config.metric, self.config.goal
        return KINDS[state.spec.kind].metric(state.spec, self.config.metric,
                                             self.config.goal)
