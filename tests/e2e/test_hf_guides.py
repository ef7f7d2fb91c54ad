"""The two summarization guides' examples, run as written with only their import lines
changed (``from trainer import …`` → ``from trainers.hf import …``), on a tiny BART and
data made by ``trainers.hf.tiny``, offline (W&B offline, proxies to a closed port).

Each script is the guide's text; what is not the guide's is said where it is added (the
trainer guide's ``Logger`` is the user's own class, so a minimal one stands in)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ray.test_hf_train import offline_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

TRAINING = """  learning_rate: 1e-2
  warmup_steps: 0
  logging_steps: 2
  early_stopping_patience: 0
  save_total_limit: 1
"""
# the tracker guide's key names (num_train_epochs, per_device_train_batch_size, meta)
TRACKER_CONFIG = """model: {architecture: kobart, checkpoint: ../../model}
tokenizer: {encoder_max_len: 64, decoder_max_len: 32}
training:
  num_train_epochs: 2
  per_device_train_batch_size: 8
  generation_num_beams: 1
  generation_max_length: 32
""" + TRAINING + """data: {train: ../../data/train.csv, dev: ../../data/validation.csv,
       test: ../../data/test.csv}
meta: {experiment_name: kobart_base}
"""
# the trainer guide's (configs/experiments/baseline_kobart.yaml)
TRAINER_CONFIG = """model: {checkpoint: ../../model}
tokenizer: {encoder_max_len: 64, decoder_max_len: 32}
training:
  epochs: 3
  batch_size: 8
  num_beams: 1
  generation_max_len: 32
""" + TRAINING + """wandb:
  enabled: true
  project: "nlp-competition"
  entity: "ieyeppo"
experiment:
  name: "baseline_kobart"
  tags:
    - "baseline"
    - "kobart"
