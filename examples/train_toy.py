"""A tiny stand-in for a training script: "trains" for a few epochs on CPU.

It reports metrics with ``orchestrator.report`` (falls back to printing when run
by hand), saves weights into ``$ORCH_RUN_DIR`` and accepts ``--pretrained_path``
like the seed's training commands did.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

try:
    from orchestrator import report
except ImportError:  # another Python: append the JSON lines ourselves
    def report(**metrics):
        path = os.environ.get("ORCH_METRICS_FILE")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"time": time.time(), **metrics}) + "\n")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--sleep", type=float, default=0.2, help="seconds per epoch")
    p.add_argument("--fail", action="store_true", help="crash after the first epoch")
    p.add_argument("--fail-first-attempt", action="store_true",
                   help="crash on attempt 1 only (shows retries)")
    p.add_argument("--pretrained_path", default="")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    random.seed(args.seed)
    out = Path(os.environ.get("ORCH_RUN_DIR", "."))
    loss = 1.0
    if args.pretrained_path:
        start = json.loads(Path(args.pretrained_path).read_text())
        loss = start["loss"]
        print(f"loaded pretrained weights from {args.pretrained_path} (loss {loss:.3f})")
    print(f"training: epochs={args.epochs} lr={args.lr} "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}", flush=True)
    best = None
    for epoch in range(1, args.epochs + 1):
        time.sleep(args.sleep)
        loss *= 1 - min(args.lr, 0.9) * random.uniform(0.5, 1.0)
        accuracy = round(1 - loss, 4)
        weights = out / f"epoch{epoch}.pt"
        weights.write_text(json.dumps({"epoch": epoch, "loss": loss}))
        report(step=epoch, epoch=epoch, epochs=args.epochs, loss=round(loss, 4),
               accuracy=accuracy, weight_file=str(weights))
        print(f"epoch {epoch}: loss {loss:.4f} accuracy {accuracy:.4f}", flush=True)
        if best is None or accuracy > best:
            best = accuracy
        if args.fail or (args.fail_first_attempt and os.environ.get("ORCH_ATTEMPT") == "1"):
            print("simulated crash: CUDA error: an illegal memory access", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
