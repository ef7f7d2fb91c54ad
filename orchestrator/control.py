"""Acting on a queue from outside its driver: stop rows (CLI ``stop``, the TUI's ``s``)."""

from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.config import Config
from orchestrator.exceptions import OrchestratorError
from orchestrator.jobs import JobStatus
from orchestrator.queue import QueueFile
from orchestrator.record import RunRecord
from orchestrator.session import QueuePaths, connect_ray, read_driver_info

__all__ = ["stop_rows", "stop_rows_isolated"]


def stop_rows(paths: QueuePaths, config: Config, ids: list[str] | None = None) -> dict[str, str]:
    """Stop rows of a queue; ``ids=None``: every row not finished. Returns ``{ID: what
    happened}``. Rows not started become Stopped in the CSV; running ones get SIGTERM
    through their runner (the driver then writes Stopped). Idempotent."""
    queue = QueueFile(paths.csv)
    rows = {(r.get("ID") or "").strip(): r for _, r in queue.read().rows()}
    unknown = [i for i in ids or [] if i not in rows]
    if unknown:
        raise OrchestratorError(f"{paths.csv}: no row with ID {', '.join(unknown)}; IDs: "
                                f"{', '.join(list(rows)[:20])}")
    outcome: dict[str, str] = {}
    running, idle = [], []
    for job_id in ids if ids is not None else list(rows):
        status = JobStatus.parse(rows[job_id].get("TrainingCheck", ""))
        if status.active:
            running.append(job_id)
        elif status in (JobStatus.PENDING, JobStatus.BLOCKED):
            idle.append(job_id)
        elif ids is not None:
            outcome[job_id] = f"already {status.value or 'finished'}"
    if idle:
        queue.update({i: {"TrainingCheck": JobStatus.STOPPED.value,
                          "Error": "stopped on request before it started"} for i in idle})
        outcome.update({i: "Stopped (had not started)" for i in idle})
    if running:
        outcome.update(_stop_running(paths, config, queue, running))
    return outcome


def _stop_running(paths: QueuePaths, config: Config, queue: QueueFile,
                  running: list[str]) -> dict[str, str]:
    driver = read_driver_info(paths)
    address = (driver or {}).get("address") or config.address or os.environ.get("RAY_ADDRESS")
    record = RunRecord(paths.registry) if paths.registry.exists() else None
    already = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    joined = False
    if not already and address:
        connect_ray(config, address=address)  # sets token auth up before ray loads
        joined = True
    import ray

    from orchestrator.scheduler import stop_job

    outcome = {}
    try:
        for job_id in running:
            attempt = record.latest(paths.name, job_id) if record else None
            runner = (attempt or {}).get("runner", "")
            ok = ray.is_initialized() and bool(runner) and stop_job(job_id, runner,
                                                                     config.namespace)
            if ok:
                outcome[job_id] = "stopping (SIGTERM, then SIGKILL after the grace period)"
            elif driver is None:  # nobody runs it: say so in the file
                queue.update({job_id: {"TrainingCheck": JobStatus.STOPPED.value,
                                       "Error": "stopped on request (no live job found)"}})
                outcome[job_id] = "Stopped (no live job found)"
            else:
                outcome[job_id] = "no running job found"
    finally:
        if record is not None:
            record.close()
        if joined:
            ray.shutdown()
    return outcome


def stop_rows_isolated(paths: QueuePaths, config: Config, ids: list[str]) -> dict[str, str]:
    """``stop_rows`` for a process that may not join Ray itself (a full-screen UI has
    replaced stdout, which ``ray.init`` needs): in this process when it is already on Ray
    (the driver), else through ``orchestrator stop`` in a child process."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
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
