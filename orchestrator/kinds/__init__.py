"""Job kinds: one module per kind, one registry of them.

``KINDS`` maps a ``Kind`` cell to its ``Kind`` (``command``, ``sweep``, ``ddp``, ``hf``,
``yolo``, ``yolo_label``); ``parse_row`` turns a queue row into a ``JobSpec`` its kind
accepts. Adding a kind is a module with a ``Kind`` and a line here.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core import JobSpec
from orchestrator.infra.errors import QueueFileError
from orchestrator.kinds import ddp, hf, sweep, yolo, yolo_label
from orchestrator.kinds.base import Ended, Holds, Kind, KindError, LaunchContext
from orchestrator.kinds.command import CommandKind, job_script

__all__ = ["KINDS", "get", "parse_row", "Kind", "KindError", "Holds", "LaunchContext", "Ended",
           "job_script"]

KINDS: dict[str, Kind] = {k.name: k for k in (
    CommandKind(), ddp.KIND, hf.KIND, yolo.KIND, yolo_label.KIND, sweep.KIND)}


def get(name: str) -> Kind:
    return KINDS[name]


def parse_row(row: dict[str, str], line: int, path: str | Path,
              base_dir: Path | None = None) -> JobSpec:
    """A queue row as a ``JobSpec`` its kind can run, or ``QueueFileError`` naming the
    file, line, ID, cell, value and fix."""
    spec = JobSpec.from_row(row, line, path, base_dir, kinds=tuple(KINDS))
    kind = KINDS[spec.kind]

    def err(column, value, problem, fix):
        return QueueFileError(path, problem, line=line, job_id=spec.id, column=column,
                              value=value, fix=fix)

    if missing := kind.missing():   # its extra is not installed: the row cannot run here
        raise err("Kind", row.get("Kind") or spec.kind, *missing)
    if spec.config_path is not None and not spec.config_path.exists():
        raise err("Config", spec.config_text, f"no such file ({spec.config_path})",
                  "fix the path; relative paths start at the queue file's folder")
    try:   # data a parent row writes may not exist yet
        kind.check(spec, check_paths=not spec.pretrained_id)
    except KindError as e:
        raise err(e.column, e.value, e.problem, e.fix) from None
    if spec.on_oom == "halve_batch" and (why := kind.halves_batch(spec)):
        raise err("OnOOM", row.get("OnOOM"), why, "use more_gpu or fail")
    return spec
