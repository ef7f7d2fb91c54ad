"""Add-ons for ``Trainer.add_on``: checkpoints with resume, wandb logging, DDP.

    MyTrainer.add_on(MultiGPUAddon, StateManagerAddon, WandBLoggerAddon)(
        model, device, optimizer=opt, checkpoint_dir="ckpts", num_to_keep=2,
        wandb_config={"project": "demo"}).run(10, loader, valid_loader)

Each add-on takes its own keyword arguments and passes the rest on. Outside Ray
Train ``MultiGPUAddon`` runs one process per device (nothing on one device) and
``StateManagerAddon`` keeps checkpoints in a folder; inside, checkpoints go through
``ray.train.report`` and resume from ``ray.train.get_checkpoint()``, which is how a
restarted worker group continues.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from trainers.torch import spawn
from trainers.torch.context import in_ray_train
from trainers.torch.trainer import AddOn
from trainers.torch.weights import read_checkpoint, write_checkpoint

__all__ = ["StateManagerAddon", "WandBLoggerAddon", "MultiGPUAddon", "latest_checkpoint",
           "FORMATS"]

FORMATS = ("ckpt", "safetensors")
_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def epoch_dir_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}"


def _epoch_dirs(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := _EPOCH_DIR.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete ``epoch_NNNN`` checkpoint folder under ``folder`` (None if none)."""
    found = _epoch_dirs(Path(folder))
    return found[-1][1] if found else None


class StateManagerAddon(AddOn):
    """Model, optimizer and scheduler state every epoch; resume from the latest.

    ``checkpoint_format``: "ckpt" (one torch.save file) or "safetensors" (weights as
    .safetensors plus a small torch file). Plain use keeps the last ``num_to_keep`` in
    ``checkpoint_dir``; under Ray Train rank 0 writes the checkpoint and every rank
    calls ``ray.train.report`` (Ray's ``CheckpointConfig`` decides what to keep).
    ``score_metric``: a key every epoch's logs must hold (Ray scores checkpoints by it).
    ``save_path`` is the add-on Trainer's name for ``checkpoint_dir``.
    """

    def __init__(self, *args, checkpoint_dir: str | Path = "checkpoints", num_to_keep: int = 2,
                 checkpoint_format: str = "ckpt", resume: bool = True, score_metric: str = "",
                 save_path: str | Path | None = None, **kwargs):
        if save_path is not None:   # the add-on Trainer's name for it
            checkpoint_dir = save_path
        if checkpoint_format not in FORMATS:
            raise ValueError(f"checkpoint_format={checkpoint_format!r}: use one of {FORMATS}")
        if num_to_keep < 1:
            raise ValueError(f"num_to_keep={num_to_keep}: keep at least 1")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.num_to_keep, self.checkpoint_format = num_to_keep, checkpoint_format
        self.resume, self.score_metric = resume, score_metric
        self.resumed_from: str | None = None
        super().__init__(*args, **kwargs)

    def on_run_start(self, n_epoch: int) -> None:
        super().on_run_start(n_epoch)
        if self.resume:
            self.resume_latest()

    def on_epoch_end(self, logs: dict[str, float]) -> None:
        super().on_epoch_end(logs)
        if self.score_metric and self.score_metric not in logs:
            raise KeyError(f"metric {self.score_metric!r} is not in the epoch's logs "
                           f"({', '.join(sorted(logs))}): log it (e.g. give a valid_loader for "
                           "valid_loss) or choose one of these")
        if in_ray_train():
            self._report_to_ray(logs)
        else:
            self._save_to_folder()

    def resume_latest(self) -> bool:
        """Load the latest checkpoint (Ray's inside Ray Train, else ``checkpoint_dir``'s)."""
        if in_ray_train():
            import ray.train

            checkpoint = ray.train.get_checkpoint()
            if checkpoint is None:
                return False
            with checkpoint.as_directory() as folder:
                self._restore(folder)
            self.resumed_from = checkpoint.path
            return True
        folder = latest_checkpoint(self.checkpoint_dir)
        if folder is None:
            return False
        self._restore(folder)
        self.resumed_from = str(folder)
        return True

    def _restore(self, folder) -> None:
        self.epoch, self.history = read_checkpoint(folder, self.model, self.optimizer,
                                                   self.scheduler)
        self.logs = dict(self.history[-1]) if self.history else {}

    def _write(self, folder: Path) -> None:
        write_checkpoint(folder, self.checkpoint_format, self.model, self.optimizer,
                         self.scheduler, self.epoch, self.history)

    def _save_to_folder(self) -> None:
        if self.rank != 0:
            return
        final = self.checkpoint_dir / epoch_dir_name(self.epoch)
        tmp = self.checkpoint_dir / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self._write(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _, old in _epoch_dirs(self.checkpoint_dir)[:-self.num_to_keep]:
            shutil.rmtree(old, ignore_errors=True)

    def _report_to_ray(self, logs: dict[str, float]) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="trainer-ckpt-") as tmp:
            checkpoint = None
            if self.rank == 0:
                self._write(Path(tmp))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(dict(logs), checkpoint=checkpoint,
                             checkpoint_dir_name=epoch_dir_name(self.epoch))


