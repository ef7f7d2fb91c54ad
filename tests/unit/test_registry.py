"""Contract tests for the experiment tracker and model registry (real SQLite files)."""

import json
import sqlite3

import pytest

from orchestrator.registry import ExperimentTracker, ModelRegistry, RegistryError


@pytest.fixture
def db(tmp_path):
    return tmp_path / "registry.db"


def test_experiment_lifecycle_and_guarded_status(db):
    t = ExperimentTracker(db)
    exp = t.start_experiment("baseline", "first try", {"lr": 1e-3}, "bart", {"rows": 32}, "abc123")
    t.log_metrics({"loss": 0.9, "rouge_l": 0.1}, step=1)
    t.log_metrics({"loss": 0.5, "rouge_l": 0.3, "note": "text is ignored"}, step=2)
    t.log_metrics({"loss": 0.7, "rouge_l": 0.2}, step=3)
    got = t.get_experiment(exp)
    assert got["status"] == "running" and got["config"] == {"lr": 1e-3}
    assert got["metrics"] == {"loss": 0.7, "rouge_l": 0.2}
    assert got["best_metrics"] == {"loss": 0.5, "rouge_l": 0.3}  # loss: lower is better
    assert t.metric_history(exp, "loss") == [(1, 0.9), (2, 0.5), (3, 0.7)]
    assert t.end_experiment(exp, final_metrics={"rouge_l": 0.2}, status="completed")
    assert not t.update_experiment_status(exp, "failed"), "a finished experiment changed"
    assert not t.end_experiment(exp)
    with pytest.raises(RegistryError, match="cannot change"):
        t.log_metrics({"loss": 0.1}, experiment_id=exp)
    final = t.get_experiment(exp)
    assert final["status"] == "completed" and final["ended"] >= final["started"]
    assert final["wandb_run_id"] == "abc123"


def test_bad_status_and_unknown_experiment(db):
    t = ExperimentTracker(db)
    with pytest.raises(RegistryError, match="start one"):
        t.log_metrics({"x": 1})
    exp = t.start_experiment("e")
    with pytest.raises(RegistryError, match="use one of"):
        t.update_experiment_status(exp, "exploded")
    with pytest.raises(RegistryError, match="end status"):
        t.end_experiment(exp, status="running")


def test_register_versions_best_search_compare_resolve(db):
    r = ModelRegistry(db)
    a = r.register_model("kobart", "bart", performance={"rouge_l": 0.31, "loss": 1.2},
                         file_path="a.pt")
    b = r.register_model("kobart", "bart", performance={"rouge_l": 0.35, "loss": 1.0},
                         file_path="b.pt")
    c = r.register_model("t5", "t5", performance={"rouge_l": 0.28})
    d = r.register_model("nometric", "bart", performance={})
    assert [r.get_model_info(i)["version"] for i in (a, b, c)] == [1, 2, 1]
    assert [m["id"] for m in r.get_best_models("rouge_l", limit=2)] == [b, a]
    assert [m["id"] for m in r.get_best_models("loss", goal="min")] == [b, a]
    assert [m["id"] for m in r.get_best_models("loss")] == [b, a], "a loss: lowest first"
    assert [m["id"] for m in r.get_best_models("loss", goal="max")] == [a, b]
    assert d not in [m["id"] for m in r.get_best_models("rouge_l")]
    assert [m["id"] for m in r.search_models(architecture="bart")] == [a, b, d]
    assert [m["id"] for m in r.search_models(min_performance={"rouge_l": 0.3})] == [a, b]
    assert r.compare_models([a, c]) == {"loss": [1.2, None], "rouge_l": [0.31, 0.28]}
    assert r.resolve("kobart:1")["id"] == a and r.resolve("kobart")["id"] == b
    assert r.resolve(str(c))["name"] == "t5" and r.resolve("nope") is None
    with pytest.raises(RegistryError, match="no model with id 99"):
        r.compare_models([a, 99])
    with pytest.raises(RegistryError):
        r.register_model("bad:name")


