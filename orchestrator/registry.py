"""The experiment and model registry's Python API, at the path the README gives:
``from orchestrator.registry import ExperimentTracker, ModelRegistry``. The code lives in
``orchestrator.store.registry``."""

from orchestrator.store.registry import ExperimentTracker, ModelRegistry, RegistryError

__all__ = ["ExperimentTracker", "ModelRegistry", "RegistryError"]
