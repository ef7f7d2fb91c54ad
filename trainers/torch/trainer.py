"""A small Trainer base class: write ``train_step``/``test_step``, call ``run``.

    class MyTrainer(Trainer):
        def train_step(self, batch):
            x, y = batch
            return {"loss": F.cross_entropy(self.model(x), y)}

        def test_step(self, batch):
            x, y = batch
            out = self.model(x)
            return {"loss": F.cross_entropy(out, y), "acc": (out.argmax(1) == y).float().mean()}

    MyTrainer(model, "cpu", optimizer=opt, scheduler=sched).run(5, loader, valid_loader)

During an epoch ``log_train`` / ``log_test`` hold the per-batch values of every key
``train_step`` / ``test_step`` returned (``np.mean(self.log_test["loss"])`` in a
``metric_on_epoch_end`` works as in the add-on Trainer it replaces); ``epoch_train`` /
``epoch_test`` are their averages (``train_loss``, ``valid_acc``...); ``logs`` is both
plus ``epoch`` and ``lr``, and ``history`` keeps every epoch's. Rank 0 reports ``logs`` to the
orchestrator (a no-op outside it). Add-ons (``Trainer.add_on(...)``) hook in through
``setup``, ``prepare_loaders``, ``reduce_logs``, ``on_run_start``, ``on_epoch_end``
and ``on_run_end``; they run before the class they are added to (MRO).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trainers.torch.context import world
from trainers.torch.weights import load_weights, save_weights, unwrap

__all__ = ["Trainer", "AddOn"]

_COMPOSED: dict[tuple, type] = {}   # (class, add-ons) -> the class add_on made of them


def _remake(recipe: tuple) -> Trainer:
    base, addons = recipe
    cls = base.add_on(*addons)
    return cls.__new__(cls)


class AddOn:
    """Base of the mix-ins ``Trainer.add_on`` accepts; their hooks call ``super()``."""


class Trainer:
    """Train ``model`` with ``optimizer``; ``mode="test"`` makes ``run`` only evaluate.

    ``scheduler`` steps once per epoch or per batch (``scheduler_step``, or the add-on
    Trainer's ``scheduler_step_on_batch=True``); ``gradient_clip`` > 0 clips the gradients'
    total norm; ``log_bar``: True prints one line per epoch on rank 0, a path appends
    those lines to that file, False is quiet. ``callbacks``: callables each called with
    the trainer at the end of every epoch. ``device`` may be a list of devices and
    ``init_method`` a process-group address, as the add-on Trainer takes them: under Ray
    Train (a ``Kind=ddp`` row) Ray's process group replaces both; in one plain process
    the first device is used. Either is said once, never an error.
    """

    def __init__(self, model: nn.Module, device: str | torch.device | list = "cpu",
                 mode: str = "train", optimizer: torch.optim.Optimizer | None = None,
                 scheduler=None, scheduler_step: str = "epoch", log_bar: bool | str | Path = True,
                 gradient_clip: float = 0.0, *, scheduler_step_on_batch: bool | None = None,
                 callbacks=None, init_method: str | None = None):
        if mode not in ("train", "test"):
            raise ValueError(f"mode={mode!r}: use 'train' or 'test'")
        if scheduler_step_on_batch is not None:
            scheduler_step = "batch" if scheduler_step_on_batch else "epoch"
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"scheduler_step={scheduler_step!r}: use 'epoch' or 'batch'")
        if mode == "train" and optimizer is None:
            raise ValueError("mode='train' needs an optimizer")
        self.rank, self.world_size = world()
        self.devices = [torch.device(d) for d in device] \
            if isinstance(device, (list, tuple)) else [torch.device(device)]
        if not self.devices:
            raise ValueError("device=[]: give a device, e.g. 'cpu' or 'cuda:0'")
        self.init_method = init_method
        if (len(self.devices) > 1 or init_method) and self.rank == 0:
            from trainers.torch.addons import MultiGPUAddon

            plain = "one process per device (DDP)" if isinstance(self, MultiGPUAddon) \
                and len(self.devices) > 1 else f"it trains on {self.devices[0]}" + \
                (" (MultiGPUAddon uses them all)" if len(self.devices) > 1 else "")
            print(f"[trainer] device={[str(d) for d in self.devices]}"
                  + (f", init_method={init_method!r}" if init_method else "")
                  + ": under Ray Train (a Kind=ddp row, Workers=N) Ray's process group and "
                  f"the device Ray gives each worker replace these; in a plain process {plain}",
                  file=sys.stderr, flush=True)
        self.device = self.devices[0]
        self.model = model.to(self.device)
        self.mode, self.optimizer, self.scheduler = mode, optimizer, scheduler
        self.scheduler_step, self.gradient_clip = scheduler_step, gradient_clip
        self.log_bar = log_bar
        self.callbacks = list(callbacks or [])
        self.epoch = 0                    # epochs completed
        self.log_train: dict[str, list[float]] = {}   # this epoch's per-batch values
        self.log_test: dict[str, list[float]] = {}
        self.epoch_train: dict[str, float] = {}       # their averages (train_loss...)
        self.epoch_test: dict[str, float] = {}
        self.logs: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.setup()

    # -- what a subclass writes ---------------------------------------------------------------
    def train_step(self, batch) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define train_step(batch)")

    def test_step(self, batch) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define test_step(batch)")

    def metric_on_epoch_end(self) -> dict | None:
        """Extra epoch metrics (e.g. over all predictions); merged into ``logs``."""
        return None

    # -- composition --------------------------------------------------------------------------
    @classmethod
    def add_on(cls, *addons: type) -> type:
        """A NEW class: ``addons`` mixed in before ``cls``; ``cls`` itself is unchanged."""
        for addon in addons:
            if not (isinstance(addon, type) and issubclass(addon, AddOn)):
                raise TypeError(f"{addon!r} is not an AddOn subclass")
        new = tuple(a for a in addons if not issubclass(cls, a))
        if not new:
            return cls
        key = (cls, new)
        if key not in _COMPOSED:   # the same mix twice is the same class (and pickles)
            name = "+".join([cls.__name__, *(a.__name__ for a in new)])
            _COMPOSED[key] = type(name, (*new, cls), {"__module__": cls.__module__,
                                                      "__qualname__": name, "_composed": key})
        return _COMPOSED[key]

    def __reduce_ex__(self, protocol):
        """A trainer of a class ``add_on`` made (no importable name) pickles as the mix
        that makes it again; ``MultiGPUAddon`` sends trainers to its processes."""
        recipe = type(self).__dict__.get("_composed")
        if recipe is None:
            return super().__reduce_ex__(protocol)
        return _remake, (recipe,), self.__dict__

    # -- running ------------------------------------------------------------------------------
    @property
    def module(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return unwrap(self.model)

    def run(self, n_epoch: int, loader, valid_loader=None) -> list[dict]:
        """Train until ``n_epoch`` epochs are done (a resumed run continues); the history."""
        loader, valid_loader = self.prepare_loaders(loader, valid_loader)
        if self.mode == "test":
            self.log_test, self.epoch_test = self._loop(
                valid_loader if valid_loader is not None else loader)
            return [self.epoch_test]
        self._n_epoch = n_epoch
        self.on_run_start(n_epoch)
        while self.epoch < n_epoch:
            self.on_epoch_start(self.epoch)
            self.run_epoch(loader, valid_loader)
        self.on_run_end()
        return self.history

    def run_epoch(self, loader, valid_loader=None) -> dict:
        started = time.monotonic()
        for data in (loader, valid_loader):
            sampler = getattr(data, "sampler", None)
            if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch
                sampler.set_epoch(self.epoch)
        self.log_train, self.epoch_train = self._loop(loader, train=True)
        self.log_test, self.epoch_test = self._loop(valid_loader) \
            if valid_loader is not None else ({}, {})
        self.epoch += 1
        logs = {"epoch": self.epoch, **self.epoch_train, **self.epoch_test,
                **(self.metric_on_epoch_end() or {})}
        if self.optimizer is not None:
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
        logs = {k: float(v) for k, v in logs.items()}
        logs["epoch"] = self.epoch
        self.logs = self.reduce_logs(logs)
        self._step_scheduler("epoch")
        self.history.append(self.logs)
        self._print_epoch(time.monotonic() - started)
        self.on_epoch_end(self.logs)
        for callback in self.callbacks:
            callback(self)
        return self.logs

    def run_batch(self, batch, train: bool = True) -> dict:
        """One step: forward (and in training backward, clip, optimizer and batch scheduler)."""
        batch = self.to_device(batch)
        if not train:
            return self.test_step(batch)
        out = self.train_step(batch)
        if "loss" not in out:
            raise KeyError(f"{type(self).__name__}.train_step must return {{'loss': tensor, ...}}")
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.clip_gradients()
        self.optimizer_step()
        self._step_scheduler("batch")
        return out

    def clip_gradients(self) -> float | None:
        if self.gradient_clip and self.gradient_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip)
            return float(norm)
        return None

    def optimizer_step(self) -> None:
        self.optimizer.step()

    def to_device(self, batch):
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, Mapping):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    def _loop(self, loader, train: bool = False
              ) -> tuple[dict[str, list[float]], dict[str, float]]:
        """One pass: each scalar output's per-batch values, and their averages (prefixed
        ``train_`` / ``valid_``)."""
        self.model.train(train)
        values: dict[str, list[torch.Tensor]] = {}
        live = self.log_train if train else self.log_test
        live.clear()   # filled as the epoch goes (a callback or add-on may read it)
        with torch.set_grad_enabled(train):
            for batch in loader:
                out = self.run_batch(batch, train=train)
                for key, value in out.items():
                    value = torch.as_tensor(value).detach().float()
                    if value.numel() == 1:
                        values.setdefault(key, []).append(value.reshape(()))
        per_batch = {k: torch.stack(v).tolist() for k, v in values.items()}
        live.update(per_batch)
        prefix = "train_" if train else "valid_"
        return live, {prefix + k: sum(v) / len(v) for k, v in per_batch.items() if v}

    def _step_scheduler(self, when: str) -> None:
        if self.scheduler is None or self.scheduler_step != when:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(self.logs.get("valid_loss", self.logs.get("train_loss", math.nan)))
        else:
            self.scheduler.step()

    def _print_epoch(self, seconds: float) -> None:
        if not self.log_bar or self.rank != 0:
            return
        shown = " ".join(f"{k}={v:.4g}" for k, v in self.logs.items() if k != "epoch")
        line = f"epoch {self.epoch} {shown} ({seconds:.1f}s)"
        if isinstance(self.log_bar, (str, Path)):  # a file someone follows
            with open(self.log_bar, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        else:
            print(line, flush=True)

    # -- hooks for add-ons --------------------------------------------------------------------
    def setup(self) -> None:
        """End of ``__init__``."""

    def prepare_loaders(self, loader, valid_loader):
        return loader, valid_loader

    def reduce_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """Combine one epoch's logs across workers (identity on one process)."""
        return logs

    def on_run_start(self, n_epoch: int) -> None:
        pass

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, logs: dict[str, float]) -> None:
        """Rank 0 reports the epoch to the orchestrator (no-op without ORCH_METRICS_FILE)."""
        if self.rank == 0:
            from orchestrator.api import report

            total = getattr(self, "_n_epoch", None)   # the views show "epoch x/y"
            report(step=self.epoch, epoch=self.epoch, **({"epochs": total} if total else {}),
                   **{k: v for k, v in logs.items() if k not in ("epoch", "epochs")})

    def on_run_end(self) -> None:
        pass

    # -- weights ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """The model's weights (.safetensors or torch.save), without the DDP wrapper."""
        return save_weights(self.model, path)

    def load(self, path: str | Path, strict: bool = True) -> None:
        """Weights from a file, a checkpoint, or a folder holding one."""
        load_weights(self.model, path, strict=strict)
