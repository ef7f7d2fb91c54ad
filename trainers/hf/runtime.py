"""Where a run happens: offline by default, which device, which weights, which checkpoint.

A job must not reach the network: ``from_pretrained("<hub name>")`` without
``HF_HUB_OFFLINE`` waits about a minute before failing, so the entry point turns
offline mode on (unless the user chose otherwise) and a hub name missing from the
local cache fails at once with the command that fetches it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from orchestrator.infra.validation import parse_bool
from trainers.configfile import TargetError, import_target
from trainers.errors import ConfigError

__all__ = ["set_offline", "is_offline", "ModelNotFound", "resolve_checkpoint", "pick_device",
           "latest_checkpoint", "load_callbacks", "world_rank"]

log = logging.getLogger(__name__)

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def set_offline(environ: MutableMapping[str, str] = os.environ) -> None:
    """Offline unless the user set these variables themselves (call before importing HF)."""
    for var in _OFFLINE_VARS:
        environ.setdefault(var, "1")


def is_offline(environ: MutableMapping[str, str] = os.environ) -> bool:
    return parse_bool(environ.get("HF_HUB_OFFLINE", "")) is True


class ModelNotFound(ConfigError):
    """A hub name that is neither a local folder nor in the HF cache, while offline."""

    def __init__(self, name: str):
        super().__init__(None, problem="not a local folder and not in the HF cache (offline)",
                         key="model.checkpoint", value=name,
                         fix=f"download it first (huggingface-cli download {name}) "
                             "or point to a folder")
        self.args = (f"model.checkpoint {name!r} is not a local folder and is not in the HF "
                     f"cache (offline): download it first (huggingface-cli download {name}) "
                     "or point to a folder",)


def resolve_checkpoint(cfg, pretrained_path: str | None = None) -> str:
    """The weights to start from: ``--pretrained_path`` (a parent row's best model) or
    ``model.checkpoint``; fails fast when they cannot be loaded offline."""
    if pretrained_path:
        path = Path(pretrained_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError("--pretrained_path",
                              problem="not a saved model folder (no config.json)",
                              value=str(path), fix="chain from a row whose WeightFile is an hf "
                              "best_model folder, or drop PretrainedModelId")
        return str(path.resolve())
    name = cfg.model.checkpoint
    if not name:
        raise ConfigError(cfg.source, problem="missing: which model to fine-tune",
                          key="model.checkpoint",
                          fix="set model: {checkpoint: <hub name or folder>}")
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if is_offline() and not _in_hub_cache(name):
        raise ModelNotFound(name)
    return name


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except HFValidationError:
        return False


def pick_device() -> str:
    """``cuda``, ``mps`` or ``cpu``: what this process can really use (logical Ray GPUs
    without CUDA are CPUs)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def latest_checkpoint(output_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder (one with its trainer state)."""
    if not output_dir.is_dir():
        return None
    done = [p for p in output_dir.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def load_callbacks(cfg) -> list:
    """Instances of the ``training.callbacks`` classes (modules beside the YAML import too)."""
    from transformers import TrainerCallback

    callbacks = []
    for spec in cfg.training.callbacks:
        try:
            cls = import_target(spec, [cfg.folder] if cfg.folder else [])
        except TargetError as e:
            raise ConfigError(cfg.source, problem=f"cannot import it: {e}",
                              key="training.callbacks",
                              value=spec, fix="put the module beside the YAML or on "
                              "PYTHONPATH, and check the class name") from None
        callback = cls() if isinstance(cls, type) else cls
        if not isinstance(callback, TrainerCallback):
            raise ConfigError(cfg.source, problem="not a transformers.TrainerCallback",
                              key="training.callbacks", value=spec,
                              fix="subclass transformers.TrainerCallback")
        callbacks.append(callback)
    return callbacks


def world_rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return int(os.environ.get("RANK", "0") or 0)
