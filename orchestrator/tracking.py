"""Every queue job in the experiment tracker, every finished model in the registry.

``JobTracking`` is a scheduler observer: it records what the scheduler decided
and never decides anything itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.jobs import JobStatus
from orchestrator.registry import ExperimentTracker, ModelRegistry
from trainers.sweep import read_trials

__all__ = ["JobTracking"]

logger = logging.getLogger(__name__)
S = JobStatus
_END = {S.DONE: "completed", S.CRASH: "failed", S.STOPPED: "stopped", S.PENDING: "failed"}


class JobTracking:
    """Observer: an experiment per attempt; a model version per Done attempt with weights."""

    def __init__(self, registry_path: str | Path, queue: str, base_dir: Path, metric: str = "",
                 goal: str = "max"):
        self.tracker = ExperimentTracker(registry_path)
        self.models = ModelRegistry(registry_path)
        self.queue, self.base_dir, self.metric, self.goal = queue, base_dir, metric, goal
        self._experiments: dict[tuple[str, int], int] = {}

    def close(self) -> None:
        self.tracker.close()
        self.models.close()

    def __call__(self, job, old: JobStatus, new: JobStatus, cells: dict) -> None:
        if new == S.QUEUED:
            self._start(job)
        elif old.active and new in _END:
            self._end(job, new, cells)

    def _start(self, job) -> None:
        spec = job.spec
        exp = self.tracker.start_experiment(
            f"{self.queue}/{job.id}", description=spec.name,
            config={"command": spec.command, "kind": spec.kind, "gpus": spec.gpus,
                    "cpus": spec.cpus, "pretrained": spec.pretrained_id},
            model_type=spec.kind, wandb_run_id=job.wandb_run_id, queue=self.queue,
            job_id=job.id, attempt=job.attempt)
        self._experiments[(job.id, job.attempt)] = exp

    def _experiment(self, job) -> int | None:
        exp = self._experiments.pop((job.id, job.attempt), None)
        if exp is None:  # started by an earlier driver: find it
            found = [e for e in self.tracker.list_experiments(queue=self.queue)
                     if e["job_id"] == job.id and e["attempt"] == job.attempt]
            exp = found[-1]["id"] if found else None
        return exp

    def _end(self, job, new: JobStatus, cells: dict) -> None:
        exp = self._experiment(job)
        if exp is None:
            return
        result = job.result
        metric, goal_ = self._metric(result)
        goal = {metric: goal_} if metric else None
        if result is not None:
            for line in result.history:
                metrics = {k: v for k, v in line.items() if k not in ("time", "step")}
                self.tracker.log_metrics(metrics, step=line.get("step"), experiment_id=exp,
                                         goal=goal)
        best = {metric: result.best_metric} if result is not None and metric \
            and result.best_metric is not None else None
        self.tracker.end_experiment(exp, final_metrics=result.metrics if result else {},
                                    best_metrics=best, status=_END[new],
                                    notes=cells.get("Error", ""))
        if new == S.DONE and result is not None and result.weight_file:
            self._register(job, exp, result)
        if result is not None and job.spec.kind == "sweep":
            self._trials(job, exp, result)

    def _metric(self, result) -> tuple[str, str]:
        """The row's own metric (a sweep's, a built-in kind's), else the queue's."""
        if result is not None and getattr(result, "metric", ""):
            return result.metric, result.metric_goal
        return self.metric, self.goal

    def _trials(self, job, exp: int, result) -> None:
        """Each trial of a sweep row becomes an experiment linked to the row's."""
        data = read_trials(result)
        metric = data.get("metric") or "metric"
        for i, trial in enumerate(data.get("trials", []), start=1):
            child = self.tracker.start_experiment(
                f"{self.queue}/{job.id}/trial-{i}", description=f"trial {i} of sweep {job.id}",
                config=trial.get("config") or {}, model_type="sweep-trial", queue=self.queue,
                job_id=job.id, attempt=job.attempt, parent_id=exp)
            value = trial.get("metric")
            final = {metric: value} if isinstance(value, (int, float)) else {}
            self.tracker.end_experiment(child, final_metrics=final, best_metrics=final,
                                        status="completed" if trial.get("status") ==
                                        "TERMINATED" else "failed",
                                        notes=str(trial.get("error") or "")[:500])

    def _register(self, job, exp: int, result) -> None:
        spec = job.spec
        performance = {k: v for k, v in result.metrics.items() if k != "step"
                       and isinstance(v, (int, float)) and not isinstance(v, bool)}
        metric, _ = self._metric(result)
        if metric and result.best_metric is not None:
            performance[metric] = result.best_metric
        duration = (result.ended - result.started) if result.ended and result.started else None
        model = self.models.register_model(
            job.id, architecture=spec.kind, config={"command": spec.command, "name": spec.name},
            performance=performance, file_path=result.weight_file, experiment_id=exp,
            training_info={"queue": self.queue, "attempt": job.attempt, "node": result.node,
                           "gpus": result.gpu_ids, "duration_s": duration,
                           "wandb_run_id": job.wandb_run_id})
        self.tracker.set_model(exp, model, result.weight_file)
        logger.debug("%s: registered model %s (id %d)", job.id, job.id, model)
