"""A W&B sweep drives an hf config: a Kind=sweep row whose command is
``python -m trainers.hf CONFIG --in-process ${args}``; each trial's parameters arrive as
``--training.key=value`` overrides and its ROUGE reaches Tune."""

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import QueueRun, read_rows, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
ROOT = Path(__file__).resolve().parents[2]


def test_sweep_row_over_an_hf_config(tmp_path):
    from trainers.hf.tiny import make_data, make_tiny

    make_data(tmp_path / "data", 32)
    make_tiny(tmp_path / "model", tmp_path / "data" / "train.csv", "bart", 400)
    hf = yaml.safe_load((ROOT / "examples" / "hf_tiny.yaml").read_text())
    hf["model"]["checkpoint"] = "model"
    hf["data"] = {"train": "data/train.csv", "dev": "data/dev.csv"}
    hf["training"].update(callbacks=[], predict_samples=2)
    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(hf))
    sweep = yaml.safe_load((ROOT / "configs" / "sweeps" / "hf_tiny_lr.yaml").read_text())
    sweep["command"] = [c.replace("../../examples/hf_tiny.yaml", "hf.yaml")
                        for c in sweep["command"]]
    sweep["parameters"]["training.epochs"] = {"value": 1}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    csv = write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "GPUs", "TrainingCommand"],
                    [["sw", "sweep", "sweep.yaml", "0", ""]])
    run = QueueRun(csv).start()
    assert run.join(timeout=400) == 0, read_rows(csv)["sw"]["Error"]
    row = read_rows(csv)["sw"]
    assert 0 <= float(row["BestMetric"]) <= 1
    best = json.loads(row["BestConfig"])
    assert best["training.learning_rate"] in (0.003, 0.01)
    assert Path(row["WeightFile"] if Path(row["WeightFile"]).is_absolute()
                else tmp_path / row["WeightFile"]).joinpath("config.json").is_file(), row
    trials = json.loads((run.paths.state_dir / "sw" / "attempt-1" / "sweep_trials.json")
                        .read_text())["trials"]
    assert sorted(t["config"]["training.learning_rate"] for t in trials) == [0.003, 0.01]
    assert all(t["status"] == "TERMINATED" and t["metric"] is not None for t in trials)
