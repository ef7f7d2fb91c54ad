"""One DDP training step, timed, the same way under torchrun and under a ``Kind=ddp`` row
(``bench/ddp_start.py``). Rank 0 appends one JSON line to ``$DDP_START_FILE``: when its
process was created, when the training function was entered, and when the first
optimizer step finished (seconds since the epoch).

    torchrun --standalone --nproc_per_node 2 bench/ddp_start_probe.py   # torch's launcher
    entry: ddp_start_probe:train                                         # a Kind=ddp row
"""

from __future__ import annotations

import json
import os
import time

ENTERED = time.time()   # module import: the worker's own code starts here


def _process_created() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - psutil missing: unknown
        return float("nan")


def train(config: dict | None = None) -> None:
    entered = time.time()
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    imported = time.time()
    if not dist.is_initialized():   # torchrun: the process group is ours to make
        dist.init_process_group("gloo")
    grouped = time.time()
    model = DistributedDataParallel(torch.nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(8, 32)).pow(2).mean()
    loss.backward()
    optimizer.step()
    first_step = time.time()
    if dist.get_rank() == 0 and os.environ.get("DDP_START_FILE"):
        with open(os.environ["DDP_START_FILE"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"process_created": _process_created(), "module": ENTERED,
                                "entered": entered, "torch_imported": imported,
                                "group_ready": grouped, "first_step": first_step,
                                "world": dist.get_world_size()}) + "\n")


if __name__ == "__main__":
    train()
