"""Jobs that end as soon as they start, on warm runners: the answers of a reused runner
race its next attempt. Every row must end Done, once, and the driver must not die."""

from __future__ import annotations

import pytest

from tests.helpers import QueueRun, read_rows, write_csv

ROWS, RUNS = 150, 3


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
def test_instant_jobs_on_warm_runners_all_end_done_once(ray_session, tmp_path, run):
    ids = [f"j{i:03d}" for i in range(ROWS)]
    q = write_csv(tmp_path / "q.csv", ["ID", "Name", "TrainingCommand", "GPUs"],
                  [[i, i, "true", "0.5"] for i in ids])
    queue = QueueRun(q, max_training_process=8, runner_idle=30.0, retry_backoff=0.0)
    assert queue.start().join(timeout=240) == 0
    rows = read_rows(q)
    assert {i: rows[i]["TrainingCheck"] for i in ids} == {i: "Done" for i in ids}
    assert {rows[i]["Attempts"] for i in ids} == {"1"}, "an instant job ran twice"
    record = queue.record()
    attempts = record.attempts(queue.paths.name)
    record.close()
    assert sorted((a.job_id, a.attempt, a.status) for a in attempts) == [
        (i, 1, "Done") for i in ids]
