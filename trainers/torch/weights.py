"""Weights and training state on disk: one layout for plain folders and Ray checkpoints.

A checkpoint is a folder holding either ``checkpoint.ckpt`` (``torch.save`` of model,
optimizer, scheduler, epoch and the per-epoch logs) or ``model.safetensors`` plus
``training_state.pt`` (everything but the weights). Weights are always the
un-DDP-wrapped module's, so a checkpoint loads into a plain model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["unwrap", "save_weights", "save_state_dict", "read_state_dict", "load_weights",
           "write_checkpoint", "read_checkpoint", "checkpoint_state_dict", "CKPT_FILE",
           "SAFETENSORS_FILE", "STATE_FILE", "WEIGHT_FILES"]

CKPT_FILE = "checkpoint.ckpt"
SAFETENSORS_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
#: What ``read_state_dict`` looks for in a folder, in this order.
WEIGHT_FILES = (SAFETENSORS_FILE, "model.pt", CKPT_FILE, "model.pth", "best.pt", "last.pt")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel (or the model itself)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's weights: safetensors when ``path`` ends in .safetensors, else torch.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = unwrap(model)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_model

        save_model(module, str(tmp))
    else:
        torch.save(module.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def save_state_dict(state: dict, path: str | Path) -> Path:
    """A state dict as a file (safetensors when ``path`` ends in .safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    else:
        torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_state_dict(path: str | Path) -> dict:
    """A state dict from a weights file, one of our checkpoints, or a folder holding either."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"no weights in {path} (looked for {', '.join(WEIGHT_FILES)})")
        path = found[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a state dict")
    prefix = "module."
    if data and all(k.startswith(prefix) for k in data):
        data = {k[len(prefix):]: v for k, v in data.items()}
    return data


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> None:
    unwrap(model).load_state_dict(read_state_dict(path), strict=strict)


def write_checkpoint(folder: str | Path, fmt: str, model: nn.Module, optimizer, scheduler,
                     epoch: int, history: list[dict]) -> Path:
    """Write one checkpoint into ``folder`` (created); ``fmt`` is "ckpt" or "safetensors"."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"epoch": epoch, "history": history,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    if fmt == "safetensors":
        save_weights(model, folder / SAFETENSORS_FILE)
        torch.save(state, folder / STATE_FILE)
    else:
        torch.save({**state, "model": unwrap(model).state_dict()}, folder / CKPT_FILE)
    return folder


def read_checkpoint(folder: str | Path, model: nn.Module, optimizer, scheduler) -> tuple[int, list]:
    """Restore what ``write_checkpoint`` wrote; returns ``(epoch, history)``."""
    folder = Path(folder)
    if (folder / CKPT_FILE).is_file():
        state = torch.load(folder / CKPT_FILE, map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(state["model"])
    else:
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
        load_weights(model, folder / SAFETENSORS_FILE)
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state.get("history") or [])


def checkpoint_state_dict(folder: str | Path) -> dict:
    """The model weights in a checkpoint folder that ``write_checkpoint`` wrote."""
    folder = Path(folder)
    if (folder / CKPT_FILE).is_file():
        return torch.load(folder / CKPT_FILE, map_location="cpu", weights_only=False)["model"]
    return read_state_dict(folder / SAFETENSORS_FILE)
