"""Scenario in its own process: a GPU row on a cluster with no GPU node yet.

The row is queued on Ray (the demand an autoscaler acts on) and runs as soon as
a GPU node joins. Prints one JSON line.
"""

import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from tests.helpers import QueueRun, probe, read_rows, wait_for, write_csv


def main(workdir: str) -> None:
    work = Path(workdir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    try:
        ray.init(address=cluster.address, namespace="orchestrator", log_to_driver=False)
        out = work / "out"
        csv = write_csv(work / "q.csv", ["ID", "TrainingCommand", "GPUs"], [
            ["gpu", probe("gpu", out), "1"], ["cpu", probe("cpu", out), "0"]])
        run = QueueRun(csv)
        run.local_ray = False
        run.start()
        wait_for(lambda: read_rows(csv)["cpu"].get("TrainingCheck") == "Done", timeout=60)
        time.sleep(1)
        waiting = read_rows(csv)["gpu"].get("TrainingCheck")
        cluster.add_node(num_cpus=2, num_gpus=1)
        code = run.join(timeout=120)
        print(json.dumps({"code": code, "waiting_status": waiting,
                          "final": read_rows(csv)["gpu"]["TrainingCheck"]}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
