"""``why_waiting``: what holds a pending row back, as far as the rows say."""

import dataclasses

import pytest

from orchestrator.core import Failure, FailureKind, Readiness, RowStatus, why_waiting
from tests.unit.core.test_lifecycle import READY, first, run_to, step

S = RowStatus
NOW = 100.0


def pending(**changes):
    state = run_to(S.PENDING)
    return dataclasses.replace(state, **changes) if changes else state


@pytest.mark.parametrize("state,kw,why", [
    (pending(), {"left": None}, ""),     # nothing in the rows: only resources (the driver's)
    (pending(), {"left": 0, "cap": 2}, "max_training_process = 2: that many rows run already"),
    (pending(not_before=NOW + 12, failure=Failure(FailureKind.OOM, "x")), {"left": None},
     "retry in 12s after oom (backoff)"),
    (pending(), {"left": None, "retries_only": True}, "auto_continue = false: after the "
     "first round only retries start — run the queue again to start it"),
    (step(first(), Readiness(S.PENDING, "waits for its parent p (Training)"))[0],
     {"left": None}, "waits for its parent p (Training)"),
    (run_to(S.TRAINING), {"left": None}, ""),                 # not pending: nothing to say
    (step(first({"TrainingCheck": "Hodl"}), READY)[0], {"left": None}, ""),   # Invalid
])
def test_why_a_pending_row_has_not_started(state, kw, why):
    assert why_waiting(state, NOW, **kw) == why
