"""A plain W&B sweep program, unaware of the orchestrator: ``wandb.init`` + ``wandb.log``.

``val_loss`` is a deterministic fake that is lowest at ``lr = 0.01`` and falls
with each epoch. With ``fail_lr`` set to the run's ``lr`` the program exits 1
(to show a crashing trial). It prints one ``SWEEP_PROGRAM {json}`` line with
its config and ``CUDA_VISIBLE_DEVICES`` so a caller can check what it got.
"""

import json
import math
import os
import sys
import time

import wandb


def main() -> int:
    run = wandb.init()
    cfg = wandb.config
    lr = float(cfg.lr)
    started = time.time()
    print("SWEEP_PROGRAM " + json.dumps({
        "config": dict(cfg), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "start": started, "pid": os.getpid()}), flush=True)
    if cfg.get("fail_lr") is not None and math.isclose(float(cfg.fail_lr), lr):
        print(f"failing on purpose for lr={lr}", flush=True)
        return 1
    for epoch in range(int(cfg.epochs)):
        val_loss = (math.log10(lr) + 2.0) ** 2 + 1.0 / (epoch + 1)
        wandb.log({"val_loss": val_loss, "epoch": epoch})
        time.sleep(float(cfg.get("sleep", 0.02)))
    run.finish()
    print("SWEEP_PROGRAM_END " + json.dumps({"end": time.time()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
