"""A Ray Train job's workers report their metrics through a sink actor on the job's node:
a worker on another node (no such folder there) still gets its lines into the row's file,
in order. A metrics file that cannot be written never ends a training."""

from __future__ import annotations

import json

import pytest
import ray

from orchestrator.api import METRICS_SINK_ENV, report
from trainers.ray_job import _start_sink

pytestmark = pytest.mark.usefixtures("ray_session")


def test_lines_reach_the_jobs_file_from_a_worker_that_cannot_see_it(tmp_path):
    target = tmp_path / "metrics.jsonl"
    _start_sink("orch-metrics-test", str(target))

    # the worker's own view of the path is a folder that does not exist (another node)
    env = {METRICS_SINK_ENV: "orch-metrics-test", "ORCH_METRICS_FILE": "/nonexistent/m.jsonl"}

    @ray.remote(num_cpus=0, runtime_env={"env_vars": env})
    def worker() -> None:
        for epoch in range(5):
            report(step=epoch, loss=1 / (epoch + 1))

    ray.get(worker.remote())
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4]
    assert lines[-1]["loss"] == pytest.approx(0.2)


def test_an_unwritable_metrics_file_warns_once_and_training_goes_on(tmp_path, monkeypatch,
                                                                    capsys):
    import orchestrator.api as metrics

    monkeypatch.setattr(metrics, "_warned", False)
    monkeypatch.delenv(METRICS_SINK_ENV, raising=False)
    monkeypatch.setenv("ORCH_METRICS_FILE", str(tmp_path / "gone" / "m.jsonl"))
    report(step=1, loss=0.5)
    report(step=2, loss=0.4)
    err = capsys.readouterr().err
    assert err.count("cannot report metrics") == 1 and "training goes on" in err
