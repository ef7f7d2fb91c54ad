"""``RowState``: everything the driver knows of one row, as a frozen value.

Only ``lifecycle.apply`` builds a new one; the driver keeps the latest per ID.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.core.events import Readiness, frozen_map
from orchestrator.core.failure import Failure
from orchestrator.core.spec import JobSpec
from orchestrator.core.status import RowStatus

__all__ = ["RowState", "Spent", "HISTORY"]

#: Earlier versions of a row's owned cells kept to recognise a stale save.
HISTORY = 32


@dataclass(frozen=True)
class Spent:
    """Retries used since the row last started fresh, per failure kind's budget."""

    crashes: int = 0     # exit
    losses: int = 0      # lost
    ooms: int = 0        # oom
    stalls: int = 0      # stalled
    timeouts: int = 0    # timeout

    def bump(self, counter: str) -> Spent:
        return dataclasses.replace(self, **{counter: getattr(self, counter) + 1})

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @property
    def any(self) -> bool:
        return any(self.as_dict().values())


@dataclass(frozen=True)
class RowState:
    id: str
    line: int = 0
    spec: JobSpec | None = None
    problem: str = ""              # why the row cannot be parsed (from the file)
    word_problem: str = ""         # TrainingCheck holds a word nobody knows
    unplaceable: str = ""          # it can never be placed as written here
    status: RowStatus = RowStatus.PENDING
    seen: bool = False             # the file has been read for it at least once
    attempt: int = 0               # attempts started so far (the Attempts column)
    spent: Spent = Spent()
    not_before: float = 0.0        # retry backoff (monotonic clock)
    wandb_run_id: str = ""
    gpus: float | None = None      # GPUs of the next attempt after more_gpu (None: the spec's)
    batch_divisor: int = 1         # the next attempt's batch divisor after halve_batch
    stop: str = ""                 # "user" / "driver": a stop was asked of the running attempt
    failure: Failure | None = None # how the last attempt failed
    runner: str = ""               # the runner of the running attempt
    started: float | None = None   # when the running attempt's process started (wall clock)
    assigned_gpus: str = ""        # the GPU ids the running attempt got
    readiness: Readiness | None = None
    cells: Mapping[str, str] = field(default_factory=frozen_map)   # owned cells, as written
    history: tuple[Mapping[str, str], ...] = ()                     # earlier versions of them

    @property
    def blocker(self) -> str:
        """Why the row is Invalid whatever its parent does ("" when nothing)."""
        return self.word_problem or self.problem or self.unplaceable

    @property
    def ready(self) -> bool:
        """It may start once resources are free (its backoff aside)."""
        return (self.status is RowStatus.PENDING and self.spec is not None
                and not self.blocker and self.readiness is not None and self.readiness.ready)

    @property
    def asked_gpus(self) -> float | None:
        """The GPUs its next attempt asks for (None: the config's default)."""
        return self.gpus if self.gpus is not None else (self.spec.gpus if self.spec else None)

    def cell(self, column: str) -> str:
        return self.cells.get(column, "")

    def replace(self, **changes) -> RowState:
        return dataclasses.replace(self, **changes)
