"""Scenario in its own process: a parent row on one node, its child on another, the
weights passing through a (local, real) S3 server rather than a shared folder.

The nodes are ``ray.cluster_utils.Cluster`` nodes with a custom resource each; the rows
ask for them in ``Resources``. Prints one JSON line.
"""

import hashlib
import json
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from tests.helpers import QueueRun, read_rows, write_csv
from tests.s3_server import S3Server

WRITE = """\
import hashlib, os, sys
args = sys.argv[1:]
if "--pretrained_path" in args:
    path = args[args.index("--pretrained_path") + 1]
    print(f"parent weights {path} sha1 {hashlib.sha1(open(path, 'rb').read()).hexdigest()}")
open(os.path.join(os.environ["ORCH_RUN_DIR"], "model.pt"), "wb").write(os.urandom(4096))
"""


def main(workdir: str) -> None:
    work = Path(workdir)
    (work / "write.py").write_text(WRITE)
    with S3Server() as s3:   # before the nodes start: they inherit its credentials
        storage = s3.bucket_uri()
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
        cluster.add_node(num_cpus=1, resources={"node_b": 1})
        try:
            ray.init(address=cluster.address, namespace="orchestrator", log_to_driver=False)
            command = f"{sys.executable} write.py"
            csv = write_csv(work / "q.csv", ["ID", "TrainingCommand", "PretrainedModelId",
                                             "GPUs", "Resources"], [
                ["parent", command, "", "0", "node_a=1"],
                ["child", command, "parent", "0", "node_b=1"]])
            run = QueueRun(csv, storage=storage)
            run.local_ray = False
            code = run.start().join(timeout=120)
            rows = read_rows(csv)
            files = s3.files(storage)
            log = files.get("child/attempt-1/run.log", b"").decode()
            digest = hashlib.sha1(files.get("parent/attempt-1/model.pt", b"")).hexdigest()
            print(json.dumps({
                "code": code, "storage": storage.split("?")[0],
                "rows": {k: {c: r.get(c, "") for c in ("TrainingCheck", "Node", "WeightFile")}
                         for k, r in rows.items()},
                "child_log": log, "parent_sha1": digest,
                "child_run_dir": str(work / "runs" / "child" / "attempt-1")}))
        finally:
            ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
