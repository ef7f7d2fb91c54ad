"""Acting on a queue from outside its driver: stop rows (CLI ``stop``, a TUI's ``s``);
and telling whether a driver would run anything at all (``nothing_to_run``).

With a driver running, the request goes to it (``requests``): its loop applies the stop
to its own rows, so nothing else writes the file meanwhile. With none, this process
reads the queue as a driver would and applies the same core events itself: a row not
started becomes Stopped; a running one (a cluster job whose driver detached) is
stopped through its runner, and its attempt ends Stopped in the file and the record.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from orchestrator.core import AttemptReport, Reattached, RowStatus, can_progress
from orchestrator.driver import requests
from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.config import Config
from orchestrator.store.paths import QueuePaths, read_driver_info
from orchestrator.store.record import Attempt, RunRecord

__all__ = ["stop_rows", "stop_rows_isolated", "stop_job", "NoPool", "nothing_to_run"]

#: Seconds to wait for the driver to answer a request (it answers within a loop turn).
ANSWER_S = 30.0


def stop_rows(paths: QueuePaths, config: Config, ids: list[str] | None = None) -> dict[str, str]:
    """Stop rows of a queue; ``ids=None``: every row not finished. Returns ``{ID: what
    happened}``. Idempotent."""
    rows = {(r.get("ID") or "").strip(): r for _, r in paths.queue_file().read().rows()}
    unknown = [i for i in ids or [] if i not in rows]
    if unknown:
        raise OrchestratorError(f"{paths.csv}: no row with ID {', '.join(unknown)}; IDs: "
                                f"{', '.join(list(rows)[:20])}")
    driver = read_driver_info(paths)
    if driver is not None:
        answer = requests.ask(paths, ids, timeout=ANSWER_S)
        if answer is None:
            raise OrchestratorError(f"the driver of {paths.csv} (pid {driver.get('pid', '?')}) "
                                    f"did not answer within {ANSWER_S:g}s; is it stuck? Its "
                                    f"log: {paths.state_dir}/driver-{paths.name}.log")
        return answer
    return _stop_without_driver(paths, config, ids)


def _stop_without_driver(paths: QueuePaths, config: Config,
                         ids: list[str] | None) -> dict[str, str]:
    from orchestrator.driver.loop import Scheduler
    from orchestrator.observers.tracking import JobTracking

    record = RunRecord(paths.registry)
    tracking = JobTracking(paths.registry, paths.name, paths.csv.parent)
    loop = Scheduler(paths.queue_file(), config, paths.state_dir, record,
                     queue_name=paths.name, local_ray=False, observers=(tracking,),
                     pool=NoPool())
    try:
        loop.load()
        active = {a.job_id: a for a in record.active(paths.name)}
        targets = ids if ids is not None else list(loop.rows)
        running = [i for i in targets if loop.rows[i].status.is_active and i in active]
        for job_id in running:
            attempt = active[job_id]
            loop.apply(job_id, Reattached(attempt.attempt, attempt.wandb_run_id or "",
                                          attempt.gpus or ""))
        outcome = {i: what for i, what in loop.stop_rows(ids).items() if i not in running}
        on_ray, joined = _join_ray(config) if running else (False, False)
        try:
            for job_id in running:
                attempt = active[job_id]
                report = _stop_on_runner(job_id, attempt, config) if on_ray else None
                stopped = RowStatus.STOPPED.label
                outcome[job_id] = stopped if report is not None \
                    else f"{stopped} (no live job found)"
                if report is None:
                    report = AttemptReport(job_id, attempt.attempt, stopped=True,
                                           ended=time.time(), log_path=attempt.log_path
                                           or "")
                loop.ended(job_id, report)
        finally:
            if joined:
                import ray

                ray.shutdown()
        loop.flush()
        return outcome
    finally:
        tracking.close()
        loop.models.close()
        record.close()


def _join_ray(config: Config) -> tuple[bool, bool]:
    """Whether this process can reach the queue's runners, and whether it joined Ray for
    that (then it leaves again). Without a cluster address there is nothing to join: a
    local Ray ended with the driver that started it."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return True, False
    address = config.address or os.environ.get("RAY_ADDRESS")
    if not address:
        return False, False
    from orchestrator.driver.session import connect_ray

    connect_ray(config, address=address)
    return True, True


