"""A sweep whose driver is killed mid-way resumes without re-running finished trials."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SWEEP = """\
name: resume-me
program: {program}
method: grid
metric: {{name: val_loss, goal: minimize}}
parameters:
  lr: {{values: [0.001, 0.003, 0.01, 0.03]}}
  epochs: {{value: 3}}
  sleep: {{value: 0.3}}
"""


def starts_and_ends(storage: Path) -> tuple[list[str], list[str]]:
    starts, ends = [], []
    for log in storage.rglob("run.log"):
        text = log.read_text(errors="replace")
        lr = next((line.split('"lr": ')[1].split(",")[0] for line in text.splitlines()
                   if line.startswith("SWEEP_PROGRAM ")), None)
        if lr is not None:
            starts.append(lr)
            if "SWEEP_PROGRAM_END" in text:
                ends.append(lr)
    return starts, ends


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(program=ROOT / "examples" / "wandb_sweep_program.py"))
    storage = tmp_path / "tune"
    ray_tmp = tempfile.mkdtemp(prefix="orch-sw-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "WANDB_MODE": "offline"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "orchestrator", "sweep", "run", str(sweep), "--storage",
           str(storage), "--max-concurrent", "1", "--cpus-per-trial", "1"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(starts_and_ends(storage)[1]) >= 2, timeout=120,
                 what="two finished trials")
        time.sleep(2.5)   # longer than the sweep's state-save period
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        for proc in psutil.process_iter(["cmdline"]):   # what that Ray left behind
            try:
                if any(ray_tmp in part for part in proc.info["cmdline"] or []):
                    proc.kill()
            except psutil.Error:
                pass
    finished_before = set(starts_and_ends(storage)[1])
    again = subprocess.run(cmd, env={**env, "RAY_TMPDIR": tempfile.mkdtemp(
        prefix="orch-sw-", dir="/tmp")}, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    starts, ends = starts_and_ends(storage)
    assert sorted(set(ends)) == ["0.001", "0.003", "0.01", "0.03"]
    for lr in finished_before:
        assert starts.count(lr) == 1, f"finished trial lr={lr} ran again"
    assert "best val_loss=" in again.stdout and '"lr": 0.01' in again.stdout
    best = storage / "resume-me" / "best_config.json"   # its own: another sweep has another
    assert f"best config: {best}" in again.stdout and json.loads(best.read_text())["lr"] == 0.01
    seed = json.loads((storage / "resume-me" / "sweep_seed.json").read_text())["seed"]
    assert f"seed {seed} (--seed {seed}" in again.stdout, "the resumed sweep keeps its seed"
