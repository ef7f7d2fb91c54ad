"""Recovery times (printed, not asserted): how long until lost work runs again.

1. node loss: a node is removed abruptly under two running rows (ray.cluster_utils);
   time from the removal until both rows are re-queued (tests/cluster/node_loss.py).
2. driver SIGKILL: the driver dies mid-queue with its local Ray; time from the rerun's
   start until every row is Done again, and how many rows ran twice.
3. ddp node loss: one of the two nodes under a Kind=ddp row's workers is killed (ray start
   nodes); time from the kill until the row is Done, with the worker group restarted from
   its last checkpoint inside the same attempt (tests/cluster/ddp_node_loss.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import probe, probe_records, read_rows, wait_for, write_csv  # noqa: E402


def env() -> dict:
    out = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="bench-rec-", dir="/tmp"),
           "ORCH_RAY_KEEP_ALIVE": "0"}   # a Ray that dies with its driver, as measured
    out.pop("RAY_ADDRESS", None)
    return out


def node_loss() -> dict:
    with tempfile.TemporaryDirectory() as work:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "tests.cluster.node_loss", work], cwd=ROOT,
                              env=env(), capture_output=True, text=True, timeout=300)
        if done.returncode:
            return {"error": done.stderr[-500:]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return {"requeued_after_s": result["requeued_after_s"],
                "scenario_wall_s": round(time.monotonic() - t0, 1),
                "final": sorted(r["TrainingCheck"] for r in result["rows"].values())}


def ddp_node_loss() -> dict:
    with tempfile.TemporaryDirectory() as work:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "tests.cluster.ddp_node_loss", work],
                              cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
        if done.returncode:
            return {"error": done.stderr[-500:]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return {"kill_to_done_s": result["finished_after_s"],
                "scenario_wall_s": round(time.monotonic() - t0, 1),
                "status": result["row"]["TrainingCheck"], "attempts": result["row"]["Attempts"],
                "epochs_after_kill": result["steps_after"]}


def driver_kill() -> dict:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "m.ini").write_text("[ray]\ndashboard = false\n")
        out = work / "out"
        csv = write_csv(work / "q.csv", ["ID", "TrainingCommand", "GPUs"],
                        [[f"r{i}", probe(f"r{i}", out, "--sleep", "4"), "0"] for i in range(4)])
        cmd = [sys.executable, "-m", "orchestrator.run", str(csv), "--config",
               str(work / "m.ini"), "--no_ui", "--max_training_process", "2"]
        e = env()
        driver = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: sum(r.get("TrainingCheck") == "Training"
                             for r in read_rows(csv).values()) == 2, timeout=60)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        time.sleep(3)  # the orphaned jobs notice their owner is gone
        t0 = time.monotonic()
        again = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)
        total = time.monotonic() - t0
        records = probe_records(out)
        finished = [r["name"] for r in records if "end" in r]
        return {"rerun_to_all_done_s": round(total, 1), "exit": again.returncode,
                "rows_done": sum(r["TrainingCheck"] == "Done" for r in read_rows(csv).values()),
                "attempts_started": len(records), "rows_finished_twice":
                len(finished) - len(set(finished))}


if __name__ == "__main__":
    print("node loss:  ", json.dumps(node_loss()))
    print("driver kill:", json.dumps(driver_kill()))
    print("ddp node loss:", json.dumps(ddp_node_loss()))
