"""The job-side API: what a training process sees of the orchestrator.

A job reports by calling ``orchestrator.report(**metrics)`` or by appending JSON
lines to ``$ORCH_METRICS_FILE`` itself; the orchestrator reads them back with
``read_metrics``. The ``*_ENV`` names are the variables every job gets. This module
imports nothing heavy: it runs inside the user's training process.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.infra.storage import is_uri

__all__ = ["report", "read_metrics", "summarize_metrics", "MetricsSummary", "MAX_HISTORY",
           "batch_divisor", "goal_of", "MINIMISED", "JOB_ID_ENV", "ATTEMPT_ENV", "QUEUE_ENV",
           "RUN_DIR_ENV",
           "METRICS_FILE_ENV", "METRICS_SINK_ENV", "BATCH_DIVISOR_ENV"]

MAX_HISTORY = 5000  # metric lines a result carries back to the driver
JOB_ID_ENV = "ORCH_JOB_ID"            # the row's ID
ATTEMPT_ENV = "ORCH_ATTEMPT"          # 1, 2, … (the Attempts column)
QUEUE_ENV = "ORCH_QUEUE"              # the queue's name
RUN_DIR_ENV = "ORCH_RUN_DIR"          # this attempt's folder: runs/<ID>/attempt-N
METRICS_FILE_ENV = "ORCH_METRICS_FILE"
#: Set in a Ray Train job's workers: the named actor that writes the job's metrics file.
METRICS_SINK_ENV = "ORCH_METRICS_SINK"
#: Set after an out-of-memory attempt with ``on_oom = halve_batch``: divide the batch by it.
BATCH_DIVISOR_ENV = "ORCH_BATCH_DIVISOR"


#: Words in a metric's name that mean lower is better (``val_loss``, ``eval/wer``, ``RMSE``).
MINIMISED = ("loss", "error", "err", "perplexity", "ppl", "wer", "cer", "mae", "mse", "rmse",
             "mape", "nll", "fid", "eer", "ter", "bpd", "regret", "latency")


def goal_of(metric: str) -> str:
    """``"min"`` when the metric's name says lower is better, else ``"max"``."""
    name = metric.lower()
    words = {w for w in re.split(r"[^a-z0-9]+", name) if w}
    if words & set(MINIMISED) or name.endswith(("loss", "error")):
        return "min"
    return "max"


def batch_divisor(environ=None) -> int:
    """What to divide the configured batch by (1 unless an earlier attempt ran out of
    memory under ``on_oom = halve_batch``)."""
    text = (os.environ if environ is None else environ).get(BATCH_DIVISOR_ENV, "")
    try:
        return max(1, int(text))
    except ValueError:
        return 1


def report(step: int | None = None, **metrics) -> None:
    """Append one line of metrics for the running job (a no-op outside the orchestrator).

    ``weight_file=path`` marks weights that go with these metrics; the best such
    file by the queue's ``metric`` becomes the row's ``WeightFile``.
    """
    path, sink = os.environ.get(METRICS_FILE_ENV), os.environ.get(METRICS_SINK_ENV)
    if not path and not sink:
        return
    line = {"time": round(time.time(), 3)}
    if step is not None:
        line["step"] = step
    for key, value in metrics.items():
        if key == "weight_file" and not is_uri(str(value)):   # a URI stays as it is
            value = str(Path(value).resolve())
        elif hasattr(value, "item"):  # numpy / torch scalars
            value = value.item()
        line[key] = value
    text = json.dumps(line, ensure_ascii=False, default=str) + "\n"
    try:
        if sink:
            _send(sink, text)
        else:
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
    except Exception as e:  # noqa: BLE001 - a lost metrics line must not end the training
        global _warned
        if not _warned:
            _warned = True
            print(f"[orchestrator] cannot report metrics ({type(e).__name__}: {e}); training "
                  "goes on, the row's live metrics will miss lines", file=sys.stderr)


_warned = False
_sinks: dict = {}


def _send(name: str, text: str) -> None:
    """Hand a line to the job's metrics sink (a Ray Train worker; see trainers.ray_job) and
    wait for it: lines stay in order and none is lost when the worker exits."""
    import ray

    if name not in _sinks:
        _sinks[name] = ray.get_actor(name)
    ray.get(_sinks[name].append.remote(text), timeout=30)


@dataclass
class MetricsSummary:
    last: dict = field(default_factory=dict)     # latest value of every key
    best: float | None = None                     # best value of the chosen metric
    best_weight: str | None = None                # weight_file of the best line that has one
    last_weight: str | None = None                # last weight_file reported
    lines: int = 0
    history: list = field(default_factory=list)  # the lines themselves (the last MAX_HISTORY)


def _better(a: float, b: float | None, goal: str) -> bool:
    return b is None or (a > b if goal == "max" else a < b)


def read_metrics(path: str | Path, metric: str = "", goal: str = "max") -> MetricsSummary:
    """Summarize a metrics JSON-lines file; unreadable lines are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return MetricsSummary()
    return summarize_metrics(text, metric, goal)


def summarize_metrics(text: str, metric: str = "", goal: str = "max") -> MetricsSummary:
    """``read_metrics`` of a file's text (one read from object storage, say)."""
    summary = MetricsSummary()
    best_weighted: float | None = None
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        summary.lines += 1
        summary.history.append(line)
        if len(summary.history) > MAX_HISTORY:
            del summary.history[: len(summary.history) - MAX_HISTORY]
        summary.last.update({k: v for k, v in line.items() if k != "time"})
        weight = line.get("weight_file")
        if weight:
            summary.last_weight = str(weight)
        value = line.get(metric) if metric else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not math.isfinite(value):
            continue
        if _better(value, summary.best, goal):
            summary.best = float(value)
        if weight and _better(value, best_weighted, goal):
            best_weighted, summary.best_weight = float(value), str(weight)
    return summary
