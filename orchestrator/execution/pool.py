"""Warm job runners, one pool per resource shape, and the events they send.

A runner holds its shape's resources (GPUs, CPUs, custom resources) for as long
as it lives. After a job it stays idle for ``runner_idle`` seconds, ready for
the next job of the same shape; when a different shape needs the resources, idle
runners are killed first. The pool also keeps the driver's own count of what is
held, so it only asks Ray for runners that fit.

The driver sees the pool through ``Pool``: it acquires a runner, starts an attempt
on it, and ``poll`` hands back what happened (``Started``, ``Ended``, ``Lost``). Ray
is only here; the driver's loop runs as well on a fake pool (``tests/unit``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from orchestrator.core import AttemptReport
from orchestrator.execution.launch import LaunchSpec
from orchestrator.infra.errors import StateUnwritable
from orchestrator.store.record import RunRecord

__all__ = ["Shape", "Runner", "Pool", "RunnerPool", "Started", "Ended", "Lost", "PoolEvent"]

logger = logging.getLogger(__name__)
_EPS = 1e-9
#: "Actor unavailable" answers in a row before a runner counts as lost.
MAX_UNAVAILABLE = 20


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

    @classmethod
    def from_description(cls, described: Mapping) -> Shape:
        return cls(**{**described, **{k: tuple(sorted((described.get(k) or {}).items()))
                                       for k in ("resources", "workers")}})


@dataclass
class Runner:
    name: str
    handle: object
    shape: Shape
    job_id: str | None = None
    attempt: int = 0
    idle_since: float = 0.0
    unavailable: int = 0            # "actor unavailable" answers in a row


@dataclass(frozen=True)
class Started:
    """The attempt's process started (``report`` says where, with which GPUs)."""

    job_id: str
    attempt: int
    report: AttemptReport


@dataclass(frozen=True)
class Ended:
    job_id: str
    attempt: int
    report: AttemptReport


@dataclass(frozen=True)
class Lost:
    """The runner of the attempt is gone (its node died, it was killed)."""

    job_id: str
    attempt: int
    error: str


PoolEvent = Started | Ended | Lost


class Pool(Protocol):
    """What the driver's loop needs of a pool of runners."""

    node_id: str
    address: str

    def totals(self) -> Mapping[str, float]: ...
    def nodes(self) -> list[Mapping[str, float]]: ...
    def acquire(self, shape: Shape, job_id: str, force: bool = False) -> Runner | None: ...
    def start(self, runner: Runner, launch: LaunchSpec) -> None: ...
    def stop(self, runner: Runner, job_id: str) -> None: ...
    def poll(self, timeout: float) -> list[PoolEvent]: ...
    def release(self, runner: Runner) -> None: ...
    def discard(self, runner: Runner) -> None: ...
    def adopt(self, name: str, shape: Shape, job_id: str, attempt: int) -> Runner | None: ...
    def forget(self, name: str) -> None: ...
    def reap_idle(self, idle_s: float) -> None: ...
    def shutdown(self) -> None: ...


