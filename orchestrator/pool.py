"""Warm job runners, one pool per resource shape.

A runner holds its shape's resources (GPUs, CPUs, custom resources) for as long
as it lives. After a job it stays idle for ``runner_idle`` seconds, ready for
the next job of the same shape; when a different shape needs the resources, idle
runners are killed first. The pool also keeps the driver's own count of what is
held, so it only asks Ray for runners that fit.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.record import RunRecord
from orchestrator.runner import JobRunner

__all__ = ["Shape", "Runner", "RunnerPool"]

logger = logging.getLogger(__name__)
_EPS = 1e-9


@dataclass(frozen=True)
class Shape:
    """What one runner asks Ray for."""

    gpus: float = 0.0
    cpus: float = 0.0
    resources: tuple[tuple[str, float], ...] = ()
    node_id: str | None = None      # pinned GPU modes stay on the driver's node
    #: What the job's own Ray workers ask for (a TorchTrainer's): counted as held while
    #: the job runs, so the pool neither double-books it nor keeps idle runners on it,
    #: but not asked for by the runner itself.
    workers: tuple[tuple[str, float], ...] = ()

    def demand(self, busy: bool = True) -> Counter:
        """What it holds: the runner's own resources, and its job's workers' when busy."""
        out = Counter({"GPU": self.gpus, "CPU": self.cpus})
        out.update(dict(self.resources))
        if busy:
            out.update(dict(self.workers))
        return out

    def describe(self) -> dict:
        return {"gpus": self.gpus, "cpus": self.cpus, "resources": dict(self.resources),
                "node_id": self.node_id, "workers": dict(self.workers)}


@dataclass
class Runner:
    name: str
    handle: object
    shape: Shape
    job_id: str | None = None
    idle_since: float = 0.0


class RunnerPool:
    """Creates, reuses and kills the runners of one queue."""

    def __init__(self, queue: str, namespace: str, record: RunRecord, token: str):
        self.queue, self.namespace, self.record = queue, namespace, record
        self._token = token
        self._counter = itertools.count(1)
        self.runners: dict[str, Runner] = {}
        self._totals: Counter = Counter()
        self._totals_at = 0.0

    # -------------------------------------------------------------- resources
    def totals(self, max_age: float = 5.0) -> Counter:
        if time.monotonic() - self._totals_at > max_age:
            self._totals = Counter(ray.cluster_resources())
            self._totals_at = time.monotonic()
        return self._totals

    def held(self) -> Counter:
        out: Counter = Counter()
        for runner in self.runners.values():
            out.update(runner.shape.demand(busy=runner.job_id is not None))
        return out

    def _fits(self, shape: Shape, held: Counter) -> bool:
        totals = self.totals()
        return all(held[k] + v <= totals.get(k, 0.0) + _EPS
                   for k, v in shape.demand().items() if v > 0)

    def can_ever_fit(self, shape: Shape) -> bool:
        totals = self.totals()
        return all(v <= totals.get(k, 0.0) + _EPS for k, v in shape.demand().items() if v > 0)

    # ---------------------------------------------------------------- runners
    def acquire(self, shape: Shape, job_id: str, force: bool = False) -> Runner | None:
        """A runner for ``job_id``: a warm idle one of that shape, else a new one if the
        resources are free (killing idle runners of other shapes if that frees them).
        ``force``: create it anyway; Ray queues it until a node that fits joins."""
        for runner in self.runners.values():
            if runner.job_id is None and runner.shape == shape:
                runner.job_id = job_id
                return runner
        if not force and not self._fits(shape, self.held()):
            idle = sorted((r for r in self.runners.values() if r.job_id is None),
                          key=lambda r: r.idle_since)
            held = self.held()
            victims = []
            for runner in idle:
                if self._fits(shape, held):
                    break
                held.subtract(runner.shape.demand(busy=False))
                victims.append(runner)
            if not self._fits(shape, held):
                return None
            for runner in victims:
                self.discard(runner)
        return self._create(shape, job_id)

    def _create(self, shape: Shape, job_id: str) -> Runner:
        name = f"{self.queue}/runner-{self._token}-{next(self._counter)}"
        options = dict(name=name, namespace=self.namespace, lifetime="detached",
                       num_gpus=shape.gpus, num_cpus=shape.cpus,
                       resources=dict(shape.resources))
        if shape.node_id:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(shape.node_id,
                                                                            soft=False)
        handle = JobRunner.options(**options).remote(name)
        runner = Runner(name=name, handle=handle, shape=shape, job_id=job_id)
        self.runners[name] = runner
        self.record.add_runner(self.queue, name, shape.describe())
        logger.debug("new runner %s for %s (%s)", name, job_id, shape)
        return runner

    def adopt(self, name: str, handle, shape: Shape, job_id: str) -> Runner:
        """Take over a live runner found after a driver restart."""
        runner = Runner(name=name, handle=handle, shape=shape, job_id=job_id)
        self.runners[name] = runner
        return runner

    def release(self, runner: Runner) -> None:
        runner.job_id = None
        runner.idle_since = time.monotonic()

    def discard(self, runner: Runner) -> None:
        """Kill a runner (idempotent)."""
        self.runners.pop(runner.name, None)
        self.record.remove_runner(self.queue, runner.name)
        try:
            ray.kill(runner.handle, no_restart=True)
        except Exception:  # already gone
            pass

    def reap_idle(self, idle_s: float) -> None:
        now = time.monotonic()
        for runner in list(self.runners.values()):
            if runner.job_id is None and now - runner.idle_since >= idle_s:
                self.discard(runner)

    def shutdown(self) -> None:
        """Kill the idle runners; busy ones are detached and keep their jobs."""
        for runner in list(self.runners.values()):
            if runner.job_id is None:
                self.discard(runner)
