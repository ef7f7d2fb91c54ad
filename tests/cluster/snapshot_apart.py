"""Scenario in its own process: ``[snapshot] mode = run`` on two nodes that share no disk.

The second node is a ``ray start`` in a mount namespace of its own, where the queue's
folder (the git checkout, with the state dir in it) is an empty tmpfs: its job fetches the
row's snapshot from the storage URI (a real local S3 server) and rebuilds the code from
the commit's files the driver copied there, with the local change and the untracked file
on top. An edit saved while the row waited never reaches it. Prints one JSON line.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import ray
from ray.cluster_utils import Cluster

from tests.helpers import QueueRun, git, git_repo, read_rows, wait_for, write_csv
from tests.s3_server import S3Server

TRAIN = """\
import pathlib, sys
from helper import WORD
VERSION = "v1"
seen = pathlib.Path(sys.argv[2]).exists()
pathlib.Path(sys.argv[1]).write_text(f"{VERSION} {WORD} {seen} {pathlib.Path.cwd()}")
"""
GATE = """\
import pathlib, sys, time
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
"""


def node_apart(address: str, hidden: Path) -> subprocess.Popen:
    """A Ray node (resource ``far``) whose processes see ``hidden`` as an empty folder."""
    ray_bin = Path(sys.executable).with_name("ray")
    start = (f"mount -t tmpfs none {shlex.quote(str(hidden))} && exec {shlex.quote(str(ray_bin))}"
             f" start --address={shlex.quote(address)} --num-cpus=2 --num-gpus=0 "
             f"--resources={shlex.quote(json.dumps({'far': 1}))} --block")
    return subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c", start],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def end(node: subprocess.Popen) -> None:
    """Stop the node and every process it started (only ours: its descendants)."""
    try:
        family = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    node.send_signal(signal.SIGTERM)
    try:
        node.wait(timeout=15)
    except subprocess.TimeoutExpired:
        node.kill()
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def main(workdir: str) -> None:
    work = Path(workdir)
    repo = git_repo(work / "project", "runs/\n")
    (repo / "train.py").write_text(TRAIN)
    (repo / "gate.py").write_text(GATE)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train")
    (repo / "train.py").write_text(TRAIN.replace('"v1"', '"v1+local"'))   # not committed
    (repo / "helper.py").write_text("WORD = 'untracked'\n")                 # not even added
    flag, out, py = work / "go", work / "out" / "far.txt", sys.executable
    out.parent.mkdir()
    with S3Server() as s3:   # before the nodes start: they inherit its credentials
        storage = s3.bucket_uri()
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 2, "num_gpus": 0,
                                          "resources": {"near": 1}})
        node = None
        try:
            ray.init(address=cluster.address, namespace="orchestrator", log_to_driver=False)
            node = node_apart(cluster.address, repo)
            wait_for(lambda: ray.cluster_resources().get("far") == 1, timeout=90,
                     what="the node apart to join")
            csv = write_csv(repo / "queue.csv", ["ID", "TrainingCommand", "TrainingCheck",
                                                 "PretrainedModelId", "GPUs", "Resources"], [
                ["gate", f"{py} gate.py {flag}", "", "", "0", "near=1"],
                ["far", f"{py} train.py {out} {repo / 'train.py'}", "", "gate", "0",
                 "far=1"]])
            run = QueueRun(csv, snapshot_mode="run", storage=storage)
            run.local_ray = False
            run.start()
            wait_for(lambda: read_rows(csv)["gate"].get("TrainingCheck") == "Training",
                     timeout=90, what="gate Training")
            (repo / "train.py").write_text(TRAIN.replace('"v1"', '"v2"'))   # while it waits
            time.sleep(0.2)
            flag.write_text("go")
            code = run.join(timeout=180)
            rows = read_rows(csv)
            log = s3.files(storage).get("far/attempt-1/run.log", b"").decode()
            print(json.dumps({"code": code, "rows": rows,
                              "out": out.read_text().split() if out.exists() else [],
                              "log": log, "state_dir": str(run.paths.state_dir),
                              "here": (run.paths.state_dir / "far").exists()}))
        finally:
            if node is not None:
                end(node)
            ray.shutdown()
            cluster.shutdown()
            os.environ.pop("RAY_ADDRESS", None)


if __name__ == "__main__":
    main(sys.argv[1])
