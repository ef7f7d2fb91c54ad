"""The prepared GPU check (bench/gpu_check.py) stays runnable: on this machine (no CUDA)
it prepares each check's queue, `orchestrator check` finds every row runnable, and each
check says it needs a GPU. The checks that build models first (yolo, hf) are left to the
script itself: their kinds' own tests cover those files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_prepares_every_check_and_says_which_need_a_gpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--work",
         str(tmp_path), "--only", "nvml", "fractional", "ddp-nccl", "oom"],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("gpu check: 0 CUDA GPU(s); dry run")
    assert [line.split()[:2] for line in lines[1:]] == [
        ["NEEDS-GPU", name] for name in ("nvml", "fractional", "ddp-nccl", "oom")]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["dry_run"] and [c["verdict"] for c in summary["checks"]] == ["NEEDS-GPU"] * 4
    assert (tmp_path / "oom" / "queue.csv").read_text().splitlines()[1].startswith("oom,")
