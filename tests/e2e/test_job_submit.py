"""`ray job submit` against a `ray start --head` cluster with token authentication on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import probe, probe_records, read_rows, wait_for, write_csv
from tests.notify_servers import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _kill_tree_of(marker: str) -> None:
    """Stop the cluster we started (never `ray stop`: it would stop every Ray here)."""
    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                procs += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            pass
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.fixture
def head():
    """A one-node cluster started like a user would, on free ports, in its own temp dir."""
    tmp = tempfile.mkdtemp(prefix="orch-head-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmp}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    ports = ["--port", free_port(), "--dashboard-port", dashboard,
             "--ray-client-server-port", free_port(), "--dashboard-agent-listen-port",
             free_port(), "--dashboard-agent-grpc-port", free_port(), "--metrics-export-port",
             free_port(), "--runtime-env-agent-port", free_port()]
    started = subprocess.run([str(BIN / "ray"), "start", "--head", "--num-cpus", "2",
                              "--num-gpus", "2", "--temp-dir", f"{tmp}/ray",
                              "--disable-usage-stats", *map(str, ports)],
                             env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"env": env, "dashboard": f"http://127.0.0.1:{dashboard}"}
    finally:
        _kill_tree_of(tmp)


def submit(head, *entrypoint, token=True, timeout=180):
    env = dict(head["env"])
    if token:
        env["RAY_AUTH_MODE"] = "token"
    else:
        env.pop("RAY_AUTH_MODE", None)
    return subprocess.run([str(BIN / "ray"), "job", "submit", "--address", head["dashboard"],
                           "--", *map(str, entrypoint)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_queue_runs_as_a_ray_job_and_updates_the_csv_it_was_given(head, tmp_path):
    out = tmp_path / "gpus"
    out.mkdir()
    csv = write_csv(tmp_path / "queue.csv", ["ID", "TrainingCommand", "GPUs"], [
        ["g1", f"echo $CUDA_VISIBLE_DEVICES > {out}/g1", "1"],
        ["g2", f"echo $CUDA_VISIBLE_DEVICES > {out}/g2", "0.5"]])
    state = tmp_path / "state"
    done = submit(head, sys.executable, "-m", "orchestrator.run", csv, "--state-dir", state,
                  "--no_ui")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Ray cluster with 2 CPUs, 2 GPUs" in done.stdout   # it joined, it did not start one
    rows = read_rows(csv)
    assert [rows[i]["TrainingCheck"] for i in ("g1", "g2")] == ["Done", "Done"]
    assert (out / "g1").read_text().strip() in {"0", "1"}
    assert (state / "registry.db").exists()
    # another terminal reads it (no driver left: the job ended)
    status = subprocess.run([sys.executable, "-m", "orchestrator", "status", str(csv),
                             "--state-dir", str(state), "--json"], capture_output=True,
                            text=True, timeout=60)
    assert [r["status"] for r in json.loads(status.stdout)["rows"]] == ["Done", "Done"]


def test_token_auth_stays_on(head, tmp_path):
    t0 = time.monotonic()
    refused = submit(head, sys.executable, "-c", "print('hi')", token=False, timeout=60)
    assert refused.returncode != 0
    assert "auth" in (refused.stdout + refused.stderr).lower()
    assert time.monotonic() - t0 < 60


def test_ray_lists_a_running_row_as_a_task_named_after_it(head, tmp_path):
    """Ray's own views (the dashboard, `ray list tasks`) name the row a runner runs."""
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "GPUs"],
                    [["blk", probe("blk", out, "--block"), "0"]])
    state = tmp_path / "state"
    env = {**head["env"], "RAY_AUTH_MODE": "token"}
    job = subprocess.run([str(BIN / "ray"), "job", "submit", "--no-wait", "--address",
                          head["dashboard"], "--", sys.executable, "-m", "orchestrator.run",
                          str(csv), "--state-dir", str(state), "--no_ui"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stdout + job.stderr
    wait_for(lambda: probe_records(out), timeout=120, what="the row started")

    def listed() -> list:
        done = subprocess.run([str(BIN / "ray"), "list", "tasks", "--address", head["dashboard"],
                               "--filter", "name=q/blk", "--format", "json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout) if done.stdout.lstrip().startswith("[") else []

    # Ray reports task events about once a second: the job may already run while the
    # list still says SUBMITTED_TO_WORKER, so wait for the list to catch up
    tasks = wait_for(lambda: [t for t in listed() if t["state"] == "RUNNING"], timeout=60,
                     what="the row's task RUNNING in Ray's task list")
    assert [(t["name"], t["state"], t["type"]) for t in tasks] == \
        [("q/blk", "RUNNING", "ACTOR_TASK")]
    def jobs() -> list:
        done = subprocess.run([str(BIN / "ray"), "list", "jobs", "--address", head["dashboard"],
                               "--format", "json"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return sorted(j["job_id"] or j["submission_id"] for j in json.loads(done.stdout))

    before = jobs()
    stop = subprocess.run([sys.executable, "-m", "orchestrator", "stop", str(csv), "blk",
                           "--state-dir", str(state)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    wait_for(lambda: read_rows(csv)["blk"]["TrainingCheck"] == "Stopped", timeout=120,
             what="the row stopped")
    assert jobs() == before, "stop asked the driver: it left no Ray job of its own behind"
