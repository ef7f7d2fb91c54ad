"""The HTML report of a finished queue: one self-contained page a researcher can read."""

import csv
import hashlib
import json
import re
import sqlite3
import time
from datetime import datetime

import pytest

from orchestrator.cli.main import main as cli_main
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths, record_run_config
from orchestrator.store.record import RunRecord
from orchestrator.views.report import build_report
from tests.helpers import write_csv

QUEUE = "sweep"
EVIL = "<script>alert(1)</script>"
COLUMNS = ["ID", "Name", "TrainingCommand", "TrainingCheck", "WandbRunID", "WeightFile",
           "Started", "Ended", "Attempts", "Node", "BestMetric", "Error", "LogFile"]
# m1 and m3 differ in lr; m3 has the higher val_acc and the lowest loss, m1 the highest loss.
CURVES = {
    "m1": {"lr": 0.001, "loss": [1.0, 0.5, 0.3], "val_acc": [0.6, 0.7, 0.8]},
    "m3": {"lr": 0.1, "loss": [0.9, 0.5, 0.2], "val_acc": [0.5, 0.85, 0.9]},
}


def write_metrics(run_dir, lr, loss, val_acc):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [{"time": 1.0e9 + i, "step": 10 * i, "lr": lr, "batch_size": 32, "loss": lo,
              "val_acc": acc} for i, (lo, acc) in enumerate(zip(loss, val_acc, strict=True))]
    lines[-1]["weight_file"] = str(run_dir / "best.pt")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines)
                                           + "not json\n", encoding="utf-8")
    return lines[-1]


START = time.time() - 3600


def record_attempt(record, run_dir, job_id, attempt, status, metrics=None, **fields):
    start = START
    record.begin_attempt(QUEUE, job_id, attempt, status="Queued",
                         log_path=str(run_dir / "run.log"), wandb_run_id=f"wb-{job_id}")
    record.update_attempt(QUEUE, job_id, attempt, status=status, started=start,
                          ended=start + 754, node="node-a", gpus=[0], metrics=metrics or {},
                          **fields)


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    """A finished queue on disk: m1 Done, m2 Crash (twice), m3 Done with another lr."""
    root = tmp_path_factory.mktemp("queue")
    runs = root / "runs"
    record = RunRecord(runs / "registry.db")
    rows = []
    for job_id, name in (("m1", EVIL), ("m3", "lr-high")):
        run_dir = runs / job_id / "attempt-1"
        last = write_metrics(run_dir, **CURVES[job_id])
        record_attempt(record, run_dir, job_id, 1, "Done", metrics=last,
                       best_metric=last["val_acc"], weight_file=last["weight_file"])
        rows.append({"ID": job_id, "Name": name, "TrainingCheck": "Done", "Attempts": "1",
                     "Node": "node-a", "BestMetric": str(last["val_acc"]),
                     "WeightFile": f"runs/{job_id}/attempt-1/best.pt",
                     "WandbRunID": f"wb-{job_id}", "LogFile": f"runs/{job_id}/attempt-1/run.log"})
    # m2: attempt 1 left metrics with a huge loss; attempt 2 (the latest) crashed before any.
    write_metrics(runs / "m2" / "attempt-1", lr=0.5, loss=[99.0, 98.0], val_acc=[0.99, 0.99])
    record_attempt(record, runs / "m2" / "attempt-1", "m2", 1, "Crash", error="exit code 1")
    record_attempt(record, runs / "m2" / "attempt-2", "m2", 2, "Crash",
                   error="exit code 1: CUDA out of memory")
    rows.insert(1, {"ID": "m2", "Name": "crashy", "TrainingCheck": "Crash", "Attempts": "2",
                    "Error": "exit code 1: CUDA out of memory (log: runs/m2/attempt-2/run.log)"})
    record.close()
    csv_path = root / "queue.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({"TrainingCommand": "python train.py", **r} for r in rows)
    return csv_path, runs / "registry.db"


def report(queue, tmp_path, **kwargs):
    csv_path, registry = queue
    out = build_report(csv_path, registry, QUEUE, tmp_path / "out" / "report.html", **kwargs)
    return out, out.read_text(encoding="utf-8")


