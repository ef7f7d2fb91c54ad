"""The ``Kind`` protocol: what a row's ``Kind`` decides, and nothing else decides.

A kind checks the row's config, names the metric (and goal) the row is judged by,
builds the shell command of an attempt, says who holds the resources, and adds what
it knows to an ended attempt (cells such as ``BestConfig``, details such as a
sweep's trials). The driver and the observers ask the kind; none of them branches on
its name.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core import AttemptReport, JobSpec
from orchestrator.infra.errors import OrchestratorError

__all__ = ["Kind", "Holds", "LaunchContext", "KindError", "Ended"]


class Holds(enum.Enum):
    """Who asks Ray for a row's resources."""

    RUNNER = "runner"     # the row's runner holds its GPUs/CPUs; the job sees them
    TRIALS = "trials"     # the runner holds nothing; each of the job's trials asks (sweep)
    WORKERS = "workers"   # the runner holds nothing; the job's Ray Train workers hold
    #                       Workers × GPUs/CPUs, which the pool counts while it runs


@dataclass(frozen=True)
class LaunchContext:
    """What an attempt's command is built from (every value is quoted into it)."""

    storage: Path | str          # the row's run folder (or URI) for checkpoints / Tune
    address: str                 # the cluster the job joins
    gpus: float = 0.0            # per worker / per trial
    cpus: float = 1.0
    workers: int = 1
    max_concurrent_trials: int = 0
    #: "torch": the runner holds every worker's resources on one node and the job forks
    #: its workers with torch's launcher; "ray": Ray Train places them (Holds.WORKERS)
    launcher: str = "ray"


@dataclass(frozen=True)
class Ended:
    """What a kind adds to an attempt that ended: cells for the row, details for the
    observers (``trials``: a sweep's, each ``{config, metric, status, error}``)."""

    cells: tuple[tuple[str, str], ...] = ()
    details: tuple[tuple[str, object], ...] = ()


class KindError(OrchestratorError, ValueError):
    """A row's config cannot run: the cell, its value, what is wrong and the fix."""

    def __init__(self, column: str, value: str, problem: str, fix: str):
        self.column, self.value, self.problem, self.fix = column, value, problem, fix
        super().__init__(f"{column}={value!r}: {problem} — {fix}")

    def __reduce__(self):
        return (KindError, (self.column, self.value, self.problem, self.fix))


class Kind:
    """One job kind. Subclasses set the class attributes and override what differs."""

    name: str = ""
    holds: Holds = Holds.RUNNER
    #: the job reads and writes storage URIs itself, on whichever nodes it spreads to
    #: (its checkpoints, and its parent's weights on each worker or trial)
    uri_aware: bool = False
    #: the folder under ``runs/<ID>/`` its checkpoints live in ("" = none)
    storage_name: str = ""
    #: a ``Holds.WORKERS`` kind whose workers can also run on one node without Ray Train:
    #: its runner then holds them all and its job forks them (``LaunchContext.launcher``)
    forks_workers: bool = False
    #: the modules its jobs import, and the package extra that installs them
    requires: tuple[str, ...] = ()
    extra: str = ""

    def missing(self) -> tuple[str, str] | None:
        """What its jobs need that this Python cannot import, and the exact install
        command that adds it (None when nothing is missing). Asked once per process."""
        return _missing(self.requires, self.extra)

    def check(self, spec: JobSpec, *, check_paths: bool = True) -> None:
        """Raise ``KindError`` when a row of this kind cannot run as written.
        ``check_paths=False``: leave out data that a parent row may be what writes."""

    def halves_batch(self, spec: JobSpec) -> str:
        """Why this row cannot run with a smaller batch (``on_oom = halve_batch``); "" when
        it can: the kind then divides its batch by ``ORCH_BATCH_DIVISOR``."""
        return f"a {self.name} row's batch is not the orchestrator's to change"

    def metric(self, spec: JobSpec, default: str, goal: str) -> tuple[str, str]:
        """The metric (and ``max``/``min``) a row is judged by; the queue's by default."""
        return default, goal

    def params(self, spec: JobSpec) -> dict[str, str]:
        """The hyperparameters the row's config sets, as ``{name: value}`` (the report
        shows those that differ between rows); none by default."""
        return {}

    def command(self, spec: JobSpec, ctx: LaunchContext) -> str:
        """The shell command of one attempt (the row's ``TrainingCommand`` by default)."""
        return spec.command

    def ended(self, spec: JobSpec, report: AttemptReport) -> Ended:
        """What this kind adds to an attempt that ended."""
        return Ended()

    def __repr__(self) -> str:
        return f"<kind {self.name}>"


def require_config(spec: JobSpec, what: str, fix: str) -> Path:
    """The row's config path, or ``KindError`` saying it needs one."""
    if spec.config_path is None:
        raise KindError("Config", spec.config_text, f"a {spec.kind} row needs its {what}", fix)
    return spec.config_path


@functools.cache
def _missing(modules: tuple[str, ...], extra: str) -> tuple[str, str] | None:
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed in "
            f"{sys.executable}", f"install the {extra} extra: {install_command(extra)}")


def install_command(extra: str) -> str:
    """The pip command that adds ``extra`` to this installation (an editable one from a
    source checkout, else the released package)."""
    root = Path(__file__).resolve().parents[2]
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    if (root / "pyproject.toml").is_file():
        return f"{pip} -e {shlex.quote(f'{root}[{extra}]')}"
    return f"{pip} {shlex.quote(f'ray-orchestrator[{extra}]')}"
