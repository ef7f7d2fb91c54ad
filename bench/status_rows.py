"""How long ``orchestrator status`` takes on a queue of 100 and of 10,000 rows.

Each queue is all Done with a run record (as after a night of runs) and no driver; the
command runs as a user runs it, a fresh process each time (its start-up included), best
of three. Target (issue 24): <= 0.5 s at 10,000 rows, within 2x of 100 rows. Prints
figures, asserts nothing; JSON goes to bench/results/status_rows.json.

    .venv/bin/python bench/status_rows.py [--rows 100 10000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "status_rows.json"
TARGET_S = 0.5


def write_queue(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True)
    path = folder / "queue.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs", "Attempts",
                    "Started", "Ended", "WandbRunID", "LogFile", "Error"])
        for i in range(rows):
            w.writerow([f"j{i:05d}", f"run {i}", "python train.py --lr 0.1", "Done", "0.5",
                        "1", "2026-12-07 01:00:00", "2026-12-07 01:05:00", f"w{i:07d}",
                        f"runs/j{i:05d}/attempt-1/run.log", ""])
    return path


def time_status(queue: Path, *extra: str) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("orchestrator")), "status",
                        str(queue), *extra],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, COLUMNS="120", OMP_NUM_THREADS="1"))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100, 10_000])
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-status-"))
    results = {}
    for rows in args.rows:
        queue = write_queue(work / str(rows), rows)
        results[rows] = {"table_s": time_status(queue), "json_s": time_status(queue, "--json")}
    print(f"{'rows':>7}  {'status_s':>8}  {'--json_s':>8}")
    for rows, res in results.items():
        print(f"{rows:>7}  {res['table_s']:>8.2f}  {res['json_s']:>8.2f}")
    small, big = results[min(results)], results[max(results)]
    print(f"{max(results)} rows / {min(results)} rows: {big['table_s'] / small['table_s']:.1f}x; "
          f"target <= {TARGET_S} s at 10,000 rows: "
          f"{'PASS' if results.get(10_000, {}).get('table_s', 1e9) <= TARGET_S else 'MISS'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "results": results}, indent=1), encoding="utf-8")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