def best_order(page):
    table = re.search(r'<table class="ranking" id="best-models">(.*?)</table>', page, re.S)
    assert table, "the best-models ranking table is missing"
    return re.findall(r'<td class="id">(.*?)</td>', table.group(1))


def test_report_shows_runs_counts_and_charts(queue, tmp_path):
    out, page = report(queue, tmp_path, metric="val_acc", goal="max")
    assert out == tmp_path / "out" / "report.html" and out.is_file()
    assert QUEUE in page and str(queue[0]) in page
    for job_id in ("m1", "m2", "m3"):
        assert '<tr class="run" data-status=' in page and f'<td data-v="{job_id}">' in page
    assert "Done 2" in page and "Crash 1" in page and "(3 rows)" in page
    assert "CUDA out of memory" in page and "12:34" in page  # error and duration
    started = datetime.fromtimestamp(START).strftime("%Y-%m-%d %H:%M")
    assert page.count(f'data-v="{started}') == 3, "start times the CSV lacks come from the record"
    # best chart + curves of loss and val_acc (lr is a parameter, not a curve) + val_acc vs lr
    assert page.count("data:image/png;base64,") >= 4
    assert "Metric vs parameter" in page and 'alt="val_acc vs lr"' in page
    assert 'alt="val_acc vs batch_size"' not in page, "a key equal in every run is no parameter"
    assert 'alt="batch_size per step"' not in page, "a flat key is no curve"
    assert "val_acc: 2 run(s);" in page, "m2's latest attempt has no metrics: not plotted"


def test_best_models_are_ordered_by_goal(queue, tmp_path):
    assert best_order(report(queue, tmp_path, metric="val_acc", goal="max")[1]) == ["m3", "m1"]
    assert best_order(report(queue, tmp_path, metric="loss", goal="min")[1]) == ["m3", "m1"]
    assert best_order(report(queue, tmp_path, metric="loss", goal="max")[1]) == ["m1", "m3"]


def test_default_metric_is_named_and_skips_constant_parameters(queue, tmp_path):
    _, page = report(queue, tmp_path)
    assert "No metric was given; using <b>loss</b>" in page
    assert "lower is better (from its name)" in page
    assert best_order(page) == ["m3", "m1"], "the lowest loss first"


def test_cells_are_escaped_and_nothing_is_fetched(queue, tmp_path):
    _, page = report(queue, tmp_path, metric="val_acc")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    scripts = re.findall(r"<script\b[^>]*>", page, re.I)
    assert [s for s in scripts if "application/json" not in s] == ["<script>"], \
        "one script: the report's own (sorting, filtering, comparing curves)"
    assert page.index("<script>") > page.index("</table>"), "after every cell of user text"
    data = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>',
                     page, re.S).group(1)
    assert "<" not in data and json.loads(data)["keys"], "the curves' data cannot end it"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_empty_queue_and_missing_record(tmp_path):
    csv_path = tmp_path / "empty.csv"
    csv_path.write_text("ID,Name,TrainingCommand\n", encoding="utf-8")
    registry = tmp_path / "runs" / "registry.db"
    out = build_report(csv_path, registry, "empty", tmp_path / "r.html", metric="val_acc")
    page = out.read_text(encoding="utf-8")
    assert "The queue has no rows." in page and "Nothing to plot" in page
    assert "data:image/png" not in page and "Metric vs parameter" not in page
    assert not registry.exists(), "a report must not create a run record"


