"""What a YOLO run reports: one line per epoch (live), and the best epoch at the end.

The callbacks are module functions, so ultralytics' multi-GPU launcher (which cloudpickles
the trainer's callbacks into its DDP workers) pickles them by reference; they report
from rank 0 only. The final numbers come from ``results.csv`` (the row of the best
epoch, the one ``best.pt`` holds), so a finished run read again reports the same thing.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

from orchestrator.api import report

__all__ = ["simple_name", "simple_metrics", "read_results", "best_row", "final_metrics",
           "on_train_epoch_end", "on_fit_epoch_end", "on_train_start", "add_callbacks",
           "FAILURE_ENV"]

#: A file each DDP worker writes its uncaught exception to (the parent sees only an exit code).
FAILURE_ENV = "ORCH_YOLO_FAILURE_FILE"
_SUFFIXES = {"(B)": "", "(M)": "_mask", "(P)": "_pose"}


def simple_name(key: str) -> str:
    """``metrics/mAP50-95(B)`` → ``mAP50-95``; ``train/box_loss`` → ``box_loss``;
    ``val/box_loss`` → ``val_box_loss``; ``lr/pg0`` → ``lr_pg0``."""
    key = key.strip()
    for suffix, replacement in _SUFFIXES.items():
        if key.endswith(suffix):
            key = key[: -len(suffix)] + replacement
    group, _, name = key.rpartition("/")
    if group in ("metrics", "train"):
        return name
    return f"{group}_{name}" if group else name


def simple_metrics(raw: dict) -> dict:
    """Finite numbers only, under simple names."""
    out = {}
    for key, value in raw.items():
        if hasattr(value, "item"):
            value = value.item()
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[simple_name(str(key))] = number
    return out


def read_results(path: Path) -> list[dict]:
    """The rows of ultralytics' ``results.csv`` as dicts of numbers ([] when absent)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{k.strip(): float(v) for k, v in row.items() if k and v not in (None, "")}
                    for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return []


def best_row(rows: list[dict]) -> dict:
    """The first row with the highest fitness (mAP50-95, as ultralytics picks best.pt)."""
    def fitness(row: dict) -> float:
        values = [v for k, v in row.items() if k.startswith("metrics/mAP50-95")]
        return sum(0.0 if math.isnan(v) else v for v in values)
    return max(rows, key=fitness) if rows else {}


def final_metrics(rows: list[dict]) -> dict:
    """The final report's metrics: the best epoch's, plus how far training got."""
    if not rows:
        return {}
    best = best_row(rows)
    metrics = simple_metrics({k: v for k, v in best.items() if k not in ("epoch", "time")})
    metrics["best_epoch"] = int(best.get("epoch", 0))
    metrics["epochs_done"] = int(rows[-1].get("epoch", len(rows)))
    return metrics


# ----------------------------------------------------------------- callbacks
def _rank() -> int:
    return int(os.environ.get("RANK", "-1"))


def on_train_start(trainer) -> None:
    """In every process: leave an uncaught exception's text where the launching job can read it."""
    path = os.environ.get(FAILURE_ENV)
    if not path or getattr(sys.excepthook, "_orch_yolo", False):
        return
    previous = sys.excepthook

    def record(kind, error, tb):
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{kind.__name__}: {error}\n")
        except OSError:
            pass
        previous(kind, error, tb)

    record._orch_yolo = True
    sys.excepthook = record


def on_train_epoch_end(trainer) -> None:
    trainer._orch_epoch_pending = True   # the next on_fit_epoch_end closes a training epoch


def on_fit_epoch_end(trainer) -> None:
    """One metrics line per epoch; skips ultralytics' extra call for the final validation."""
    if not getattr(trainer, "_orch_epoch_pending", False) or _rank() not in (-1, 0):
        return
    trainer._orch_epoch_pending = False
    losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
    raw = {**losses, **(trainer.metrics or {}),
           **getattr(trainer, "lr", {})}
    if trainer.fitness is not None:
        raw["fitness"] = trainer.fitness
    report(step=trainer.epoch + 1, epoch=trainer.epoch + 1, epochs=trainer.epochs,
           **simple_metrics(raw))


def add_callbacks(model) -> None:
    """Attach the reporting callbacks to an ultralytics ``YOLO`` model."""
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_epoch_end", on_train_epoch_end)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
