"""A runner pool without Ray, for driving the driver's loop in tests/unit.

It implements ``orchestrator.execution.pool.Pool``: it holds runners against a count of
logical GPUs/CPUs like the real pool, and instead of running a job it answers with the
report a test scripted for that row (``outcomes[job_id]``: one per attempt, the last
repeats). An attempt whose outcome is ``HOLD`` runs until the test calls ``finish``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter

from orchestrator.core import AttemptReport
from orchestrator.execution.pool import Ended, Runner, Shape, Started

HOLD = object()


class FakePool:
    node_id = "node-fake"
    address = "127.0.0.1:0"

    def __init__(self, gpus: float = 4, cpus: float = 4, outcomes: dict | None = None):
        self._totals = Counter({"GPU": gpus, "CPU": cpus})
        self.outcomes = outcomes or {}
        self.runners: dict[str, Runner] = {}
        self.launches: list = []           # (LaunchSpec, Shape) in start order
        self._events: queue.Queue = queue.Queue()
        self._held: dict[str, tuple[Runner, object]] = {}
        self._lock = threading.Lock()
        self._n = 0

    # --------------------------------------------------------------- resources
    def totals(self):
        return self._totals

    def nodes(self):
        return [self._totals]

    def _held_now(self) -> Counter:
        out = Counter()
        for r in self.runners.values():
            out.update(r.shape.demand(busy=r.job_id is not None))
        return out

    def acquire(self, shape: Shape, job_id: str, force: bool = False) -> Runner | None:
        held = self._held_now()
        if not all(held[k] + v <= self._totals.get(k, 0) + 1e-9
                   for k, v in shape.demand().items() if v):
            return None
        self._n += 1
        runner = Runner(name=f"fake-{self._n}", handle=None, shape=shape, job_id=job_id)
        self.runners[runner.name] = runner
        return runner

    # ----------------------------------------------------------------- attempts
    def start(self, runner: Runner, launch) -> None:
        runner.job_id, runner.attempt = launch.job_id, launch.attempt
        self.launches.append((launch, runner.shape))
        script = self.outcomes.get(launch.job_id, [0])
        outcome = script[min(launch.attempt - 1, len(script) - 1)] if script else 0
        started = AttemptReport(launch.job_id, launch.attempt, started=time.time(),
                                node="node-fake", log_path=f"{launch.run_dir}/run.log")
        self._events.put(Started(launch.job_id, launch.attempt, started))
        if outcome is HOLD:
            self._held[launch.job_id] = (runner, started)
            return
        self._end(runner, started, outcome)

    def _end(self, runner, started, outcome) -> None:
        fields = outcome if isinstance(outcome, dict) else {"exit_code": outcome}
        report = started.replace(ended=time.time(), **fields)
        self._events.put(("end", runner, report))

    def finish(self, job_id: str, outcome=0) -> None:
        """End a held attempt (from the test's thread)."""
        runner, started = self._held.pop(job_id)
        self._end(runner, started, outcome)

    def stop(self, runner: Runner, job_id: str) -> None:
        if job_id in self._held:
            self.finish(job_id, {"exit_code": 143, "stopped": True})

    def poll(self, timeout: float):
        out = []
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            if isinstance(item, tuple):
                _, runner, report = item
                runner.job_id = None
                out.append(Ended(report.job_id, report.attempt, report))
            else:
                out.append(item)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return out

    def release(self, runner: Runner) -> None:
        runner.job_id = None

    def discard(self, runner: Runner) -> None:
        self.runners.pop(runner.name, None)

    def adopt(self, name, shape, job_id, attempt):
        return None

    def forget(self, name: str) -> None:
        pass

    def reap_idle(self, idle_s: float) -> None:
        for r in [r for r in self.runners.values() if r.job_id is None]:
            self.discard(r)

    def shutdown(self) -> None:
        self.reap_idle(0)
