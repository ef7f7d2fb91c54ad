"""TUI responsiveness with a big queue (printed, not asserted): 1,000 rows, 50 running.

First render, one refresh from the files, and key response (↓ until the cursor moved).
Targets from the issue: refresh at least every second, key response < 100 ms.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.store.config import load_config  # noqa: E402
from orchestrator.store.paths import queue_paths  # noqa: E402
from orchestrator.store.record import RunRecord  # noqa: E402
from orchestrator.views.tui import QueueApp  # noqa: E402


def build(work: Path, rows: int = 1000, running: int = 50) -> Path:
    path = work / "big.csv"
    statuses = ["Training"] * running + ["Done", "Crash", ""] * rows
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs", "BestMetric"])
        for i in range(rows):
            writer.writerow([f"j{i:04d}", f"모델-{i}", "python t.py", statuses[i], "0.5",
                             f"{i / rows:.4f}"])
    record = RunRecord(work / "runs" / "registry.db")
    for i in range(running):
        run_dir = work / "runs" / f"j{i:04d}" / "attempt-1"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 3, "loss": 0.5}) + "\n")
        record.begin_attempt("big", f"j{i:04d}", 1, status="Training", started=time.time(),
                             log_path=str(run_dir / "run.log"), gpus="0")
    record.close()
    return path


async def measure(csv_path: Path) -> dict:
    config = load_config(None)
    app = QueueApp(queue_paths(csv_path, config), config, refresh_s=3600)
    t0 = time.perf_counter()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        app.reload()
        await pilot.pause()
        refresh = time.perf_counter() - t1
        keys = []
        for _ in range(20):
            before = app.table.cursor_row
            t2 = time.perf_counter()
            await pilot.press("down")
            while app.table.cursor_row == before:
                await pilot.pause(0.001)
            keys.append(time.perf_counter() - t2)
    keys.sort()
    return {"first_render_s": round(first, 3), "refresh_s": round(refresh, 3),
            "key_median_ms": round(keys[len(keys) // 2] * 1000, 1),
            "key_max_ms": round(keys[-1] * 1000, 1)}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        result = asyncio.run(measure(build(Path(work))))
    print("TUI, 1,000 rows, 50 running:", json.dumps(result))
    print(f"  key response median {result['key_median_ms']} ms "
          f"{'PASS' if result['key_median_ms'] < 100 else 'MISS'} (target < 100 ms); "
          f"refresh {result['refresh_s']} s {'PASS' if result['refresh_s'] < 1 else 'MISS'} "
          "(target: at least every second)")
