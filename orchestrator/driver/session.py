"""The driver's connection to Ray, from its config."""

from __future__ import annotations

from orchestrator.infra.raycluster import connect
from orchestrator.store.config import Config

__all__ = ["connect_ray"]


def connect_ray(config: Config, address: str | None = None) -> bool:
    """Join the configured cluster, RAY_ADDRESS's, or start a local Ray with the config's
    GPUs, CPUs and dashboard. True when this process started Ray."""
    return connect(address or config.address or None, namespace=config.namespace,
                   dashboard=config.dashboard, num_gpus=config.num_gpus,
                   num_cpus=config.num_cpus)
