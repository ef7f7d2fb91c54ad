"""What a change to the orchestrator's own cells in the file means.

The user owns every column but the orchestrator's (``OWNED_COLUMNS``); of those, they
may edit ``TrainingCheck`` (blank, ``Hold``, ``Rerun``) and fix a cell such as
``WeightFile``. An editor holding an older copy of the file puts back older values
when it saves: the cells as they were before the run, or values the orchestrator
wrote since. Such a save is *stale*: its owned cells are restored, and the user's own
edits (their columns) stay.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from orchestrator.core.spec import OWNED_COLUMNS
from orchestrator.core.status import read_word

__all__ = ["Edit", "read_edit", "owned", "attempts_of"]


class Edit(enum.Enum):
    NONE = "none"       # the owned cells are as the orchestrator wrote them
    STALE = "stale"     # older values put back: restore them
    WORD = "word"       # TrainingCheck changed: the user says what the row should do
    CELLS = "cells"     # other owned cells changed by hand: keep them


def owned(cells: Mapping[str, str]) -> dict[str, str]:
    """The owned columns of a row (a column the file lacks reads as "")."""
    return {c: (cells.get(c) or "") for c in OWNED_COLUMNS}


def attempts_of(cells: Mapping[str, str]) -> int:
    try:
        return int(float((cells.get("Attempts") or "0").strip() or 0))
    except ValueError:
        return 0


def _same(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return all((a.get(c) or "") == (b.get(c) or "") for c in OWNED_COLUMNS)


def read_edit(known: Mapping[str, str], history: Iterable[Mapping[str, str]],
              seen: Mapping[str, str]) -> Edit:
    """``known``: the owned cells as the orchestrator last wrote them; ``history``: their
    earlier versions (the file as first read included); ``seen``: the file now."""
    if _same(known, seen):
        return Edit.NONE
    if read_word(seen.get("TrainingCheck")).rerun:   # never a value of ours: the user's
        return Edit.WORD
    if attempts_of(seen) < attempts_of(known) or any(_same(old, seen) for old in history):
        return Edit.STALE
    if (seen.get("TrainingCheck") or "") != (known.get("TrainingCheck") or ""):
        return Edit.WORD
    return Edit.CELLS
