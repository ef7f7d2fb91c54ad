"""What a row asks for: ``JobSpec``, parsed from the row's definition columns.

``JobSpec.from_row`` is the edge: it turns the row's strings into typed values once,
through one pydantic model of the cells (``_Cells``, the same schema library as every
other file a user writes), with messages naming the file, line, ID, value and fix.
What a kind needs of its own (a command, a config file that loads) is checked by its
``Kind``; this module only knows the cells every row has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError, PydanticUseDefault

from orchestrator.infra.errors import QueueFileError
from orchestrator.infra.validation import (
    choices_of,
    did_you_mean,
    nearest,
    number_text,
    problem_for,
    say,
)

__all__ = ["JobSpec", "cell_columns", "SEED_COLUMNS", "REQUIRED_COLUMNS", "OWNED_COLUMNS",
           "KNOWN_COLUMNS", "canonical_column", "column_typos",
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
        """Validate one row's common cells (``_Cells``). Raises ``QueueFileError`` naming
        file, line, ID, value and fix. ``kinds``: the kind names a row may give."""
        job_id = (row.get("ID") or "").strip()

        def err(column, value, problem, fix):
            return QueueFileError(path, problem, line=line, job_id=job_id or None,
                                  column=column, value=value, fix=fix)

        try:
            cells = _Cells.model_validate(row, context=tuple(kinds))
            first = None
        except ValidationError as e:
            cells, first = None, e.errors()[0]   # pydantic lists them in the columns' order
        if first is None or first["loc"][0] != "ID":
            stray = [v for k, v in row.items() if not (k or "").strip() and (v or "").strip()]
            if stray:   # more cells than the header: a comma in an unquoted cell, most often
                raise err("(extra cells)", ",".join(stray), "the row has more cells than the "
                          "header names, so its cells do not line up with their columns",
                          'quote the cell that holds a comma ("… cfg_64,128") or remove the '
                          "extra cell")
        if cells is None:
            column = first["loc"][0]
            raise err(column, (row.get(column) or "").strip(), *_said(column, first))
        config_path = None
        if cells.Config:
            config_path = Path(cells.Config).expanduser()
            if not config_path.is_absolute() and base_dir is not None:
                config_path = base_dir / config_path
        return cls(id=cells.ID, line=line, name=cells.Name, notes=cells.Notes,
                   command=row.get("TrainingCommand") or "", kind=cells.Kind,
                   config_path=config_path, config_text=cells.Config, gpus=cells.GPUs,
                   cpus=cells.CPUs, workers=cells.Workers, priority=cells.Priority,
                   retries=cells.Retries, pretrained_id=cells.PretrainedModelId,
                   gpu_ids=cells.GpuID, resources=cells.Resources, on_oom=cells.OnOOM,
                   time_limit=cells.TimeLimit)


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


def _text(raw):
    return (raw or "").strip()


def _cell(raw):
    """A cell's text; an empty cell is the column's default."""
    text = (raw or "").strip()
    if not text:
        raise PydanticUseDefault()
    return text


def _number(raw):
    """A numeric cell as a number (``2`` an int, ``1e9`` and ``0.5`` floats); text that is
    none is left for pydantic to refuse ("not a number")."""
    text = _cell(raw)
    try:
        return number_text(text)
    except ValueError:
        return text


def _parsed(parse):
    return BeforeValidator(lambda raw: parse(_cell(raw)))


def _row_id(text: str) -> str:
    if not _ID_RE.match(text):
        raise ValueError("an ID must start with a letter or digit and hold only letters, "
                         "digits, '.', '_' and '-'")
    return text


def _known_kind(word: str, info: ValidationInfo) -> str:
    if word not in info.context:
        raise PydanticCustomError("unknown_kind", "unknown kind", {"choices": info.context})
    return word


def _whole_gpus(value: float | None) -> float | None:
    if value is not None and value > 1 and value != int(value):
        raise ValueError("more than one GPU must be a whole number")
    return value


_Text = Annotated[str, BeforeValidator(_text)]
_Number = BeforeValidator(_number)
_Word = BeforeValidator(lambda raw: _cell(raw).lower())   # a word of a set, any case


class _Cells(BaseModel):
    """The cells every row has, by their column names, with the words said when one is
    wrong (``say``: the fix, and a problem by pydantic's error type where ours is more
    specific than ``_PROBLEMS``). The command is not here: it is kept as written."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    ID: Annotated[str, BeforeValidator(_text), AfterValidator(_row_id)] = Field(
        "", validate_default=True, description="the row's name in the queue: unique",
        json_schema_extra=say(fix="rename the row, e.g. 'm7'",
                              written="letters, digits, . _ - (from a letter or digit)"))
    Name: _Text = Field("", description="yours: kept as written")
    Notes: _Text = Field("", description="yours: kept with the row's runs in the registry")
    PretrainedModelId: _Text = Field(
        "", description="wait for that row to be Done, then add --pretrained_path <its "
        "WeightFile> (-m1, the old tool's mark: no parent)", json_schema_extra=say(
            written="an ID"))
    Kind: Annotated[str, _Word, AfterValidator(_known_kind)] = Field(
        "command", description="what runs: the command, or a built-in kind's Config",
        json_schema_extra=say(fix="valid kinds: {choices}",
                              written="a kind's name"))
    # (in Annotated: a class attribute named Config holding a Field is pydantic's old
    # class-based config to it)
    Config: Annotated[str, BeforeValidator(_text), Field(
        description="the kind's file: a W&B sweep YAML or a trainer's YAML (relative paths "
        "start at the queue's folder)", json_schema_extra=say(written="a path"))] = ""
    GPUs: Annotated[float | None, _Number, AfterValidator(_whole_gpus)] = Field(
        None, ge=0, description="GPUs a row (a worker, a trial) holds; empty: default_gpus",
        json_schema_extra=say(
            fix="use a fraction <= 1 (0.25, 0.5) or a whole number (1, 2, 4)",
            written="a fraction <= 1 or a whole number"))
    CPUs: Annotated[float | None, _Number] = Field(
        None, ge=0, description="CPUs Ray reserves for it; empty: default_cpus",
        json_schema_extra=say(fix="use a number >= 0, e.g. 1 or 0.5", written="a number >= 0"))
    Workers: Annotated[int, _Number] = Field(
        1, ge=1, description="ddp/hf rows: the workers (the world size); GPUs and CPUs are "
        "then each worker's", json_schema_extra=say(fix="use a whole number >= 1",
                                                    written="a whole number >= 1"))
    Priority: Annotated[float, _Number] = Field(
        0.0, description="higher runs first",
        json_schema_extra=say(fix="use a number; higher runs first", written="a number"))
    Retries: Annotated[int, _Number] = Field(
        0, ge=0, le=MAX_RETRIES, description="more attempts after a non-zero exit (backoff "
        "retry_backoff, doubling); other failures follow [retry]", json_schema_extra=say(
            fix=f"use a whole number from 0 to {MAX_RETRIES}",
            less_than_equal="more than {le}, the most this column allows (each retry waits "
                            "its backoff, so a queue would not finish for hours)",
            written=f"a whole number 0 to {MAX_RETRIES}"))
    GpuID: Annotated[tuple[int, ...], _parsed(parse_gpu_ids)] = Field(
        (), description="the GPUs it is pinned to when use_process_order = false (the old "
        "tool's mode)", json_schema_extra=say(fix="use GPU numbers like 0 or 0+1",
                                             written="GPU numbers: 0, 0+1"))
    Resources: Annotated[tuple[tuple[str, float], ...], _parsed(parse_resources)] = Field(
        (), description="custom Ray resources it holds",
        json_schema_extra=say(fix="write name=amount pairs, e.g. 'a100=1,bigmem=0.5'",
                              written="name=amount, …"))
    OnOOM: Annotated[Literal[(*ON_OOM, "")], _Word] = Field(
        "", description="after an out-of-memory attempt: fail, more_gpu (double the GPUs) "
        "or halve_batch (hf, yolo, ddp with params.batch_size); empty: [retry] on_oom",
        json_schema_extra=say(
            "not a way to handle an out-of-memory attempt",
            "use {choices}, or leave it empty for [retry] on_oom",
            written=", ".join(ON_OOM)))
    TimeLimit: Annotated[float | None, _parsed(parse_duration)] = Field(
        None, description="how long an attempt may run before it is stopped (timeout); "
        "empty: [retry] time_limit", json_schema_extra=say(
            fix="write seconds (3600) or a duration such as 90m, 2h or 1h30m",
            written="seconds, or 90m, 2h, 1h30m"))


