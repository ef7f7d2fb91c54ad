"""What can happen to a row (events), what the driver must do about it (effects), and
what observers are told (``StatusChanged``). All frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from orchestrator.core.attempt import AttemptReport
from orchestrator.core.failure import Failure
from orchestrator.core.spec import JobSpec
from orchestrator.core.status import RowStatus

__all__ = [
    "Event", "RowRead", "RowDeleted", "Readiness", "Launched", "Unplaceable", "RunnerStarted",
    "AttemptEnded", "RunnerLost", "StopRequested", "Reattached", "HandlingFailed",
    "Effect", "WriteCells", "RecordAttempt", "Kill", "Warn", "StatusChanged", "frozen_map",
]


def frozen_map(mapping: Mapping | None = None) -> Mapping:
    """A read-only copy (observers and effects never share the driver's dicts)."""
    return MappingProxyType(dict(mapping or {}))


# ================================================================== events
class Event:
    """Something that happened to one row."""


@dataclass(frozen=True)
class RowRead(Event):
    """The row as the queue file shows it now: new, edited, or unchanged.

    ``spec`` is None when the row cannot be parsed (``problem`` says why); ``cells`` are the
    owned columns as the file holds them (a missing column reads as "")."""

    line: int
    spec: JobSpec | None
    problem: str = ""
    cells: Mapping[str, str] = field(default_factory=frozen_map)
    recorded_attempts: int = 0      # attempts the run record has of this row
    # first read only: the owned cells an earlier driver last wrote into the row, and the
    # row's command then (a different command: the ID was reused for a new row)
    recorded: Mapping[str, str] = field(default_factory=frozen_map)
    recorded_command: str = ""
    name: str | None = None         # the Name cell now (a running row is renamed in views)


@dataclass(frozen=True)
class RowDeleted(Event):
    """The row is no longer in the file."""


@dataclass(frozen=True)
class Readiness(Event):
    """Whether the row may start, from its parent (``status`` is PENDING, BLOCKED or
    INVALID; ``ready``: PENDING and nothing to wait for)."""

    status: RowStatus
    reason: str = ""
    ready: bool = False
    pretrained_path: str = ""       # the parent's weights, when ready
    missing_weights: bool = False   # the parent is Done but left none (the seed's mark)


@dataclass(frozen=True)
class Launched(Event):
    """A runner took the row's next attempt."""

    attempt: int
    wandb_run_id: str
    log_file: str
    runner: str = ""
    gpus: float | None = None       # what it asked for
    missing_weights_of: str = ""    # the parent left no weights (said, never written)
    warning: str = ""               # shown in Error while it runs (the missing weights)
    clear_best_config: bool = False
    record: Mapping = field(default_factory=frozen_map)   # the attempt's run-record fields


@dataclass(frozen=True)
class Unplaceable(Event):
    """The row can never be placed as written here (a local Ray too small, a GPU setting)."""

    reason: str


@dataclass(frozen=True)
class RunnerStarted(Event):
    attempt: int
    started: float | None           # wall clock
    node: str = ""
    gpus: str = ""                  # the GPU ids it got


@dataclass(frozen=True)
class AttemptEnded(Event):
    report: AttemptReport
    now: float = 0.0                # monotonic clock (retry backoff)
    max_gpus: float | None = None   # the most GPUs a row can get here (None: unknown)
    halve_batch_ok: bool = False    # the row's kind can run with a smaller batch
    cells: Mapping[str, str] = field(default_factory=frozen_map)   # the kind's (BestConfig)
    details: Mapping = field(default_factory=frozen_map)           # the kind's (sweep trials)


@dataclass(frozen=True)
class RunnerLost(Event):
    attempt: int
    error: str
    while_down: bool = False        # found gone when the driver (re)started


@dataclass(frozen=True)
class StopRequested(Event):
    """``by``: ``user`` (orchestrator stop, the TUI) or ``driver`` (it is quitting: the
    attempt runs again next time)."""

    by: str = "user"
    wall: float = 0.0               # when (for the message)


@dataclass(frozen=True)
class Reattached(Event):
    """A restarted driver found the row's attempt still on its runner."""

    attempt: int
    wandb_run_id: str = ""
    gpus: str = ""


@dataclass(frozen=True)
class HandlingFailed(Event):
    """The driver raised while handling one of the row's events (a bug): the row ends
    Crash with the error, and the rest of the queue goes on."""

    error: str


# ================================================================= effects
class Effect:
    """Something the driver must do because of an event."""


@dataclass(frozen=True)
class WriteCells(Effect):
    """Write these cells of the row into the queue file (owned columns only)."""

    job_id: str
    cells: Mapping[str, str]


@dataclass(frozen=True)
class RecordAttempt(Effect):
    """Insert (``begin``) or update the attempt's row in the run record."""

    job_id: str
    attempt: int
    fields: Mapping
    begin: bool = False


@dataclass(frozen=True)
class Kill(Effect):
    """Stop the running attempt: SIGTERM to its process tree, then SIGKILL after the grace."""

    job_id: str
    attempt: int


@dataclass(frozen=True)
class Warn(Effect):
    """A line for the log (said once per message). ``stale``: a save put back older values
    (the driver gathers those into one warning per save)."""

    job_id: str
    message: str
    stale: bool = False


@dataclass(frozen=True)
class StatusChanged(Effect):
    """What observers receive: one status change, described by value.

    ``old`` is None when the row was first seen (a driver starting on a queue whose rows
    are Done already). ``row`` is the row's cells as they are after the change."""

    job_id: str
    old: RowStatus | None
    new: RowStatus
    attempt: int
    spec: JobSpec | None
    row: Mapping[str, str]
    failure: Failure | None = None
    report: AttemptReport | None = None
    wandb_run_id: str = ""
    gpus: str = ""                  # the GPU ids the attempt has/had
    gpus_asked: float | None = None # the GPUs the attempt asked for
    started: float | None = None
    details: Mapping = field(default_factory=frozen_map)
    time: float = 0.0               # wall clock

    @property
    def name(self) -> str:
        return self.spec.name if self.spec is not None else self.row.get("Name", "")

    @property
    def kind(self) -> str:
        return self.spec.kind if self.spec is not None else ""

    @property
    def error(self) -> str:
        return self.row.get("Error", "")
