"""The hf kind's config (merging, errors, coercion), ROUGE on known strings, fp16 choice.

No training here: only ``trainers.hf.config`` / ``rouge`` / ``data`` and, for the
offline check, huggingface_hub.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainers.errors import ConfigError
from trainers.hf.config import fp16_enabled, load, metric, parse_overrides
from trainers.hf.data import read_pairs
from trainers.hf.rouge import compute_rouge

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def exp(tmp_path):
    """An experiment file on a base file (in another folder) on the built-in defaults."""
    write(tmp_path / "base" / "base.yaml", """
training: {learning_rate: 0.1, batch_size: 4, epochs: 5, seed: 7}
data: {train: data/train.csv, dev: data/dev.csv}
experiment: {tags: [base]}
""")
    return write(tmp_path / "exp" / "exp.yaml", """
base: ../base/base.yaml
model: {checkpoint: some/hub-model}
training: {learning_rate: 0.2, batch_size: 8}
data: {dev: my_dev.csv}
""")


def test_merge_order_base_experiment_env_cli(exp, tmp_path):
    cfg = load(exp, environ={})
    t = cfg.training
    assert (t.learning_rate, t.batch_size, t.epochs, t.seed) == (0.2, 8, 5, 7)  # exp > base
    assert t.weight_decay == 0.01 and t.metric_for_best_model == "rouge_combined"  # defaults
    # paths are relative to the file that names them
    assert cfg.data.train == str(tmp_path / "base" / "data" / "train.csv")
    assert cfg.data.dev == str(tmp_path / "exp" / "my_dev.csv")
    assert cfg.experiment.tags == ("base",)

    env = {"LEARNING_RATE": "0.3", "NUM_EPOCHS": "9"}
    cfg = load(exp, environ=env)
    assert (cfg.training.learning_rate, cfg.training.epochs, cfg.training.batch_size) == \
        (0.3, 9, 8)  # env > exp

    cfg = load(exp, ["--learning_rate=0.4", "--training.batch_size", "16"], environ=env)
    assert (cfg.training.learning_rate, cfg.training.batch_size, cfg.training.epochs) == \
        (0.4, 16, 9)  # CLI > env


def test_a_halve_batch_retry_divides_the_batch(exp):
    cfg = load(exp, environ={"ORCH_BATCH_DIVISOR": "4"})
    assert cfg.training.batch_size == 2
    assert load(exp, environ={"ORCH_BATCH_DIVISOR": "16"}).training.batch_size == 1
    assert load(exp, environ={"ORCH_BATCH_DIVISOR": "x"}).training.batch_size == 8


def test_types_are_coerced_from_the_defaults(tmp_path):
    path = write(tmp_path / "c.yaml", """
