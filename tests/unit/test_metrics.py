"""Metrics: what a job reports, and what the orchestrator reads back."""

import json

import pytest

import orchestrator
from orchestrator.api import goal_of, read_metrics, report


class Scalar:  # stands in for a numpy / torch scalar
    def __init__(self, value):
        self.value = value

    def item(self):
        return self.value


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_report_appends_json_lines(tmp_path, monkeypatch):
    out = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("ORCH_METRICS_FILE", str(out))
    monkeypatch.chdir(tmp_path)
    report(step=1, loss=0.5, 정확도=0.9)
    orchestrator.report(loss=Scalar(0.25), weight_file="ckpt/best.pt", note="x")
    got = lines(out)
    assert len(got) == 2
    assert got[0]["step"] == 1 and got[0]["loss"] == 0.5 and got[0]["정확도"] == 0.9
    assert "step" not in got[1] and got[1]["loss"] == 0.25 and got[1]["note"] == "x"
    assert got[1]["weight_file"] == str((tmp_path / "ckpt" / "best.pt").resolve())
    assert all(isinstance(g["time"], float) for g in got)
    assert "정확도" in out.read_text(encoding="utf-8"), "non-ASCII keys are written as text"


def test_report_without_the_env_var_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_METRICS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert report(step=1, loss=0.5, weight_file="w.pt") is None
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("ORCH_METRICS_FILE", "")
    report(loss=1)
    assert list(tmp_path.iterdir()) == []


def write_lines(path, *items):
    path.write_text("\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n")
    return path


def test_last_values_and_garbage_lines(tmp_path):
    path = write_lines(tmp_path / "m.jsonl",
                       {"time": 1, "step": 1, "loss": 0.9, "acc": 0.1},
                       "not json at all", "", "[1, 2]", '"text"',
                       {"time": 2, "step": 2, "loss": 0.4},
                       '{"step": 3, "loss": 0.')  # a line cut short by a kill
    s = read_metrics(path)
    assert s.last == {"step": 2, "loss": 0.4, "acc": 0.1}
    assert s.lines == 2
    assert s.best is None and s.best_weight is None, "no metric chosen, no best"


def test_best_for_goal_max_and_min(tmp_path):
    path = write_lines(tmp_path / "m.jsonl",
                       {"acc": 0.5, "loss": 0.9, "weight_file": "/w/e1.pt"},
                       {"acc": 0.8, "loss": 0.7, "weight_file": "/w/e2.pt"},
                       {"acc": 0.6, "loss": 0.2, "weight_file": "/w/e3.pt"},
                       {"acc": 0.7, "loss": 0.5, "weight_file": "/w/e4.pt"})
    high = read_metrics(path, "acc", "max")
    assert (high.best, high.best_weight, high.last_weight) == (0.8, "/w/e2.pt", "/w/e4.pt")
    low = read_metrics(path, "loss", "min")
    assert (low.best, low.best_weight) == (0.2, "/w/e3.pt")
    assert low.last["acc"] == 0.7


def test_non_numbers_and_nan_are_never_best(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"loss": NaN, "weight_file": "/w/nan.pt"}\n{"loss": "0.1"}\n'
                    '{"loss": true}\n{"loss": Infinity}\n'
                    '{"loss": 0.3, "weight_file": "/w/ok.pt"}\n')
    s = read_metrics(path, "loss", "min")
    assert s.best == 0.3 and s.best_weight == "/w/ok.pt"
    assert s.last["loss"] == 0.3


def test_missing_file_gives_an_empty_summary(tmp_path):
    s = read_metrics(tmp_path / "none.jsonl", "acc")
    assert (s.last, s.best, s.best_weight, s.last_weight, s.lines) == ({}, None, None, None, 0)


def test_best_weight_belongs_to_a_weighted_line(tmp_path):
    """LIBRARY BUG: a best value reported *without* weight_file keeps the weight of an older,
    worse line as best_weight, so the row's WeightFile (best_weight, else last_weight) is e1
    (acc 0.5) although e3 (acc 0.7) was saved later and is better."""
    path = write_lines(tmp_path / "m.jsonl",
                       {"acc": 0.5, "weight_file": "/w/e1.pt"},
                       {"acc": 0.9},  # an eval-only line: no weights go with it
                       {"acc": 0.7, "weight_file": "/w/e3.pt"})
    s = read_metrics(path, "acc", "max")
    assert s.best == 0.9
    assert (s.best_weight or s.last_weight) == "/w/e3.pt"


@pytest.mark.parametrize("goal,values,best", [("max", [1, 3, 2], 3.0), ("min", [3, 1, 2], 1.0)])
def test_best_with_integers(tmp_path, goal, values, best):
    path = write_lines(tmp_path / "m.jsonl", *({"epoch_score": v} for v in values))
    assert read_metrics(path, "epoch_score", goal).best == best


@pytest.mark.parametrize("name,goal", [
    ("val_loss", "min"), ("loss", "min"), ("eval/wer", "min"), ("RMSE", "min"),
    ("valloss", "min"), ("test_error", "min"), ("perplexity", "min"), ("fid", "min"),
    ("accuracy", "max"), ("val_acc", "max"), ("rouge1", "max"), ("metrics/mAP50-95(B)", "max"),
    ("f1", "max"), ("lossless_ratio", "max"),
])
def test_a_metrics_name_says_which_way_is_better(name, goal):
    assert goal_of(name) == goal
