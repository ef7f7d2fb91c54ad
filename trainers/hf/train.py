"""Fine-tune a seq2seq model on dialogue/summary pairs with ``Seq2SeqTrainer``.

The same function runs in-process (sweep trials, debugging) and inside each Ray
Train worker; every rank calls it and only rank 0 writes files or reports. Each
epoch evaluates ROUGE on the dev set (generating summaries) and saves a
checkpoint; the best one by ``metric_for_best_model`` is reloaded at the end and
saved as ``<output_dir>/best_model`` (model, tokenizer, ``metrics.json``,
``predictions.csv``, the resolved ``config.yaml``): that folder is the row's
``WeightFile``. A rerun with the same output dir continues from its latest
checkpoint, so a retried row does not start over.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import inspect
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    EvalPrediction,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)

from orchestrator.api import report
from orchestrator.infra.storage import is_uri, local_copy
from trainers.hf.config import HFConfig, fp16_enabled, metric
from trainers.hf.data import Pairs, SummaryDataset, check_data
from trainers.hf.rouge import compute_rouge
from trainers.hf.runtime import latest_checkpoint, load_callbacks, pick_device, world_rank

__all__ = ["Job", "train", "local_resume", "public_metrics", "ProgressReport", "BEST_DIR",
           "PREDICTIONS", "METRICS", "load_model", "training_arguments", "seq2seq_trainer",
           "decode", "callbacks_for", "safe_name", "start_wandb"]

log = logging.getLogger(__name__)

BEST_DIR = "best_model"
PREDICTIONS = "predictions.csv"
METRICS = "metrics.json"
_RESERVED = ("epoch", "step", "weight_file", "global_step")  # report()'s own, or ours
_KEEP_PREFIX = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


@dataclass(frozen=True)
class Job:
    cfg: HFConfig
    output_dir: str          # checkpoints (``DIR/NAME/hf``)
    checkpoint: str          # the weights to start from (resolved, loadable offline, or a URI)
    report_weights: bool = True   # False: the driver reports them (it gets them from Ray Train)

    @property
    def best_dir(self) -> Path:
        return Path(self.output_dir) / BEST_DIR


def public_metrics(metrics: dict) -> dict:
    """An evaluation's numbers as reported: ``eval_rouge1`` → ``rouge1``; ``eval_loss`` stays."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key in _RESERVED:
            continue
        if key.startswith("eval_") and key not in _KEEP_PREFIX:
            key = key[len("eval_"):]
        out[key] = value
    return out


def _last_train_loss(state) -> dict:
    for entry in reversed(state.log_history):
        if "loss" in entry:
            return {"loss": entry["loss"]}
    return {}


class ProgressReport(TrainerCallback):
    """Rank 0 reports each evaluation (``step`` = epoch) to the orchestrator, and prints it.
    ``also``: more names for the same numbers (a guide's ``rouge1_f1``), reported too."""

    def __init__(self, also=None):
        self.also = also

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        line = {**_last_train_loss(state), **public_metrics(metrics)}
        if self.also is not None:
            line.update(self.also(line))
        epoch = round(state.epoch or 0)
        total = round(state.num_train_epochs or 0) or None   # the views' "epoch x/y"
        report(step=epoch, epoch=epoch, **({"epochs": total} if total else {}),
               global_step=state.global_step, **line)
        shown = " ".join(f"{k}={v:.4g}" for k, v in line.items())
        print(f"[hf] epoch {epoch} step {state.global_step}: {shown}", flush=True)


class SummaryTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` whose evaluation keeps exactly one row per sample.

    With several workers, accelerate pads the last evaluation batches with repeats
    of the first samples (``even_batches``) and in transformers 5.23 the repeats
    reach ``compute_metrics`` and ``predict`` (seen: 8 dev pairs on 2 workers gave
    16 rows). The gathered rows are the dataset in order, then the repeats, so the
    first ``len(dataset)`` rows are kept.
    """

    def evaluation_loop(self, dataloader, *args, **kwargs):
        rows = len(dataloader.dataset) if hasattr(dataloader.dataset, "__len__") else None
        compute = self.compute_metrics
        if compute is not None and rows is not None:
            self.compute_metrics = lambda p: compute(_first_rows(p, rows))
        try:
            output = super().evaluation_loop(dataloader, *args, **kwargs)
        finally:
            self.compute_metrics = compute
        if rows is None or output.predictions is None:
            return output
        labels = output.label_ids
        return output._replace(predictions=_head(output.predictions, rows),
                               label_ids=None if labels is None else _head(labels, rows),
                               num_samples=rows)


def _head(array, rows: int):
    return tuple(a[:rows] for a in array) if isinstance(array, tuple) else array[:rows]


def _first_rows(pred: EvalPrediction, rows: int) -> EvalPrediction:
    return EvalPrediction(predictions=_head(pred.predictions, rows),
                          label_ids=_head(pred.label_ids, rows))


def _loss_ignores_item_count(model) -> bool:
    """BART and T5 take ``**kwargs`` but compute a plain mean loss. transformers then
    assumes the loss is normalized by the tokens of all workers and multiplies it by the
    number of workers (and skips the division by gradient-accumulation steps):
    the logged loss and the gradients come out N times too large."""
    try:
        source = inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False
    return "loss_function" not in source and "num_items_in_batch" not in source


def decode(tokenizer, ids) -> list[str]:
    ids = ids[0] if isinstance(ids, tuple) else ids
    ids = np.where(ids < 0, tokenizer.pad_token_id, ids)  # -100 marks label padding
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _compute_metrics(tokenizer):
    def compute(eval_pred) -> dict:
        return compute_rouge(decode(tokenizer, eval_pred.predictions),
                             decode(tokenizer, eval_pred.label_ids))

    return compute


def load_model(checkpoint: str, cfg: HFConfig):
    """``(tokenizer, model)`` from ``checkpoint`` with the config's special tokens added."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
    if _loss_ignores_item_count(model):
        model.accepts_loss_kwargs = False
    specials = [t for t in cfg.tokenizer.special_tokens if t not in tokenizer.get_vocab()]
    if specials:
        tokenizer.add_special_tokens({"additional_special_tokens": specials})
        model.resize_token_embeddings(len(tokenizer))
    return tokenizer, model


def training_arguments(cfg: HFConfig, output_dir: str, device: str, *,
                       wandb: bool | None = None, evaluate: bool = True
                       ) -> Seq2SeqTrainingArguments:
    """The config as ``Seq2SeqTrainingArguments`` (the trainer guide's mapping): an
    evaluation and a checkpoint each epoch, the best by ``metric_for_best_model`` loaded
    at the end, generation for ROUGE, fp16 only on CUDA. ``wandb``: report to W&B
    (default: ``wandb.enabled``); ``evaluate``: false when there is no dev set (then
    nothing is evaluated and the last model is the one kept)."""
    t = cfg.training
    if t.fp16 is True and device != "cuda":
        log.warning("training.fp16 = true but there is no CUDA here: training in fp32")
    name, goal = metric(cfg)
    wandb = cfg.wandb.enabled if wandb is None else wandb
    return Seq2SeqTrainingArguments(
        output_dir=output_dir, num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        learning_rate=t.learning_rate, weight_decay=t.weight_decay, warmup_steps=t.warmup_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        eval_strategy="epoch" if evaluate else "no", save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=t.logging_steps, save_total_limit=t.save_total_limit or None,
        load_best_model_at_end=evaluate, metric_for_best_model=name if evaluate else None,
        greater_is_better=goal == "max" if evaluate else None,
        predict_with_generate=True, generation_max_length=t.generation_max_len,
        generation_num_beams=t.num_beams, seed=t.seed, fp16=fp16_enabled(t.fp16, device == "cuda"),
        activation_checkpointing=t.gradient_checkpointing,  # 5.x name of gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing
        else None,
        use_cpu=device == "cpu", dataloader_pin_memory=device == "cuda",
        dataloader_num_workers=t.dataloader_num_workers,
        report_to=["wandb"] if wandb else "none", run_name=cfg.run_name,
        disable_tqdm=not sys.stderr.isatty())


def callbacks_for(cfg: HFConfig, *, evaluates: bool = True,
                  progress: ProgressReport | None = None, extra: list = ()) -> list:
    """The config's callbacks first (a metric they add to ``metrics`` is reported), early
    stopping (when there is a dev set to stop on), the progress report, ``extra``."""
    callbacks = load_callbacks(cfg)
    if cfg.training.early_stopping_patience and evaluates:
        callbacks.append(EarlyStoppingCallback(cfg.training.early_stopping_patience))
    return [*callbacks, progress or ProgressReport(), *extra]


def safe_name(name: str) -> str:
    """``name`` as a file or artifact name: letters, digits, ``-_.``; others become ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def seq2seq_trainer(args: Seq2SeqTrainingArguments, model, tokenizer, train_dataset=None,
                    eval_dataset=None, callbacks: list = ()) -> SummaryTrainer:
    """The ``Seq2SeqTrainer`` every face uses: ROUGE on generated summaries, one row per
    evaluation sample, labels padded by ``DataCollatorForSeq2Seq``."""
    return SummaryTrainer(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer, compute_metrics=_compute_metrics(tokenizer),
        callbacks=list(callbacks))


def build_trainer(job: Job, *, extra_callbacks: list = ()):
    """The ``Seq2SeqTrainer`` for ``job`` and the dev pairs (for prediction samples)."""
    cfg, device = job.cfg, pick_device()
    set_seed(cfg.training.seed)
    train_pairs, dev_pairs = check_data(cfg)
    tokenizer, model = load_model(job.checkpoint, cfg)
    lengths = (cfg.tokenizer.encoder_max_len, cfg.tokenizer.decoder_max_len)
    print(f"[hf] {job.checkpoint} on {device}: {len(train_pairs)} train / {len(dev_pairs)} dev "
          f"pairs, output {job.output_dir}", flush=True)
    trainer = seq2seq_trainer(
        training_arguments(cfg, job.output_dir, device), model, tokenizer,
        SummaryDataset(train_pairs, tokenizer, *lengths),
        SummaryDataset(dev_pairs, tokenizer, *lengths),
        callbacks_for(cfg, extra=list(extra_callbacks)))
    return trainer, dev_pairs


@contextlib.contextmanager
def local_resume(job: Job) -> Iterator[str | None]:
    """The output dir's latest checkpoint (none when ``training.resume`` is false)."""
    yield latest_checkpoint(Path(job.output_dir)) if job.cfg.training.resume else None


def train(job: Job, *, resume=local_resume, extra_callbacks: list = (), prepare=None) -> dict:
    """Fine-tune, save the best model; its metrics (rank 0 also reports them).

    ``resume(job)`` is a context manager giving the checkpoint to continue from;
    ``prepare(trainer)`` adapts the trainer (Ray Train's ``prepare_trainer``).
    """
    rank = world_rank()
    if is_uri(job.checkpoint):   # a parent's best model in object storage: onto this node
        job = dataclasses.replace(job, checkpoint=local_copy(job.checkpoint))
    if rank == 0:
        start_wandb(job.cfg)
    trainer, dev_pairs = build_trainer(job, extra_callbacks=extra_callbacks)
    trainer = prepare(trainer) if prepare else trainer
    with resume(job) as checkpoint:
        if checkpoint:
            print(f"[hf] resuming from {checkpoint}", flush=True)
        trainer.train(resume_from_checkpoint=checkpoint)
    return _finish(job, trainer, dev_pairs, rank)


# ---- the end of a run ------------------------------------------------------------------------


def _best_evaluation(state) -> dict:
    evals = [h for h in state.log_history if any(k.startswith("eval_") for k in h)]
    if not evals:
        return {}
    best = [h for h in evals if h.get("step") == state.best_global_step]
    if state.best_model_checkpoint and not Path(state.best_model_checkpoint).is_dir():
        log.warning("the best checkpoint %s is gone (resumed from Ray's copy?): keeping the "
                    "last model and its metrics", state.best_model_checkpoint)
        best = []
    chosen = dict((best or evals)[-1])
    step = chosen.pop("step", None)  # `step` is report()'s own argument (the epoch)
    return {**public_metrics(chosen), "best_epoch": round(chosen.get("epoch", 0)),
            "best_global_step": step}


def _predictions(trainer, cfg: HFConfig, dev: Pairs) -> list[dict]:
    n = cfg.training.predict_samples
    if n <= 0:
        return []
    sample, tok = dev.head(n), trainer.processing_class
    dataset = SummaryDataset(sample, tok, cfg.tokenizer.encoder_max_len,
                             cfg.tokenizer.decoder_max_len)
    texts = decode(tok, trainer.predict(dataset).predictions)
    return [{"dialogue": d, "reference": r, "prediction": p}
            for d, r, p in zip(sample.dialogues, sample.summaries, texts, strict=True)]


def _finish(job: Job, trainer, dev: Pairs, rank: int) -> dict:
    best, best_dir = _best_evaluation(trainer.state), job.best_dir
    if rank == 0 and best_dir.exists():
        shutil.rmtree(best_dir)
    trainer.save_model(str(best_dir))  # every rank: it may synchronize
    rows = _predictions(trainer, job.cfg, dev)
    if rank != 0:
        return best
    _write_best_files(job, trainer.state, best, rows)
    _log_wandb_model(job, best)
    report(**({"weight_file": str(best_dir)} if job.report_weights else {}), **best)
    print(f"[hf] best model ({metric(job.cfg)[0]}={best.get(metric(job.cfg)[0])}) saved to "
          f"{best_dir}", flush=True)
    return best


def _write_best_files(job: Job, state, best: dict, rows: list[dict]) -> None:
    name, goal = metric(job.cfg)
    info = {"metric": name, "goal": goal, "value": best.get(name), "metrics": best,
            "best_checkpoint": state.best_model_checkpoint, "global_step": state.global_step,
            "started_from": job.checkpoint}
    (job.best_dir / METRICS).write_text(json.dumps(info, indent=1), encoding="utf-8")
    (job.best_dir / "config.yaml").write_text(
        yaml.safe_dump(job.cfg.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
    if rows:
        with open(job.best_dir / PREDICTIONS, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["dialogue", "reference", "prediction"])
            writer.writeheader()
            writer.writerows(rows)


# ---- Weights & Biases ------------------------------------------------------------------------


def start_wandb(cfg: HFConfig, config: dict | None = None) -> None:
    """Rank 0 opens the run (the Trainer's W&B callback then logs into it); ``config``:
    what the run records as its config (default: the resolved config)."""
    if not cfg.wandb.enabled:
        return
    import wandb

    if wandb.run is None:
        wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, name=cfg.run_name,
                   tags=list(cfg.experiment.tags),
                   config=cfg.to_dict() if config is None else config, resume="allow")


def _log_wandb_model(job: Job, best: dict) -> None:
    if not job.cfg.wandb.enabled:
        return
    import wandb

    if wandb.run is None:
        return
    if job.cfg.wandb.log_model:
        artifact = wandb.Artifact(f"{safe_name(job.cfg.run_name)}-best", type="model",
                                  metadata=best)
        artifact.add_dir(str(job.best_dir))
        wandb.run.log_artifact(artifact, aliases=["best"])
    wandb.run.summary.update({f"best/{k}": v for k, v in best.items()})
    wandb.finish()
