"""The commands that only read a queue start no Ray and load neither torch, Ray Train nor
transformers: each runs in a fresh Python, as a user runs it, which then says what it
imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.store.record import RunRecord
from tests.helpers import write_csv

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "torch", "transformers", "ultralytics", "accelerate")
PROBE = """
import json, sys
from orchestrator.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))
print("LOADED " + json.dumps({"code": code, "loaded": loaded}))
""".replace("HEAVY", repr(HEAVY))


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ro")
    queue = write_csv(folder / "q.csv", ["ID", "TrainingCommand", "TrainingCheck"],
                      [["a", "true", "Done"], ["b", "true", "Hold"]])
    (folder / "runs").mkdir()
    RunRecord(folder / "runs" / "registry.db").close()   # as a night of runs leaves it
    return queue


@pytest.mark.parametrize("argv", [
    ["status", "{q}"], ["status", "{q}", "--json"], ["check", "{q}"],
    ["report", "{q}", "-o", "{dir}/r.html"], ["registry", "experiments"],
    ["sweep", "check", str(ROOT / "configs" / "sweeps" / "hf_tiny_lr.yaml")],
    ["run", "{q}", "--no_ui"],   # nothing to run: no Ray either
], ids=lambda a: " ".join(a[:2]))
def test_a_command_that_reads_loads_nothing_heavy(queue, argv):
    args = [a.format(q=queue, dir=queue.parent) for a in argv]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=queue.parent,
                          capture_output=True, text=True, timeout=120)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("LOADED "))
    said = json.loads(line[len("LOADED "):])
    assert said["loaded"] == [], f"{' '.join(args)} imported {said['loaded']}"
    assert said["code"] in (0, None), done.stdout[-1500:] + done.stderr[-1500:]
