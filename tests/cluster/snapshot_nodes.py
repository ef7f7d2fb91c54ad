"""Scenario in its own process: ``[snapshot] mode = run`` on a two-node cluster. A row held
to the second node (``Resources``) runs the code it was queued with there, though the
file was edited while it waited on a row held to the head. Prints one JSON line."""

import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from tests.helpers import QueueRun, git, git_repo, read_rows, wait_for, write_csv

TRAIN = """\
import pathlib, sys
VERSION = "v1"
pathlib.Path(sys.argv[1]).write_text(f"{VERSION} {pathlib.Path.cwd()}")
"""
GATE = """\
import pathlib, sys, time
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
"""


def main(workdir: str) -> None:
    work = Path(workdir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0,
                                                            "resources": {"near": 1}})
    cluster.add_node(num_cpus=2, num_gpus=0, resources={"far": 1})
    try:
        ray.init(address=cluster.address, namespace="orchestrator", log_to_driver=False)
        repo = git_repo(work / "project", "runs/\n")
        (repo / "train.py").write_text(TRAIN)
        (repo / "gate.py").write_text(GATE)
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "train")
        flag, out, py = work / "go", work / "far.txt", sys.executable
        csv = write_csv(repo / "queue.csv", ["ID", "TrainingCommand", "TrainingCheck",
                                             "PretrainedModelId", "GPUs", "Resources"], [
            ["gate", f"{py} gate.py {flag}", "", "", "0", "near=1"],
            ["far", f"{py} train.py {out}", "", "gate", "0", "far=1"]])
        run = QueueRun(csv, snapshot_mode="run")
        run.local_ray = False
        run.start()
        wait_for(lambda: read_rows(csv)["gate"].get("TrainingCheck") == "Training", timeout=90)
        (repo / "train.py").write_text(TRAIN.replace('"v1"', '"v2"'))
        time.sleep(0.2)
        flag.write_text("go")
        code = run.join(timeout=180)
        rows = read_rows(csv)
        print(json.dumps({"code": code, "rows": rows, "out": out.read_text().split(),
                          "state_dir": str(run.paths.state_dir)}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
