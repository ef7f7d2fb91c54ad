"""Scenario run in its own process (its own multi-node Ray): a node dies under two jobs.

Prints one JSON line with what happened. Used by test_node_loss.py.
"""

import csv as csv_module
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
        # the user edits a cell of their own and appends a row, saving in place, just
        # before the node goes: neither edit may be lost in the re-queueing
        rows = list(csv_module.reader(csv.read_text(encoding="utf-8").splitlines()))
        if "Notes" not in rows[0]:
            rows[0].append("Notes")
        for r in rows[1:]:
            r.extend([""] * (len(rows[0]) - len(r)))
        rows[1][rows[0].index("Notes")] = "edited during the node loss"
        rows.append(["late", probe("late", out), "1"] + [""] * (len(rows[0]) - 3))
        with open(csv, "w", newline="", encoding="utf-8") as f:
            csv_module.writer(f).writerows(rows)
        cluster.add_node(num_cpus=2, num_gpus=2)
        t0 = time.monotonic()
        cluster.remove_node(doomed, allow_graceful=False)
        wait_for(lambda: all(r["TrainingCheck"] in ("Queued", "Training", "")
                             and r["Attempts"] == "2" for i, r in read_rows(csv).items()
                             if i != "late"),
                 timeout=90, what="both rows re-queued")
        requeued_after = time.monotonic() - t0
        code = run.join(timeout=120)
        rows = read_rows(csv)
        record = run.record()
        print(json.dumps({
            "code": code, "requeued_after_s": round(requeued_after, 1),
            "rows": {i: {k: r.get(k, "") for k in ("TrainingCheck", "Attempts", "Node", "Error",
                                                   "Notes")}
                     for i, r in rows.items()},
            "first_nodes": first_nodes,
            "attempts": {i: [[a.status, a.failure]
                             for a in record.attempts(run.paths.name, i)] for i in rows}}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
