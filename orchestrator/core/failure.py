"""How an attempt failed: a kind and a message, decided once from what the runner saw.

The kind decides the retry (``retry.py``) and is shown first wherever a failure is:
the ``Error`` cell (``oom: …``), ``status --json``, the registry, notifications.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["FailureKind", "Failure", "classify", "SETUP_FAILED", "CONDA_FAILED",
           "OOM_PATTERN"]

#: Exit codes of a job script whose setup failed before the command ran.
SETUP_FAILED = 97
CONDA_FAILED = 98
#: 128 + SIGKILL: what a process killed by the kernel's out-of-memory killer exits with.
_SIGKILL_EXIT = 137


class FailureKind(str, enum.Enum):
    """Why an attempt did not end Done."""

    def __str__(self) -> str:   # the value, as enum.StrEnum (Python 3.11+) gives it
        return self.value

    SETUP = "setup"        # setup script, conda or the environment failed before the command
    OOM = "oom"            # out of memory (CUDA/torch/ultralytics text, or a kernel OOM kill)
    LOST = "lost"          # its runner or node went away
    TIMEOUT = "timeout"    # it ran past the row's time limit and was killed
    STALLED = "stalled"    # no log output and no metric for stall_timeout; killed
    EXIT = "exit"          # the command exited non-zero
    STOPPED = "stopped"    # asked to stop (orchestrator stop, the TUI, the driver quitting)
    INVALID = "invalid"    # the row cannot run as written
    INTERNAL = "internal"  # the driver itself failed handling the row (a bug to report)


@dataclass(frozen=True)
class Failure:
    """One failure: its kind, what happened, and what to do about it."""

    kind: FailureKind
    message: str
    fix: str = ""

    def text(self) -> str:
        """The ``Error`` cell: the kind first, then what happened, then the fix."""
        return f"{self.kind}: {self.message}" + (f" — {self.fix}" if self.fix else "")

    @classmethod
    def parse(cls, text: str) -> Failure | None:
        """The failure an ``Error`` cell starts with, or None."""
        head, sep, rest = (text or "").partition(": ")
        if not sep or head not in FailureKind.__members__.values():
            return None
        return cls(FailureKind(head), rest)


#: Text in a log's tail that marks an out-of-memory failure: torch's OutOfMemoryError and
#: "CUDA out of memory", cuBLAS/cuDNN allocation failures, CUDA's own error, the CPU
#: allocator's, Python's MemoryError, C++'s bad_alloc, XLA's RESOURCE_EXHAUSTED.
OOM_PATTERN = re.compile(
    r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
    r"|cudaErrorMemoryAllocation|DefaultCPUAllocator: (?:can't allocate|not enough memory)"
    r"|\bMemoryError\b|std::bad_alloc|RESOURCE_EXHAUSTED", re.IGNORECASE)


def _last_line(log_tail: str, matching: re.Pattern | None = None) -> str:
    lines = [ln.strip() for ln in log_tail.splitlines() if ln.strip()]
    if matching is not None:
        lines = [ln for ln in lines if matching.search(ln)] or lines
    return lines[-1][:300] if lines else ""


def classify(*, exit_code: int | None, start_error: str = "", output_error: str = "",
             stopped: bool = False, killed_for: str = "", kill_note: str = "",
             log_tail: str = "", log_file: str = "") -> Failure | None:
    """The failure of an attempt that ended so, or None when it succeeded.

    ``start_error``: the process never ran (the runner could not set it up);
    ``output_error``: it exited 0 but its outputs could not be kept (an upload failed);
    ``killed_for``: ``timeout``/``stalled`` when the runner killed it for that (``kill_note``
    says the limit)."""
    where = f" (log: {log_file})" if log_file else ""
    if start_error:
        return Failure(FailureKind.SETUP, f"the attempt could not start: {start_error}{where}")
    if killed_for in (FailureKind.TIMEOUT, FailureKind.STALLED):
        note = kill_note or _KILLED[killed_for]
        return Failure(FailureKind(killed_for), f"killed: {note}{where}")
    if stopped:
        return Failure(FailureKind.STOPPED, "stopped on request")
    if exit_code == 0:
        if output_error:
            return Failure(FailureKind.EXIT, f"exit code 0 but {output_error}{where}")
        return None
    last = _last_line(log_tail)
    if exit_code in (SETUP_FAILED, CONDA_FAILED):
        said = _last_line(log_tail, re.compile(r"\[orchestrator\]"))
        return Failure(FailureKind.SETUP, f"exit code {exit_code} before the command ran: "
                       f"{said.removeprefix('[orchestrator] ') or 'the setup failed'}{where}")
    if OOM_PATTERN.search(log_tail or ""):
        return Failure(FailureKind.OOM, f"exit code {exit_code}, out of memory: "
                       f"{_last_line(log_tail, OOM_PATTERN)}{where}")
    if exit_code == _SIGKILL_EXIT:
        return Failure(FailureKind.OOM, f"killed by SIGKILL (exit code 137), most likely by "
                       f"the kernel's out-of-memory killer{where}")
    code = "no exit code (the process vanished)" if exit_code in (None, -1) \
        else f"exit code {exit_code}"
    return Failure(FailureKind.EXIT, f"{code}: {last}{where}" if last else f"{code}{where}")


_KILLED = {FailureKind.TIMEOUT: "it ran past its time limit",
           FailureKind.STALLED: "no log output and no metric for stall_timeout"}
