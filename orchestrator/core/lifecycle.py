"""``apply(state, event, context) -> (state, effects)``: the only code that changes a
row's status.

Every move is checked against ``TRANSITIONS``; a finished attempt's status is stamped
with its end time in the same step; what the driver must do (write cells, record the
attempt, kill a process, tell the observers) comes back as effects. Nothing here
touches Ray, a file or the clock: the context carries the time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from orchestrator.core.edits import Edit, attempts_of, owned, read_edit
from orchestrator.core.events import (
    AttemptEnded,
    Effect,
    Event,
    HandlingFailed,
    Kill,
    Launched,
    Readiness,
    Reattached,
    RecordAttempt,
    RowDeleted,
    RowRead,
    RunnerLost,
    RunnerStarted,
    StatusChanged,
    StopRequested,
    Unplaceable,
    Warn,
    WriteCells,
    frozen_map,
)
from orchestrator.core.failure import Failure, FailureKind
from orchestrator.core.retry import RetryPolicy, decide
from orchestrator.core.row import HISTORY, RowState, Spent
from orchestrator.core.status import RowStatus, read_word, unknown_word_message
from orchestrator.infra.errors import OrchestratorError

__all__ = ["apply", "Context", "TRANSITIONS", "IllegalTransition", "NotRunning", "safe_cell",
           "format_time", "INTERRUPTED"]

#: In the Error of an attempt the driver stopped as it quit (the row runs again).
INTERRUPTED = "interrupted when the driver stopped"

S = RowStatus
_ALL = frozenset(RowStatus)

#: Every move a row can make (docs/lifecycle.md draws it). A user's edit of TrainingCheck
#: (blank, Hold, Rerun, or a word of ours) may move any row that is not running.
TRANSITIONS: dict[RowStatus, frozenset[RowStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.BLOCKED, S.INVALID, S.STOPPED, S.HOLD, S.DONE, S.CRASH,
                          S.TRAINING}),
    S.HOLD: frozenset({S.PENDING, S.STOPPED, S.DONE, S.CRASH, S.BLOCKED, S.INVALID,
                       S.TRAINING}),
    S.QUEUED: frozenset({S.TRAINING, S.PENDING, S.CRASH, S.STOPPED}),
    S.TRAINING: frozenset({S.DONE, S.CRASH, S.STOPPED, S.PENDING}),
    S.BLOCKED: frozenset({S.PENDING, S.INVALID, S.STOPPED, S.HOLD, S.DONE, S.CRASH,
                          S.TRAINING}),
    S.INVALID: frozenset({S.PENDING, S.BLOCKED, S.HOLD, S.STOPPED, S.DONE, S.CRASH,
                          S.TRAINING}),
    # an attempt ended for good; only the user's edit (or a restarted driver finding the
    # attempt still running) moves the row again
    S.DONE: frozenset({S.PENDING, S.HOLD, S.INVALID, S.CRASH, S.STOPPED, S.TRAINING}),
    S.CRASH: frozenset({S.PENDING, S.HOLD, S.INVALID, S.DONE, S.STOPPED, S.TRAINING}),
    S.STOPPED: frozenset({S.PENDING, S.HOLD, S.INVALID, S.DONE, S.CRASH, S.TRAINING}),
}


class IllegalTransition(OrchestratorError, RuntimeError):
    """A move the table does not allow (a bug in the caller, never a user's doing)."""


@dataclass(frozen=True)
class NotRunning(Event):
    """The file says the row runs, but no runner of this queue runs it (found when a
    driver starts, or typed by a user): it runs again, no retry spent."""


@dataclass(frozen=True)
class Context:
    """What ``apply`` needs besides the row and the event: the retry rules and the time."""

    policy: RetryPolicy = RetryPolicy()
    wall: float = 0.0          # time.time()
    mono: float = 0.0          # time.monotonic()

    @classmethod
    def now(cls, policy: RetryPolicy) -> Context:
        return cls(policy, time.time(), time.monotonic())


def format_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def safe_cell(text: str) -> str:
    """A cell we write, harmless in a spreadsheet (no formula injection)."""
    text = str(text)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and text[1:2] in ("=", "+")):
        return "'" + text
    return text


