"""Kind ``ddp``: a Trainer base class with add-ons, run with DDP through Ray Train.

``trainers.torch.config`` is light (the orchestrator reads queue rows with it); the
training names below load torch on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

__all__ = ["Trainer", "AddOn", "StateManagerAddon", "WandBLoggerAddon", "MultiGPUAddon",
           "CosineAnnealingScheduler", "load_config", "metric"]

_LAZY = {"Trainer": "trainer", "AddOn": "trainer", "StateManagerAddon": "addons",
         "WandBLoggerAddon": "addons", "MultiGPUAddon": "addons",
         "CosineAnnealingScheduler": "schedulers"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"trainers.torch.{_LAZY[name]}"), name)
    if name in ("load_config", "metric"):
        from trainers.torch import config

        return config.load if name == "load_config" else config.metric
    raise AttributeError(f"module 'trainers.torch' has no attribute {name!r}")