def test_two_handles_share_one_file_and_schema_is_versioned(db):
    t1, t2 = ExperimentTracker(db), ModelRegistry(db)
    exp = t1.start_experiment("shared")
    model = t2.register_model("m", experiment_id=exp)
    assert t2.get_model_info(model)["experiment_id"] == exp
    version = sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
    assert version == 8


def test_the_seed_guides_status_words_are_read_as_ours(db):
    """The tracker guide calls update_experiment_status(id, "in_progress", note)."""
    t = ExperimentTracker(db)
    exp = t.start_experiment("bart_base_experiment")
    assert t.update_experiment_status(exp, "in_progress", "학습 진행 중")
    assert t.get_experiment(exp)["status"] == "running"
    assert [e["id"] for e in t.list_experiments(status="In_Progress")] == [exp]
    assert t.end_experiment(exp, status="Done")
    assert t.get_experiment(exp)["status"] == "completed"
    with pytest.raises(RegistryError, match="in_progress"):
        t.update_experiment_status(exp, "half-way")


def test_registry_best_ranks_a_loss_lowest_first_and_says_which_way(tmp_path, capsys):
    from orchestrator.cli import main

    r = ModelRegistry(tmp_path / "registry.db")
    worse = r.register_model("m", "a", performance={"val_loss": 0.9, "accuracy": 0.7})
    better = r.register_model("m", "a", performance={"val_loss": 0.2, "accuracy": 0.6})
    r.close()
    where = ["--state-dir", str(tmp_path)]
    capsys.readouterr()
    assert main(["registry", "best", "--metric", "val_loss", *where, "--json"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [better, worse]
    assert main(["registry", "best", "--metric", "accuracy", *where, "--json"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [worse, better]
    assert main(["registry", "best", "--metric", "val_loss", *where]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ranked by val_loss, lowest first (from its name; --goal max to reverse)" in out
    assert main(["registry", "best", "--metric", "val_loss", "--goal", "max", *where]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ranked by val_loss, highest first" in out and "from its name" not in out


def test_an_experiment_recorded_after_it_ran_keeps_its_own_times(db):
    """A sweep's trials are recorded when the sweep ends: with the times they ran."""
    t = ExperimentTracker(db)
    exp = t.start_experiment("trial", started=1_700_000_000.0, wandb_run_id="abcd1234")
    t.end_experiment(exp, final_metrics={"loss": 1.0}, ended=1_700_000_042.5)
    got = t.get_experiment(exp)
    assert (got["started"], got["ended"], got["wandb_run_id"]) == (
        1_700_000_000.0, 1_700_000_042.5, "abcd1234")


def test_what_the_registry_returns_reads_as_attributes_and_as_the_guides_mappings(db):
    """A trainer reads ``model_info['performance']`` (the seed guide); our own code reads
    ``model.performance``; neither can change the record, and ``to_dict`` is plain JSON."""
    t, m = ExperimentTracker(db), ModelRegistry(db)
    exp_id = t.start_experiment("base", config={"lr": 0.1})
    model_id = m.register_model("kobart", architecture="bart", performance={"rouge1": 0.4},
                                experiment_id=exp_id)
    info = m.get_model_info(model_id)
    assert info["performance"] == info.performance == {"rouge1": 0.4}
    assert (info.name, info.version, info.get("file_path")) == ("kobart", 1, "")
    assert dict(info)["experiment_id"] == exp_id and "architecture" in info
    exp = t.get_experiment(exp_id)
    assert exp.status == exp["status"] == "running" and exp.config == {"lr": 0.1}
    with pytest.raises(TypeError):
        info["performance"] = {}
    with pytest.raises(AttributeError):
        exp.status = "completed"
    assert json.loads(json.dumps(info.to_dict()))["performance"] == {"rouge1": 0.4}
    assert list(exp.to_dict())[:4] == ["id", "name", "description", "status"]