class _Step:
    """One ``apply``: the state as it changes and the effects gathered."""

    def __init__(self, state: RowState, ctx: Context):
        self.state, self.ctx = state, ctx
        self.effects: list[Effect] = []

    def write(self, **cells: str) -> None:
        """Queue cells for the file (only ``OWNED_COLUMNS``); they become the row's cells."""
        cells = {k: safe_cell("" if v is None else v) for k, v in cells.items()}
        if any(self.state.cell(k) != v for k, v in cells.items()):
            history = (*self.state.history, self.state.cells)[-HISTORY:]
            self.state = self.state.replace(cells=frozen_map({**self.state.cells, **cells}),
                                            history=history)
        self.effects.append(WriteCells(self.state.id, frozen_map(cells)))

    def move(self, to: RowStatus, *, failure: Failure | None = None, report=None,
             details: Mapping | None = None, **cells: str) -> None:
        old = self.state.status
        if to is old:
            if cells:
                if not self._keeps_word(to):
                    cells = {"TrainingCheck": to.value, **cells}
                self.write(**cells)
            return
        if to not in TRANSITIONS[old]:
            raise IllegalTransition(f"{self.state.id}: {old.label} → {to.label}")
        if to.is_finished:
            cells.setdefault("Ended", format_time(self.ctx.wall))
        if not self._keeps_word(to):
            cells = {"TrainingCheck": to.value, **cells}   # first: a new column goes first
        self.state = self.state.replace(status=to)
        if failure is not None or to in (S.DONE, S.QUEUED):
            self.state = self.state.replace(failure=failure)
        self.write(**cells)
        self.changed(old, failure=failure, report=report, details=details)

    def _keeps_word(self, to: RowStatus) -> bool:
        """The user's word stays in TrainingCheck: ``Hold``, and a word nobody knows (the
        row is Invalid until they change it; a restarted driver reads it again)."""
        return to is S.HOLD or (to is S.INVALID and bool(self.state.word_problem))

    def changed(self, old: RowStatus | None, *, failure=None, report=None,
                details=None) -> None:
        st = self.state
        self.effects.append(StatusChanged(
            job_id=st.id, old=old, new=st.status, attempt=st.attempt, spec=st.spec,
            row=frozen_map({**st.cells, "Name": st.spec.name if st.spec else ""}),
            failure=failure, report=report, wandb_run_id=st.wandb_run_id,
            gpus=report.gpu_ids if report is not None else st.assigned_gpus,
            gpus_asked=st.asked_gpus, started=st.started,
            details=frozen_map(details), time=self.ctx.wall))

    def record(self, attempt: int, begin: bool = False, **fields) -> None:
        self.effects.append(RecordAttempt(self.state.id, attempt, frozen_map(fields), begin))


def apply(state: RowState, event: Event, ctx: Context) -> tuple[RowState, tuple[Effect, ...]]:
    """The row after ``event``, and what must be done about it."""
    step = _Step(state, ctx)
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"no rule for {type(event).__name__}")
    handler(step, event)
    return step.state, tuple(step.effects)


# ================================================================ the file
def _fresh(st: RowState) -> RowState:
    """A row run again by the user: a new lifecycle (a new W&B run, retries unspent)."""
    return st.replace(spent=Spent(), not_before=0.0, wandb_run_id="", gpus=None,
                      batch_divisor=1, failure=None, stop="")


