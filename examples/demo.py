"""`make demo`: run a working copy of configs/queue.csv on 4 logical GPUs.

The tracked example stays clean; the copy, its runs/ and registry.db land in demo/.
The built-in kinds' rows train on data the demo writes first into demo/data (nothing is
downloaded): synthetic shapes for YOLO, dialogue pairs and a tiny random BART with a
tokenizer trained on them for the HF row.
"""

import shutil
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
demo = root / "demo"
if demo.exists():
    shutil.rmtree(demo)
demo.mkdir()
for name in ("queue.csv", "manager.ini"):
    shutil.copy(root / "configs" / name, demo / name)
data = demo / "data"
for tool in (["trainers.yolo", "make-data", data / "shapes", "--train", "16", "--val", "8",
              "--imgsz", "64", "--unlabelled", "8"],
             ["trainers.hf", "make-data", data / "dialogue", "--n", "32"],
             ["trainers.hf", "make-tiny", data / "tiny-bart", "--data",
              data / "dialogue" / "train.csv"]):
    print("$ python -m", " ".join(map(str, tool)), flush=True)
    subprocess.run([sys.executable, "-m", *map(str, tool)], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
cmd = [sys.executable, "-m", "orchestrator.run", str(demo / "queue.csv"),
       "--config", str(demo / "manager.ini"), "--num-gpus", "4",   # a terminal gets the UI
       "--num-cpus", "6"]  # logical, like the GPUs: the ddp/hf workers and sweep trials at once
print("$", " ".join(cmd[1:]), flush=True)
code = subprocess.call(cmd, cwd=root)
queue = demo / "queue.csv"
orch = Path(sys.executable).with_name("orchestrator")   # in .venv/bin: not on PATH yet
print(f"\ntry (or `source .venv/bin/activate` first, then plain `orchestrator`):\n"
      f"     {orch} status {queue}\n"
      f"     {orch} logs {queue} ft-a\n"
      f"     {orch} registry best --metric accuracy --queue {queue}\n"
      f"     {orch} report {queue} -o demo/report.html")
sys.exit(code)
