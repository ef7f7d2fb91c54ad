"""A test job: records when and with which GPUs it ran, then sleeps/fails/blocks."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--out", required=True)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--exit", type=int, default=0)
p.add_argument("--fail-first-attempt", action="store_true")
p.add_argument("--block", action="store_true", help="run until stopped")
p.add_argument("--weights", action="store_true", help="leave a weights file in ORCH_RUN_DIR")
p.add_argument("--pretrained_path", default="")
args = p.parse_args()

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
attempt = os.environ.get("ORCH_ATTEMPT", "0")
record = {"name": args.name, "attempt": int(attempt), "start": time.time(), "pid": os.getpid(),
          "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
          "env": {k: v for k, v in os.environ.items() if k.startswith(("ORCH_", "WANDB_"))},
          "pretrained": args.pretrained_path, "cwd": os.getcwd()}
target = out / f"{args.name}.{attempt}.json"
target.write_text(json.dumps(record))
print(f"{args.name} attempt {attempt} on GPUs {record['cuda']!r}", flush=True)
if args.block:
    while True:
        time.sleep(0.1)
time.sleep(args.sleep)
if args.weights:
    (Path(os.environ["ORCH_RUN_DIR"]) / "model_best.pt").write_text(args.name)
record["end"] = time.time()
target.write_text(json.dumps(record))
code = args.exit or (3 if args.fail_first_attempt and attempt == "1" else 0)
if code:
    print(f"{args.name}: failing with exit code {code}", file=sys.stderr, flush=True)
sys.exit(code)