def _row_read(step: _Step, ev: RowRead) -> None:
    st = step.state
    seen = owned(ev.cells)
    st = st.replace(line=ev.line, problem=ev.problem)
    if not st.seen:
        step.state = st.replace(seen=True, cells=frozen_map(seen), spec=ev.spec,
                                attempt=max(ev.recorded_attempts, attempts_of(seen)))
        before = owned(ev.recorded) if ev.recorded else None
        if (before is not None and ev.spec is not None
                and ev.spec.command == ev.recorded_command
                and read_edit(before, (), seen) is Edit.STALE):
            # saved from a copy older than what the last driver wrote, while none ran
            step.state = step.state.replace(cells=frozen_map(before))
            _restore(step, seen)
            seen = before
        _first_word(step, seen["TrainingCheck"])
        return
    if st.status.is_active:   # the driver's until it ends: the file cannot move it
        if st.spec is not None and ev.name is not None and ev.name != st.spec.name:
            # its name is only what people read: a rename shows at once
            st = st.replace(spec=dataclasses.replace(st.spec, name=ev.name))
        step.state = st
        if seen != owned(st.cells):
            _restore(step, seen)
        return
    if ev.spec != st.spec:
        st = st.replace(spec=ev.spec, unplaceable="")
    step.state = st
    edit = read_edit(st.cells, st.history, seen)
    if edit is Edit.STALE:
        _restore(step, seen)
    elif edit is Edit.WORD:
        step.state = step.state.replace(cells=frozen_map(seen))
        _word(step, seen["TrainingCheck"])
    elif edit is Edit.CELLS:
        step.state = step.state.replace(cells=frozen_map(seen))


def _restore(step: _Step, seen: Mapping[str, str]) -> None:
    st = step.state
    back = {c: v for c, v in owned(st.cells).items() if seen.get(c, "") != v}
    step.effects.append(WriteCells(st.id, frozen_map(back)))
    step.effects.append(Warn(st.id, f"{st.id}: restored {', '.join(back)}", stale=True))


def _first_word(step: _Step, text: str) -> None:
    """The file as a driver first reads it: it says what the row is."""
    word = read_word(text)
    st = step.state
    if not word.known:
        step.state = st.replace(word_problem=unknown_word_message(text))
    elif word.rerun:
        step.state = _fresh(st)
    else:   # an active word waits for the reconcile to say whether it still runs
        step.state = st.replace(status=word.status)
    step.changed(None)


def _word(step: _Step, text: str) -> None:
    """The user changed TrainingCheck of a row that is not running."""
    word = read_word(text)
    st = step.state.replace(word_problem="")
    step.state = st
    if not word.known:
        step.state = st.replace(word_problem=unknown_word_message(text))
        step.move(S.INVALID, failure=Failure(FailureKind.INVALID, step.state.blocker),
                  Error=f"invalid: {step.state.blocker}")
        return
    target = word.status
    if target is S.HOLD or target.is_finished:
        _quiet_move(step, target)
        return
    step.state = _fresh(st)   # the user asks for a run: retries unspent, a new W&B run
    if target.is_active:      # typed by hand: nothing of ours runs it
        _not_running(step, NotRunning())
    else:                     # blank, Rerun, Blocked, Invalid: recomputed from the row
        _quiet_move(step, S.PENDING)


def _quiet_move(step: _Step, to: RowStatus) -> None:
    """Take the status the user wrote without writing over their word."""
    old = step.state.status
    if to is old:
        return
    if to not in TRANSITIONS[old]:
        raise IllegalTransition(f"{step.state.id}: {old.label} → {to.label}")
    step.state = step.state.replace(status=to)
    step.changed(old)


def _row_deleted(step: _Step, ev: RowDeleted) -> None:
    if step.state.status.is_active:
        step.effects.append(Warn(step.state.id, f"row {step.state.id} was deleted from the "
                                 "CSV while running; it keeps running and its status is not "
                                 "written"))


def _readiness(step: _Step, ev: Readiness) -> None:
    st = step.state.replace(readiness=ev)
    step.state = st
    if not st.status.is_derived:
        return
    if st.blocker:
        target, reason = S.INVALID, st.blocker
    else:
        target, reason = ev.status, ev.reason
    if target is st.status:
        return
    if target is S.INVALID:
        step.move(S.INVALID, failure=Failure(FailureKind.INVALID, reason),
                  Error=f"invalid: {reason}")
    else:
        step.move(target, Error=reason if target is S.BLOCKED else "")


