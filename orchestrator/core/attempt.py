"""What a runner reports of one attempt, and how the attempt came out.

``AttemptReport`` crosses the Ray boundary (a runner returns it) and travels to the
observers inside ``StatusChanged``: it is frozen, and built again (``replace``)
rather than changed. ``outcome()`` is the one place that turns it into success or a
``Failure``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from orchestrator.core.failure import Failure, classify

__all__ = ["AttemptReport"]


@dataclass(frozen=True)
class AttemptReport:
    job_id: str
    attempt: int
    exit_code: int | None = None
    stopped: bool = False          # it was stopped on request
    killed_for: str = ""           # "timeout" / "stalled": the runner killed it for that
    kill_note: str = ""            # which limit it hit
    started: float | None = None   # wall clock
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
    history: tuple = ()           # metric lines, oldest first
    log_tail: str = ""
    error: str = ""               # the process never ran: why
    output_error: str = ""        # it ran, but its outputs could not be kept: why
    #: the attempt's folder could not be written (a full or read-only disk): why. Not the
    #: job's failure: the driver stops, as when it cannot write its own record.
    unwritable: str = ""

    @property
    def ok(self) -> bool:
        return self.failure() is None

    def failure(self, log_file: str = "") -> Failure | None:
        """None when the attempt succeeded, else how it failed (``log_file``: the path to
        name in the message)."""
        return classify(exit_code=self.exit_code, start_error=self.error,
                        output_error=self.output_error, stopped=self.stopped,
                        killed_for=self.killed_for, kill_note=self.kill_note,
                        log_tail=self.log_tail, log_file=log_file)

    def replace(self, **changes) -> AttemptReport:
        return dataclasses.replace(self, **changes)
