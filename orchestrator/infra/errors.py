"""The errors of the orchestrator and its trainers: one base class and a few subclasses
with fields (``KindError``, ``StorageError``, ``IllegalTransition``, ``SweepError``,
``RegistryError`` and ``SnapshotError`` derive from ``OrchestratorError`` where they live).

Every error that may cross a Ray boundary defines ``__reduce__`` so it pickles
with its fields intact.
"""

from __future__ import annotations

__all__ = ["OrchestratorError", "QueueFileError", "ConfigError", "JobError",
           "StateUnwritable"]


class OrchestratorError(Exception):
    """Base class of everything the orchestrator raises on purpose."""


class QueueFileError(OrchestratorError):
    """A problem with the queue file, or with one row of it.

    The message names the file, the line, the row's ID, the offending value and
    the fix, e.g. ``queue.csv line 7 (ID=m7): GPUs='1.5' — use a fraction <= 1
    (0.25, 0.5) or a whole number.``
    """

    def __init__(self, path, problem: str, *, line: int | None = None,
                 job_id: str | None = None, column: str | None = None,
                 value: str | None = None, fix: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.job_id = job_id
        self.column = column
        self.value = value
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path
        if self.line is not None:
            where += f" line {self.line}"
        if self.job_id:
            where += f" (ID={self.job_id})"
        what = self.problem
        if self.column is not None:
            what = f"{self.column}={self.value!r}: {self.problem}"
        return f"{where}: {what}" + (f" — {self.fix}" if self.fix else "")

    @property
    def reason(self) -> str:
        """The message without the file and line: what the row's Error cell says."""
        what = self.problem
        if self.column is not None:
            what = f"{self.column}={self.value!r}: {self.problem}"
        return what + (f" — {self.fix}" if self.fix else "")

    def __reduce__(self):
        return (_rebuild, (QueueFileError, (self.path, self.problem), {
            "line": self.line, "job_id": self.job_id, "column": self.column,
            "value": self.value, "fix": self.fix}))


_UNSET = object()


class ConfigError(OrchestratorError, ValueError):
    """A bad setting in a file the user wrote (the INI/YAML config, a kind's YAML) or on
    the command line: the file, the key, the value, what is wrong and the fix.

    Two forms of message: ``ConfigError(source, key, value, fix)`` says
    ``source: key='value' — fix``; with ``problem=`` it says
    ``source: key = 'value': problem — fix`` (the value left out when not given).
    """

    def __init__(self, source, key: str = "", value=_UNSET, fix: str = "", *,
                 problem: str = "", line: int | None = None):
        self.source = str(source) if source else "config"
        self.path = source
        self.key, self.fix, self.problem, self.line = key, fix, problem, line
        self._value = value
        self.value = None if value is _UNSET else value
        if problem:
            where = self.source + (f" line {line}" if line else "") + (f": {key}" if key else "")
            shown = f" = {self.value!r}" if self.value is not None else ""
            text = f"{where}{shown}: {problem}" + (f" — {fix}" if fix else "")
        else:
            text = f"{self.source}: {key}={self.value!r} — {fix}"
        super().__init__(text)

    def at(self, line: int | None) -> ConfigError:
        """The same error, said at ``line`` of its file."""
        return ConfigError(self.path, self.key, self._value, self.fix, problem=self.problem,
                           line=line)

    def __reduce__(self):
        return (_rebuild, (ConfigError, (self.path, self.key, self._value, self.fix),
                           {"problem": self.problem, "line": self.line}))


class JobError(OrchestratorError):
    """A job could not be started (the process never ran)."""

    def __init__(self, job_id: str, message: str):
        self.job_id = job_id
        self.message = message
        super().__init__(f"job {job_id}: {message}")

    def __reduce__(self):
        return (JobError, (self.job_id, self.message))


class StateUnwritable(OrchestratorError):
    """The driver cannot write its state (the run record, the state dir): a disk that
    is full or read-only, a folder it may not write. Not any row's failure: the driver
    stops, rows keep the status the file shows, and the next run takes over from the
    record as after a kill."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot write {self.path}: {reason} — free space on that disk or make it "
            "writable (or set state_dir in [general] to a folder that is), then run the same "
            "command again: rows keep their status, running ones re-attach or run again "
            "without spending a retry")

    def __reduce__(self):
        return (StateUnwritable, (self.path, self.reason))


def _rebuild(cls, args, kwargs):
    return cls(*args, **kwargs)
