"""The experiment and model registry's Python API, at the path the README gives:
``from orchestrator.registry import ExperimentTracker, ModelRegistry``. The code lives in
``orchestrator.store.registry``. What they return (``Experiment``, ``ModelVersion``) are
frozen records with typed attributes that also read as mappings (``model["performance"]``);
``to_dict()`` gives a plain dict."""

from orchestrator.store.registry import (
    Experiment,
    ExperimentTracker,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)

__all__ = ["ExperimentTracker", "ModelRegistry", "RegistryError", "Experiment", "ModelVersion"]
