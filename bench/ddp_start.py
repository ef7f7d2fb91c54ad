"""DDP start benchmark (prints figures; asserts nothing): command → first training step of
a 2-worker DDP run (gloo, CPU), ours beside torchrun, interleaved in one run.

The same step (``bench/ddp_start_probe.py``: a DDP-wrapped ``Linear``, one SGD step) runs

1. ``torchrun --standalone --nproc_per_node 2`` (the peer): torch's launcher, its own
   rendezvous, ``init_process_group("gloo")`` in the script;
2. ``python -m trainers.torch CONFIG --workers 2 --address ""``: a ``Kind=ddp`` job on
   Ray Train, on a Ray it starts itself (a row whose workers span nodes, or
   ``fork_workers = false``);
3. ``python -m trainers.torch CONFIG --workers 2 --launcher torch``: the same job with its
   workers forked by torch's launcher (what a row whose workers fit one node runs);
4. a queue row (``orchestrator run`` on a one-row CSV, ``Kind=ddp``, ``Workers=2``): the
   whole command a user types, Ray's start included; "row → step" is from the attempt's
   start in the run record.

Rank 0 of each writes when its process was created, when the training function was
entered, and when its first step ended, so each figure splits into: before the worker
process exists (launcher, Ray, Ray Train's controller and worker actors), worker process
→ training function (imports, Ray Train's set-up, the process group), function → first
step. Repeats are interleaved (A B C A B C) so drifting load hits all alike; medians.
JSON goes to bench/results/ddp_start.json.

    .venv/bin/python bench/ddp_start.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results  # noqa: E402  (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "bench" / "ddp_start_probe.py"
RESULTS = ROOT / "bench" / "results" / "ddp_start.json"
CONFIG = f"""\
entry: ddp_start_probe:train
epochs: 1
max_failures: 0
python_path: ["{PROBE.parent}"]
"""


def _env(stamps: Path, tmp: Path) -> dict:
    env = {**os.environ, "DDP_START_FILE": str(stamps), "RAY_TMPDIR": str(tmp),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "ORCH_RAY_KEEP_ALIVE": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    return env


def _stamps(path: Path) -> dict:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not lines:
        raise SystemExit(f"no first step was recorded in {path}")
    return lines[-1]


def _run(argv: list[str], work: Path, cwd: Path = ROOT, timeout: float = 600) -> dict:
    stamps, tmp = work / "stamps.jsonl", Path(tempfile.mkdtemp(prefix="ddp-start-rt-"))
    start = time.time()
    done = subprocess.run(argv, cwd=cwd, env=_env(stamps, tmp), capture_output=True,
                          text=True, timeout=timeout)
    wall = time.time() - start
    shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode != 0 or not stamps.exists():
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-2000:]}")
    s = _stamps(stamps)
    return {"to_first_step_s": s["first_step"] - start, "wall_s": wall,
            "before_worker_s": s["process_created"] - start,
            "worker_to_function_s": s["entered"] - s["process_created"],
            "function_to_step_s": s["first_step"] - s["entered"], "world": s["world"],
            "_start": start, "_stamps": s}


def run_torchrun(work: Path) -> dict:
    return _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", "2", str(PROBE)], work)


def run_job(work: Path) -> dict:
    config = work / "ddp.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return _run([sys.executable, "-m", "trainers.torch", str(config), "--storage",
                 str(work / "storage"), "--name", "bench", "--workers", "2", "--address", ""],
                work)


def run_job_torch(work: Path) -> dict:
    config = work / "ddp.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return _run([sys.executable, "-m", "trainers.torch", str(config), "--storage",
                 str(work / "storage"), "--name", "bench", "--workers", "2", "--launcher",
                 "torch"], work)


def run_row(work: Path) -> dict:
    config = work / "ddp.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    queue = work / "q.csv"
    with open(queue, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Kind", "Config", "GPUs", "Workers", "TrainingCommand"])
        writer.writerow(["ddp", "ddp", str(config), "0", "2", ""])
    ini = work / "bench.ini"
    ini.write_text("[ray]\ndashboard = false\nnum_cpus = 3\n", encoding="utf-8")
    result = _run([sys.executable, "-m", "orchestrator.run", str(queue), "--config", str(ini),
                   "--no_ui"], work)
    db = sqlite3.connect(work / "runs" / "registry.db")
    try:
        (started,) = db.execute("SELECT started FROM attempts WHERE job_id = 'ddp'").fetchone()
    finally:
        db.close()
    result["row_to_first_step_s"] = result["_stamps"]["first_step"] - started
    result["before_row_s"] = started - result["_start"]
    return result


VARIANTS = {"torchrun": run_torchrun, "job": run_job, "job_torch": run_job_torch,
            "row": run_row}
LABELS = {"torchrun": "torchrun --standalone, 2 procs",
          "job": "job on Ray Train, 2w", "job_torch": "job, --launcher torch, 2w",
          "row": "queue row Kind=ddp, 2w"}
PARTS = ("to_first_step_s", "before_worker_s", "worker_to_function_s", "function_to_step_s",
         "row_to_first_step_s", "before_row_s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-ddp-start-", dir="/tmp"))
    print(f"work folder {work}; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}",
          flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for i in range(args.repeat):
        for name, run in VARIANTS.items():
            folder = work / f"{name}-{i}"
            folder.mkdir()
            runs[name].append(run(folder))
            print(f"  {name} #{i + 1}: {runs[name][-1]['to_first_step_s']:.1f} s", flush=True)
    medians = {name: {part: statistics.median(r[part] for r in results)
                      for part in PARTS if part in results[0]}
               for name, results in runs.items()}
    results = {"cpus": os.cpu_count(), "repeat": args.repeat, "medians": medians,
               "ratio_job": medians["job"]["to_first_step_s"]
               / medians["torchrun"]["to_first_step_s"],
               "ratio_job_torch": medians["job_torch"]["to_first_step_s"]
               / medians["torchrun"]["to_first_step_s"],
               "ratio_row_to_step": medians["row"]["row_to_first_step_s"]
               / medians["torchrun"]["to_first_step_s"],
               "ratio_row": medians["row"]["to_first_step_s"]
               / medians["torchrun"]["to_first_step_s"],
               "load_after": os.getloadavg()[0]}
    show(results)
    write_results(RESULTS, results)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def show(r: dict) -> None:
    print(f"\n{'medians, seconds':32}{'to step':>8}{'pre-worker':>11}{'worker→fn':>10}"
          f"{'fn→step':>9}")
    for name, m in r["medians"].items():
        print(f"{LABELS[name]:32}{m['to_first_step_s']:8.1f}{m['before_worker_s']:11.1f}"
              f"{m['worker_to_function_s']:10.1f}{m['function_to_step_s']:9.2f}")
    row = r["medians"]["row"]
    print(f"\nqueue row: {row['before_row_s']:.1f} s before the row starts (driver, Ray), "
          f"then {row['row_to_first_step_s']:.1f} s row → first step")
    print(f"ours / torchrun: job on Ray Train {r['ratio_job']:.1f}x, job with torch's "
          f"launcher {r['ratio_job_torch']:.1f}x, row → first step "
          f"{r['ratio_row_to_step']:.1f}x, whole queue command (Ray's start included) "
          f"{r['ratio_row']:.1f}x (target: 2x)")


if __name__ == "__main__":
    sys.exit(main())
