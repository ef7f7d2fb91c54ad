"""``MultiGPUAddon`` outside Ray Train: one process per device, as the add-on Trainer did.

``run`` in a plain process whose trainer was given several devices sends the trainer and
its loaders (pickled once, so each rank gets its own copy of the weights) to one spawned
process per device. The processes join one process group (``init_method``; NCCL when
every device is CUDA, else gloo), wrap the model in DistributedDataParallel, read their
shard of the data (``DistributedSampler``) and average each epoch's logs. Rank 0 sends
back the trained weights, optimizer and scheduler state and the logs, which land in the
caller's trainer — and so in the model the caller passed (``torch.save(model...)``
after ``run`` saves the trained weights).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from trainers.torch.weights import unwrap

__all__ = ["spawned", "run_per_device", "shard", "init_address"]

_SPAWNED: tuple[int, int] | None = None   # (rank, world size) inside a spawned process
_KEPT = ("epoch", "history", "logs", "log_train", "log_test", "epoch_train", "epoch_test")


def spawned() -> tuple[int, int] | None:
    """``(rank, world size)`` in a process ``run_per_device`` started, else None."""
    return _SPAWNED


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_address(init_method: str | None) -> tuple[str, str]:
    """The process group's address, and what was changed about the one given ("" if
    nothing): a ``tcp://`` port that is taken is replaced by a free one (the add-on
    Trainer's FAQ: 'Address already in use'); none given gets a free local port."""
    if not init_method:
        return f"tcp://127.0.0.1:{_free_port()}", ""
    url = urlparse(init_method)
    if url.scheme != "tcp" or not url.port:
        return init_method, ""
    try:
        with socket.socket() as s:   # as the process group's store binds it
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((url.hostname or "127.0.0.1", url.port))
    except OSError:
        port = _free_port()
        return f"tcp://{url.hostname}:{port}", f"port {url.port} is taken; using {port}"
    return init_method, ""


def shard(loader, rank: int, world: int):
    """``loader`` reading only rank ``rank``'s share of its dataset (shuffled as it was)."""
    if loader is None or getattr(loader, "batch_size", None) is None:
        return loader   # a custom batch sampler: every rank reads all of it
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank, shuffle=shuffle)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      persistent_workers=loader.persistent_workers)


def run_per_device(trainer, n_epoch: int, loader, valid_loader) -> list[dict]:
    """``trainer.run`` as one DDP process per device of ``trainer.devices``; returns the
    history, with the trained state back in ``trainer``."""
    devices = trainer.devices
    world = len(devices)
    backend = "nccl" if all(d.type == "cuda" for d in devices) else "gloo"
    address, changed = init_address(trainer.init_method)
    if changed:
        print(f"[trainer] init_method {trainer.init_method!r}: {changed}", file=sys.stderr,
              flush=True)
    blob = io.BytesIO()
    try:
        torch.save((trainer, n_epoch, loader, valid_loader), blob)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise RuntimeError(
            f"MultiGPUAddon runs one process per device ({world}) and sends each the trainer "
            f"and its loaders, which must pickle: {e}. Define the trainer class, datasets, "
            "callbacks and collate functions at module level (not lambdas or local "
            "functions)") from None
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="trainer-") as folder:
        result = Path(folder) / "rank0.pt"
        mp.spawn(_rank_main, args=(world, blob.getvalue(), address, backend, str(result)),
                 nprocs=world, join=True)
        back = torch.load(result, map_location="cpu", weights_only=False)
    trainer.module.load_state_dict(back["model"])
    if trainer.optimizer is not None and back["optimizer"] is not None:
        trainer.optimizer.load_state_dict(back["optimizer"])
    if trainer.scheduler is not None and back["scheduler"] is not None:
        trainer.scheduler.load_state_dict(back["scheduler"])
    for name in _KEPT:
        setattr(trainer, name, back[name])
    return trainer.history


def _rank_main(rank: int, world: int, blob: bytes, address: str, backend: str,
               result: str) -> None:
    global _SPAWNED
    _SPAWNED = (rank, world)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    trainer, n_epoch, loader, valid_loader = torch.load(io.BytesIO(blob), map_location="cpu",
                                                        weights_only=False)
    device = trainer.devices[rank]
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=address, world_size=world, rank=rank)
    try:
        trainer.rank, trainer.world_size, trainer.device = rank, world, device
        module = trainer.model.to(device)
        _move_optimizer_state(trainer.optimizer, device)
        if trainer.scheduler is not None:
            _track_steps(trainer.optimizer)
        trainer.model = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device] if device.type == "cuda" else None)
        trainer.run(n_epoch, loader, valid_loader)
        if rank == 0:
            torch.save({
                "model": {k: v.cpu() for k, v in unwrap(trainer.model).state_dict().items()},
                "optimizer": trainer.optimizer.state_dict() if trainer.optimizer else None,
                "scheduler": trainer.scheduler.state_dict() if trainer.scheduler else None,
                **{name: getattr(trainer, name) for name in _KEPT}}, result)
        dist.barrier()   # no rank leaves while another still talks (gloo aborts: SIGABRT)
    finally:
        dist.destroy_process_group()
    # done: leave without the interpreter's and the C++ libraries' teardown, where gloo's
    # threads may abort the process (SIGABRT, "terminate called without an active
    # exception") after the work is saved
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _track_steps(optimizer) -> None:
    """Mark ``optimizer.step`` as a scheduler's, as torch's LRScheduler does when made
    (a pickled optimizer loses the mark and every scheduler step would warn)."""
    step = optimizer.step
    if hasattr(step, "_wrapped_by_lr_sched"):
        return

    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        optimizer._opt_called = True
        return step(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper


def _move_optimizer_state(optimizer, device: torch.device) -> None:
    if optimizer is None:
        return
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)
