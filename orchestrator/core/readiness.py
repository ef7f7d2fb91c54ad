"""PretrainedModelId chaining: what each row waits for, and what it gets.

Pure functions over the rows' IDs, parents and statuses: an unknown parent or a cycle
→ Invalid; a failed parent → Blocked; a Done parent → ready, with its weight file (or
without, said in the reason, when it left none; the user's cell is never marked). A
negative id (the seed's "missing weights" mark, ``-m1``) names no parent. What is on disk
and in the model registry comes in as functions (``exists``, ``models``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.core.events import Readiness
from orchestrator.core.status import RowStatus
from orchestrator.infra.storage import is_uri

__all__ = ["resolve", "find_cycles"]

S = RowStatus


def find_cycles(parents: Mapping[str, str]) -> set[str]:
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


def _ready(path: str = "", reason: str = "", missing: bool = False) -> Readiness:
    return Readiness(S.PENDING, reason, ready=True, pretrained_path=path, missing_weights=missing)


def resolve(job_id: str, parent: str, statuses: Mapping[str, RowStatus],
            weights: Mapping[str, str], cycles: set[str], base_dir: Path,
            exists: Callable[[Path], bool],
            models: Callable[[str], dict | None] | None = None) -> Readiness:
    """Whether ``job_id`` (whose parent is ``parent``, "" for none) can start now.

    ``parent`` is a row ID first; otherwise a registry model (``models(parent)``: by id,
    ``name:version`` or ``name``). ``exists(path)``: whether a weight file is there."""
    if not parent:
        return _ready()
    if job_id in cycles:
        return Readiness(S.INVALID, f"PretrainedModelId={parent!r} makes a cycle — break the "
                         "chain so that no row waits on itself")
    if parent not in statuses:
        model = models(parent) if models is not None else None
        if model is None:
            return Readiness(S.INVALID, f"PretrainedModelId={parent!r}: no row has that ID "
                             "and no registered model has that id or name[:version] — use "
                             "another row's ID or a model from `orchestrator registry models`")
        file_path = model.get("file_path") or ""
        if is_uri(file_path):   # in storage: the row's node downloads it
            return _ready(file_path)
        if not file_path or not exists(Path(file_path)):
            return Readiness(S.INVALID, f"PretrainedModelId={parent!r}: model "
                             f"{model['name']}:{model['version']} has no weight file on this "
                             f"machine ({file_path or 'none recorded'})")
        return _ready(file_path)
    status = statuses[parent]
    if status.is_failed:
        return Readiness(S.BLOCKED, f"its pretrained parent {parent} ended {status.value} — "
                         f"fix and rerun {parent} (clear its TrainingCheck)")
    if status is not S.DONE:
        return Readiness(S.PENDING, f"waits for its parent {parent} ({status.label})")
    weight = (weights.get(parent) or "").strip()
    if is_uri(weight):   # in storage: the row's node downloads it (a missing one fails there)
        return _ready(weight)
    path = Path(weight).expanduser() if weight else None
    if path is not None and not path.is_absolute():
        path = base_dir / path
    if path is None or not exists(path):
        return _ready(reason=f"{parent} is Done but left no weight file "
                      f"({weight or 'WeightFile is empty'}); ran without --pretrained_path",
                      missing=True)
    return _ready(str(path))
