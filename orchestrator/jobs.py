"""What a job is: its status enum, the row schema, and ``JobSpec`` parsed from a row.

A ``JobSpec`` is the validated, typed form of one queue row's definition
columns. It is built once, at the edge, by ``JobSpec.from_row``; everything
inward works with it, never with the row's strings.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.exceptions import QueueFileError

__all__ = [
    "JobStatus", "JobSpec", "KINDS", "REQUIRED_COLUMNS",
    "SEED_COLUMNS", "OWNED_COLUMNS", "parse_gpu_ids", "parse_resources",
]


class JobStatus(enum.StrEnum):
    """Values of the ``TrainingCheck`` column (seed-compatible)."""

    PENDING = ""
    QUEUED = "Queued"
    TRAINING = "Training"
    DONE = "Done"
    CRASH = "Crash"
    STOPPED = "Stopped"
    BLOCKED = "Blocked"
    INVALID = "Invalid"

    @classmethod
    def parse(cls, text: str) -> JobStatus:
        """Read a cell leniently: case and spaces do not matter; unknown text is pending."""
        norm = (text or "").strip().lower()
        for status in cls:
            if status.value.lower() == norm:
                return status
        return cls.PENDING

    @property
    def active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.TRAINING)

    @property
    def failed(self) -> bool:
        return self in FAILED


FAILED = frozenset({JobStatus.CRASH, JobStatus.STOPPED, JobStatus.BLOCKED, JobStatus.INVALID})

#: The allowed moves of the lifecycle (docs/lifecycle.md draws it).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.QUEUED, JobStatus.BLOCKED, JobStatus.INVALID,
                                  JobStatus.STOPPED}),
    JobStatus.QUEUED: frozenset({JobStatus.TRAINING, JobStatus.PENDING, JobStatus.CRASH,
                                 JobStatus.STOPPED}),
    JobStatus.TRAINING: frozenset({JobStatus.DONE, JobStatus.CRASH, JobStatus.STOPPED,
                                   JobStatus.PENDING}),
    # Derived states: recomputed whenever the row or its parent changes.
    JobStatus.BLOCKED: frozenset({JobStatus.PENDING, JobStatus.INVALID, JobStatus.STOPPED}),
    JobStatus.INVALID: frozenset({JobStatus.PENDING, JobStatus.BLOCKED}),
    # Terminal for the attempt; the user clears TrainingCheck to run the row again.
    JobStatus.DONE: frozenset(),
    JobStatus.CRASH: frozenset(),
    JobStatus.STOPPED: frozenset(),
}

SEED_COLUMNS = ("ID", "Name", "TrainingCommand", "TrainingCheck", "WandbRunID",
                "WeightFile", "PretrainedModelId", "GpuID")
REQUIRED_COLUMNS = ("ID", "TrainingCommand")
#: Columns the orchestrator writes; every other column belongs to the user.
OWNED_COLUMNS = ("TrainingCheck", "WandbRunID", "WeightFile", "Started", "Ended", "Attempts",
                 "Node", "BestMetric", "BestConfig", "Error", "LogFile")

KINDS = ("command", "ddp", "hf", "yolo", "yolo_label", "sweep")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class JobSpec:
    """One queue row's definition, validated."""

    id: str
    line: int
    name: str = ""
    command: str = ""
    kind: str = "command"
    config_path: Path | None = None
    gpus: float | None = None          # None: the config's default
    cpus: float | None = None          # None: the config's default
    workers: int = 1
    priority: float = 0.0
    retries: int = 0
    pretrained_id: str = ""            # "" or a parent ID; "-m1" = seed's "weights missing" mark
    gpu_ids: tuple[int, ...] = ()      # the GpuID column (pinned mode)
    resources: tuple[tuple[str, float], ...] = field(default=())

    @property
    def parent_id(self) -> str:
        """The row this one waits for, or "" (a negative id means "already marked missing")."""
        pid = self.pretrained_id.strip()
        return "" if not pid or pid.startswith("-") else pid

    @classmethod
    def from_row(cls, row: dict[str, str], line: int, path: str | Path,
                 base_dir: Path | None = None) -> JobSpec:
        """Validate one row. Raises ``QueueFileError`` naming file, line, ID, value and fix."""
        job_id = (row.get("ID") or "").strip()

        def err(column, value, problem, fix):
            return QueueFileError(path, problem, line=line, job_id=job_id or None,
                                  column=column, value=value, fix=fix)

        if not _ID_RE.match(job_id):
            raise err("ID", job_id, "an ID must start with a letter or digit and hold only "
                      "letters, digits, '.', '_' and '-'", "rename the row, e.g. 'm7'")
        kind = (row.get("Kind") or "").strip().lower() or "command"
        if kind not in KINDS:
            near = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise err("Kind", row.get("Kind"), "unknown kind",
                      f"{hint}valid kinds: {', '.join(KINDS)}")
        command = row.get("TrainingCommand") or ""
        if kind == "command" and not command.strip():
            raise err("TrainingCommand", command, "the command is empty",
                      "write the shell command that trains this row")
        config_path = None
        config_text = (row.get("Config") or "").strip()
        if config_text:
            config_path = Path(config_text).expanduser()
            if not config_path.is_absolute() and base_dir is not None:
                config_path = base_dir / config_path
            if not config_path.exists():
                raise err("Config", config_text, f"no such file ({config_path})",
                          "fix the path; relative paths start at the queue file's folder")
        if kind == "sweep":
            _check_sweep(config_path, config_text, err)
        elif kind != "command":  # data a parent row writes may not exist yet
            _check_builtin(kind, config_path, config_text, err,
                           check_paths=not (row.get("PretrainedModelId") or "").strip())
        gpus = _parse_gpus(row.get("GPUs"), err)
        cpus = _parse_number(row.get("CPUs"), "CPUs", err, minimum=0.0,
                             fix="use a number >= 0, e.g. 1 or 0.5")
        workers = _parse_int(row.get("Workers"), "Workers", err, default=1, minimum=1)
        priority = _parse_number(row.get("Priority"), "Priority", err,
                                 fix="use a number; higher runs first") or 0.0
        retries = _parse_int(row.get("Retries"), "Retries", err, default=0, minimum=0)
        try:
            gpu_ids = parse_gpu_ids(row.get("GpuID") or "")
        except ValueError as e:
            raise err("GpuID", row.get("GpuID"), str(e), "use GPU numbers like 0 or 0+1") from None
        try:
            resources = parse_resources(row.get("Resources") or "")
        except ValueError as e:
            raise err("Resources", row.get("Resources"), str(e),
                      "write name=amount pairs, e.g. 'a100=1,bigmem=0.5'") from None
        return cls(id=job_id, line=line, name=(row.get("Name") or "").strip(), command=command,
                   kind=kind, config_path=config_path, gpus=gpus, cpus=cpus, workers=workers,
                   priority=priority, retries=retries,
                   pretrained_id=(row.get("PretrainedModelId") or "").strip(),
                   gpu_ids=gpu_ids, resources=resources)


