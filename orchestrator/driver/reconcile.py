"""After a driver (re)starts: what became of the attempts the run record says were on
runners. Consulted before anything launches, so a finished attempt never runs again.

For each such attempt: its runner still runs it → re-attached (its end comes through
the pool); it finished while no driver watched (its exit code is on disk) → its result
is taken; neither → it was lost while the driver was down and runs again (a free
re-queue, bounded like any lost runner). A row the file says is running that no
attempt accounts for runs again, no retry spent. Runners of an earlier driver that
nobody adopted are killed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.core import AttemptReport, NotRunning, Reattached, RowState, RunnerLost
from orchestrator.execution.outputs import collect, finished_exit_code, upload_outputs
from orchestrator.execution.pool import Shape
from orchestrator.infra.storage import join as storage_join

__all__ = ["reconcile"]

logger = logging.getLogger(__name__)


def reconcile(loop) -> None:
    queue, record = loop.queue_name, loop.record
    known = record.runners(queue)
    adopted = set()
    for attempt in record.active(queue):
        job_id, number, name = attempt["job_id"], attempt["attempt"], attempt.get("runner") or ""
        state = loop.rows.get(job_id)
        if state is None:   # its row is gone: the attempt ends here (its runner is killed)
            loop.rows[job_id] = RowState(job_id)
            loop.apply(job_id, Reattached(number))
            loop.apply(job_id, RunnerLost(number, "its row was deleted while the driver was "
                                          "down", while_down=True))
            del loop.rows[job_id]
            continue
        shape = Shape.from_description(known[name]) if name in known else Shape()
        runner = loop.pool.adopt(name, shape, job_id, number) if name else None
        loop.apply(job_id, Reattached(number, attempt.get("wandb_run_id") or "",
                                      attempt.get("gpus") or ""))
        if runner is not None:
            adopted.add(name)
            loop.runners[job_id] = runner
            if loop.ledger is not None and attempt.get("gpus"):
                loop.ledger.claim(job_id, tuple(int(g) for g in attempt["gpus"].split(",")))
            logger.info("%s: re-attached to attempt %d (still running)", job_id, number)
        elif not _salvage(loop, job_id, attempt):
            logger.warning("%s: attempt %d was lost while the driver was down; re-queued",
                           job_id, number)
            loop.apply(job_id, RunnerLost(number, "its runner was gone when the driver "
                                          "restarted", while_down=True))
    for name in set(known) - adopted:   # leftovers of a driver that died
        loop.pool.forget(name)
    for state in list(loop.rows.values()):
        if state.status.is_active and state.id not in loop.runners:
            loop.apply(state.id, NotRunning())


def _salvage(loop, job_id: str, attempt: dict) -> bool:
    """An attempt that finished while no driver watched: take its result instead of
    running the row again."""
    run_dir = Path(attempt["log_path"]).parent if attempt.get("log_path") else None
    code = finished_exit_code(run_dir) if run_dir else None
    if code is None:
        return False
    metric, goal = loop.kind_metric(loop.rows[job_id])
    report = collect(
        AttemptReport(job_id=job_id, attempt=attempt["attempt"], node=attempt.get("node") or "",
                      gpu_ids=attempt.get("gpus") or "", started=attempt.get("started"),
                      ended=(run_dir / "exit_code").stat().st_mtime,
                      log_path=attempt["log_path"]),
        run_dir, code, loop.config.weight_globs, metric, goal)
    if loop.config.storage:  # its runner is gone before it could upload them
        where = storage_join(loop.config.storage, job_id, f"attempt-{attempt['attempt']}")
        report = upload_outputs(report, run_dir, where)
    logger.info("%s: attempt %d finished while the driver was down (exit %d)", job_id,
                attempt["attempt"], code)
    loop.ended(job_id, report)
    return True
