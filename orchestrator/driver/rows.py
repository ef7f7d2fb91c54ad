"""The driver's rows by ID, with the indexes a turn of the loop needs kept as they change.

A turn asks "how many rows run?", "which rows may start, in what order?" and "has
everything finished?". Scanning 10,000 rows for each answer after every event made a
turn cost grow with the queue; these sets answer in time proportional to what they hold.
They are derived from the states only (the core still decides every state).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Container, Hashable, Iterator

from orchestrator.core import RowState, start_key

__all__ = ["Rows"]


class Rows(dict[str, RowState]):
    """``{job id: RowState}`` that keeps ``active`` (on a runner) and ``ready`` (may start
    once resources are free) up to date on every assignment and deletion.

    ``group``: the ready rows' placement groups (rows of one group ask for the same
    runner; None: placed one by one), counted so a turn can tell when no ready row is
    left that could start (``exhausted``) without walking the queue."""

    def __init__(self, group: Callable[[RowState], Hashable | None] = lambda state: None):
        super().__init__()
        self.active: set[str] = set()
        self.ready: set[str] = set()
        self.backoff: set[str] = set()   # ready, but not before a time (a retry's backoff)
        self._order: list[tuple[tuple, str]] = []   # heap of (start_key, id); stale ones skipped
        self.group = group
        self._group_of: dict[str, Hashable | None] = {}   # ready, not in backoff: its group
        self._groups: Counter = Counter()

    def __setitem__(self, job_id: str, state: RowState) -> None:
        super().__setitem__(job_id, state)
        self._index(job_id, state)

    def __delitem__(self, job_id: str) -> None:
        super().__delitem__(job_id)
        self.active.discard(job_id)
        self.ready.discard(job_id)
        self.backoff.discard(job_id)
        self._ungroup(job_id)

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
        self.backoff.clear()
        self._order.clear()
        self._group_of.clear()
        self._groups.clear()

    def _index(self, job_id: str, state: RowState) -> None:
        self.active.add(job_id) if state.status.is_active else self.active.discard(job_id)
        if state.ready and state.not_before > 0:
            self.backoff.add(job_id)
        else:
            self.backoff.discard(job_id)
        if state.ready:
            self.ready.add(job_id)
            heapq.heappush(self._order, (start_key(state), job_id))
            if len(self._order) > 4 * len(self.ready) + 64:   # mostly stale: rebuild
                self._order = [(start_key(self[j]), j) for j in self.ready]
                heapq.heapify(self._order)
        else:
            self.ready.discard(job_id)
        self._ungroup(job_id)
        if state.ready and job_id not in self.backoff:
            group = self._group_of[job_id] = self.group(state)
            self._groups[group] += 1

    def _ungroup(self, job_id: str) -> None:
        if job_id in self._group_of:
            group = self._group_of.pop(job_id)
            self._groups[group] -= 1
            if not self._groups[group]:
                del self._groups[group]

    def exhausted(self, full: Container, may_start: Callable[[RowState], bool]) -> bool:
        """Whether no ready row is left that could start this turn: each one's group is
        in ``full`` (no runner free for it), or it waits out a backoff. Costs the number
        of groups and backoff rows, not of rows."""
        if any(group is None or group not in full for group in self._groups):
            return False
        return not any(may_start(self[j]) and self.group(self[j]) not in full
                       for j in self.backoff)

    def in_start_order(self) -> Iterator[RowState]:
        """The ready rows, best first (``core.start_key``), as many as the caller takes:
        a turn that starts k rows costs k log n, not a sort of the queue."""
        taken: list[tuple[tuple, str]] = []
        seen: set[str] = set()
        try:
            while self._order:
                key, job_id = heapq.heappop(self._order)
                state = self.get(job_id)
                if job_id in seen or job_id not in self.ready or state is None \
                        or start_key(state) != key:
                    continue   # stale: it left the ready rows, or its key changed
                seen.add(job_id)
                taken.append((key, job_id))
                yield state
        finally:   # what is still ready goes back (launched rows are no longer ready)
            for key, job_id in taken:
                if job_id in self.ready:
                    heapq.heappush(self._order, (key, job_id))

    def in_backoff(self) -> list[RowState]:
        """The ready rows that wait out a retry's backoff (``core.next_wake``'s rows)."""
        return [self[job_id] for job_id in self.backoff]