def _check_sweep(config_path, config_text, err) -> None:
    if config_path is None:
        raise err("Config", config_text, "a sweep row needs its sweep file",
                  "put the W&B sweep YAML's path in Config")
    from sweeps import SweepError, load_sweep
    try:
        load_sweep(config_path)
    except SweepError as e:
        first = "; ".join(f"{i.where}: {i.problem}" for i in e.issues[:3])
        more = f" (+{len(e.issues) - 3} more)" if len(e.issues) > 3 else ""
        raise err("Config", config_text, f"the sweep file cannot run: {first}{more}",
                  f"run `orchestrator sweep check {config_text}`") from None


def _check_builtin(kind, config_path, config_text, err, check_paths: bool) -> None:
    if config_path is None:
        raise err("Config", config_text, f"a {kind} row needs its config file",
                  f"put the {kind} YAML's path in Config (see examples/ for one)")
    from trainers.errors import ConfigError
    from trainers.kinds import check_config
    try:
        check_config(kind, config_path, check_paths=check_paths)
    except ConfigError as e:
        raise err("Config", config_text, f"the {kind} config cannot run: {e.problem}"
                  + (f" (key {e.key!r}" + (f" = {e.value!r})" if e.value is not None else ")")
                     if e.key else ""),
                  e.fix or f"fix {config_path}") from None


def _parse_number(text, column, err, *, minimum=None, fix):
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise err(column, text, "not a number", fix) from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise err(column, text, f"must be a finite number >= {minimum}", fix)
    return value


def _parse_int(text, column, err, *, default, minimum):
    value = _parse_number(text, column, err, minimum=minimum,
                          fix=f"use a whole number >= {minimum}")
    if value is None:
        return default
    if value != int(value):
        raise err(column, text, "must be a whole number", f"use a whole number >= {minimum}")
    return int(value)


def _parse_gpus(text, err):
    fix = "use a fraction <= 1 (0.25, 0.5) or a whole number (1, 2, 4)"
    value = _parse_number(text, "GPUs", err, minimum=0.0, fix=fix)
    if value is not None and value > 1 and value != int(value):
        raise err("GPUs", text.strip(), "more than one GPU must be a whole number", fix)
    return value


def parse_gpu_ids(text: str) -> tuple[int, ...]:
    """``"0+1"``, ``"0,1"`` or ``"2"`` → ``(0, 1)`` / ``(2,)``; ``""`` → ``()``."""
    parts = [p.strip() for p in re.split(r"[+,;\s]+", text.strip()) if p.strip()]
    ids = []
    for part in parts:
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a GPU number")
        ids.append(int(part))
    if len(set(ids)) != len(ids):
        raise ValueError("a GPU is listed twice")
    return tuple(ids)


def parse_resources(text: str) -> tuple[tuple[str, float], ...]:
    """``"a100=1,bigmem=0.5"`` → ``(("a100", 1.0), ("bigmem", 0.5))`` (sorted)."""
    out = {}
    for part in (p.strip() for p in re.split(r"[,;]", text) if p.strip()):
        name, sep, amount = part.partition("=")
        name = name.strip()
        if not name or not re.match(r"^[A-Za-z_][\w.:-]*$", name):
            raise ValueError(f"{part!r} has no valid resource name")
        try:
            value = float(amount) if sep else 1.0
        except ValueError:
            raise ValueError(f"{amount.strip()!r} is not an amount") from None
        if value <= 0 or not math.isfinite(value):
            raise ValueError(f"{part!r}: the amount must be > 0")
        out[name] = value
    return tuple(sorted(out.items()))