def _stop_on_runner(job_id: str, attempt: Attempt, config: Config) -> AttemptReport | None:
    """Stop the attempt on its runner and wait for its report (None: no live runner)."""
    import ray

    try:
        handle = ray.get_actor(attempt.runner or "", namespace=config.namespace)
        if not ray.get(handle.stop.remote(job_id), timeout=30):
            return None
        return ray.get(handle.wait.remote(job_id, attempt.attempt,
                                          config.stop_grace + 15), timeout=config.stop_grace + 30)
    except (ValueError, ray.exceptions.RayError):
        return None


def stop_job(job_id: str, runner_name: str, namespace: str) -> bool:
    """Ask the runner of ``job_id`` to stop it (used from another process)."""
    import ray

    try:
        handle = ray.get_actor(runner_name, namespace=namespace)
    except ValueError:
        return False
    try:
        return bool(ray.get(handle.stop.remote(job_id), timeout=30))
    except ray.exceptions.RayError as e:
        raise OrchestratorError(f"could not reach the runner of {job_id}: {e}") from e


class NoPool:
    """The pool of a driver that runs nothing: a stop without a driver, or a queue with
    nothing to run (``nothing_to_run``), where Ray is never started."""

    node_id = address = ""

    def totals(self):
        return {}

    def nodes(self) -> list:
        return []

    def stop(self, runner, job_id) -> None:
        pass

    def acquire(self, shape, job_id, force=False):
        return None

    def poll(self, timeout: float) -> list:
        time.sleep(timeout)
        return []

    def adopt(self, name, shape, job_id, attempt):
        return None

    def release(self, runner) -> None:
        pass

    discard = forget = release

    def reap_idle(self, idle_s: float) -> None:
        pass

    def shutdown(self) -> None:
        pass


def nothing_to_run(paths: QueuePaths, config: Config) -> bool:
    """Whether a driver on this queue would stop before starting anything: no row runs or
    may run (``core.can_progress``, the driver's own test), the run record holds no
    attempt or runner of an earlier driver to re-attach or clean up, and the driver
    does not watch the file. Then ``run`` needs no Ray. Decided by the driver's own
    reading of the file (a loop on a ``NoPool``, its effects not kept)."""
    from orchestrator.driver.loop import Scheduler

    if config.watch:
        return False
    record = RunRecord(paths.registry)
    try:
        if record.active(paths.name) or record.runners(paths.name):
            return False
        class Silent(Scheduler):   # it only looks: the driver that runs says what it finds
            def note(self, message, level=0):
                pass

        loop = Silent(paths.queue_file(), config, paths.state_dir, record,
                      queue_name=paths.name, local_ray=True, pool=NoPool())
        try:
            loop.load()
        finally:
            loop.models.close()
        return not loop.rows.active and not can_progress(loop.rows)
    finally:
        record.close()


def stop_rows_isolated(paths: QueuePaths, config: Config, ids: list[str]) -> dict[str, str]:
    """``stop_rows`` for a process that may not join Ray itself (a full-screen UI has
    replaced stdout, which ``ray.init`` needs): here when a driver answers or Ray is
    already joined, else through ``orchestrator stop`` in a child process."""
    if read_driver_info(paths) is not None or (
            "ray" in sys.modules and sys.modules["ray"].is_initialized()):
        return stop_rows(paths, config, ids)
    env = dict(os.environ)
    if config.address:
        env["RAY_ADDRESS"] = config.address
    argv = [sys.executable, "-m", "orchestrator", "stop", str(paths.csv), *ids,
            "--state-dir", str(paths.state_dir), "--name", paths.name]
    if config.source not in ("defaults", ""):
        argv += ["--config", config.source]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OrchestratorError((done.stderr.strip().splitlines() or ["orchestrator stop "
                                                                      "failed"])[-1])
    outcome = {}
    for line in done.stdout.splitlines():
        job_id, sep, what = line.partition(": ")
        if sep:
            outcome[job_id] = what
    return outcome

