"""The lifecycle core: pure (no Ray, no file I/O), the only code that changes a status.

A row's state (``RowState``) changes only through ``apply(state, event, context)``,
which checks the move against ``TRANSITIONS`` and returns the effects the driver must
carry out (write cells, record the attempt, kill a process) and the ``StatusChanged``
values observers receive. An attempt that fails carries a ``Failure`` whose
``FailureKind`` decides its retry (``RetryPolicy``).
"""

from orchestrator.core.attempt import AttemptReport
from orchestrator.core.edits import Edit, read_edit
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
)
from orchestrator.core.failure import Failure, FailureKind, classify
from orchestrator.core.lifecycle import (
    INTERRUPTED,
    TRANSITIONS,
    Context,
    IllegalTransition,
    NotRunning,
    apply,
    format_time,
    safe_cell,
)
from orchestrator.core.placement import (
    amounts,
    can_progress,
    may_start,
    next_wake,
    room,
    shortfall,
    start_key,
    start_order,
    too_many_gpus,
    why_waiting,
)
from orchestrator.core.readiness import find_cycles, resolve
from orchestrator.core.retry import Decision, RetryPolicy, decide, more_gpus
from orchestrator.core.row import RowState, Spent
from orchestrator.core.spec import (
    KNOWN_COLUMNS,
    ON_OOM,
    OWNED_COLUMNS,
    REQUIRED_COLUMNS,
    SEED_COLUMNS,
    JobSpec,
    canonical_column,
    column_typos,
    parse_duration,
    parse_gpu_ids,
    parse_resources,
)
from orchestrator.core.status import ATTEMPT_ACTIVE, RowStatus, Word, read_word, registry_word

__all__ = [
    "AttemptReport", "Edit", "read_edit",
    "AttemptEnded", "Effect", "Event", "HandlingFailed", "Kill", "Launched", "Reattached",
    "Readiness",
    "RecordAttempt", "RowDeleted", "RowRead", "RunnerLost", "RunnerStarted", "StatusChanged",
    "StopRequested", "Unplaceable", "Warn", "WriteCells",
    "Failure", "FailureKind", "classify",
    "TRANSITIONS", "Context", "IllegalTransition", "NotRunning", "apply", "format_time",
    "INTERRUPTED",
    "safe_cell", "can_progress", "next_wake", "room", "start_order", "start_key", "may_start",
    "why_waiting", "shortfall", "amounts", "too_many_gpus",
    "find_cycles", "resolve",
    "Decision", "RetryPolicy", "decide", "more_gpus", "RowState", "Spent",
    "ON_OOM", "OWNED_COLUMNS", "REQUIRED_COLUMNS", "SEED_COLUMNS", "KNOWN_COLUMNS", "JobSpec",
    "canonical_column", "column_typos",
    "parse_duration", "parse_gpu_ids", "parse_resources",
    "ATTEMPT_ACTIVE", "RowStatus", "Word", "read_word", "registry_word",
]
