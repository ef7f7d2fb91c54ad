"""Draw docs/tui.svg: the TUI at 120x32 over a queue in every state a researcher meets.

    python examples/tui_screenshot.py [docs/tui.svg]

The queue is written to a temp folder (CSV, run record, metrics lines) and a driver's
lock is held while the picture is taken, so the Why column shows what a running
driver publishes. Nothing runs and nothing is downloaded.
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
from orchestrator.store.paths import DriverLock, queue_paths  # noqa: E402
from orchestrator.store.record import RunRecord  # noqa: E402
from orchestrator.views.tui import QueueApp  # noqa: E402

HEADER = ["ID", "Name", "TrainingCommand", "GPUs", "PretrainedModelId", "TrainingCheck",
          "Attempts", "Node", "BestMetric", "WandbRunID", "Error"]
NODE = "gpu-box/3f9a1c2e"
ROWS = [
    ["resnet50-a", "ResNet-50, lr 0.1", "python train.py --lr 0.1", "0.5", "", "Training", "1",
     NODE, "", "k2v9x0qa", ""],
    ["resnet50-b", "ResNet-50, lr 0.3", "python train.py --lr 0.3", "0.5", "", "Training", "2",
     NODE, "", "p81mzz3c", ""],
    ["base", "baseline", "python train.py", "1", "", "Done", "1", NODE, "0.912", "a0c3kd91", ""],
    ["ft-a", "fine-tune of resnet50-a", "python train.py --lr 0.01", "0.5", "resnet50-a", "",
     "", "", "", "", ""],
    ["vit-huge", "ViT-H, 4 GPUs", "python train.py --model vit_h", "4", "", "", "", "", "", "",
     ""],
    ["big-batch", "batch 1024", "python train.py --batch 1024", "1", "", "Crash", "2", NODE, "",
     "m3n5b7v9", "oom: CUDA out of memory. Tried to allocate 8.00 GiB (on_oom = fail: set "
     "OnOOM = more_gpu to retry with more GPUs) (log: runs/big-batch/attempt-2/run.log)"],
    ["typo", "lr 0.5", "python train.py --lr 0.5", "0.5", "", "Hodl", "", "", "", "",
     "invalid: TrainingCheck='Hodl' is not a word the orchestrator knows — write one of: "
     "blank (run it), Hold (do not start it), Rerun (run a finished row again)"],
    ["later", "held for now", "python train.py --lr 1.0", "0.5", "", "Hold", "", "", "", "",
     ""],
]
WAITING = {"ft-a": "waits for its parent resnet50-a (Training)",
           "vit-huge": "waits for 4 GPU to free up"}


def build(folder: Path):
    runs = folder / "runs"
    record = RunRecord(runs / "registry.db")
    now = time.time()
    for job_id, attempt, status, started, lines, gpus in (
            ("resnet50-a", 1, "Training", now - 754, [{"epoch": 7, "epochs": 20,
                                                      "val_acc": 0.8132}], "0"),
            ("resnet50-b", 2, "Training", now - 301, [{"epoch": 3, "epochs": 20,
                                                      "val_acc": 0.7415}], "0"),
            ("base", 1, "Done", now - 3000, [{"epoch": 20, "epochs": 20, "val_acc": 0.912}],
             "1"),
            ("big-batch", 2, "Crash", now - 200, [], "1")):
        run_dir = runs / job_id / f"attempt-{attempt}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.log").write_text("…\n")
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        record.begin_attempt("demo", job_id, attempt, status="Queued",
                             log_path=str(run_dir / "run.log"))
        record.update_attempt("demo", job_id, attempt, status=status, node=NODE, gpus=gpus,
                              started=started, ended=None if status == "Training" else
                              started + 1800 if status == "Done" else started + 40)
    record.close()
    with open(folder / "demo.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *ROWS])
    config = load_config(None, metric="val_acc")
    return queue_paths(folder / "demo.csv", config), config


async def shoot(paths, config, out: Path) -> None:
    app = QueueApp(paths, config, refresh_s=60)
    async with app.run_test(size=(120, 32)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down", "down", "down")   # big-batch: the crash
        await pilot.pause()
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths, config = build(Path(tmp))
        with DriverLock(paths) as lock:
            lock.publish("127.0.0.1:6379", "orchestrator")
            paths.waiting.write_text(json.dumps(WAITING))
            asyncio.run(shoot(paths, config, out.resolve()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "tui.svg"))
