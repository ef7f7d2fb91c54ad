"""The driver's own TUI: the queue runs under it; `q` asks what happens to running jobs."""

import asyncio

import psutil
import pytest

from orchestrator.driver.loop import Scheduler
from orchestrator.driver.ui import DriverApp
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import RunRecord
from tests.helpers import probe, probe_records, read_rows, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "Name", "TrainingCommand", "GPUs"]


def make_app(csv, local=True):
    config = load_config(None, retry_backoff=0.2, runner_idle=1.0, stop_grace=2.0)
    paths = queue_paths(csv, config)
    record = RunRecord(paths.registry)
    scheduler = Scheduler(QueueFile(paths.csv), config, paths.state_dir, record,
                          queue_name=paths.name, local_ray=local)
    return DriverApp(paths, config, scheduler, local=local, refresh_s=0.2)


async def until(pilot, predicate, timeout=30.0):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return True
        await pilot.pause(0.1)
    raise AssertionError("timed out")


def test_the_ui_closes_itself_when_the_queue_is_done(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [["a", "모델", probe("a", out), "0"]])
    app = make_app(csv)

    async def main():
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: app.code is not None)

    asyncio.run(main())
    assert app.join(timeout=30) == 0
    assert read_rows(csv)["a"]["TrainingCheck"] == "Done"


def test_quit_asks_then_stops_running_jobs(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [["blk", "", probe("blk", out, "--block"), "0"]])
    app = make_app(csv)
    pids = []

    async def main():
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: probe_records(out))
            pids.append(probe_records(out)[0]["pid"])
            header = app.summary_text()
            assert "in use: GPU 0/4 · CPU" in header and "on 1 node(s)" in header
            await pilot.press("q")
            await pilot.pause(0.2)
            await pilot.press("c")              # cancel: nothing happens
            await pilot.pause(0.5)
            assert app.scheduler.rows["blk"].status.label == "Training"
            await pilot.press("ctrl+c")         # Ctrl-C asks the same question
            await pilot.pause(0.2)
            await pilot.press("s")              # stop the jobs and quit
            await until(pilot, lambda: app.code is not None)

    asyncio.run(main())
    app.join(timeout=30)
    wait_for(lambda: not psutil.pid_exists(pids[0]), timeout=15, what="the job to stop")
    row = read_rows(csv)["blk"]
    assert row["TrainingCheck"] == "" and "interrupted" in row["Error"]