class WandBLoggerAddon(AddOn):
    """Rank 0 logs every epoch's logs to wandb.

    ``wandb_config`` (or the add-on Trainer's ``web_logger={"wandb": {...}}``):
    None/``{"enabled": False}`` = off; else wandb.init's project,
    entity, name, group, tags, config. ``WANDB_RUN_ID`` from the environment (the
    orchestrator's) is the run id, resumed with ``resume="allow"``; ``WANDB_MODE=offline``
    needs no network; ``WANDB_MODE=disabled`` turns it off.
    """

    def __init__(self, *args, wandb_config: dict | None = None,
                 web_logger: dict | None = None, **kwargs):
        if wandb_config is None and web_logger:   # the add-on Trainer's {"wandb": {...}}
            wandb_config = web_logger.get("wandb")
        self.wandb_config = dict(wandb_config or {})
        self.wandb_run = None
        super().__init__(*args, **kwargs)

    @property
    def wandb_enabled(self) -> bool:
        return (bool(self.wandb_config) and self.wandb_config.get("enabled", True) is not False
                and os.environ.get("WANDB_MODE") != "disabled")

    def on_run_start(self, n_epoch: int) -> None:
        super().on_run_start(n_epoch)
        if self.rank == 0 and self.wandb_enabled and self.wandb_run is None:
            self.wandb_run = self._init_wandb()

    def on_epoch_end(self, logs: dict[str, float]) -> None:
        super().on_epoch_end(logs)
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in logs.items() if k != "epoch"}, step=self.epoch)

    def on_run_end(self) -> None:
        super().on_run_end()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None

    def _init_wandb(self):
        try:
            import wandb
        except ImportError:
            raise ImportError("WandBLoggerAddon needs wandb: pip install wandb") from None
        c = self.wandb_config
        options = {k: c[k] for k in ("project", "entity", "name", "group") if c.get(k)}
        return wandb.init(**options, tags=list(c.get("tags") or []) or None,
                          config=c.get("config"), id=os.environ.get("WANDB_RUN_ID") or None,
                          resume="allow", dir=os.environ.get("WANDB_DIR") or None)


class MultiGPUAddon(AddOn):
    """DDP over several devices: Ray Train's inside a Ray Train worker (a ``Kind=ddp``
    row), else one process per device as the add-on Trainer did; nothing on one device.

    In a Ray Train worker ``ray.train.torch.prepare_model`` wraps the model (the CUDA
    device Ray gave this worker, or the CPU when there is no CUDA — e.g. logical GPUs on
    a test machine) and ``prepare_data_loader`` gives each rank its shard. Given
    ``device=[...]`` with several devices in a plain process, ``run`` spawns one process per
    device joined by ``init_method`` (``trainers.torch.spawn``); the trained weights come
    back into this trainer's model. Either way every epoch's logs are averaged over the
    ranks (one all_reduce).
    """

    def setup(self) -> None:
        super().setup()
        if not in_ray_train():
            return
        import ray.train.torch

        cuda = torch.cuda.is_available()
        self.device = ray.train.torch.get_device() if cuda else torch.device("cpu")
        self.model = ray.train.torch.prepare_model(self.model, move_to_device=self.device)

    def run(self, n_epoch: int, loader, valid_loader=None) -> list[dict]:
        if len(self.devices) < 2 or in_ray_train() or spawn.spawned() is not None \
                or (dist.is_available() and dist.is_initialized()):
            return super().run(n_epoch, loader, valid_loader)
        return spawn.run_per_device(self, n_epoch, loader, valid_loader)

    def prepare_loaders(self, loader, valid_loader):
        loader, valid_loader = super().prepare_loaders(loader, valid_loader)
        if spawn.spawned() is not None:
            rank, world = spawn.spawned()
            return spawn.shard(loader, rank, world), spawn.shard(valid_loader, rank, world)
        if not in_ray_train() or self.world_size < 2:
            return loader, valid_loader
        from ray.train.torch import prepare_data_loader

        def shard(data):
            return None if data is None else prepare_data_loader(data, move_to_device=False)

        return shard(loader), shard(valid_loader)

    def reduce_logs(self, logs: dict[str, float]) -> dict[str, float]:
        logs = super().reduce_logs(logs)
        if self.world_size < 2 or not dist.is_available() or not dist.is_initialized():
            return logs
        keys = sorted(logs)
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        averaged = dict(zip(keys, (values / self.world_size).tolist(), strict=True))
        averaged["epoch"] = logs.get("epoch", self.epoch)
        return averaged
