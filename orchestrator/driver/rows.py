"""The driver's rows by ID, with the indexes a turn of the loop needs kept as they change.

A turn asks "how many rows run?", "which rows may start, in what order?" and "has
everything finished?". Scanning 10,000 rows for each answer after every event made a
turn cost grow with the queue; these sets answer in time proportional to what they hold.
They are derived from the states only (the core still decides every state).
"""

from __future__ import annotations

from orchestrator.core import RowState

__all__ = ["Rows"]


class Rows(dict[str, RowState]):
    """``{job id: RowState}`` that keeps ``active`` (on a runner) and ``ready`` (may start
    once resources are free) up to date on every assignment and deletion."""

    def __init__(self):
        super().__init__()
        self.active: set[str] = set()
        self.ready: set[str] = set()

    def __setitem__(self, job_id: str, state: RowState) -> None:
        super().__setitem__(job_id, state)
        self._index(job_id, state)

    def __delitem__(self, job_id: str) -> None:
        super().__delitem__(job_id)
        self.active.discard(job_id)
        self.ready.discard(job_id)

    def setdefault(self, job_id: str, state: RowState) -> RowState:  # type: ignore[override]
        if job_id not in self:
            self[job_id] = state
        return self[job_id]

    def pop(self, job_id: str, *default):   # type: ignore[override]
        if job_id not in self and default:
            return default[0]
        state = self[job_id]
        del self[job_id]
        return state

    def update(self, *args, **kwargs) -> None:   # type: ignore[override]
        for job_id, state in dict(*args, **kwargs).items():
            self[job_id] = state

    def clear(self) -> None:
        super().clear()
        self.active.clear()
        self.ready.clear()

    def _index(self, job_id: str, state: RowState) -> None:
        for members, member in ((self.active, state.status.is_active),
                                (self.ready, state.ready)):
            if member:
                members.add(job_id)
            else:
                members.discard(job_id)

    def ready_states(self) -> list[RowState]:
        return [self[job_id] for job_id in self.ready]
