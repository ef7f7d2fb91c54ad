"""Every queue attempt in the experiment tracker, every finished model in the registry.

``JobTracking`` is an observer: it records what the lifecycle core decided and never
decides anything itself. Rows first seen (a driver starting on Done rows) are not
attempts of this driver: nothing is recorded for them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.core import RowStatus, StatusChanged, registry_word
from orchestrator.store.registry import ExperimentTracker, ModelRegistry

__all__ = ["JobTracking"]

logger = logging.getLogger(__name__)
S = RowStatus


class JobTracking:
    """Observer: an experiment per attempt; a model version per Done attempt with weights;
    an experiment per sub-run an attempt reports (a sweep's trials), linked to it."""

    def __init__(self, registry_path: str | Path, queue: str, base_dir: Path, metric: str = "",
                 goal: str = "max"):
        self.tracker = ExperimentTracker(registry_path)
        self.models = ModelRegistry(registry_path)
        self.queue, self.base_dir, self.metric, self.goal = queue, base_dir, metric, goal
        self._experiments: dict[tuple[str, int], int] = {}

    def close(self) -> None:
        self.tracker.close()
        self.models.close()

    def __call__(self, change: StatusChanged) -> None:
        if change.old is None:
            return
        if change.new is S.QUEUED:
            self._start(change)
        elif change.old.is_active and not change.new.is_active:
            self._end(change)

    def _start(self, change: StatusChanged) -> None:
        spec = change.spec
        exp = self.tracker.start_experiment(
            f"{self.queue}/{change.job_id}", description=spec.name,
            config={"command": spec.command, "kind": spec.kind, "gpus": change.gpus_asked,
                    "cpus": spec.cpus, "pretrained": spec.pretrained_id,
                    **({"notes": spec.notes} if spec.notes else {}),
                    **{k: v for k, v in change.details.items()
                       if k == "pretrained_weights_missing"}},
            model_type=spec.kind, wandb_run_id=change.wandb_run_id, queue=self.queue,
            job_id=change.job_id, attempt=change.attempt)
        self._experiments[(change.job_id, change.attempt)] = exp

    def _experiment(self, change: StatusChanged) -> int | None:
        exp = self._experiments.pop((change.job_id, change.attempt), None)
        if exp is None:  # started by an earlier driver: find it
            found = [e for e in self.tracker.list_experiments(queue=self.queue)
                     if e.job_id == change.job_id and e.attempt == change.attempt]
            exp = found[-1].id if found else None
        return exp

    def _end(self, change: StatusChanged) -> None:
        exp = self._experiment(change)
        if exp is None:
            return
        report = change.report
        metric, goal_ = self._metric(report)
        goal = {metric: goal_} if metric else None
        if report is not None:
            for line in report.history:
                metrics = {k: v for k, v in line.items() if k not in ("time", "step")}
                self.tracker.log_metrics(metrics, step=line.get("step"), experiment_id=exp,
                                         goal=goal)
        best = {metric: report.best_metric} if report is not None and metric \
            and report.best_metric is not None else None
        ended = change.new if change.failure is None else (
            S.STOPPED if change.failure.kind == "stopped" else S.CRASH)
        self.tracker.end_experiment(exp, final_metrics=dict(report.metrics) if report else {},
                                    best_metrics=best, status=registry_word(ended),
                                    notes=change.error,
                                    failure=change.failure.kind.value if change.failure else "")
        if change.new is S.DONE and report is not None and report.weight_file:
            self._register(change, exp, report)
        if change.details.get("trials"):
            self._trials(change, exp)

    def _metric(self, report) -> tuple[str, str]:
        """The row's own metric (a sweep's, a built-in kind's), else the queue's."""
        if report is not None and report.metric:
            return report.metric, report.metric_goal
        return self.metric, self.goal

    def _parent_model(self, spec) -> int | None:
        """The model a row started from: its PretrainedModelId (a row of this queue, or a
        registered model's reference), as the registry holds it now."""
        ref = spec.parent_id
        if not ref:
            return None
        mine = [m for m in self.models.list_models(ref)
                if (m.training_info or {}).get("queue") == self.queue]
        model = mine[-1] if mine else self.models.resolve(ref)
        return model.id if model else None

    def _trials(self, change: StatusChanged, exp: int) -> None:
        """Each sub-run of the attempt (a sweep's trials) becomes an experiment linked
        to the attempt's."""
        metric = change.details.get("trial_metric") or "metric"
        for i, trial in enumerate(change.details["trials"], start=1):
            child = self.tracker.start_experiment(
                f"{self.queue}/{change.job_id}/trial-{i}",
                description=f"trial {i} of {change.job_id}",
                config=trial.get("config") or {}, model_type=f"{change.kind}-trial",
                wandb_run_id=str(trial.get("wandb_run_id") or ""),
                queue=self.queue, job_id=change.job_id, attempt=change.attempt, parent_id=exp,
                started=_when(trial.get("started")))
            value = trial.get("metric")
            final = {metric: value} if isinstance(value, (int, float)) else {}
            done = trial.get("status") == "TERMINATED"
            self.tracker.end_experiment(child, final_metrics=final, best_metrics=final,
                                        status=registry_word(S.DONE if done else S.CRASH),
                                        notes=str(trial.get("error") or "")[:500],
                                        ended=_when(trial.get("ended")))

    def _register(self, change: StatusChanged, exp: int, report) -> None:
        spec = change.spec
        performance = {k: v for k, v in report.metrics.items() if k != "step"
                       and isinstance(v, (int, float)) and not isinstance(v, bool)}
        metric, _ = self._metric(report)
        if metric and report.best_metric is not None:
            performance[metric] = report.best_metric
        duration = (report.ended - report.started) if report.ended and report.started else None
        model = self.models.register_model(
            change.job_id, architecture=spec.kind,
            config={"command": spec.command, "name": spec.name,
                    **({"notes": spec.notes} if spec.notes else {})},
            performance=performance, file_path=report.weight_file, experiment_id=exp,
            training_info={"queue": self.queue, "attempt": change.attempt, "node": report.node,
                           "gpus": report.gpu_ids, "duration_s": duration,
                           "wandb_run_id": change.wandb_run_id},
            parent_id=self._parent_model(spec))
        self.tracker.set_model(exp, model, report.weight_file)
        logger.debug("%s: registered model %s (id %d)", change.job_id, change.job_id, model)


def _when(value) -> float | None:
    """A trial's recorded time (seconds since the epoch), or None when it has none."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None
