"""What a row asks for: ``JobSpec``, parsed from the row's definition columns.

``JobSpec.from_row`` is the edge: it turns the row's strings into typed values once,
with messages naming the file, line, ID, value and fix. What a kind needs of its own
(a command, a config file that loads) is checked by its ``Kind``; this module only
knows the cells every row has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.infra.errors import QueueFileError
from orchestrator.infra.validation import did_you_mean, nearest

__all__ = ["JobSpec", "SEED_COLUMNS", "REQUIRED_COLUMNS", "OWNED_COLUMNS", "KNOWN_COLUMNS",
           "canonical_column", "column_typos",
           "ON_OOM", "parse_gpu_ids", "parse_resources", "parse_duration"]

SEED_COLUMNS = ("ID", "Name", "TrainingCommand", "TrainingCheck", "WandbRunID",
                "WeightFile", "PretrainedModelId", "GpuID")
REQUIRED_COLUMNS = ("ID", "TrainingCommand")
#: The columns the orchestrator writes. Nothing else is ever written into the file.
OWNED_COLUMNS = ("TrainingCheck", "WandbRunID", "WeightFile", "Started", "Ended", "Attempts",
                 "Node", "BestMetric", "BestConfig", "Error", "LogFile")
#: Every column the orchestrator reads or writes. A header cell that names one in another
#: case (``gpus``, `` GPUs``) is that column; one that nearly does (``GPU``, ``Priorty``)
#: is a probable typo, said before anything runs (``column_typos``).
KNOWN_COLUMNS = (*dict.fromkeys(
    (*SEED_COLUMNS, "GPUs", "CPUs", "Workers", "Priority", "Retries", "Kind", "Config",
     "Notes", "OnOOM", "Resources", "TimeLimit", *OWNED_COLUMNS)),)
_KNOWN_BY_KEY = {c.lower(): c for c in KNOWN_COLUMNS}


def canonical_column(name: str) -> str:
    """The known column ``name`` means regardless of case and spaces, else ``name``."""
    return _KNOWN_BY_KEY.get(name.strip().lower(), name)


def column_typos(header: Sequence[str], own: Collection[str] = ()) -> list[tuple[str, str]]:
    """``(header cell, the known column it probably meant)`` for each cell that is not a
    known column but nearly is (``GPU`` → ``GPUs``, ``Priorty`` → ``Priority``), unless
    the user declared it their own (``own``, any case)."""
    present = {canonical_column(h) for h in header}
    mine = {o.strip().lower() for o in own}
    out = []
    for cell in header:
        name = cell.strip()
        if not name or canonical_column(name) in KNOWN_COLUMNS or \
                name.lower() in mine:
            continue
        near = nearest(name.lower(), _KNOWN_BY_KEY, cutoff=0.8)
        if near and _KNOWN_BY_KEY[near] not in present:
            out.append((cell, _KNOWN_BY_KEY[near]))
    return out


#: The most ``Retries`` a row may ask for: more keeps a queue alive for hours of backoff.
MAX_RETRIES = 100
#: What an out-of-memory attempt does next (``OnOOM`` column, ``[retry] on_oom``).
ON_OOM = ("fail", "more_gpu", "halve_batch")

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
    config_text: str = ""              # the Config cell as written
    gpus: float | None = None          # None: the config's default
    cpus: float | None = None          # None: the config's default
    workers: int = 1
    priority: float = 0.0
    retries: int = 0
    pretrained_id: str = ""            # "" or a parent ID; "-m1" (the seed's mark): no parent
    gpu_ids: tuple[int, ...] = ()      # the GpuID column (pinned mode)
    resources: tuple[tuple[str, float], ...] = field(default=())
    on_oom: str = ""                   # "" = [retry] on_oom
    time_limit: float | None = None    # seconds; None = [retry] time_limit
    notes: str = ""                    # the Notes column: kept with its runs in the registry

    @property
    def parent_id(self) -> str:
        """The row this one waits for, or "" (a negative id means "already marked missing")."""
        pid = self.pretrained_id.strip()
        return "" if not pid or pid.startswith("-") else pid

    @classmethod
    def from_row(cls, row: dict[str, str], line: int, path: str | Path,
                 base_dir: Path | None = None, kinds: Sequence[str] = ("command",)) -> JobSpec:
        """Validate one row's common cells. Raises ``QueueFileError`` naming file, line, ID,
        value and fix. ``kinds``: the kind names a row may give."""
        job_id = (row.get("ID") or "").strip()

        def err(column, value, problem, fix):
            return QueueFileError(path, problem, line=line, job_id=job_id or None,
                                  column=column, value=value, fix=fix)

        if not _ID_RE.match(job_id):
            raise err("ID", job_id, "an ID must start with a letter or digit and hold only "
                      "letters, digits, '.', '_' and '-'", "rename the row, e.g. 'm7'")
        stray = [v for k, v in row.items() if not (k or "").strip() and (v or "").strip()]
        if stray:   # more cells than the header: a comma inside an unquoted cell, most often
            raise err("(extra cells)", ",".join(stray), "the row has more cells than the header "
                      "names, so its cells do not line up with their columns",
                      'quote the cell that holds a comma ("… cfg_64,128") or remove the '
                      "extra cell")
        kind = (row.get("Kind") or "").strip().lower() or "command"
        if kind not in kinds:
            hint = did_you_mean(kind, kinds, "'{}'")
            raise err("Kind", row.get("Kind"), "unknown kind",
                      f"{hint}valid kinds: {', '.join(kinds)}")
        config_text = (row.get("Config") or "").strip()
        config_path = None
        if config_text:
            config_path = Path(config_text).expanduser()
            if not config_path.is_absolute() and base_dir is not None:
                config_path = base_dir / config_path
        gpus = _parse_gpus(row.get("GPUs"), err)
        cpus = _parse_number(row.get("CPUs"), "CPUs", err, minimum=0.0,
                             fix="use a number >= 0, e.g. 1 or 0.5")
        workers = _parse_int(row.get("Workers"), "Workers", err, default=1, minimum=1)
        priority = _parse_number(row.get("Priority"), "Priority", err,
                                 fix="use a number; higher runs first") or 0.0
        retries = _parse_int(row.get("Retries"), "Retries", err, default=0, minimum=0,
                             maximum=MAX_RETRIES)
        try:
            gpu_ids = parse_gpu_ids(row.get("GpuID") or "")
        except ValueError as e:
            raise err("GpuID", row.get("GpuID"), str(e), "use GPU numbers like 0 or 0+1") from None
        try:
            resources = parse_resources(row.get("Resources") or "")
        except ValueError as e:
            raise err("Resources", row.get("Resources"), str(e),
                      "write name=amount pairs, e.g. 'a100=1,bigmem=0.5'") from None
        on_oom = (row.get("OnOOM") or "").strip().lower()
        if on_oom and on_oom not in ON_OOM:
            raise err("OnOOM", row.get("OnOOM"), "not a way to handle an out-of-memory attempt",
                      did_you_mean(on_oom, ON_OOM, "'{}'") + "use "
                      + ", ".join(ON_OOM) + ", or leave it empty for [retry] on_oom")
        limit_text = (row.get("TimeLimit") or "").strip()
        try:
            time_limit = parse_duration(limit_text) if limit_text else None
        except ValueError as e:
            raise err("TimeLimit", limit_text, str(e),
                      "write seconds (3600) or a duration such as 90m, 2h or 1h30m") from None
        return cls(id=job_id, line=line, name=(row.get("Name") or "").strip(),
                   notes=(row.get("Notes") or "").strip(),
                   command=row.get("TrainingCommand") or "", kind=kind,
                   config_path=config_path, config_text=config_text, gpus=gpus, cpus=cpus,
                   workers=workers, priority=priority, retries=retries,
                   pretrained_id=(row.get("PretrainedModelId") or "").strip(),
                   gpu_ids=gpu_ids, resources=resources, on_oom=on_oom, time_limit=time_limit)


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


def _parse_int(text, column, err, *, default, minimum, maximum=None):
    fix = f"use a whole number from {minimum} to {maximum}" if maximum is not None \
        else f"use a whole number >= {minimum}"
    value = _parse_number(text, column, err, minimum=minimum, fix=fix)
    if value is None:
        return default
    if value != int(value):
        raise err(column, text, "must be a whole number", fix)
    if maximum is not None and value > maximum:
        raise err(column, text, f"more than {maximum}, the most this column allows (each "
                  "retry waits its backoff, so a queue would not finish for hours)", fix)
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


_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """``"3600"``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"`` → seconds (> 0)."""
    norm = text.strip().lower().replace(" ", "")
    match = _DURATION_RE.fullmatch(norm)
    if not norm or match is None or not any(match.groups()):
        raise ValueError("not a duration")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("a time limit must be more than 0 seconds")
    return total