def _unplaceable(step: _Step, ev: Unplaceable) -> None:
    if step.state.status is not S.PENDING:
        return
    step.state = step.state.replace(unplaceable=ev.reason)
    step.move(S.INVALID, failure=Failure(FailureKind.INVALID, ev.reason),
              Error=f"invalid: {ev.reason}")


# ============================================================== attempts
def _launched(step: _Step, ev: Launched) -> None:
    st = step.state
    if st.status is not S.PENDING:
        raise IllegalTransition(f"{st.id}: launched while {st.status.label}")
    step.state = st.replace(attempt=ev.attempt, wandb_run_id=ev.wandb_run_id, stop="",
                            runner=ev.runner, started=None, assigned_gpus="")
    cells = dict(Attempts=str(ev.attempt), WandbRunID=ev.wandb_run_id, LogFile=ev.log_file,
                 Started="", Ended="", Node="", WeightFile="", BestMetric="", Error=ev.warning)
    if ev.clear_best_config:
        cells["BestConfig"] = ""
    # a parent that left no weights is said in Error and the registry; the user's
    # PretrainedModelId cell is never rewritten
    missing = {"pretrained_weights_missing": ev.missing_weights_of} \
        if ev.missing_weights_of else None
    step.move(S.QUEUED, details=missing, **cells)
    step.record(ev.attempt, begin=True, status=S.QUEUED.value, wandb_run_id=ev.wandb_run_id,
                runner=ev.runner, **({"error": ev.warning} if ev.warning else {}), **ev.record)


def _runner_started(step: _Step, ev: RunnerStarted) -> None:
    st = step.state
    if st.attempt != ev.attempt or st.status is not S.QUEUED:
        return
    step.state = st.replace(started=ev.started, assigned_gpus=ev.gpus)
    step.move(S.TRAINING, Started=format_time(ev.started), Node=ev.node)
    step.record(ev.attempt, status=S.TRAINING.value, started=ev.started, node=ev.node,
                gpus=ev.gpus)


def _attempt_ended(step: _Step, ev: AttemptEnded) -> None:
    report, st = ev.report, step.state
    if st.attempt != report.attempt or not st.status.is_active:
        return
    if st.status is S.QUEUED and not report.error:   # it ran: it passes through Training
        _runner_started(step, RunnerStarted(report.attempt, report.started, report.node,
                                            report.gpu_ids))
        st = step.state
    failure = report.failure(st.cell("LogFile"))
    cells = {"Node": report.node}
    if report.best_metric is not None:
        cells["BestMetric"] = f"{report.best_metric:g}"
    record = dict(ended=report.ended, started=report.started, exit_code=report.exit_code,
                  node=report.node, gpus=report.gpu_ids, weight_file=report.weight_file,
                  metrics=dict(report.metrics), best_metric=report.best_metric)
    step.state = st.replace(runner="", started=None)
    if failure is None:
        cells["WeightFile"] = ev.cells.get("WeightFile", "")
        cells.update({k: v for k, v in ev.cells.items() if k != "WeightFile"})
        step.move(S.DONE, report=report, details=ev.details, **cells)
        step.record(report.attempt, status=S.DONE.value, failure="", error=st.cell("Error"),
                    **record)
        return
    if failure.kind is FailureKind.STOPPED:
        if st.stop == "driver":
            text = f"stopped: {INTERRUPTED} at {format_time(step.ctx.wall)[-8:]}; runs again"
            step.move(S.PENDING, failure=failure, report=report, details=ev.details,
                      Error=text, **cells)
        else:
            text = failure.text()
            step.move(S.STOPPED, failure=failure, report=report, details=ev.details,
                      Error=text, **cells)
        step.record(report.attempt, status=S.STOPPED.value, failure=failure.kind.value,
                    error=text, **record)
        return
    _failed(step, failure, report=report, details=ev.details, max_gpus=ev.max_gpus,
            halve_batch_ok=ev.halve_batch_ok, cells=cells, record=record)


