"""Rows of the built-in kinds, run from a queue on the session's Ray: ddp, hf, yolo, and a
yolo_label row chained to the yolo row. Their weights and metrics land in the row and the
registry. Everything trains for real on tiny data made here; nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.store.registry import ExperimentTracker, ModelRegistry
from tests.helpers import QueueRun, read_rows, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
ROOT = Path(__file__).resolve().parents[2]
HEADER = ["ID", "Kind", "Config", "GPUs", "Workers", "PretrainedModelId", "TrainingCommand"]


def make(*argv) -> None:
    subprocess.run([sys.executable, "-m", *map(str, argv)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def configs(tmp_path) -> dict[str, Path]:
    data = tmp_path / "data"
    make("trainers.yolo", "make-data", data / "shapes", "--train", 16, "--val", 8, "--imgsz", 64,
         "--unlabelled", 4)
    make("trainers.hf", "make-data", data / "dialogue", "--n", 32)
    make("trainers.hf", "make-tiny", data / "tiny", "--data", data / "dialogue" / "train.csv")
    ddp = yaml.safe_load((ROOT / "examples" / "ddp_dummy.yaml").read_text())
    ddp.update(epochs=3, python_path=[str(ROOT / "examples")])
    hf = yaml.safe_load((ROOT / "examples" / "hf_tiny.yaml").read_text())
    hf["model"]["checkpoint"] = str(data / "tiny")
    hf["data"] = {"train": str(data / "dialogue" / "train.csv"),
                  "dev": str(data / "dialogue" / "dev.csv")}
    hf["training"].update(epochs=2, save_total_limit=1, callbacks=[])
    yolo = yaml.safe_load((ROOT / "examples" / "yolo_tiny.yaml").read_text())
    yolo.update(data=str(data / "shapes" / "data.yaml"), epochs=1)
    label = yaml.safe_load((ROOT / "examples" / "yolo_label.yaml").read_text())
    label["source"] = str(data / "shapes" / "unlabelled")
    return {"ddp": write_yaml(tmp_path / "ddp.yaml", ddp),
            "hf": write_yaml(tmp_path / "hf.yaml", hf),
            "yolo": write_yaml(tmp_path / "yolo.yaml", yolo),
            "label": write_yaml(tmp_path / "label.yaml", label),
            "unlabelled": data / "shapes" / "unlabelled"}


def test_builtin_rows_finish_with_weights_and_metrics(tmp_path, configs):
    csv = write_csv(tmp_path / "q.csv", HEADER, [
        ["ddp", "ddp", "ddp.yaml", "0", "2", "", ""],
        ["hf", "hf", "hf.yaml", "0", "1", "", ""],
        ["yolo", "yolo", "yolo.yaml", "0", "", "", ""],
        ["label", "yolo_label", "label.yaml", "0", "", "yolo", ""]])
    run = QueueRun(csv, metric="accuracy").start()
    assert run.join(timeout=900) == 0, read_rows(csv)
    rows = read_rows(csv)
    for job_id, row in rows.items():
        assert row["TrainingCheck"] == "Done", (job_id, row["Error"], row.get("LogFile"))

    def weights(job_id) -> Path:
        path = Path(rows[job_id]["WeightFile"])
        return path if path.is_absolute() else csv.parent / path

    assert weights("ddp").is_file()
    for job_id in ("ddp", "hf"):   # their CPU workers fit the one node: no Ray Train actors
        log = Path(rows[job_id]["LogFile"])
        assert "forked on this node" in (log if log.is_absolute() else csv.parent / log
                                         ).read_text(), job_id
    assert (weights("hf") / "config.json").is_file(), "the best model folder"
    assert weights("yolo").name == "best.pt" and weights("yolo").is_file()
    assert weights("label") == weights("yolo"), "the label row used the yolo row's weights"
    # BestMetric follows each kind's own metric, not the queue's `accuracy`
    assert float(rows["ddp"]["BestMetric"]) > 0          # valid_loss (min)
    assert 0 <= float(rows["hf"]["BestMetric"]) <= 1     # rouge_combined
    assert 0 <= float(rows["yolo"]["BestMetric"]) <= 1   # mAP50-95
    unlabelled = configs["unlabelled"]
    assert (unlabelled / "classes.txt").read_text().split() == ["red", "green"]
    assert len(list(unlabelled.glob("*.txt"))) == 4 + 1, "a label file per image, classes.txt"

    models = ModelRegistry(run.paths.registry)
    by_name = {m["name"]: m for m in models.list_models()}
    assert {"ddp", "hf", "yolo"} <= set(by_name)
    assert "valid_loss" in by_name["ddp"]["performance"]
    assert {"rouge1", "rouge2", "rougeL", "rouge_combined"} <= set(by_name["hf"]["performance"])
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(by_name["yolo"]["performance"])
    assert "accuracy" not in by_name["hf"]["performance"]
    assert models.get_best_models("rouge_combined")[0]["name"] == "hf"
    tracker = ExperimentTracker(run.paths.registry)
    ddp_exp = next(e for e in tracker.list_experiments() if e["name"].endswith("/ddp"))
    losses = [v for _, v in tracker.metric_history(ddp_exp["id"], "valid_loss")]
    assert len(losses) >= 3 and losses[-1] < losses[0], "per-epoch history, loss falls"
    label_exp = next(e for e in tracker.list_experiments() if e["name"].endswith("/label"))
    summary = label_exp["final_metrics"]
    assert summary["labelled"] + summary["empty"] == summary["images"] == 4
    assert float(rows["label"]["BestMetric"]) == summary["labelled"]


def test_a_row_run_again_after_done_trains_afresh_and_a_retry_resumes(tmp_path):
    """Checkpoints are kept per run, not per attempt: a crashed attempt's retry continues
    (tested with the kinds' own resume tests); a Done row the user runs again must not
    silently 'resume' the finished run and hand back the old weights."""
    from trainers.yolo.synthetic import make_data

    data = make_data(tmp_path / "shapes", train=8, val=4, imgsz=64)
    yolo = yaml.safe_load((ROOT / "examples" / "yolo_tiny.yaml").read_text())
    yolo.update(data=str(data), epochs=1)
    write_yaml(tmp_path / "yolo.yaml", yolo)
    csv = write_csv(tmp_path / "q.csv", HEADER, [["y", "yolo", "yolo.yaml", "0", "", "", ""]])
    assert QueueRun(csv).start().join(timeout=300) == 0
    first = read_rows(csv)["y"]
    rows = csv.read_text().replace(",Done,", ",,")   # the user clears TrainingCheck
    csv.write_text(rows)
    assert QueueRun(csv).start().join(timeout=300) == 0
    second = read_rows(csv)["y"]
    assert (second["TrainingCheck"], second["Attempts"]) == ("Done", "2")
    assert second["WeightFile"] != first["WeightFile"], "a new run, with its own weights"
    steps = [json.loads(x).get("step") for x in
             (tmp_path / "runs" / "y" / "attempt-2" / "metrics.jsonl").read_text().splitlines()]
    assert 1 in steps, "the second run trained its epoch instead of reporting the old one"
