"""The hf kind really training: a tiny seq2seq model on synthetic dialogue pairs, offline.

- in-process (what a sweep trial runs): ROUGE each epoch, at most ``save_total_limit``
  checkpoints, the best model reloaded and saved with its predictions, a user callback
  adding a metric, W&B offline with the model artifact, then a rerun that continues
  from the latest checkpoint;
- early stopping (a T5 this time);
- through Ray Train with 2 workers on logical GPUs, as a queue row runs it.

Every run is offline: the HTTP(S) proxies point at a closed port, so any request
would fail the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 8
STEPS_PER_EPOCH = 4  # 32 pairs, batch 8

CALLBACK = '''
import json, math, os
from transformers import TrainerCallback

class Recorder(TrainerCallback):
    """Adds a metric at each evaluation and records that it was called."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        with open(os.environ["RECORDER_FILE"], "a") as f:
            f.write(json.dumps({"epoch": state.epoch, "keys": sorted(metrics)}) + "\\n")
'''


def config_text(**training) -> str:
    values = dict(epochs=EPOCHS, batch_size=8, learning_rate="1e-2", warmup_steps=0,
                  save_total_limit=2, logging_steps=2, early_stopping_patience=0, num_beams=1,
                  generation_max_len=32, predict_samples=4)
    values.update(training)
    body = ", ".join(f"{k}: {v}" for k, v in values.items())
    return ("model: {checkpoint: model}\n"
            "tokenizer: {encoder_max_len: 64, decoder_max_len: 32}\n"
            f"training: {{{body}}}\n"
            "data: {train: data/train.csv, dev: data/dev.csv}\n"
            "experiment: {name: tiny, tags: [test]}\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with ``data/{train,dev}.csv`` and a tiny BART in ``model/``."""
    from trainers.hf.tiny import make_data, make_tiny

    folder = tmp_path_factory.mktemp("hf")
    train_csv, _ = make_data(folder / "data", n=32)
    make_tiny(folder / "model", train_csv, arch="bart")
    return folder


def offline_env(tmp: Path, **extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline", "WANDB_DIR": str(tmp / "wandb"),
           "WANDB_CACHE_DIR": str(tmp / "wandb-cache"), "WANDB_CONFIG_DIR": str(tmp / "wandb-cfg"),
           "HF_HOME": str(tmp / "hf-home"), "NO_PROXY": "", "no_proxy": ""}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[var] = "http://127.0.0.1:9"  # nothing listens: a request would fail
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ORCH_METRICS_FILE"):
        env.pop(var, None)
    (tmp / "wandb").mkdir(exist_ok=True)
    return {**env, **extra}


def run_hf(args: list[str], cwd: Path, env: dict, timeout: int = 240):
    result = subprocess.run([sys.executable, "-m", "trainers.hf", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rouge_of_saved_model(folder: Path, dev_csv: Path) -> float:
    """Load the saved best model and score it on the dev set, as a user would."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from trainers.hf.data import read_pairs
    from trainers.hf.rouge import compute_rouge

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    dev = read_pairs(dev_csv)
    batch = tok(dev.dialogues, padding=True, truncation=True, max_length=64, return_tensors="pt")
    out = model.generate(**batch, max_length=32, num_beams=1)
    preds = [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]
    return compute_rouge(preds, dev.summaries)["rouge_combined"]


@pytest.mark.slow
def test_in_process_training_then_resume(workdir, tmp_path):
    (workdir / "recorder.py").write_text(CALLBACK)
    cfg = workdir / "run.yaml"
    cfg.write_text(config_text(callbacks="[recorder:Recorder]").replace(
        "experiment:", "wandb: {enabled: true, project: hf-test, log_model: true}\nexperiment:"))
    metrics_file, recorder = tmp_path / "metrics.jsonl", tmp_path / "calls.jsonl"
    env = offline_env(tmp_path, ORCH_METRICS_FILE=str(metrics_file),
                      RECORDER_FILE=str(recorder))
    storage = tmp_path / "runs"

    run_hf([str(cfg), "--in-process", "--storage", str(storage), "--name", "tiny"], workdir, env)

    lines = read_lines(metrics_file)
    epochs, final = lines[:-1], lines[-1]
    assert [m["step"] for m in epochs] == list(range(1, EPOCHS + 1))
    for m in epochs:
        assert {"rouge1", "rouge2", "rougeL", "rouge_sum", "rouge_combined", "eval_loss",
                "perplexity"} <= set(m)
    scores = [m["rouge_combined"] for m in epochs]
    assert max(scores) > 0.1 and max(scores) > scores[0]  # it learns

    # the callback saw every evaluation; the best model is the best evaluation's
    assert len(read_lines(recorder)) == EPOCHS
    best_dir = storage / "tiny" / "hf" / "best_model"
    assert final["weight_file"] == str(best_dir)
    assert final["rouge_combined"] == pytest.approx(max(scores))
    saved = json.loads((best_dir / "metrics.json").read_text())
    assert saved["metric"] == "rouge_combined" and saved["value"] == pytest.approx(max(scores))
    assert rouge_of_saved_model(best_dir, workdir / "data" / "dev.csv") == \
        pytest.approx(max(scores), abs=1e-6)

    checkpoints = sorted((storage / "tiny" / "hf").glob("checkpoint-*"))
    assert 1 <= len(checkpoints) <= 2  # save_total_limit
    assert (storage / "tiny" / "hf" / f"checkpoint-{EPOCHS * STEPS_PER_EPOCH}") in checkpoints
    import csv
    with open(best_dir / "predictions.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and set(rows[0]) == {"dialogue", "reference", "prediction"}
    with open(workdir / "data" / "dev.csv", encoding="utf-8") as f:
        assert [r["reference"] for r in rows] == [r["summary"] for r in csv.DictReader(f)][:4]

    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert b"tiny-best" in next(runs[0].glob("*.wandb")).read_bytes()  # the model artifact

    # a rerun (a retried row) continues from the latest checkpoint: no epoch is repeated
    result = run_hf([str(cfg), "--in-process", "--storage", str(storage), "--name", "tiny",
                     f"--training.epochs={EPOCHS + 2}", "--wandb.enabled=false"], workdir, env)
    assert f"resuming from {storage / 'tiny' / 'hf'}/checkpoint-{EPOCHS * STEPS_PER_EPOCH}" \
        in result.stdout
    again = read_lines(metrics_file)[len(lines):]
    assert [m["step"] for m in again[:-1]] == [EPOCHS + 1, EPOCHS + 2]
    assert [m["global_step"] for m in again[:-1]] == [
        (EPOCHS + 1) * STEPS_PER_EPOCH, (EPOCHS + 2) * STEPS_PER_EPOCH]
    assert "weight_file" in again[-1]


@pytest.mark.slow
def test_early_stopping_with_a_tiny_t5(workdir, tmp_path, monkeypatch):
    """lr ~ 0: the score never improves, so patience 1 stops after the second epoch.
    Special tokens from the config are added to the tokenizer (and the embeddings)."""
    from trainers.hf.config import load
    from trainers.hf.tiny import make_tiny
    from trainers.hf.train import Job, train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ORCH_METRICS_FILE", raising=False)
    t5 = make_tiny(tmp_path / "t5", workdir / "data" / "train.csv", arch="t5")
    cfg_path = workdir / "t5.yaml"
    cfg_path.write_text(config_text(epochs=6, learning_rate="1e-12", early_stopping_patience=1,
                                    predict_samples=2).replace(
        "decoder_max_len: 32", "decoder_max_len: 32, special_tokens: ['#Person1#', '#Person2#']"))
    job = Job(load(cfg_path, environ={}), str(tmp_path / "out" / "hf"), str(t5))
    best = train(job)
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "out" / "hf").glob("checkp*"))
    assert steps[-1] == 2 * STEPS_PER_EPOCH  # stopped after epoch 2 of 6
    assert best["best_epoch"] == 1
    assert (job.best_dir / "predictions.csv").is_file()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(job.best_dir)  # the added tokens were saved with it
    assert len(tok("#Person1#", add_special_tokens=False).input_ids) == 1


@pytest.mark.slow
def test_ray_train_two_workers_on_logical_gpus(workdir, tmp_path, ray_session):
    """As a row runs it: 2 workers x 0.5 logical GPU (no CUDA: gloo, CPU), and
    ``--pretrained_path`` standing in for a model.checkpoint that is not there."""
    cfg = workdir / "ray.yaml"
    cfg.write_text(config_text(epochs=3, gradient_accumulation_steps=2,
                               gradient_checkpointing="true")
                   .replace("{checkpoint: model}", "{checkpoint: nobody/not-downloaded}"))
    metrics_file = tmp_path / "metrics.jsonl"
    env = offline_env(tmp_path, ORCH_METRICS_FILE=str(metrics_file),
                      RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.5")
    address = ray_session.get_runtime_context().gcs_address
    result = run_hf([str(cfg), "--storage", str(tmp_path / "runs"), "--name", "row1",
                     "--workers", "2", "--gpus-per-worker", "0.5", "--cpus-per-worker", "1",
                     "--address", address, "--max-failures", "0",
                     "--pretrained_path", str(workdir / "model")], workdir, env, timeout=280)
    assert "done on Ray Train (2 workers)" in result.stdout

    lines = read_lines(metrics_file)
    assert [m["step"] for m in lines[:-1]] == [1, 2, 3]  # rank 0 alone reports
    # 32 pairs / (2 workers x batch 8) / accumulation 2 = 1 optimizer step per epoch
    assert [m["global_step"] for m in lines[:-1]] == [1, 2, 3]
    best = max(m["rouge_combined"] for m in lines[:-1])
    weight = Path(lines[-1]["weight_file"])
    assert weight == tmp_path / "runs" / "row1" / "hf" / "best_model"
    assert lines[-1]["rouge_combined"] == pytest.approx(best)
    assert json.loads((weight / "metrics.json").read_text())["started_from"] == \
        str(workdir / "model")

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    assert AutoModelForSeq2SeqLM.from_pretrained(weight).config.d_model == 64
    assert AutoTokenizer.from_pretrained(weight).decode([0]) == "<pad>"
    assert list((tmp_path / "runs" / "row1").glob("checkpoint_*"))  # Ray Train kept one


@pytest.mark.slow
def test_two_workers_forked_on_this_node(workdir, tmp_path):
    """As a row whose workers fit its node runs it (``--launcher torch``): the same two
    workers (gloo, CPU), forked from the job instead of started by Ray Train; no Ray."""
    cfg = workdir / "forked.yaml"
    cfg.write_text(config_text(epochs=3, gradient_accumulation_steps=2))
    metrics_file = tmp_path / "metrics.jsonl"
    env = offline_env(tmp_path, ORCH_METRICS_FILE=str(metrics_file))
    env.pop("RAY_ADDRESS", None)
    result = run_hf([str(cfg), "--storage", str(tmp_path / "runs"), "--name", "row1",
                     "--workers", "2", "--launcher", "torch", "--max-failures", "0"],
                    workdir, env, timeout=280)
    assert "2 worker(s) forked on this node" in result.stdout
    assert "done (2 forked workers)" in result.stdout

    lines = read_lines(metrics_file)
    assert [m["step"] for m in lines[:-1]] == [1, 2, 3]  # rank 0 alone reports
    # 32 pairs / (2 workers x batch 8) / accumulation 2 = 1 optimizer step per epoch:
    # each worker trained on its half
    assert [m["global_step"] for m in lines[:-1]] == [1, 2, 3]
    weight = Path(lines[-1]["weight_file"])
    assert weight == tmp_path / "runs" / "row1" / "hf" / "best_model"
    assert lines[-1]["rouge_combined"] == pytest.approx(max(m["rouge_combined"]
                                                            for m in lines[:-1]))
    from transformers import AutoModelForSeq2SeqLM

    assert AutoModelForSeq2SeqLM.from_pretrained(weight).config.d_model == 64
    assert list((tmp_path / "runs" / "row1").glob("checkpoint_*")), "the last one kept"
