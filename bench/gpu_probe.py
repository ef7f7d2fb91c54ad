"""The programs ``bench/gpu_check.py`` runs as queue rows: each prints one ``probe:`` line
saying what it saw on the GPU (the check reads it back from the row's log).

    python bench/gpu_probe.py hold SECONDS MIB     # a GPUs=0.5 command row
    entry: gpu_probe:ddp_loop                      # a Kind=ddp row (function entry)
    entry: gpu_probe:oom_loop                      # the same, params: {batch_size: 4}
    callbacks: [gpu_probe:Fp16Probe]               # a Kind=hf row's TrainerCallback
"""

from __future__ import annotations

import json
import os
import sys
import time


def _say(**fields) -> None:
    print("probe: " + json.dumps(fields, sort_keys=True), flush=True)


def _nvml_processes() -> int | None:
    """How many processes hold memory on the GPU this process uses (NVML), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0])
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return len(pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception:  # noqa: BLE001 - no NVML: the check says so
        return None


def hold(seconds: float, mib: int) -> None:
    """Hold ``mib`` MiB on the row's GPU for ``seconds``, counting the processes NVML sees
    on that GPU meanwhile (two GPUs=0.5 rows on one GPU: 2)."""
    import torch

    start = time.time()
    block = torch.empty(mib * 2**20, dtype=torch.uint8, device="cuda")
    block.fill_(1)
    torch.cuda.synchronize()
    most = 0
    while time.time() - start < seconds:
        most = max(most, _nvml_processes() or 0)
        time.sleep(0.25)
    _say(visible=os.environ.get("CUDA_VISIBLE_DEVICES"), start=start, end=time.time(),
         held_mib=torch.cuda.memory_allocated() // 2**20, nvml_processes=most)


def oom_loop(config: dict) -> None:
    """A Kind=ddp function entry that asks for ``batch_size`` blocks of a third of the
    GPU's memory: with ``batch_size: 4`` attempt 1 (4/3 of the GPU) runs out of memory;
    after ``OnOOM=halve_batch`` the kind passes 2, which fits."""
    import torch

    unit = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory // 3
    blocks = [torch.ones(unit, dtype=torch.uint8, device="cuda")
              for _ in range(int(config["batch_size"]))]
    _say(batch_size=config["batch_size"], blocks=len(blocks))


def ddp_loop(config: dict) -> None:
    """A Kind=ddp function entry: one all-reduce over the workers' GPUs."""
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
        else torch.device("cpu")
    total = torch.ones(1, device=device)
    dist.all_reduce(total)
    _say(backend=dist.get_backend(), device=str(device), world=dist.get_world_size(),
         sum=float(total.item()))


try:
    from transformers import TrainerCallback
except ImportError:   # the hf extra is not installed: the probe is not used then
    TrainerCallback = object


class Fp16Probe(TrainerCallback):
    """A Kind=hf row's callback: says whether the Trainer runs in fp16, and where."""

    def on_train_begin(self, args, state, control, **kwargs):
        _say(fp16=bool(args.fp16), device=str(args.device))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "hold":
        hold(float(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(f"unknown probe {what!r}: hold SECONDS MIB")
