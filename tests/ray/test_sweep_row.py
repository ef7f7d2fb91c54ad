"""A Kind=sweep row: an unmodified W&B program swept on Tune from the queue."""

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator.store.registry import ExperimentTracker
from tests.helpers import QueueRun, read_rows, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]


def test_sweep_row_records_its_best_metric_and_config(tmp_path):
    sweep = tmp_path / "toy.yaml"
    text = (ROOT / "configs" / "sweeps" / "toy_wandb.yaml").read_text()
    sweep.write_text(text.replace("../../examples", str(ROOT / "examples")))
    shutil.copy(ROOT / "examples" / "wandb_sweep_program.py", tmp_path)
    csv = write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "GPUs", "TrainingCommand"], [
        ["sw", "sweep", "toy.yaml", "0.5", ""],
        ["bad", "sweep", "missing.yaml", "0.5", ""]])
    run = QueueRun(csv).start()
    assert run.join(timeout=240) == 1
    rows = read_rows(csv)
    assert rows["sw"]["TrainingCheck"] == "Done", rows["sw"]["Error"]
    assert float(rows["sw"]["BestMetric"]) == pytest.approx(1 / 3)   # lr = 0.01 wins
    assert json.loads(rows["sw"]["BestConfig"]) == {"lr": 0.01, "epochs": 3}
    assert rows["bad"]["TrainingCheck"] == "Invalid" and "missing.yaml" in rows["bad"]["Error"]
    tracker = ExperimentTracker(run.paths.registry)
    exp = next(e for e in tracker.list_experiments() if e["name"].endswith("/sw"))
    assert exp["final_metrics"]["best_config"] == {"lr": 0.01, "epochs": 3}
    assert exp["final_metrics"]["trials"] == 3
    trials = tracker.list_experiments(parent_id=exp["id"])
    assert sorted(t["config"]["lr"] for t in trials) == [0.001, 0.01, 0.1]
    assert all(t["status"] == "completed" for t in trials)
    # when each trial ran, as it ran (not when the sweep ended), and its own W&B run
    assert all(exp["started"] <= t["started"] < t["ended"] <= exp["ended"] for t in trials)
    assert all(t["ended"] - t["started"] > 0.1 for t in trials), "a program takes time"
    assert len({t["wandb_run_id"] for t in trials}) == 3 and all(
        len(t["wandb_run_id"]) == 8 for t in trials)
    best = min(trials, key=lambda t: t["final_metrics"]["val_loss"])
    assert best["config"]["lr"] == 0.01


def test_a_sweep_file_without_program_runs_the_rows_wandb_agent_program(tmp_path):
    """W&B's other style: no program: in the file, the sweep made in code and run with
    wandb.agent(id, function=train). The row's TrainingCommand names the program; each
    trial runs it unchanged and wandb.agent calls train once with the trial's values."""
    shutil.copy(ROOT / "configs" / "sweeps" / "toy_function.yaml", tmp_path)
    shutil.copy(ROOT / "examples" / "wandb_agent_function.py", tmp_path / "train fn.py")
    command = shlex.join([sys.executable, "train fn.py"])
    csv = write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "GPUs", "TrainingCommand"], [
        ["fn", "sweep", "toy_function.yaml", "0", command],
        ["none", "sweep", "toy_function.yaml", "0", ""]])
    run = QueueRun(csv).start()
    assert run.join(timeout=240) == 1
    rows = read_rows(csv)
    assert rows["fn"]["TrainingCheck"] == "Done", rows["fn"]["Error"]
    assert float(rows["fn"]["BestMetric"]) == pytest.approx(1 / 3)   # lr = 0.01 wins
    assert json.loads(rows["fn"]["BestConfig"]) == {"lr": 0.01, "epochs": 3}
    assert rows["none"]["TrainingCheck"] == "Invalid"
    assert "no program:" in rows["none"]["Error"] and "TrainingCommand" in rows["none"]["Error"]


def test_sweep_row_sends_sweep_done_with_its_trials(tmp_path):
    from orchestrator.observers.notify import Notifier
    from tests.notify_servers import JsonSink

    sweep = tmp_path / "toy.yaml"
    text = (ROOT / "configs" / "sweeps" / "toy_wandb.yaml").read_text()
    sweep.write_text(text.replace("../../examples", str(ROOT / "examples")))
    csv = write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "GPUs", "TrainingCommand"],
                    [["sw", "sweep", "toy.yaml", "0", ""]])
    with JsonSink() as sink:
        notifier = Notifier([sink.url()], {"sweep_done"}, queue_name="q")
        run = QueueRun(csv)
        run.extra_observers = (notifier,)
        run.start()
        assert run.join(timeout=240) == 0
        notifier.close(timeout=10)
        received = list(sink.received)
    assert len(received) == 1 and "sweep sw finished" in received[0]["title"]
    assert "3 Done" in received[0]["title"] and "trial-" in received[0]["message"]
