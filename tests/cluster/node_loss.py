"""Scenario run in its own process (its own multi-node Ray): a node dies under two jobs.

Prints one JSON line with what happened. Used by test_node_loss.py.
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
    doomed = cluster.add_node(num_cpus=2, num_gpus=2)
    try:
        ray.init(address=cluster.address, namespace="orchestrator", log_to_driver=False)
        out = work / "out"
        csv = write_csv(work / "q.csv", ["ID", "TrainingCommand", "GPUs"], [
            [f"n{i}", probe(f"n{i}", out, "--sleep", "6"), "1"] for i in range(2)])
        run = QueueRun(csv)
        run.local_ray = False
        run.start()
        wait_for(lambda: all(r.get("TrainingCheck") == "Training"
                             for r in read_rows(csv).values()),
                 timeout=60, what="both rows training on the doomed node")
        first_nodes = {i: r["Node"] for i, r in read_rows(csv).items()}
        cluster.add_node(num_cpus=2, num_gpus=2)
        t0 = time.monotonic()
        cluster.remove_node(doomed, allow_graceful=False)
        wait_for(lambda: all(r["TrainingCheck"] in ("Queued", "Training", "")
                             and r["Attempts"] == "2" for r in read_rows(csv).values()),
                 timeout=90, what="both rows re-queued")
        requeued_after = time.monotonic() - t0
        code = run.join(timeout=120)
        rows = read_rows(csv)
        record = run.record()
        print(json.dumps({
            "code": code, "requeued_after_s": round(requeued_after, 1),
            "rows": {i: {k: r[k] for k in ("TrainingCheck", "Attempts", "Node", "Error")}
                     for i, r in rows.items()},
            "first_nodes": first_nodes,
            "attempts": {i: [a["status"] for a in record.attempts(run.paths.name, i)]
                         for i in rows}}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
