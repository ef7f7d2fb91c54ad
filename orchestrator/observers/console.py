"""Console lines: one per status change, ``time ID (name) old → new …``."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from orchestrator.core import RowStatus, StatusChanged
from orchestrator.infra.text import printable
from orchestrator.views.table import style_of

__all__ = ["ProgressPrinter"]

S = RowStatus


class ProgressPrinter:
    """An observer printing a line for each status change (not for rows first seen)."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True)

    def __call__(self, change: StatusChanged) -> None:
        if change.old is None:
            return
        now = datetime.fromtimestamp(change.time).strftime("%H:%M:%S") if change.time \
            else datetime.now().strftime("%H:%M:%S")
        new, old = change.new, change.old
        name = f" ({printable(change.name)})" if change.name else ""
        extra = ""
        if new is S.QUEUED:
            extra = f" attempt {change.attempt}"
        elif new.is_finished or new in (S.INVALID, S.BLOCKED) or (
                new is S.PENDING and old.is_active):
            weight = change.row.get("WeightFile", "") if new is S.DONE else ""
            if weight:
                extra += f" weights {weight}"
            if change.error:
                extra += f" — {printable(change.error)}"
        elif new is S.TRAINING:
            extra = f" on {change.row.get('Node', '')}"
        if self.console.color_system is None:   # a pipe or a log file: no styles to draw
            self.console.file.write(f"{now} {change.job_id}{name} {old.label} → "
                                    f"{new.label}{extra}\n")
            self.console.file.flush()
            return
        self.console.print(f"{now} [bold]{escape(change.job_id)}[/]{escape(name)} {old.label} "
                           f"→ [{style_of(new.label)}]{new.label}[/]{escape(extra)}",
                           markup=True, highlight=False)
