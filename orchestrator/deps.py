"""PretrainedModelId chaining: what each row waits for, and what it gets.

Pure functions over the rows' IDs, parents and statuses, so the rules are unit
tested without Ray: unknown parent or a cycle → Invalid; a failed parent →
Blocked; a Done parent → ready, with its weight file (or the seed's "missing
weights" mark, a negative id, when it left none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.jobs import JobStatus
from trainers.storage import is_uri

__all__ = ["Readiness", "resolve", "find_cycles"]


@dataclass(frozen=True)
class Readiness:
    state: str                  # "ready" | "wait" | "blocked" | "invalid"
    reason: str = ""
    pretrained_path: str = ""   # the parent's weights, when ready
    missing_weights: bool = False


def find_cycles(parents: dict[str, str]) -> set[str]:
    """IDs that sit on a PretrainedModelId cycle (a row naming itself included)."""
    on_cycle: set[str] = set()
    for start in parents:
        seen: list[str] = []
        node = start
        while node in parents and node not in seen:
            seen.append(node)
            node = parents[node]
        if node in seen:
            on_cycle.update(seen[seen.index(node):])
    return on_cycle


def resolve(job_id: str, parent: str, statuses: dict[str, JobStatus],
            weights: dict[str, str], cycles: set[str], base_dir: Path,
            models: Callable[[str], dict | None] | None = None) -> Readiness:
    """Whether ``job_id`` (whose parent is ``parent``, "" for none) can start now.

    ``parent`` is a row ID first; otherwise a registry model (``models(parent)``: by id,
    ``name:version`` or ``name``).
    """
    if not parent:
        return Readiness("ready")
    if job_id in cycles:
        return Readiness("invalid", f"PretrainedModelId={parent!r} makes a cycle — break the "
                         "chain so that no row waits on itself")
    if parent not in statuses:
        model = models(parent) if models is not None else None
        if model is None:
            return Readiness("invalid", f"PretrainedModelId={parent!r}: no row has that ID and "
                             "no registered model has that id or name[:version] — use another "
                             "row's ID or a model from `orchestrator registry models`")
        path = Path(model.get("file_path") or "")
        if is_uri(model.get("file_path")):   # in storage: the row's node downloads it
            return Readiness("ready", pretrained_path=model["file_path"])
        if not model.get("file_path") or not path.exists():
            return Readiness("invalid", f"PretrainedModelId={parent!r}: model "
                             f"{model['name']}:{model['version']} has no weight file on this "
                             f"machine ({model.get('file_path') or 'none recorded'})")
        return Readiness("ready", pretrained_path=str(path))
    status = statuses[parent]
    if status.failed:
        return Readiness("blocked", f"its pretrained parent {parent} ended {status.value} — "
                         f"fix and rerun {parent} (clear its TrainingCheck)")
    if status != JobStatus.DONE:
        return Readiness("wait", f"waiting for {parent}")
    weight = (weights.get(parent) or "").strip()
    if is_uri(weight):   # in storage: the row's node downloads it (a missing one fails there)
        return Readiness("ready", pretrained_path=weight)
    path = Path(weight).expanduser() if weight else None
    if path is not None and not path.is_absolute():
        path = base_dir / path
    if path is None or not path.exists():
        return Readiness("ready", f"{parent} is Done but left no weight file "
                         f"({weight or 'WeightFile is empty'}); marked PretrainedModelId "
                         f"-{parent} and ran without --pretrained_path", missing_weights=True)
    return Readiness("ready", pretrained_path=str(path))