def test_runs_without_metrics_files(tmp_path):
    csv_path = tmp_path / "q.csv"
    csv_path.write_text("ID,Name,TrainingCommand,TrainingCheck,LogFile\n"
                        "a,,python t.py,Done,runs/a/attempt-1/run.log\nb,,python t.py,,\n",
                        encoding="utf-8")
    out = build_report(csv_path, tmp_path / "runs" / "registry.db", "q", tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert "Done 1" in page and "Pending 1" in page
    assert page.count("Nothing to plot") == 2 and "data:image/png" not in page


def test_goal_is_checked(queue, tmp_path):
    with pytest.raises(ValueError, match="max or min"):
        report(queue, tmp_path, goal="best")


def test_report_without_config_ranks_by_the_drivers_config(queue, tmp_path, capsys):
    """The demo's suggested `orchestrator report queue.csv`: no --config, yet it ranks by
    the metric the driver ran with, in the direction its name says."""
    csv_path, _ = queue
    ini = tmp_path / "manager.ini"
    ini.write_text("[general]\nmetric = loss\n")
    config = load_config(ini)
    paths = queue_paths(csv_path, config)
    record_run_config(paths, config)
    try:
        assert cli_main(["report", str(csv_path), "-o", str(tmp_path / "r.html")]) == 0
    finally:
        paths.run_config.unlink()
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Ranked by <b>loss</b>, lower is better (from its name)" in page
    assert best_order(page) == ["m3", "m1"]
    assert str(ini) in capsys.readouterr().err, "it says which config it used"


def test_the_report_reads_the_record_without_writing_it(tmp_path):
    """A record of an older schema (say, from an archive or another version's driver) is
    read as it is: not migrated, and no journal or lock file appears beside it."""
    from orchestrator.store.record import _MIGRATIONS

    registry = tmp_path / "runs" / "registry.db"
    registry.parent.mkdir()
    db = sqlite3.connect(registry)
    for statement in (sql for version in _MIGRATIONS[:-1] for sql in version):
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {len(_MIGRATIONS) - 1}")
    db.execute("INSERT INTO attempts (queue, job_id, attempt, status, started, ended) "
               "VALUES ('q', 'a', 1, 'Done', ?, ?)", (START, START + 754))
    db.commit()
    db.close()
    csv_path = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "TrainingCheck"],
                         [["a", "python t.py", "Done"]])

    def folder():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in registry.parent.iterdir()}

    before = folder()
    page = build_report(csv_path, registry, "q", tmp_path / "r.html").read_text()
    assert folder() == before, "no migration, no journal, no lock file"
    assert "12:34" in page, "what the record holds reaches the page (the attempt's duration)"


def test_a_sweep_row_gets_its_trials_and_each_run_its_parent_notes_command(tmp_path):
    """The registry's trials of a sweep row: a table best first (the sweep file's goal),
    each parameter against the metric and parallel coordinates; every run its parent,
    Notes, command (and its config folded), W&B link when entity and project are known."""
    from orchestrator.store.registry import ExperimentTracker

    (tmp_path / "sweep.yaml").write_text(
        "program: train.py\nmethod: grid\nmetric: {name: score, goal: minimize}\n"
        "parameters:\n  lr: {values: [0.001, 0.01, 0.1]}\n  layers: {values: [2, 4]}\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    tracker = ExperimentTracker(runs / "registry.db")
    tracker.start_experiment("q/base", queue="q", job_id="base", attempt=1,
                             config={"command": "python t.py"})
    sweep = tracker.start_experiment("q/sw", queue="q", job_id="sw", attempt=1,
                                     config={"kind": "sweep"})
    tracker.end_experiment(sweep, best_metrics={"score": 0.3}, status="completed")
    for i, (lr, layers, acc) in enumerate([(0.001, 2, 0.61), (0.01, 4, 0.9), (0.1, 2, 0.75),
                                           (0.1, 4, 0.3)], 1):
        trial = tracker.start_experiment(f"q/sw/trial-{i}", queue="q", job_id="sw", attempt=1,
                                         parent_id=sweep, config={"lr": lr, "layers": layers})
        tracker.end_experiment(trial, final_metrics={"score": acc},
                               best_metrics={"score": acc}, status="completed")
    tracker.close()
    record = RunRecord(runs / "registry.db")
    record.begin_attempt("q", "base", 1, status="Done", started=START, ended=START + 60,
                         wandb_run_id="abc123")
    record.begin_attempt("q", "sw", 1, status="Done", started=START, ended=START + 60)
    record.close()
    csv_path = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "Kind", "Config",
                                              "PretrainedModelId", "Notes", "TrainingCheck",
                                              "WandbRunID"], [
        ["base", "python t.py --lr 0.1", "", "", "", "first try", "Done", "abc123"],
        ["sw", "", "sweep", "sweep.yaml", "base", "", "Done", ""]])
    page = build_report(csv_path, runs / "registry.db", "q", tmp_path / "r.html",
                        wandb_entity="me", wandb_project="proj").read_text()
    section = page[page.index('<h2 id="sweep-sw">'):]
    assert "4 trials, 4 with score; best first (lower is better)" in section
    order = re.findall(r"<td>q/sw/(trial-\d)</td>", section)
    assert order == ["trial-4", "trial-1", "trial-3", "trial-2"], \
        "the sweep file's goal (minimize), not the name's guess (score: max)"
    assert section.count("data:image/png;base64,") == 3   # lr, layers, parallel coordinates
    assert "score against lr (4 trials)" in section and "across its parameters" in section
    runs_table = page[page.index("<h2>Runs</h2>"):page.index("<h2>Best models")]
    assert "<td>base</td>" in runs_table.split('<td data-v="sw">')[1], "sw's parent"
    assert "first try" in runs_table and "python t.py --lr 0.1" in runs_table
    assert 'href="https://wandb.ai/me/proj/runs/abc123"' in runs_table
    assert "score 0.3" in runs_table, "the sweep row's own metric"


