"""Run one row as a queue would (``orchestrator run``), for the overhead benchmarks.

A one-row CSV and an INI with the dashboard off, then ``python -m orchestrator.run
q.csv --no_ui`` in a child process with a private ``RAY_TMPDIR`` (it starts and stops
its own local Ray, which is counted: a user pays it too). Returns the wall time and
the row's metrics file (``runs/<ID>/attempt-1/metrics.jsonl``).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_row"]

ROOT = Path(__file__).resolve().parent.parent


def run_row(work: Path, kind: str, config: Path, *, row_id: str = "bench", workers: int = 1,
            gpus: float = 0, cpus: float = 2, timeout: float = 600) -> tuple[float, Path]:
    work.mkdir(parents=True, exist_ok=True)
    queue = work / f"{row_id}.csv"
    with open(queue, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Kind", "Config", "GPUs", "Workers", "TrainingCommand"])
        writer.writerow([row_id, kind, str(config), f"{gpus:g}", str(workers), ""])
    ini = work / "bench.ini"
    ini.write_text(f"[ray]\ndashboard = false\nnum_cpus = {cpus:g}\n", encoding="utf-8")
    tmp = tempfile.mkdtemp(prefix="bench-row-rt-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0",
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "ORCH_RAY_KEEP_ALIVE": "0"}   # its own Ray, started and stopped: the cold figure
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(queue), "--config",
                           str(ini), "--no_ui"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    metrics = work / "runs" / row_id / "attempt-1" / "metrics.jsonl"
    if done.returncode != 0 or not metrics.exists():
        raise SystemExit(f"the {kind} row failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, metrics
