"""`make demo`: run a working copy of configs/queue.csv on 4 logical GPUs.

The tracked example stays clean; the copy, its runs/ and registry.db land in demo/.
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
cmd = [sys.executable, "-m", "orchestrator.run", str(demo / "queue.csv"),
       "--config", str(demo / "manager.ini"), "--num-gpus", "4"]  # a terminal gets the live UI
print("$", " ".join(cmd[1:]), flush=True)
code = subprocess.call(cmd, cwd=root)
queue = demo / "queue.csv"
print(f"\ntry: orchestrator status {queue}\n"
      f"     orchestrator logs {queue} ft-a\n"
      f"     orchestrator registry best --metric accuracy --queue {queue}\n"
      f"     orchestrator report {queue} -o demo/report.html")
sys.exit(code)
