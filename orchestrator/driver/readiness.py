"""Which waiting rows became ready, derived only where something changed.

``core.resolve`` says whether one row may run (its parent Done with weights, its
registry model there, no cycle). This room decides which rows to ask about: the rows
whose own status, spec or weights changed, and their children, until chains settle;
every row after the file was read (a user's edit can change any parent).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.core import Event, RowState, RowStatus, find_cycles, resolve

__all__ = ["ReadinessTracker"]

logger = logging.getLogger(__name__)

Apply = Callable[[str, Event], RowState]
Fault = Callable[[str, BaseException], None]


class ReadinessTracker:
    """The rows whose readiness inputs changed since it was last derived."""

    def __init__(self, base_dir: Path, resolve_model: Callable[[str], object]):
        self.base_dir = base_dir
        self.resolve_model = resolve_model
        self._touched: set[str] = set()
        self._all = True                       # the file was read: derive every row
        self._children: dict[str, list[str]] = {}
        self._cycles: set[str] = set()

    def everything(self) -> None:
        """The file was read: every row is derived again (and parents re-indexed)."""
        self._all = True

    def noticed(self, before: RowState, after: RowState) -> None:
        """A row changed: if its status, spec or weights did, it and its children are
        derived again."""
        if after.status is not before.status or after.spec is not before.spec or \
                after.cell("WeightFile") != before.cell("WeightFile"):
            self._touched.add(after.id)

    def derive(self, rows: Mapping[str, RowState], apply: Apply, fault: Fault) -> None:
        """Tell the core the readiness of each waiting row (Invalid / Blocked / Pending)
        whose inputs changed, until chains settle. An error on one row is ``fault``'s."""
        if self._all:
            self._all = False
            parents = {st.id: st.spec.parent_id for st in rows.values()
                       if st.spec is not None and st.spec.parent_id}
            self._cycles = find_cycles(parents)
            self._children = {}
            for child, parent in parents.items():
                self._children.setdefault(parent, []).append(child)
            todo = set(rows)
        else:
            todo = set(self._touched)
            for job_id in self._touched:
                todo.update(self._children.get(job_id, ()))
        self._touched.clear()
        statuses, weights = _Statuses(rows), _Weights(rows)
        models = functools.lru_cache(maxsize=None)(self.resolve_model)   # one pass
        exists = functools.lru_cache(maxsize=None)(Path.exists)
        for _ in range(len(rows) + 1):
            changed: set[str] = set()
            for job_id in todo:
                st = rows.get(job_id)
                if st is None or not st.status.is_derived:
                    continue
                parent = st.spec.parent_id if st.spec is not None else ""
                try:
                    readiness = resolve(st.id, parent, statuses, weights, self._cycles,
                                        self.base_dir, exists, models)
                    if apply(st.id, readiness).status is not st.status:
                        changed.add(st.id)
                except Exception as e:  # noqa: BLE001 - one row never ends the driver
                    fault(st.id, e)
                    if rows[st.id].status is not st.status:
                        changed.add(st.id)
            if not changed:
                break
            todo = {c for job_id in changed for c in self._children.get(job_id, ())}
        self._touched.clear()   # what this pass changed, it has settled


class _Statuses(Mapping):
    """Each row's status, read live from the driver's rows (no copy per turn)."""

    def __init__(self, rows: Mapping[str, RowState]):
        self._rows = rows

    def __getitem__(self, job_id: str) -> RowStatus:
        return self._rows[job_id].status

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class _Weights(_Statuses):
    """Each row's WeightFile cell, read live."""

    def __getitem__(self, job_id: str) -> str:
        return self._rows[job_id].cell("WeightFile")