training: {learning_rate: 1e-5, epochs: "3", gradient_checkpointing: "yes", fp16: auto}
data: {train: t.csv, dev: d.csv}
""")
    cfg = load(path, ["--weight_decay=0", "--num_beams=2", "--tags=a,b", "--fp16=false"],
               environ={})
    assert cfg.training.learning_rate == 1e-5 and isinstance(cfg.training.learning_rate, float)
    assert cfg.training.epochs == 3 and cfg.training.gradient_checkpointing is True
    assert cfg.training.weight_decay == 0.0 and cfg.training.num_beams == 2
    assert cfg.experiment.tags == ("a", "b") and cfg.training.fp16 is False


@pytest.mark.parametrize("override, key, words", [
    (["--learnig_rate=1"], "learnig_rate", ["did you mean training.learning_rate",
                                            "training.epochs"]),
    (["--training.epoch=3"], "training.epoch", ["did you mean training.epochs"]),
    (["--trainig.epochs=3"], "trainig.epochs", ["did you mean training", "wandb"]),
    (["--epochs=three"], "training.epochs", ["whole number"]),
    (["--fp16=maybe"], "training.fp16", ["auto, true or false"]),
    (["--batch_size=0"], "training.batch_size", [">= 1"]),
    (["--metric_for_best_model=rouge_l"], "training.metric_for_best_model",
     ["did you mean rougeL"]),
])
def test_bad_overrides_name_the_key_and_the_fix(exp, override, key, words):
    with pytest.raises(ConfigError) as info:
        load(exp, override, environ={})
    assert info.value.key == key
    for word in words:
        assert word in str(info.value)


def test_unknown_key_in_a_file_lists_the_valid_ones(tmp_path):
    path = write(tmp_path / "c.yaml", "training: {lerning_rate: 1}\ndata: {train: a, dev: b}\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    text = str(info.value)
    assert str(path) in text and "training.lerning_rate" in text
    assert "did you mean training.learning_rate" in text and "training.save_total_limit" in text
    write(path, "trainer: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="did you mean training"):
        load(path, environ={})


def test_bad_environment_value_names_the_variable(exp):
    with pytest.raises(ConfigError, match=r"\$BATCH_SIZE: training.batch_size = 'big'"):
        load(exp, environ={"BATCH_SIZE": "big"})


def test_missing_data_and_base_loops_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.train"):
        load(write(tmp_path / "c.yaml", "model: {checkpoint: x}\n"), environ={})
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load(tmp_path / "a.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load(write(tmp_path / "y.yaml", "training:\n  epochs: [1\n"), environ={})


def test_metric_and_goal(exp):
    assert metric(load(exp, environ={})) == ("rouge_combined", "max")
    assert metric(load(exp, ["--metric_for_best_model=loss"], environ={})) == ("eval_loss", "min")
    assert metric(load(exp, ["--metric_for_best_model=eval_rouge1"], environ={})) == \
        ("rouge1", "max")


def test_parse_overrides_forms():
    assert parse_overrides(["--a.b=1", "--c", "x y", "--d=e=f"]) == \
        [("a.b", "1"), ("c", "x y"), ("d", "e=f")]
    with pytest.raises(ConfigError):
        parse_overrides(["--flag"])
    with pytest.raises(ConfigError):
        parse_overrides(["plain"])


def test_rouge_on_known_strings_including_korean():
    same = compute_rouge(["the cat sat"], ["the cat sat"])
    assert same["rouge1"] == same["rouge2"] == same["rougeL"] == pytest.approx(1.0)
    assert same["rouge_sum"] == pytest.approx(3.0) and same["rouge_combined"] == pytest.approx(1.0)

    # Korean: one of two words shared -> P = R = F1 = 1/2 for ROUGE-1 and -L, no shared bigram
    ko = compute_rouge(["안녕하세요 반갑습니다"], ["안녕하세요 좋아요"])
    assert ko["rouge1"] == pytest.approx(0.5) and ko["rougeL"] == pytest.approx(0.5)
    assert ko["rouge2"] == pytest.approx(0.0)
    assert ko["rouge_sum"] == pytest.approx(1.0)
    assert ko["rouge_combined"] == pytest.approx(0.33 * 0.5 + 0.34 * 0.5)

    # rouge-score's own tokenizer would have dropped the Korean text entirely
    from rouge_score import rouge_scorer
    default = rouge_scorer.RougeScorer(["rouge1"]).score("안녕하세요 좋아요",
                                                         "안녕하세요 반갑습니다")
    assert default["rouge1"].fmeasure == 0.0

    # the mean over pairs: 1.0 and 0.0
    mixed = compute_rouge(["a b", "x"], ["a b", "y"])
    assert mixed["rouge1"] == pytest.approx(0.5)


def test_fp16_only_where_cuda_is():
    assert fp16_enabled("auto", cuda=False) is False
    assert fp16_enabled(True, cuda=False) is False  # asked for, but there is no CUDA
    assert fp16_enabled("auto", cuda=True) is True
    assert fp16_enabled(True, cuda=True) is True
    assert fp16_enabled(False, cuda=True) is False


def test_data_file_without_the_columns(tmp_path):
    path = write(tmp_path / "d.csv", "text,summ\nhello,hi\n")
    with pytest.raises(ConfigError, match=r"no column dialogue, summary \(columns: text, summ\)"):
        read_pairs(path)
    write(path, "dialogue,summary\n\"#P1#: 안녕, 민수\",민수 인사\n")
    pairs = read_pairs(path)
    assert pairs.dialogues == ["#P1#: 안녕, 민수"] and pairs.summaries == ["민수 인사"]


def _run(args, cwd, env_extra=None, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(var, None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_config_module_stays_light(tmp_path):
    code = ("import sys, trainers.hf.config, trainers.hf.rouge, trainers.hf.data; "
            "heavy = [m for m in ('torch', 'transformers', 'ray') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hub_name_not_cached_fails_fast_offline(tmp_path):
    write(tmp_path / "data" / "train.csv", "dialogue,summary\na,b\n")
    write(tmp_path / "data" / "dev.csv", "dialogue,summary\na,b\n")
    cfg = write(tmp_path / "c.yaml", "model: {checkpoint: nobody/not-a-model}\n"
                "data: {train: data/train.csv, dev: data/dev.csv}\n")
    started = time.monotonic()
    result = _run(["-m", "trainers.hf", str(cfg), "--in-process"], tmp_path,
                  {"HF_HOME": str(tmp_path / "hf-home")})  # an empty cache
    assert time.monotonic() - started < 30  # not the ~60 s an online lookup would wait
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert lines == ["error: model.checkpoint 'nobody/not-a-model' is not a local folder and is "
                     "not in the HF cache (offline): download it first (huggingface-cli download "
                     "nobody/not-a-model) or point to a folder"]


def test_entry_point_reports_a_bad_config_in_one_line(tmp_path):
    cfg = write(tmp_path / "c.yaml", "training: {epochs: 0}\ndata: {train: a.csv, dev: b.csv}\n")
    result = _run(["-m", "trainers.hf", str(cfg), "--in-process"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {cfg} line 1: training.epochs = 0: must be >= 1")


def test_a_config_error_names_the_line_of_its_key_in_every_kind(tmp_path):
    """The three kinds' YAMLs say where the bad key is written: the file, the line, the
    key, the value, the fix (a flow mapping's keys are on its line; a base file's key is
    found in the base file)."""
    from trainers.torch.config import load as load_ddp
    from trainers.yolo.config import load_train

    hf = write(tmp_path / "hf.yaml", "# my run\ndata: {train: a.csv, dev: b.csv}\n"
               "training:\n  learning_rate: 1e-4\n  epochs: 0\n")
    with pytest.raises(ConfigError) as raised:
        load(hf)
    assert str(raised.value).startswith(f"{hf} line 5: training.epochs = 0: must be >= 1")
    ddp = write(tmp_path / "ddp.yaml", "entry: m:T\n\ncheckpoint:\n  num_to_keep: 0\n")
    with pytest.raises(ConfigError) as raised:
        load_ddp(ddp)
    assert str(raised.value).startswith(f"{ddp.resolve()} line 4: checkpoint.num_to_keep = 0")
    yolo = write(tmp_path / "y.yaml", "model: yolo26n.yaml\ndata: d.yaml\nepochs: -2\n")
    with pytest.raises(ConfigError) as raised:
        load_train(yolo, check_paths=False)
    assert " line 3: epochs = -2" in str(raised.value), str(raised.value)
    assert raised.value.line == 3