class RunnerPool:
    """Creates, reuses and kills the runners of one queue, on Ray."""

    def __init__(self, queue: str, namespace: str, record: RunRecord, token: str):
        import ray

        self.queue, self.namespace, self.record = queue, namespace, record
        self._token = token
        self._counter = itertools.count(1)
        self.runners: dict[str, Runner] = {}
        self._totals: Counter = Counter()
        self._totals_at = 0.0
        self._nodes: list[Counter] = []
        self._nodes_at = 0.0
        # ref -> (runner name, job id, "start" | "done", attempt)
        self._refs: dict[object, tuple[str, str, str, int]] = {}
        self._rewait: list[tuple[float, str]] = []   # (when, runner name)
        context = ray.get_runtime_context()
        self.node_id, self.address = context.get_node_id(), context.gcs_address

    # -------------------------------------------------------------- resources
    def totals(self, max_age: float = 5.0) -> Counter:
        if time.monotonic() - self._totals_at > max_age:
            import ray

            self._totals = Counter(ray.cluster_resources())
            self._totals_at = time.monotonic()
        return self._totals

    def nodes(self, max_age: float = 5.0) -> list[Counter]:
        """Each alive node's resources (what one runner can hold at most)."""
        if time.monotonic() - self._nodes_at > max_age:
            import ray

            self._nodes = [Counter(n.get("Resources") or {}) for n in ray.nodes()
                           if n.get("Alive")]
            self._nodes_at = time.monotonic()
        return self._nodes

    def held(self) -> Counter:
        out: Counter = Counter()
        for runner in self.runners.values():
            out.update(runner.shape.demand(busy=runner.job_id is not None))
        return out

    def _fits(self, shape: Shape, held: Counter) -> bool:
        totals = self.totals()
        return all(held[k] + v <= totals.get(k, 0.0) + _EPS
                   for k, v in shape.demand().items() if v > 0)

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
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from orchestrator.execution.runner import JobRunner

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

    def start(self, runner: Runner, launch: LaunchSpec) -> None:
        """Start ``launch`` on ``runner``; ``poll`` says when it started and ended."""
        runner.job_id, runner.attempt, runner.unavailable = launch.job_id, launch.attempt, 0
        start = runner.handle.start.options(name=f"{self.queue}/{launch.job_id} (start)")
        self._refs[start.remote(launch)] = (runner.name, launch.job_id, "start", launch.attempt)
        self._wait(runner)

    def _wait(self, runner: Runner) -> None:
        # the call that lasts as long as the job: named after its row, so Ray's dashboard
        # and `ray list tasks` show which row runs where (actor names are runner-N)
        wait = runner.handle.wait.options(name=f"{self.queue}/{runner.job_id}")
        ref = wait.remote(runner.job_id, runner.attempt)
        self._refs[ref] = (runner.name, runner.job_id, "done", runner.attempt)

    def stop(self, runner: Runner, job_id: str) -> None:
        runner.handle.stop.remote(job_id)

    def adopt(self, name: str, shape: Shape, job_id: str, attempt: int) -> Runner | None:
        """Take over the live runner ``name`` after a driver restart, if it still runs
        that attempt (its end then comes through ``poll``); None when it does not."""
        import ray

        try:
            handle = ray.get_actor(name, namespace=self.namespace)
            current = ray.get(handle.current.remote(), timeout=15)
        except Exception:  # noqa: BLE001 - gone, dead or unreachable: not live
            return None
        if current is None or (current["job_id"], current["attempt"]) != (job_id, attempt):
            return None
        runner = Runner(name=name, handle=handle, shape=shape, job_id=job_id, attempt=attempt)
        self.runners[name] = runner
        self._wait(runner)
        return runner

    def forget(self, name: str) -> None:
        """Kill a runner this pool did not adopt (a leftover of a driver that died)."""
        import ray

        try:
            ray.kill(ray.get_actor(name, namespace=self.namespace), no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.record.remove_runner(self.queue, name)

    def release(self, runner: Runner) -> None:
        runner.job_id, runner.attempt = None, 0
        runner.idle_since = time.monotonic()

    def discard(self, runner: Runner) -> None:
        """Kill a runner (idempotent)."""
        import ray

        self.runners.pop(runner.name, None)
        try:
            ray.kill(runner.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.record.remove_runner(self.queue, runner.name)
        except StateUnwritable as e:   # the next driver finds it gone and forgets it
            logger.debug("runner %s stays in the record: %s", runner.name, e)

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

    # ----------------------------------------------------------------- events
    def poll(self, timeout: float) -> list[PoolEvent]:
        """What happened to the running attempts, waiting up to ``timeout`` s for it."""
        import ray

        now = time.monotonic()
        for when, name in [w for w in self._rewait if w[0] <= now]:
            self._rewait.remove((when, name))
            runner = self.runners.get(name)
            if runner is not None and runner.job_id is not None:
                self._wait(runner)
        if not self._refs:
            time.sleep(timeout)
            return []
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        events: list[PoolEvent] = []
        # an attempt's "start" before its "done": both may be ready in one batch
        for ref in sorted(ready, key=lambda r: self._refs[r][2] != "start"):
            event = self._answer(ref)
            if event is not None:
                events.append(event)
        return events

    def next_wake(self) -> float | None:
        """Seconds until a runner that did not answer is asked again (None: none)."""
        if not self._rewait:
            return None
        return max(0.0, min(w for w, _ in self._rewait) - time.monotonic())

    def _answer(self, ref) -> PoolEvent | None:
        import ray

        name, job_id, what, attempt = self._refs.pop(ref)
        runner = self.runners.get(name)
        if runner is None or (runner.job_id, runner.attempt) != (job_id, attempt):
            return None   # an answer about an attempt this pool let go of
        try:
            report: AttemptReport = ray.get(ref)
        except ray.exceptions.ActorUnavailableError as e:
            # maybe a blip: ask again; a runner that is really gone answers ActorDiedError
            if what == "done" and runner.unavailable < MAX_UNAVAILABLE:
                runner.unavailable += 1
                self._rewait.append((time.monotonic() + min(0.1 * runner.unavailable, 1.0),
                                     name))
                return None
            return self._lost(runner, e) if what == "done" else None
        except ray.exceptions.RayError as e:  # the runner died (node lost, killed)
            return self._lost(runner, e) if what == "done" else None
        runner.unavailable = 0
        if not _about(report, job_id, attempt):
            # not an answer about this attempt (a runner from an older version, a reply
            # that raced the runner's reset): no answer yet, so the job's end is asked again
            logger.debug("runner %s answered %s about %s/%s with %r: asking again", name,
                         what, job_id, attempt, report)
            if what == "done":
                self._wait(runner)
            return None
        if what == "start":
            return None if report.error else Started(job_id, attempt, report)
        self.release(runner)
        return Ended(job_id, attempt, report)

    def _lost(self, runner: Runner, error: Exception) -> Lost:
        job_id, attempt = runner.job_id, runner.attempt
        self.discard(runner)
        text = str(error).strip()
        return Lost(job_id, attempt, text.splitlines()[0] if text else type(error).__name__)


def _about(report: object, job_id: str, attempt: int) -> bool:
    """Whether ``report`` is a whole report of that attempt (events carry only those)."""
    return isinstance(report, AttemptReport) and \
        (report.job_id, report.attempt) == (job_id, attempt)
