"""Start-up: from typing the command to the first job's first line.

One job (``echo $(date +%s.%N) > start``) through:

* task-spooler (``tsp``, its own socket: the server starts with the first job);
* ``orchestrator run`` with a Ray of its own (``ORCH_RAY_KEEP_ALIVE=0``): cold;
* ``orchestrator run`` the first time with the kept local Ray (a fresh state folder: it
  starts one), beside ``ray start --head`` alone (Ray's own start);
* ``orchestrator run`` again: it joins the kept Ray.

Targets (issue 27): the second run's first job <= 1.5 s after the command; a first-ever
run <= Ray's own start + 0.5 s. Prints figures, asserts nothing; JSON goes to
bench/results/startup.json. The kept Ray is stopped at the end (never ``ray stop``).

    .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "startup.json"
sys.path.insert(0, str(ROOT / "bench"))
from dispatch import job_command  # noqa: E402

from orchestrator.infra.raycluster import end_processes, processes_naming  # noqa: E402

TARGET_SECOND_S, TARGET_FIRST_OVER_RAY_S = 1.5, 0.5


def first_line_after(out: Path, t0: float, timeout: float = 120) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return float((out / "j000.start").read_text().strip()) - t0
        except (OSError, ValueError):
            time.sleep(0.005)
    return None


def orchestrator(work: Path, env: dict) -> dict:
    """Command → first job line, and the command's whole wall time."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    queue = work / "queue.csv"
    with open(queue, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["ID", "TrainingCommand", "GPUs"],
                                 ["j000", job_command(out, "j000", 0), "0"]])
    ini = work / "bench.ini"
    ini.write_text("[ray]\ndashboard = false\nnum_cpus = 2\n", encoding="utf-8")
    t0 = time.time()
    done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(queue), "--config",
                           str(ini), "--no_ui"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return {"first_job_s": first_line_after(out, t0, 1), "wall_s": wall}


def task_spooler(work: Path) -> dict | None:
    tsp = shutil.which("tsp")
    if tsp is None:
        print("task-spooler (tsp) is not installed: skipped (make bench-peers installs it)")
        return None
    out = work / "tsp-out"
    out.mkdir(parents=True)
    env = dict(os.environ, TS_SOCKET=str(work / "tsp.socket"), TS_SAVELIST="",
               TS_ONFINISH="", TMPDIR=str(work))
    t0 = time.time()
    subprocess.run([tsp, "bash", "-c", job_command(out, "j000", 0)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    first = first_line_after(out, t0)
    subprocess.run([tsp, "-K"], env=env, capture_output=True)
    return {"first_job_s": first, "wall_s": None}


def ray_start_alone(work: Path) -> float:
    """``ray start --head`` on its own (what any kept Ray costs once), then stopped."""
    temp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    t0 = time.time()
    subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", "0",
                    "--temp-dir", str(temp), "--num-cpus", "2", "--include-dashboard", "false",
                    "--disable-usage-stats"], capture_output=True, timeout=180,
                   env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    took = time.time() - t0
    end_processes(processes_naming(str(temp)), grace=1)
    shutil.rmtree(temp, ignore_errors=True)
    return took


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-start-"))
    state = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    base = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_TMPDIR": tempfile.mkdtemp(prefix="bench-start-rt-", dir="/tmp")}
    base.pop("RAY_ADDRESS", None)
    kept_env = {**base, "XDG_STATE_HOME": str(state), "ORCH_RAY_KEEP_ALIVE": "120"}
    results: dict = {}
    try:
        results["task-spooler"] = task_spooler(work / "tsp")
        results["ray start alone"] = {"first_job_s": None, "wall_s": ray_start_alone(work)}
        results["orchestrator, own Ray"] = orchestrator(work / "own", {
            **base, "ORCH_RAY_KEEP_ALIVE": "0"})
        results["orchestrator, first (starts kept Ray)"] = orchestrator(work / "k1", kept_env)
        results["orchestrator, second (joins it)"] = orchestrator(work / "k2", kept_env)
        results["orchestrator, third (joins it)"] = orchestrator(work / "k3", kept_env)
    finally:
        subprocess.run([sys.executable, "-m", "orchestrator", "ray", "stop"], env=kept_env,
                       capture_output=True, timeout=60)
        end_processes(processes_naming(str(state)), grace=1)
        shutil.rmtree(state, ignore_errors=True)
    print(f"{'':40} {'first job (s)':>14} {'command wall (s)':>17}")
    for name, res in results.items():
        if res is None:
            continue
        first = f"{res['first_job_s']:.3f}" if res["first_job_s"] is not None else "-"
        wall = f"{res['wall_s']:.2f}" if res["wall_s"] is not None else "-"
        print(f"{name:40} {first:>14} {wall:>17}")
    second = results["orchestrator, second (joins it)"]["first_job_s"]
    first = results["orchestrator, first (starts kept Ray)"]["first_job_s"]
    ray_alone = results["ray start alone"]["wall_s"]
    tsp = (results.get("task-spooler") or {}).get("first_job_s")
    if tsp:
        print(f"  second run / task-spooler: {second / tsp:.0f}x")
    print(f"targets: second run's first job <= {TARGET_SECOND_S} s: {second:.2f} s "
          f"{'PASS' if second <= TARGET_SECOND_S else 'MISS'}; first-ever run <= Ray's own "
          f"start + {TARGET_FIRST_OVER_RAY_S} s: {first:.2f} vs {ray_alone:.2f} + "
          f"{TARGET_FIRST_OVER_RAY_S} "
          f"{'PASS' if first <= ray_alone + TARGET_FIRST_OVER_RAY_S else 'MISS'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "results": results}, indent=1), encoding="utf-8")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
