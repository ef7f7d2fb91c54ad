"""After a driver (re)starts: what became of the attempts the run record says were on
runners. Consulted before anything launches, so a finished attempt never runs again.

For each such attempt: its runner still runs it → re-attached (its end comes through
the pool); it finished while no driver watched (its exit code is on disk) → its result
is taken; neither → it was lost while the driver was down and runs again (a free
re-queue, bounded like any lost runner). A row the file says is running that no
attempt accounts for runs again, no retry spent. A row the file shows waiting whose
ended attempt the file never counted (the driver died within the ~0.5 s the file is
behind) takes that end. Runners of an earlier driver that nobody adopted are killed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from orchestrator.core import (
    ATTEMPT_ACTIVE,
    INTERRUPTED,
    AttemptReport,
    Event,
    NotRunning,
    Reattached,
    RowState,
    RowStatus,
    RunnerLost,
)
from orchestrator.core.edits import attempts_of
from orchestrator.driver.placement import Placer
from orchestrator.execution.outputs import collect, finished_exit_code, upload_outputs
from orchestrator.execution.pool import Shape
from orchestrator.infra.storage import join as storage_join
from orchestrator.store.config import Config
from orchestrator.store.record import Attempt, RunRecord

__all__ = ["reconcile"]

logger = logging.getLogger(__name__)


class Host(Protocol):
    """What reconciling needs of the driver (``Scheduler``)."""

    rows: Mapping[str, RowState]
    placer: Placer
    record: RunRecord
    config: Config
    queue_name: str
    state_dir: Path

    def apply(self, job_id: str, event: Event) -> RowState: ...
    def apply_gone(self, job_id: str, *events: Event) -> None: ...
    def ended(self, job_id: str, report: AttemptReport) -> RowState: ...
    def kind_metric(self, state: RowState) -> tuple[str, str]: ...


def reconcile(loop: Host) -> None:
    queue, record = loop.queue_name, loop.record
    known = record.runners(queue)
    adopted = set()
    for attempt in record.active(queue):
        job_id, number, name = attempt.job_id, attempt.attempt, attempt.runner or ""
        state = loop.rows.get(job_id)
        if state is None:   # its row is gone: the attempt ends here (its runner is killed)
            loop.apply_gone(job_id, Reattached(number),
                            RunnerLost(number, "its row was deleted while the driver was down",
                                       while_down=True))
            continue
        shape = Shape.from_description(known[name]) if name in known else Shape()
        runner = loop.placer.pool.adopt(name, shape, job_id, number) if name else None
        loop.apply(job_id, Reattached(number, attempt.wandb_run_id or "",
                                      attempt.gpus or ""))
        if runner is not None:
            adopted.add(name)
            loop.placer.adopted(job_id, runner, attempt.gpus or "")
            logger.info("%s: re-attached to attempt %d (still running)", job_id, number)
        elif not _salvage(loop, job_id, attempt):
            logger.warning("%s: attempt %d was lost while the driver was down; re-queued",
                           job_id, number)
            loop.apply(job_id, RunnerLost(number, "it left no result", while_down=True))
    for name in set(known) - adopted:   # leftovers of a driver that died
        loop.placer.pool.forget(name)
    for state in list(loop.rows.values()):
        if state.status.is_active and state.id not in loop.placer.runners:
            if not _recorded_end(loop, state):
                loop.apply(state.id, NotRunning())
        elif state.status is RowStatus.PENDING and _file_never_showed(loop, state):
            _recorded_end(loop, state)


def _file_never_showed(loop: Host, state: RowState) -> bool:
    """The row waits in the file, yet the record has an attempt of it that the file's
    ``Attempts`` never counted: it was launched and ended within the ~0.5 s the file is
    behind, and the driver died before writing it. That attempt's end stands."""
    latest = loop.record.latest(loop.queue_name, state.id)
    return (latest is not None and latest.status not in ATTEMPT_ACTIVE
            and latest.attempt > attempts_of(state.cells))


def _recorded_end(loop: Host, state: RowState) -> bool:
    """The file says the row runs, but the run record says its last attempt ended: the
    driver died after recording the end and before writing the file. The record's word
    stands (the end is taken again, from the attempt's folder where it is); nothing
    runs twice."""
    latest = loop.record.latest(loop.queue_name, state.id)
    if latest is None or latest.status in ATTEMPT_ACTIVE or latest.attempt < state.attempt:
        return False
    stopped = latest.status == RowStatus.STOPPED.value
    if stopped and INTERRUPTED in (latest.error or ""):
        return False   # the driver's own wind-down: such a row runs again
    code = latest.exit_code
    if code is None:
        code = 0 if latest.status == RowStatus.DONE.value else 1
    loop.apply(state.id, Reattached(latest.attempt, latest.wandb_run_id or "",
                                    latest.gpus or ""))
    logger.info("%s: attempt %d had ended (%s) before the driver stopped; taking that",
                state.id, latest.attempt, latest.status)
    return _salvage(loop, state.id, latest, fallback_code=code, stopped=stopped)


def _salvage(loop: Host, job_id: str, attempt: Attempt, fallback_code: int | None = None,
             stopped: bool = False) -> bool:
    """An attempt that finished while no driver watched: take its result instead of
    running the row again. ``fallback_code``: the exit code the record has, for an
    attempt whose folder is not on this machine."""
    run_dir = Path(attempt.log_path).parent if attempt.log_path else \
        loop.state_dir / job_id / f"attempt-{attempt.attempt}"
    code = finished_exit_code(run_dir)
    on_disk = code is not None
    if code is None:
        code = fallback_code
    if code is None:
        return False
    metric, goal = loop.kind_metric(loop.rows[job_id])
    ended = (run_dir / "exit_code").stat().st_mtime if on_disk else attempt.ended
    report = collect(
        AttemptReport(job_id=job_id, attempt=attempt.attempt, node=attempt.node or "",
                      gpu_ids=attempt.gpus or "", started=attempt.started,
                      ended=ended or time.time(), log_path=attempt.log_path or ""),
        run_dir, code, loop.config.weight_globs, metric, goal)
    if not report.weight_file and code == 0 and attempt.weight_file:
        report = report.replace(weight_file=attempt.weight_file)   # kept on another node
    if stopped:
        report = report.replace(stopped=True)
    if loop.config.storage and not stopped:  # its runner is gone before it could upload
        where = storage_join(loop.config.storage, job_id, f"attempt-{attempt.attempt}")
        report = upload_outputs(report, run_dir, where)
    logger.info("%s: attempt %d finished while the driver was down (exit %d)", job_id,
                attempt.attempt, code)
    loop.ended(job_id, report)
    return True
