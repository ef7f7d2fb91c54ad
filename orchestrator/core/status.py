"""The one row-status vocabulary: what ``TrainingCheck`` says, everywhere it is shown.

The CSV, the TUI, ``orchestrator status``, notifications and the registry's views all
use ``RowStatus``. A user writes three words of their own (blank, ``Hold``,
``Rerun``); the orchestrator writes the rest. ``read_word`` says what a cell means;
the registry's seed words (running/completed/failed/stopped) are a view, mapped here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["RowStatus", "Word", "read_word", "USER_WORDS", "registry_word", "ATTEMPT_ACTIVE"]


class RowStatus(str, enum.Enum):
    """A row's state; the value is what ``TrainingCheck`` holds."""

    def __str__(self) -> str:   # the value, as enum.StrEnum (Python 3.11+) gives it
        return self.value

    PENDING = ""           # blank: waits for resources or for its parent to be Done
    HOLD = "Hold"          # the user's: do not start; the word is kept as written
    QUEUED = "Queued"      # handed to a runner, waiting for Ray to place it
    TRAINING = "Training"  # its process runs
    DONE = "Done"          # the attempt exited 0
    CRASH = "Crash"        # the attempt failed and no retry is left (Error says how)
    STOPPED = "Stopped"    # stopped on request
    BLOCKED = "Blocked"    # its pretrained parent ended without Done
    INVALID = "Invalid"    # the row cannot run as written (Error says why and the fix)

    @property
    def label(self) -> str:
        """What a person reads: ``Pending`` for the blank cell."""
        return self.value or "Pending"

    @property
    def is_active(self) -> bool:
        """An attempt of the row is on a runner (the driver owns the row meanwhile)."""
        return self in (RowStatus.QUEUED, RowStatus.TRAINING)

    @property
    def is_finished(self) -> bool:
        """The row's last attempt ended for good; only a user's edit runs it again."""
        return self in (RowStatus.DONE, RowStatus.CRASH, RowStatus.STOPPED)

    @property
    def is_failed(self) -> bool:
        """Counts as a failure in the exit code, the summary and a child's readiness."""
        return self in (RowStatus.CRASH, RowStatus.STOPPED, RowStatus.BLOCKED,
                        RowStatus.INVALID)

    @property
    def is_derived(self) -> bool:
        """Recomputed from the row and its parent whenever either changes."""
        return self in (RowStatus.PENDING, RowStatus.BLOCKED, RowStatus.INVALID)

    @classmethod
    def from_label(cls, text: str) -> RowStatus:
        """``"Pending"`` or a cell's value (case and spaces do not matter)."""
        norm = (text or "").strip().lower()
        if norm == "pending":
            return cls.PENDING
        for status in cls:
            if status.value.lower() == norm:
                return status
        raise ValueError(f"{text!r} is not a row status")


#: A word only a user writes: run a finished row again.
RERUN = "Rerun"
#: What a user may write into TrainingCheck, with what it does (shown in the Invalid error).
USER_WORDS = (("", "blank: run it"), ("Hold", "do not start it"),
              ("Rerun", "run a finished row again"))
#: Attempt statuses in the run record while the attempt is on a runner.
ATTEMPT_ACTIVE = (RowStatus.QUEUED.value, RowStatus.TRAINING.value)


@dataclass(frozen=True)
class Word:
    """What a ``TrainingCheck`` cell means."""

    status: RowStatus | None      # the status it names; None: not a word we know
    rerun: bool = False           # ``Rerun``: start afresh
    text: str = ""                # the cell as written

    @property
    def known(self) -> bool:
        return self.status is not None


_BY_WORD = {status.value.lower(): status for status in RowStatus}


def read_word(text: str | None) -> Word:
    """Read a cell leniently (case and surrounding spaces do not matter)."""
    raw = text or ""
    norm = raw.strip().lower()
    if norm == RERUN.lower():
        return Word(RowStatus.PENDING, rerun=True, text=raw)
    return Word(_BY_WORD.get(norm), text=raw)


def unknown_word_message(text: str) -> str:
    """The Error of a row whose TrainingCheck holds a word nobody knows."""
    mine = ", ".join(f"{w or 'blank'} ({what.split(': ')[-1]})" for w, what in USER_WORDS)
    ours = ", ".join(s.value for s in RowStatus if s.value and s is not RowStatus.HOLD)
    return (f"TrainingCheck={text.strip()!r} is not a word the orchestrator knows — write "
            f"one of: {mine}; it writes {ours} itself")


#: The experiment registry's seed words, as a view of how an attempt ended.
_REGISTRY = {RowStatus.QUEUED: "running", RowStatus.TRAINING: "running",
             RowStatus.DONE: "completed", RowStatus.CRASH: "failed",
             RowStatus.STOPPED: "stopped"}


def registry_word(status: RowStatus) -> str:
    """``completed``/``failed``/``stopped``/``running`` for an attempt that ended so (any
    other status: the attempt did not finish, so ``failed``)."""
    return _REGISTRY.get(status, "failed")
