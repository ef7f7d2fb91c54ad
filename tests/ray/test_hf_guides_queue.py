"""The summarization guides' scripts inside a queue: a command row running the tracker
guide's first example, and a ``Kind=sweep`` row whose program is the guide's
``sweep_train`` (its sweep file as the guide writes it, capped at 2 runs). Their metrics
reach the row and the registry as the hf kind's do: the best ``rouge_combined_f1`` is
BestMetric, the saved model WeightFile."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.store.registry import ModelRegistry
from tests.e2e.test_hf_guides import TRACKER_EXAMPLE_1, make_project
from tests.helpers import QueueRun, read_rows, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

# experiment-tracker-and-sweeps.md, "예제 2: 하이퍼파라미터 Sweep", import line changed
SWEEP_PROGRAM = '''"""
하이퍼파라미터 최적화 실험
"""
import wandb
from trainers.hf import create_trainer

def sweep_train():
    # Sweep 모드로 WandB 초기화
    wandb.init()

    # Sweep 파라미터를 적용한 트레이너 생성
    trainer = create_trainer("config/base_config.yaml", sweep_mode=True)

    # 데이터 준비
    datasets = trainer.prepare_data()

    # 학습 실행
    result = trainer.train(datasets)

    # Sweep 목표 메트릭 기록
    wandb.log({
        "rouge_combined_f1": result.best_metrics['rouge_combined_f1']
    })

# Sweep 설정으로 실행
if __name__ == "__main__":
    sweep_train()
'''

# config/sweep/kobart_sweep.yaml as the guide writes it, plus run_cap (2 trials)
SWEEP_FILE = """program: trainer.py
method: bayes
metric:
  name: rouge_combined_f1
  goal: maximize
parameters:
  learning_rate:
    distribution: log_uniform_values
    min: 1e-6
    max: 1e-3
  per_device_train_batch_size:
    values: [8, 16, 32]
  num_train_epochs:
    values: [2, 3, 4, 5]
  weight_decay:
    distribution: uniform
    min: 0.01
    max: 0.1
run_cap: 2
"""


def test_guide_scripts_as_queue_rows(tmp_path):
    root = make_project(tmp_path / "project")
    (root / "example_1.py").write_text(TRACKER_EXAMPLE_1, encoding="utf-8")
    (root / "trainer.py").write_text(SWEEP_PROGRAM, encoding="utf-8")
    (root / "config" / "sweep").mkdir()
    (root / "config" / "sweep" / "kobart_sweep.yaml").write_text(SWEEP_FILE, encoding="utf-8")
    csv = write_csv(root / "queue.csv", ["ID", "Kind", "Config", "GPUs", "TrainingCommand"], [
        ["ex1", "", "", "0", f"{sys.executable} example_1.py"],
        ["sw", "sweep", "config/sweep/kobart_sweep.yaml", "0", ""],
    ])
    run = QueueRun(csv, metric="rouge_combined_f1").start()
    assert run.join(timeout=600) == 0, {k: r["Error"] for k, r in read_rows(csv).items()}
    rows = read_rows(csv)

    ex1 = rows["ex1"]
    weights = root / ex1["WeightFile"]
    assert weights.name == "best_model" and (weights / "config.json").is_file(), ex1
    saved = json.loads((weights / "metrics.json").read_text())
    assert float(ex1["BestMetric"]) == pytest.approx(saved["value"], abs=1e-6)
    models = ModelRegistry(run.paths.registry)
    registered = {m["name"]: m for m in models.list_models()}
    assert registered["ex1"]["performance"]["rouge_combined_f1"] == pytest.approx(
        float(ex1["BestMetric"]))

    sw = rows["sw"]
    best = json.loads(sw["BestConfig"])
    assert set(best) >= {"learning_rate", "per_device_train_batch_size", "num_train_epochs",
                         "weight_decay"}
    assert 0 <= float(sw["BestMetric"]) <= 1
    trials = json.loads((run.paths.state_dir / "sw" / "attempt-1" / "sweep_trials.json")
                        .read_text())["trials"]
    assert len(trials) == 2 and all(t["metric"] is not None for t in trials)
    # each trial trained with its own sampled values (sweep_mode merged wandb.config)
    for trial in trials:
        saved = Path(trial["trial_dir"]) / "outputs" / "best_model" / "config.yaml"
        used = yaml.safe_load(saved.read_text())["training"]
        assert used["epochs"] == trial["config"]["num_train_epochs"]
        assert used["batch_size"] == trial["config"]["per_device_train_batch_size"]
        assert used["learning_rate"] == pytest.approx(trial["config"]["learning_rate"])
        assert used["weight_decay"] == pytest.approx(trial["config"]["weight_decay"])
    assert (root / sw["WeightFile"] / "config.json").is_file(), sw
