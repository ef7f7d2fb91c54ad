"""Queue jobs land in the tracker and registry; PretrainedModelId may name a model."""

import json

import pytest

from orchestrator.cli.main import main as cli_main
from orchestrator.store.registry import ExperimentTracker, ModelRegistry
from tests.helpers import QueueRun, probe, probe_records, read_rows, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "Name", "TrainingCommand", "PretrainedModelId", "GPUs", "Retries"]
TOY = "{python} {root}/examples/train_toy.py --epochs 3 --sleep 0 --lr {lr} {extra}"


def toy(lr, extra=""):
    import sys
    from pathlib import Path
    return TOY.format(python=sys.executable, root=Path(__file__).parents[2], lr=lr, extra=extra)


def test_jobs_are_tracked_and_models_registered(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [
        ["slow", "slow learner", toy(0.05), "", "0", ""],
        ["fast", "fast learner", toy(0.5), "", "0", ""],
        ["flaky", "", toy(0.2, "--fail-first-attempt"), "", "0", "1"],
    ])
    run = QueueRun(q, metric="accuracy", metric_goal="max").start()
    assert run.join() == 0
    tracker, models = ExperimentTracker(run.paths.registry), ModelRegistry(run.paths.registry)
    exps = tracker.list_experiments(queue=run.paths.name)
    assert sorted((e["job_id"], e["attempt"], e["status"]) for e in exps) == [
        ("fast", 1, "completed"), ("flaky", 1, "failed"), ("flaky", 2, "completed"),
        ("slow", 1, "completed")]
    best = models.get_best_models("accuracy")
    rows = read_rows(q)
    assert [m["name"] for m in best][0] == "fast"
    assert [m["performance"]["accuracy"] for m in best] == sorted(
        (float(rows[i]["BestMetric"]) for i in ("slow", "fast", "flaky")), reverse=True)
    fast = models.resolve("fast")
    assert fast["file_path"] == str(tmp_path / rows["fast"]["WeightFile"])
    exp = tracker.get_experiment(fast["experiment_id"])
    assert exp["model_id"] == fast["id"] and exp["wandb_run_id"] == rows["fast"]["WandbRunID"]
    assert [v for _, v in tracker.metric_history(exp["id"], "epoch")] == [1, 2, 3]


def test_pretrained_by_registry_reference(tmp_path):
    out = tmp_path / "out"
    first = write_csv(tmp_path / "a.csv", HEADER, [["base", "", toy(0.3), "", "0", ""]])
    assert QueueRun(first).start().join() == 0
    weights = ModelRegistry(tmp_path / "runs" / "registry.db").resolve("base:1")["file_path"]
    second = write_csv(tmp_path / "b.csv", HEADER, [
        ["ft", "", probe("ft", out), "base:1", "0", ""],
        ["bad", "", probe("bad", out), "base:7", "0", ""]])
    assert QueueRun(second).start().join() == 1
    assert probe_records(out)[0]["pretrained"] == weights
    rows = read_rows(second)
    assert rows["ft"]["TrainingCheck"] == "Done"
    assert rows["bad"]["TrainingCheck"] == "Invalid" and "base:7" in rows["bad"]["Error"]


def test_a_chained_model_knows_its_parent_and_keeps_the_rows_notes(tmp_path, capsys):
    q = write_csv(tmp_path / "q.csv", [*HEADER, "Notes"], [
        ["base", "", toy(0.3), "", "0", "", ""],
        ["ft", "", toy(0.1), "base", "0", "", "lower lr, from base"]])
    run = QueueRun(q, metric="accuracy").start()
    assert run.join() == 0
    models = ModelRegistry(run.paths.registry)
    base, ft = models.resolve("base"), models.resolve("ft")
    assert ft["parent_id"] == base["id"] and base["parent_id"] is None
    assert ft["config"]["notes"] == "lower lr, from base"
    assert [m["id"] for m in models.lineage(ft["id"])] == [ft["id"], base["id"]]
    where = ["--state-dir", str(run.paths.state_dir), "--json"]
    capsys.readouterr()
    assert cli_main(["registry", "show", "ft", *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"] == ["base:1"] and shown["experiment"]["config"]["notes"]
    assert cli_main(["registry", "compare", "base", "ft:1", str(ft["id"]), *where]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["accuracy"][1] == compared["accuracy"][2] == ft["performance"]["accuracy"]
