"""Scenario run in its own process: a ddp row's two Ray Train workers run on two nodes
of a cluster started with ``ray start`` (as on real machines); one node is killed
mid-run and another joins. Ray Train restarts the worker group, which resumes from the
last checkpoint, inside the same attempt of the row.

(``ray.cluster_utils.Cluster`` cannot host this: there Ray Train's controller actor is
cancelled as it is scheduled — seen with one node too — while the same job against
``ray start --head`` runs. So the nodes here are ``ray start`` processes on free ports,
in a private temp dir, killed by process tree at the end — never ``ray stop``.)

Prints one JSON line with what happened. Used by test_node_loss.py.
"""

import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.helpers import read_rows, wait_for, write_csv
from tests.notify_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def ports(*names) -> list[str]:
    return [str(x) for name in names for x in (f"--{name}", free_port())]


def start_node(env: dict, *args: str) -> str:
    """Start a node; returns its node-manager port (its raylet's mark)."""
    nm = str(free_port())
    named = ports("object-manager-port", "dashboard-agent-listen-port",
                  "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")
    taken = {int(nm), *(int(x) for x in named[1::2])}
    low = next(base for base in range(20000 + random.randrange(200) * 100, 65000, 100)
               if not taken & set(range(base, base + 61)))
    done = subprocess.run(
        [str(RAY), "start", "--node-manager-port", nm, "--min-worker-port", str(low),
         "--max-worker-port", str(low + 60), "--disable-usage-stats", *named, *args],
        env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return nm


def kill_node(nm_port: str) -> None:
    """SIGKILL a node's raylet and everything under it (its workers): a machine lost."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "raylet" in cmd and f"--node_manager_port={nm_port}" in cmd:
            for p in [*proc.children(recursive=True), proc]:
                try:
                    p.kill()
                except psutil.Error:
                    pass


def kill_all(tmp: str) -> None:
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(tmp in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except psutil.Error:
            pass


def steps(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return [x["step"] for x in lines if "step" in x]


def main(workdir: str) -> None:
    work = Path(workdir)
    tmp = tempfile.mkdtemp(prefix="c", dir=os.environ["RAY_TMPDIR"])  # ours alone
    # a token of our own: `ray start --head` in token mode never makes one, and the
    # scenario must not depend on (or write) the user's ~/.ray/auth_token
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_TMPDIR": tmp}
    env.pop("RAY_ADDRESS", None)
    gcs = free_port()
    try:
        # the head takes the driver and the row's own job (Resources=head), not the workers
        start_node(env, "--head", "--port", str(gcs), "--num-cpus", "0", "--num-gpus", "0",
                   "--resources", '{"head": 1}', "--temp-dir", f"{tmp}/ray",
                   "--include-dashboard", "false",
                   *ports("ray-client-server-port"))
        address = f"127.0.0.1:{gcs}"
        start_node(env, "--address", address, "--num-cpus", "1", "--num-gpus", "0")
        doomed = start_node(env, "--address", address, "--num-cpus", "1", "--num-gpus", "0")
        (work / "ddp.yaml").write_text(
            "entry: ddp_dummy:DummyTrainer\nbuild: ddp_dummy:build\n"
            "params: {lr: 0.01, samples: 16000, batch_size: 32, t_max: 8}\nepochs: 8\n"
            "checkpoint: {num_to_keep: 2}\nmax_failures: 2\n"
            f"python_path: [{json.dumps(str(ROOT / 'examples'))}]\n")
        csv = write_csv(work / "q.csv", ["ID", "Kind", "Config", "GPUs", "CPUs", "Workers",
                                         "Resources", "TrainingCommand"],
                        [["ddp", "ddp", "ddp.yaml", "0", "1", "2", "head=0.01", ""]])
        (work / "m.ini").write_text("[ray]\ndashboard = false\n[general]\ncheck_interval = 1\n")
        driver = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.run", str(csv), "--config", str(work / "m.ini"),
             "--address", address, "--no_ui"], env=env, cwd=ROOT,
            stdout=open(work / "driver.log", "w"), stderr=subprocess.STDOUT)
        metrics = work / "runs" / "ddp" / "attempt-1" / "metrics.jsonl"
        wait_for(lambda: len(steps(metrics)) >= 2 or driver.poll() is not None, timeout=240,
                 what="two epochs reported")
        before = steps(metrics)
        start_node(env, "--address", address, "--num-cpus", "1", "--num-gpus", "0")
        t0 = time.monotonic()
        kill_node(doomed)
        code = driver.wait(timeout=400)
        row = read_rows(csv)["ddp"]
        log = (work / "runs" / "ddp" / "attempt-1" / "run.log")
        print(json.dumps({
            "code": code, "row": {k: row.get(k, "") for k in
                                  ("TrainingCheck", "Attempts", "Error", "BestMetric",
                                   "WeightFile")},
            "steps_before": before, "steps_after": steps(metrics)[len(before):],
            "worker_group_retried": "[FailurePolicy] RETRY" in (log.read_text() if log.exists()
                                                                else ""),
            "finished_after_s": round(time.monotonic() - t0, 1)}))
    finally:
        kill_all(tmp)


if __name__ == "__main__":
    main(sys.argv[1])