"""

# ---- the tracker guide (experiment-tracker-and-sweeps.md) ------------------------------------
TRACKER_EXAMPLE_1 = '''"""
기본 KoBART 모델로 실험 실행
"""
import wandb
from trainers.hf import create_trainer

# WandB 초기화
wandb.init(
    project="dialogue-summarization",
    name="kobart_baseline",
    tags=["baseline", "kobart"]
)

# 트레이너 생성
trainer = create_trainer("config/models/kobart_base.yaml")

# 데이터 준비
datasets = trainer.prepare_data(
    train_path="data/train.csv",
    val_path="data/validation.csv"
)

# 학습 실행
result = trainer.train(datasets)

# 결과 출력
print(f"Best ROUGE Combined F1: {result.best_metrics['rouge_combined_f1']:.4f}")
print(f"Model saved to: {result.model_path}")
'''

TRACKER_EXAMPLE_3 = '''"""
커스텀 설정으로 고급 실험 실행
"""
import wandb
from trainers.hf import DialogueSummarizationTrainer
from trainers.hf import ConfigManager

# 설정 로딩 및 커스터마이징
config_manager = ConfigManager()
config = config_manager.load_config("config/base_config.yaml")

# 실험별 설정 조정
config['training']['learning_rate'] = 3e-5
config['training']['num_train_epochs'] = 5
config['training']['gradient_accumulation_steps'] = 4
config['meta']['experiment_name'] = "kobart_optimized_v1"

# WandB 초기화
wandb.init(
    project="dialogue-summarization",
    name=config['meta']['experiment_name'],
    config=config,
    tags=["optimized", "kobart", "v1"]
)

# 커스텀 트레이너 생성
trainer = DialogueSummarizationTrainer(
    config=config,
    experiment_name="kobart_optimized_v1"
)

# 컴포넌트 초기화
trainer.initialize_components()

# 데이터 준비
datasets = trainer.prepare_data()

# 학습 실행
result = trainer.train(datasets)

# 테스트 평가 (옵션)
if 'test' in datasets:
    test_results = trainer.evaluate(datasets['test'], metric_key_prefix="test")
    print(f"Test Results: {test_results}")

# 예측 샘플 생성
predictions = trainer.generate_predictions(datasets['validation'], max_samples=5)
for i, pred in enumerate(predictions):
    print(f"\\n=== 예측 {i+1} ===")
    print(f"입력: {pred['input'][:100]}...")
    print(f"예측: {pred['prediction']}")
    print(f"참조: {pred['reference']}")
'''

# the guide's custom-callback section and its checkpoint-recovery practice, in one script
TRACKER_CALLBACK_AND_RESUME = '''import json, os
from pathlib import Path
import wandb
from transformers import TrainerCallback
from trainers.hf import create_trainer

class CustomMetricCallback(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics, **kwargs):
        # 커스텀 메트릭 계산
        custom_score = self.calculate_custom_metric(metrics)

        # 로깅
        if wandb.run:
            wandb.log({'custom_score': custom_score})
        with open("custom_scores.jsonl", "a") as f:   # not the guide's: what the test reads
            f.write(json.dumps(custom_score) + "\\n")

    def calculate_custom_metric(self, metrics):
        # 도메인 특화 메트릭 계산 로직
        return (metrics.get('eval_rouge1', 0) +
                metrics.get('eval_rouge2', 0) * 2) / 3

trainer = create_trainer("config/base_config.yaml")
# 트레이너에 콜백 추가
trainer.trainer.add_callback(CustomMetricCallback())
datasets = trainer.prepare_data()
result = trainer.train(datasets)

# 최신 체크포인트 찾기
checkpoint_dir = Path(trainer.output_dir) / "checkpoints"
checkpoints = list(checkpoint_dir.glob("checkpoint-*"))
latest_checkpoint = max(checkpoints, key=lambda x: int(x.name.split('-')[1]))
result = trainer.train(datasets, resume_from_checkpoint=str(latest_checkpoint))
print("resumed:", latest_checkpoint.name, json.dumps(result.best_metrics))
'''

# ---- the trainer guide (hf-seq2seq-trainer.md) -----------------------------------------------
TRAINER_BASIC = '''from trainers.hf import load_config
from trainers.hf import load_model_and_tokenizer
from trainers.hf import DialogueSummarizationDataset
from trainers.hf import create_trainer
import pandas as pd

# 1. Config 로드
config = load_config("baseline_kobart")

# 2. 모델 로드
model, tokenizer = load_model_and_tokenizer(config)

# 3. 데이터 로드
train_df = pd.read_csv("data/raw/train.csv")
eval_df = pd.read_csv("data/raw/dev.csv")

# 4. Dataset 생성
train_dataset = DialogueSummarizationDataset(
    dialogues=train_df['dialogue'].tolist(),
    summaries=train_df['summary'].tolist(),
    tokenizer=tokenizer,
    encoder_max_len=config.tokenizer.encoder_max_len,
    decoder_max_len=config.tokenizer.decoder_max_len
)

eval_dataset = DialogueSummarizationDataset(
    dialogues=eval_df['dialogue'].tolist(),
    summaries=eval_df['summary'].tolist(),
    tokenizer=tokenizer,
    encoder_max_len=config.tokenizer.encoder_max_len,
    decoder_max_len=config.tokenizer.decoder_max_len
)
'''

TRAINER_EXAMPLE_1 = TRAINER_BASIC + '''
# 5. Trainer 생성 및 학습
trainer = create_trainer(
    config=config,
    model=model,
    tokenizer=tokenizer,
    train_dataset=train_dataset,
    eval_dataset=eval_dataset,
    use_wandb=True
)

# 6. 학습 실행
results = trainer.train()

print(f"최종 모델 경로: {results['final_model_path']}")
print(f"ROUGE Sum: {results['eval_metrics']['eval_rouge_sum']:.4f}")
'''

# the guide's "Logger와 함께 사용"; Logger and create_log_path are the user's own code
TRAINER_WITH_LOGGER = TRAINER_BASIC + '''
class Logger:   # not the guide's: its src.logging.logger, reduced to what is called
    def __init__(self, path, print_also=True):
        self.f = open(path, "w", encoding="utf-8")
    def write(self, text):
        self.f.write(text + "\\n")
    def start_redirect(self): pass
    def stop_redirect(self): pass
    def close(self): self.f.close()

def create_log_path(kind, name):
    return name

# Logger 초기화
log_path = create_log_path("train", "train.log")
logger = Logger(log_path, print_also=True)
logger.start_redirect()

try:
    # Trainer 생성 (Logger 전달)
    trainer = create_trainer(
        config=config,
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        use_wandb=True,
        logger=logger
    )

    # 학습 실행
    results = trainer.train()

finally:
    logger.stop_redirect()
    logger.close()
'''

# "실전 활용 예시 1: 디버그 모드 학습": attribute edits, positional create_trainer, no W&B
LOADED = 'config = load_config("baseline_kobart")'
TRAINER_DEBUG = TRAINER_BASIC.replace(LOADED, LOADED + '''

# Config 수정
config.training.epochs = 2
config.training.batch_size = 4
config.wandb.enabled = False''') + '''
trainer = create_trainer(config, model, tokenizer, train_dataset, eval_dataset, use_wandb=False)
results = trainer.train()
print("evaluate:", json.dumps(trainer.evaluate()))
'''.replace("print(", "import json; print(", 1)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("guides"))


def make_project(root: Path) -> Path:
    """A user's folder as the guides lay it out, with a tiny BART in ``model/`` (made as
    a user makes one: ``python -m trainers.hf make-data`` / ``make-tiny``)."""
    root.mkdir(parents=True, exist_ok=True)
    for tool in (["make-data", "data", "--n", "32"],
                 ["make-tiny", "model", "--data", "data/train.csv", "--arch", "bart"]):
        subprocess.run([sys.executable, "-m", "trainers.hf", *tool], cwd=root, check=True,
                       capture_output=True, timeout=120)
    train_csv, dev_csv = root / "data" / "train.csv", root / "data" / "dev.csv"
    for name in ("validation", "test"):
        shutil.copy(dev_csv, root / "data" / f"{name}.csv")
    (root / "data" / "raw").mkdir()
    shutil.copy(train_csv, root / "data" / "raw" / "train.csv")
    shutil.copy(dev_csv, root / "data" / "raw" / "dev.csv")
    for path, text in (("config/models/kobart_base.yaml", TRACKER_CONFIG),
                       ("config/base_config.yaml", TRACKER_CONFIG.replace("../../", "../")),
                       ("configs/experiments/baseline_kobart.yaml", TRAINER_CONFIG)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


def run_script(project: Path, tmp: Path, text: str, **env) -> subprocess.CompletedProcess:
    """The script in a copy of the project (each run its own outputs), offline."""
    work = tmp / "project"
    shutil.copytree(project, work)
    (work / "script.py").write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, "script.py"], cwd=work, capture_output=True,
                            text=True, timeout=300, env=offline_env(tmp, **env))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def state_of(checkpoints: Path) -> dict:
    latest = max(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((latest / "trainer_state.json").read_text())


def test_tracker_guide_example_1_basic_experiment(project, tmp_path):
    out = run_script(project, tmp_path, TRACKER_EXAMPLE_1).stdout
    score = float(out.split("Best ROUGE Combined F1: ")[1].split()[0])
    assert 0 <= score <= 1
    model_path = tmp_path / "project" / out.split("Model saved to: ")[1].split()[0]
    assert (model_path / "config.json").is_file() and (model_path / "tokenizer.json").is_file()
    saved = json.loads((model_path / "metrics.json").read_text())
    assert saved["metric"] == "rouge_combined" and saved["value"] == pytest.approx(score, abs=1e-4)
    assert list((tmp_path / "wandb").rglob("offline-run-*")), "no W&B run"   # WANDB_DIR


def test_tracker_guide_example_3_custom_settings_test_set_and_predictions(project, tmp_path):
    out = run_script(project, tmp_path, TRACKER_EXAMPLE_3).stdout
    outputs = tmp_path / "project" / "outputs" / "kobart_optimized_v1"
    # num_train_epochs = 5 and gradient_accumulation_steps = 4 (4 batches: 1 step an epoch)
    assert state_of(outputs / "checkpoints")["num_train_epochs"] == 5
    assert json.loads((outputs / "best_model" / "metrics.json").read_text())["global_step"] == 5
    test = out.split("Test Results: ")[1].splitlines()[0]
    assert "'test_rouge1'" in test and "'test_loss'" in test
    assert [f"=== 예측 {i} ===" in out for i in range(1, 6)] == [True] * 5
    assert "=== 예측 6 ===" not in out
    assert out.count("입력: ") == 5 and out.count("참조: ") == 5


def test_tracker_guide_callback_added_to_the_hf_trainer_and_resume(project, tmp_path):
    out = run_script(project, tmp_path, TRACKER_CALLBACK_AND_RESUME).stdout
    scores = (tmp_path / "project" / "custom_scores.jsonl").read_text().split()
    assert len(scores) >= 2, "the added callback did not see each evaluation"
    # 2 epochs of 4 steps; the checkpoint kept (the best) is resumed to the end again
    resumed = out.split("resumed: ")[1].split()[0]
    assert resumed in ("checkpoint-4", "checkpoint-8")
    assert "rouge_combined_f1" in out.split("resumed:")[1]
    best = tmp_path / "project" / "outputs" / "kobart_base" / "best_model" / "metrics.json"
    assert json.loads(best.read_text())["global_step"] == 8


def test_trainer_guide_basic_usage(project, tmp_path):
    out = run_script(project, tmp_path, TRAINER_EXAMPLE_1).stdout
    final = Path(out.split("최종 모델 경로: ")[1].split()[0])
    final = final if final.is_absolute() else tmp_path / "project" / final
    assert (final / "config.json").is_file() and (final / "tokenizer.json").is_file()
    assert 0 <= float(out.split("ROUGE Sum: ")[1].split()[0]) <= 3
    state = state_of(tmp_path / "project" / "outputs" / "baseline_kobart")
    assert state["best_metric"] is not None and state["num_train_epochs"] == 3
    assert list((tmp_path / "wandb").rglob("offline-run-*")), "no W&B run"   # WANDB_DIR


def test_trainer_guide_with_a_logger(project, tmp_path):
    run_script(project, tmp_path, TRAINER_WITH_LOGGER)
    log = (tmp_path / "project" / "train.log").read_text()
    assert "eval_rouge_sum=" in log and "final model saved to" in log


def test_trainer_guide_debug_mode_attribute_edits_and_positional_call(project, tmp_path):
    out = run_script(project, tmp_path, TRAINER_DEBUG).stdout
    metrics = json.loads(out.split("evaluate: ")[1].splitlines()[0])
    assert {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rouge_sum",
            "eval_loss"} <= set(metrics)
    state = state_of(tmp_path / "project" / "outputs" / "baseline_kobart")
    assert (state["num_train_epochs"], state["train_batch_size"]) == (2, 4)
    assert not list((tmp_path / "wandb").rglob("offline-run-*")), "use_wandb=False made a run"
