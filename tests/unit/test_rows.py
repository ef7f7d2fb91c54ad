"""The driver's row index: the running and ready rows, and the ready ones in start order,
kept right through every change a state can make."""

import random

from orchestrator.core import JobSpec, Readiness, RowState, RowStatus, start_order
from orchestrator.driver.rows import Rows

S = RowStatus
STATUSES = [S.PENDING, S.PENDING, S.QUEUED, S.TRAINING, S.DONE, S.HOLD, S.INVALID]


def state(rng: random.Random, job_id: str) -> RowState:
    line = int(job_id[1:]) * 2 + rng.choice([2, 3])   # lines move, but never collide
    spec = JobSpec(id=job_id, line=line, name=job_id, command="t",
                   priority=rng.choice([0, 0, 1, -1, 5]))
    return RowState(job_id, line=spec.line, spec=spec, status=rng.choice(STATUSES),
                    not_before=rng.choice([0.0, 0.0, 5.0]),
                    readiness=Readiness(S.PENDING, ready=rng.random() < 0.8))


def test_the_indexes_and_the_order_follow_every_change():
    rng = random.Random(3)
    rows = Rows()
    for step in range(3000):
        job_id = f"r{rng.randrange(40)}"
        roll = rng.random()
        if roll < 0.1 and job_id in rows:
            del rows[job_id]
        elif roll < 0.2:
            rows.setdefault(job_id, state(rng, job_id))
        else:
            rows[job_id] = state(rng, job_id)
        assert rows.active == {j for j, st in rows.items() if st.status.is_active}
        assert rows.ready == {j for j, st in rows.items() if st.ready}
        assert rows.backoff == {j for j, st in rows.items() if st.ready and st.not_before}
        if step % 7 == 0:
            expected = [st.id for st in start_order(rows.values(), mono=float("inf"))]
            take = rng.randrange(len(expected) + 1)
            order = rows.in_start_order()
            first = [next(order).id for _ in range(take)]
            order.close()
            assert first == expected[:take]
            assert [st.id for st in rows.in_start_order()] == expected, "a partial walk lost rows"


def test_a_turn_knows_when_no_ready_row_could_start_without_walking_the_queue():
    """Groups counted through every change: ``exhausted`` is true exactly when every
    ready row that may start now belongs to a group with no free runner."""
    rng = random.Random(5)
    rows = Rows(group=lambda st: st.spec.priority % 3 if st.spec.priority != 5 else None)
    for step in range(3000):
        job_id = f"r{rng.randrange(40)}"
        if rng.random() < 0.1 and job_id in rows:
            del rows[job_id]
        else:
            rows[job_id] = state(rng, job_id)
        full = set(rng.sample([0, 1, 2], rng.randrange(4)))
        mono = rng.choice([0.0, 10.0])

        def startable(st, mono=mono):
            return st.ready and st.not_before <= mono

        could = [st for st in rows.values()
                 if startable(st) and (rows.group(st) is None or rows.group(st) not in full)]
        if rows.exhausted(full, startable):
            assert not could, f"step {step}: {[st.id for st in could]} could still start"
        else:
            assert could or any(st.ready and not st.not_before and rows.group(st) not in full
                                for st in rows.values()), f"step {step}: said not exhausted"
