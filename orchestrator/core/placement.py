"""Which ready rows start first: the pure part of placement.

Higher ``Priority`` first, then file order; a row in retry backoff waits its turn; a
``max_training_process`` cap counts the rows on runners. Whether a row can ever fit
the cluster, and in what numbers to say it cannot, is decided here from the totals;
where it runs is the driver's business (``orchestrator.driver.placement``): it needs
the runner pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.core.row import RowState
from orchestrator.core.status import RowStatus

__all__ = ["start_order", "start_key", "may_start", "room", "next_wake", "can_progress",
           "why_waiting", "shortfall", "amounts", "too_many_gpus"]

_EPS = 1e-9


def shortfall(demand: Mapping[str, float], totals: Mapping[str, float]) -> list[str]:
    """The resources ``demand`` asks more of than the whole cluster (``totals``) has:
    empty when it fits once the cluster is idle."""
    return [k for k, v in demand.items() if v > 0 and v > totals.get(k, 0.0) + _EPS]


def amounts(amounts: Mapping[str, float]) -> str:
    """``{'GPU': 1e9, 'CPU': 1}`` → ``1e+09 GPU, 1 CPU``."""
    return ", ".join(f"{v:g} {k}" for k, v in amounts.items()) or "nothing"


def too_many_gpus(gpus: float, allow_multi_gpu: bool) -> bool:
    """A row may use more than one GPU only where ``allow_multi_gpu`` says so."""
    return gpus > 1 and not allow_multi_gpu


def start_key(row: RowState) -> tuple[float, int]:
    """What orders the rows that may start: higher ``Priority`` first, then file order."""
    return (-row.spec.priority, row.line)


def may_start(row: RowState, mono: float, *, retries_only: bool = False) -> bool:
    """Whether ``row`` may start now. ``retries_only``: after the first round with
    ``auto_continue = false`` only retries of rows already started run."""
    return row.ready and row.not_before <= mono and (not retries_only or row.spent.any)


def start_order(rows: Iterable[RowState], mono: float, *,
                retries_only: bool = False) -> list[RowState]:
    """Rows that may start now, in the order they should."""
    return sorted((r for r in rows if may_start(r, mono, retries_only=retries_only)),
                  key=start_key)


def room(rows: Iterable[RowState], cap: int) -> int | None:
    """How many more rows may run under ``cap`` (None: no cap)."""
    if not cap:
        return None
    return max(0, cap - sum(r.status.is_active for r in rows))


def why_waiting(state: RowState, mono: float, *, left: int | None, cap: int = 0,
                retries_only: bool = False) -> str:
    """Why a Pending row has not started, as far as the rows say ("" when nothing in
    them holds it back: then only resources can, which the driver knows). ``left``:
    ``room`` now."""
    if state.status is not RowStatus.PENDING or state.spec is None or state.blocker:
        return ""
    if state.readiness is not None and not state.readiness.ready:
        return state.readiness.reason or "waiting"
    if state.not_before > mono:
        after = f" after {state.failure.kind.value}" if state.failure is not None else ""
        return f"retry in {state.not_before - mono:.0f}s{after} (backoff)"
    if retries_only and not state.spent.any:
        return ("auto_continue = false: after the first round only retries start — run "
                "the queue again to start it")
    if left == 0:
        return f"max_training_process = {cap}: that many rows run already"
    return ""


def next_wake(rows: Iterable[RowState], mono: float) -> float | None:
    """Seconds until the first backoff ends (None: none is waiting)."""
    waits = [r.not_before - mono for r in rows if r.ready and r.not_before > mono]
    return min(waits) if waits else None


def can_progress(rows: Mapping[str, RowState]) -> bool:
    """Whether anything can still happen without the user: a row on a runner, or a
    pending row that may start now or once its parent is Done (not a row waiting on a
    parent that is on Hold or waits itself on such a row)."""
    def moves(job_id: str, seen: frozenset) -> bool:
        st = rows.get(job_id)
        if st is None or job_id in seen:
            return False
        if st.status.is_active:
            return True
        if st.status is not RowStatus.PENDING or st.spec is None or st.blocker:
            return False
        parent = st.spec.parent_id
        if not parent or parent not in rows or rows[parent].status is RowStatus.DONE:
            return True
        return moves(parent, seen | {job_id})

    return any(moves(job_id, frozenset()) for job_id in rows)
