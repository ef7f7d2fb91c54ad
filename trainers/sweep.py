"""Kind ``sweep``: the row's ``Config`` is a W&B sweep file, run on Ray Tune.

The row's own runner holds no resources; it runs ``orchestrator sweep run`` as the
job, which joins the same Ray cluster and gives each trial the row's ``GPUs``
(and ``CPUs``, default 1). The best metric, config and weights come back as the
row's metrics, so ``BestMetric``, ``WeightFile`` and ``PretrainedModelId`` chaining
work as for any row.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

__all__ = ["sweep_command", "sweep_metric", "write_trials", "read_trials", "TRIALS_FILE"]

#: What ``orchestrator sweep run --report`` leaves in the row's run folder: the trials,
#: read back by the driver's observers (registry, notifications).
TRIALS_FILE = "sweep_trials.json"


def write_trials(run_dir: Path, metric: str, goal: str, trials: list[dict]) -> None:
    keep = ("config", "metric", "status", "error", "trial_dir")
    data = {"metric": metric, "goal": goal,
            "trials": [{k: t.get(k) for k in keep} for t in trials]}
    (Path(run_dir) / TRIALS_FILE).write_text(json.dumps(data, default=str), encoding="utf-8")


def read_trials(result) -> dict:
    """``{"metric", "goal", "trials"}`` a sweep attempt left ({} when none)."""
    if result is None or not result.log_path:
        return {}
    try:
        return json.loads((Path(result.log_path).parent / TRIALS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def sweep_command(config: Path, *, gpus: float, cpus: float, storage: Path | str, name: str,
                  address: str, retries: int, max_concurrent: int = 0) -> str:
    """The shell command a sweep row runs (every value quoted)."""
    argv = [sys.executable, "-m", "orchestrator", "sweep", "run", str(config),
            "--gpus-per-trial", f"{gpus:g}", "--cpus-per-trial", f"{cpus:g}",
            "--storage", str(storage), "--name", name, "--address", address,
            "--retries", str(retries), "--max-concurrent", str(max_concurrent), "--report"]
    return shlex.join(argv)


def sweep_metric(config: Path) -> tuple[str, str]:
    """The sweep's metric and goal as the queue says them (``max``/``min``)."""
    from sweeps import load_sweep

    spec = load_sweep(config)
    if spec.metric is None:
        return "", "max"
    return spec.metric.name, "max" if spec.metric.goal == "maximize" else "min"