def test_hyperparameters_come_from_own_columns_command_flags_and_reports(tmp_path):
    """The report's columns are the values that tell runs apart: the user's own columns
    (not the orchestrator's), the command's flags, values the runs report; what every run
    has alike is said once above the table."""
    from orchestrator.views.report import command_flags

    assert command_flags("python t.py --lr 0.01 --batch-size=32 -e -3 --amp --seed 1 "
                         "data.csv") == {"lr": "0.01", "batch_size": "32", "e": "-3",
                                         "amp": "on", "seed": "1"}
    assert command_flags('python t.py --name "a b') == {"name": '"a'}, "an open quote"
    csv_path = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "dropout", "GPUs",
                                              "Notes", "TrainingCheck"], [
        ["a", "python t.py --lr 0.1 --epochs 5", "0.1", "1", "x", "Done"],
        ["b", "python t.py --lr 0.01 --epochs 5", "0.3", "0.5", "y", "Done"]])
    page = build_report(csv_path, tmp_path / "runs" / "registry.db", "q",
                        tmp_path / "r.html").read_text()
    heads = re.findall(r'<th class="param" title="([^"]*)"', page)
    assert heads == ["lr", "dropout"], "GPUs and Notes are the orchestrator's columns"
    assert "Same in every run: epochs=5" in page
    rows = re.findall(r'<tr class="run".*?</tr>', page, re.S)
    assert '<td class="num">0.1</td>' in rows[0] and '<td class="num">0.3</td>' in rows[1]


def test_a_config_rows_hyperparameters_come_from_its_config_file(tmp_path):
    """Kind=hf rows differ in their YAML, not their command: the values their configs set
    differently are columns (the learning rate here); paths are not hyperparameters."""
    from pathlib import Path

    base = (Path(__file__).resolve().parents[2] / "examples" / "hf_tiny.yaml").read_text()
    for name, lr in (("a", "1e-2"), ("b", "3e-4")):
        (tmp_path / f"{name}.yaml").write_text(
            base.replace("learning_rate: 1e-2", f"learning_rate: {lr}"), encoding="utf-8")
    csv_path = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "Kind", "Config",
                                              "TrainingCheck"], [
        ["a", "", "hf", "a.yaml", "Done"], ["b", "", "hf", "b.yaml", "Done"]])
    page = build_report(csv_path, tmp_path / "runs" / "registry.db", "q",
                        tmp_path / "r.html").read_text()
    assert re.findall(r'<th class="param" title="([^"]*)"', page) == ["learning_rate"]
    rows = re.findall(r'<tr class="run".*?</tr>', page, re.S)
    assert '<td class="num">0.01</td>' in rows[0] and '<td class="num">0.0003</td>' in rows[1]
    assert "epochs=10" in page and "batch_size=8" in page, "what both configs share"
    assert "checkpoint=" not in page, "a path is no hyperparameter"