def cell_columns() -> list[tuple[str, str, str, str]]:
    """``(column, how it is written, default, meaning)`` for each cell every row may have,
    read off ``_Cells`` (the reference in docs/settings.md is made from it)."""
    out = []
    for name, info in _Cells.model_fields.items():
        words = info.json_schema_extra or {}
        default = info.default if info.default not in (None, (), "") else ""
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        out.append((name, words.get("written", "text"), shown, info.description or ""))
    return out


#: What is wrong, by pydantic's error type, where a column's ``say`` does not say it.
_PROBLEMS = {"float_parsing": "not a number", "int_parsing": "not a number",
             "finite_number": "must be a finite number",
             "greater_than_equal": "must be a finite number >= {ge}",
             "int_from_float": "must be a whole number"}


def _said(column: str, error: dict) -> tuple[str, str]:
    """``(problem, fix)`` for pydantic's first ``error`` on ``column``: the column's own
    words, then ``_PROBLEMS``, then pydantic's message; with the nearest valid word
    first in the fix where the column has a set of them."""
    info = _Cells.model_fields[column]
    words = info.json_schema_extra or {}
    ctx = error.get("ctx") or {}
    kind = error["type"]
    problem = (words.get(kind) or words.get("problem") or _PROBLEMS.get(kind, "")
               ).format(**ctx) or problem_for(error)
    choices = [c for c in (ctx.get("choices") or choices_of(info.annotation)) if c]
    fix = words.get("fix", "").format(choices=", ".join(choices))
    if choices:
        fix = did_you_mean(str(error.get("input", "")).lower(), choices, "'{}'") + fix
    return problem, fix
