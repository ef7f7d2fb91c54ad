"""Multi-node scenarios on ray.cluster_utils.Cluster (failures; weights through S3; a row run
from its code snapshot on another node), each in its own process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def scenario(name: str, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", f"tests.cluster.{name}", str(workdir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_node_removed_under_two_rows_requeues_both_without_spending_retries(tmp_path):
    result = scenario("node_loss", tmp_path)
    assert result["code"] == 0
    late = result["rows"].pop("late")   # appended by hand just before the node went
    assert late["TrainingCheck"] == "Done", late
    assert result["rows"]["n0"]["Notes"] == "edited during the node loss"
    for job_id, row in result["rows"].items():
        assert row["TrainingCheck"] == "Done", row
        assert row["Attempts"] == "2"
        assert row["Node"] != result["first_nodes"][job_id], "should finish on the new node"
        assert result["attempts"][job_id] == [["Crash", "lost"], ["Done", ""]]


def test_gpu_row_waits_on_ray_until_a_gpu_node_joins(tmp_path):
    result = scenario("node_joins", tmp_path)
    assert result["waiting_status"] == "Queued"   # demand Ray (and an autoscaler) can see
    assert (result["code"], result["final"]) == (0, "Done")


def test_ddp_row_across_two_nodes_survives_losing_one(tmp_path):
    result = scenario("ddp_node_loss", tmp_path)
    assert result["code"] == 0, result
    row = result["row"]
    assert (row["TrainingCheck"], row["Attempts"]) == ("Done", "1"), row
    assert result["worker_group_retried"], "Ray Train restarted the workers inside the attempt"
    after = result["steps_after"]   # the epochs reported after the node was killed
    assert result["steps_before"] and after and after[-1] == 8, result
    assert min(after) > 1, f"resumed from a checkpoint, not from epoch 1: {result}"


def test_child_on_another_node_gets_its_parents_weights_from_s3(tmp_path):
    result = scenario("storage_nodes", tmp_path)
    rows = result["rows"]
    assert result["code"] == 0 and all(r["TrainingCheck"] == "Done" for r in rows.values()), rows
    assert rows["parent"]["Node"] != rows["child"]["Node"], "the rows ran on different nodes"
    assert rows["parent"]["WeightFile"] == f"{result['storage']}/parent/attempt-1/model.pt"
    fetched = f"{result['child_run_dir']}/pretrained/model.pt"
    assert f"parent weights {fetched} sha1 {result['parent_sha1']}" in result["child_log"]


def test_a_row_on_another_node_runs_the_code_it_was_queued_with(tmp_path):
    result = scenario("snapshot_nodes", tmp_path)
    rows = result["rows"]
    assert result["code"] == 0, rows
    assert rows["far"]["Node"] != rows["gate"]["Node"], "the rows ran on different nodes"
    version, cwd = result["out"]
    assert version == "v1", "the edit saved while it waited never reached it"
    assert cwd == f"{result['state_dir']}/far/attempt-1/code"


def _can_unshare() -> bool:
    import shutil

    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(),
                    reason="needs a mount namespace (unshare -m: root or CAP_SYS_ADMIN) to "
                    "give a node a disk of its own")
def test_a_node_that_shares_no_disk_runs_the_code_the_row_was_queued_with(tmp_path):
    result = scenario("snapshot_apart", tmp_path)
    rows = result["rows"]
    assert result["code"] == 0, (rows, result["log"])
    assert rows["far"]["Node"] != rows["gate"]["Node"], "the rows ran on different nodes"
    version, word, seen, cwd = result["out"]
    assert seen == "False", "the node apart sees no checkout of the queue's folder"
    assert (version, word) == ("v1+local", "untracked"), \
        "the commit's files, the local change and the untracked file, as queued"
    assert cwd == f"{result['state_dir']}/far/attempt-1/code"
    assert not result["here"], "its state dir was the node's own"
