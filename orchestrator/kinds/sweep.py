"""Kind ``sweep``: the row's ``Config`` is a W&B sweep file, run on Ray Tune.

The row's own runner holds no resources; it runs ``orchestrator sweep run`` as the
job, which joins the same Ray cluster and gives each trial the row's ``GPUs``
(and ``CPUs``, default 1). The best metric, config and weights come back as the
row's metrics, so ``BestMetric``, ``WeightFile`` and ``PretrainedModelId`` chaining
work as for any row; the trials come back as the ended attempt's details.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from orchestrator.core import AttemptReport, JobSpec
from orchestrator.kinds.base import Ended, Holds, Kind, KindError, LaunchContext, require_config

__all__ = ["SweepKind", "KIND", "write_trials", "read_trials", "TRIALS_FILE"]

#: What ``orchestrator sweep run --report`` leaves in the row's run folder: the trials.
TRIALS_FILE = "sweep_trials.json"


class SweepKind(Kind):
    name = "sweep"
    holds = Holds.TRIALS
    uri_aware = True          # Tune's run and each trial's folder live at the storage URI
    storage_name = "tune"

    def check(self, spec: JobSpec, *, check_paths: bool = True) -> None:
        from sweeps import SweepError, load_sweep

        path = require_config(spec, "sweep file", "put the W&B sweep YAML's path in Config")
        try:
            sweep = load_sweep(path)
        except SweepError as e:
            first = "; ".join(f"{i.where}: {i.problem}" for i in e.issues[:3])
            more = f" (+{len(e.issues) - 3} more)" if len(e.issues) > 3 else ""
            raise KindError("Config", spec.config_text,
                            f"the sweep file cannot run: {first}{more}",
                            f"run `orchestrator sweep check {spec.config_text}`") from None
        if sweep.needs_program and not spec.command.strip():
            raise KindError("TrainingCommand", spec.command,
                            f"the sweep file {spec.config_text} has no program: and the row "
                            "names none", "write what runs one trial in TrainingCommand "
                            "(e.g. `python train.py`), or add program: to the sweep file")

    def metric(self, spec: JobSpec, default: str, goal: str) -> tuple[str, str]:
        """The sweep's metric and goal as the queue says them (``max``/``min``)."""
        from sweeps import load_sweep

        sweep = load_sweep(spec.config_path)
        if sweep.metric is None:
            return "", "max"
        return sweep.metric.name, sweep.metric.mode

    def command(self, spec: JobSpec, ctx: LaunchContext) -> str:
        argv = [sys.executable, "-m", "orchestrator", "sweep", "run", str(spec.config_path),
                "--gpus-per-trial", f"{ctx.gpus:g}", "--cpus-per-trial", f"{ctx.cpus:g}",
                "--storage", str(ctx.storage), "--name", spec.id, "--address", ctx.address,
                "--retries", str(spec.retries or 1), "--max-concurrent",
                str(ctx.max_concurrent_trials), "--report"]
        if spec.command.strip():   # the row's program, run from the queue's folder
            argv += ["--program", spec.command.strip(), "--workdir", "."]
        return shlex.join(argv)

    def ended(self, spec: JobSpec, report: AttemptReport) -> Ended:
        cells = ()
        best = report.metrics.get("best_config")
        if report.ok and isinstance(best, dict):
            cells = (("BestConfig", json.dumps(best, ensure_ascii=False, separators=(",", ":"))),)
        data = read_trials(report.log_path)
        details = (("trials", tuple(data.get("trials") or ())),
                   ("trial_metric", data.get("metric") or ""),
                   ("trial_goal", data.get("goal") or "")) if data else ()
        return Ended(cells, details)


KIND = SweepKind()


def write_trials(run_dir: Path, metric: str, goal: str, trials: list[dict]) -> None:
    keep = ("config", "metric", "status", "error", "trial_dir", "started", "ended",
            "wandb_run_id")
    data = {"metric": metric, "goal": goal,
            "trials": [{k: t.get(k) for k in keep} for t in trials]}
    (Path(run_dir) / TRIALS_FILE).write_text(json.dumps(data, default=str), encoding="utf-8")


def read_trials(log_path: str) -> dict:
    """``{"metric", "goal", "trials"}`` a sweep attempt left beside its log ({} when none)."""
    if not log_path:
        return {}
    try:
        return json.loads((Path(log_path).parent / TRIALS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
