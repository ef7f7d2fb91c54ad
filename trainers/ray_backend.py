"""The torch process group's backend, chosen by the workers themselves.

Ray Train picks NCCL whenever workers ask for GPUs, and NCCL refuses to start where
no CUDA device exists — as on a machine with Ray's *logical* GPUs (tests, CPU
clusters that count GPUs for scheduling). The driver cannot tell: it may run on a
CPU-only head node, and a Ray Train row's own job holds no GPU. So the backend asks
the workers when the group starts: NCCL when all of them see CUDA, else gloo. Used by
both Ray Train kinds (``trainers.torch``, ``trainers.hf``). Built on Ray Train's Backend plug-in
(``ray.train.torch.config._TorchBackend``, ray 2.60).
"""

from __future__ import annotations

import dataclasses

from ray.train.torch import TorchConfig
from ray.train.torch.config import _TorchBackend

__all__ = ["AutoBackendTorchConfig"]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class _WorkerChosenBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config) -> None:
        cuda = all(worker_group.execute(_has_cuda))
        chosen = dataclasses.replace(backend_config, backend="nccl" if cuda else "gloo")
        super().on_start(worker_group, chosen)


@dataclasses.dataclass
class AutoBackendTorchConfig(TorchConfig):
    """``TorchConfig`` whose backend is NCCL on CUDA workers and gloo elsewhere."""

    backend: str | None = "auto"   # not None: TorchTrainer would set "nccl" for GPU workers

    @property
    def backend_cls(self):
        return _WorkerChosenBackend