def _failed(step: _Step, failure: Failure, *, report=None, details=None, max_gpus=None,
            halve_batch_ok=False, cells=None, record=None) -> None:
    st = step.state
    spec = st.spec
    decision = decide(step.ctx.policy, failure, attempt=st.attempt,
                      retries=spec.retries if spec else 0, spent=st.spent.as_dict(),
                      gpus=st.asked_gpus or 0.0, on_oom=spec.on_oom if spec else "",
                      batch_divisor=st.batch_divisor, max_gpus=max_gpus,
                      halve_batch_ok=halve_batch_ok)
    text = f"{failure.kind}: {decision.message}"
    cells = dict(cells or {})
    if decision.retry:
        changes = dict(spent=st.spent.bump(decision.counter) if decision.counter else st.spent,
                       not_before=step.ctx.mono + decision.delay,
                       batch_divisor=decision.batch_divisor)
        if decision.gpus is not None:
            changes["gpus"] = decision.gpus
        step.state = st.replace(**changes)
        step.move(S.PENDING, failure=failure, report=report, details=details, Error=text,
                  **cells)
    else:
        step.move(S.CRASH, failure=failure, report=report, details=details, Error=text,
                  **cells)
    step.record(st.attempt, status=S.CRASH.value, failure=failure.kind.value, error=text,
                **(record or {"ended": step.ctx.wall}))


def _runner_lost(step: _Step, ev: RunnerLost) -> None:
    st = step.state
    if st.attempt != ev.attempt or not st.status.is_active:
        return
    first = (ev.error.strip().splitlines() or ["the runner is gone"])[0][:200]
    what = f"gone when the driver restarted: {first}" if ev.while_down else first
    step.state = st.replace(runner="", started=None)
    _failed(step, Failure(FailureKind.LOST, what))


def _not_running(step: _Step, ev: NotRunning) -> None:
    st = step.state
    if st.status is S.PENDING:
        return
    step.state = st.replace(runner="", started=None)
    step.move(S.PENDING, Error="re-queued: it was marked running but no job was found for it")


def _stop_requested(step: _Step, ev: StopRequested) -> None:
    st = step.state
    if st.status.is_active:
        step.state = st.replace(stop=ev.by)
        step.effects.append(Kill(st.id, st.attempt))
    elif ev.by == "user" and st.status in (S.PENDING, S.BLOCKED, S.HOLD):
        failure = Failure(FailureKind.STOPPED, "stopped on request before it started")
        step.move(S.STOPPED, failure=failure, Error=failure.text())


def _reattached(step: _Step, ev: Reattached) -> None:
    st = step.state.replace(attempt=max(step.state.attempt, ev.attempt),
                            wandb_run_id=ev.wandb_run_id or step.state.wandb_run_id,
                            assigned_gpus=ev.gpus, stop="")
    step.state = st
    # the file may never have shown this attempt (its launch was not written yet)
    cells = {"Attempts": str(st.attempt)} if st.cell("Attempts") != str(st.attempt) else {}
    if st.status is S.TRAINING:
        step.write(TrainingCheck=S.TRAINING.value, Error="", **cells)
    else:
        step.move(S.TRAINING, Error="", **cells)


def _handling_failed(step: _Step, ev: HandlingFailed) -> None:
    st = step.state
    failure = Failure(FailureKind.INTERNAL, f"the driver failed handling this row: "
                      f"{ev.error} — please report it with the driver's log; write Rerun "
                      "in TrainingCheck to run it again")
    if st.status.is_active:   # its attempt is stopped by the driver; it is not retried
        step.state = st.replace(runner="", started=None)
        _failed(step, failure)
    elif st.status in (S.PENDING, S.BLOCKED):
        step.move(S.CRASH, failure=failure, Error=failure.text())
    else:   # the row had already finished: its status stands
        step.effects.append(Warn(st.id, f"{st.id}: {failure.text()}"))


_HANDLERS = {RowRead: _row_read, RowDeleted: _row_deleted, Readiness: _readiness,
             Unplaceable: _unplaceable, Launched: _launched, RunnerStarted: _runner_started,
             AttemptEnded: _attempt_ended, RunnerLost: _runner_lost, NotRunning: _not_running,
             StopRequested: _stop_requested, Reattached: _reattached,
             HandlingFailed: _handling_failed}
