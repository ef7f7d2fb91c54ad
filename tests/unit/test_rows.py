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
