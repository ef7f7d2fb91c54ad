"""``orchestrator check queue.csv``: every row's verdict before anything runs.

No Ray, no driver: the file is read as the driver reads it and each row gets what the
driver would decide first — it runs, it waits for its parent, it is finished or held,
or it is Invalid with the file, line, cell and fix. ``run`` says the Invalid ones the
same way before Ray starts, so nobody waits for Ray to learn of a typo.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core import RowStatus, find_cycles, read_word
from orchestrator.core.status import unknown_word_message
from orchestrator.infra.errors import QueueFileError
from orchestrator.kinds import parse_row
from orchestrator.store.queue_file import Table

__all__ = ["Verdict", "check_rows", "VerdictLines"]

S = RowStatus


@dataclass(frozen=True)
class Verdict:
    """What the driver would make of one row now."""

    line: int
    id: str
    name: str
    ok: bool            # False: the row is Invalid as written
    text: str           # what happens to it (or what is wrong and the fix)
    moves: bool = False  # a driver would run it, wait to run it, or re-attach it

    @property
    def message(self) -> str:
        """The console line: file, line, ID and the verdict."""
        return f"line {self.line} (ID={self.id or '?'}): {self.text}"


def check_rows(table: Table, base_dir: Path,
               models: Callable[[str], dict | None] | None = None) -> list[Verdict]:
    """Every row's verdict, in file order. ``models``: a registry lookup for a
    ``PretrainedModelId`` that names no row (None: no registry yet)."""
    rows = table.rows()
    lines: dict[str, list[int]] = {}
    for line, row in rows:
        job_id = (row.get("ID") or "").strip()
        if job_id:
            lines.setdefault(job_id, []).append(line)
    parsed: dict[str, tuple] = {}
    out: dict[int, Verdict] = {}
    for line, row in rows:
        job_id = (row.get("ID") or "").strip()
        name = (row.get("Name") or "").strip()
        if not job_id:
            if any(v.strip() for v in row.values()):
                out[line] = Verdict(line, "", name, False,
                                    "the row has no ID, so it cannot run — give it a unique ID")
            continue
        if len(lines[job_id]) > 1:
            out[line] = Verdict(line, job_id, name, False, f"ID {job_id!r} is used on lines "
                                f"{', '.join(map(str, lines[job_id]))} — give each row its "
                                "own ID")
            continue
        word = read_word(row.get("TrainingCheck"))
        if not word.known:
            out[line] = Verdict(line, job_id, name, False,
                                unknown_word_message(word.text))
            continue
        try:
            spec = parse_row(row, line, table.path, base_dir)
        except QueueFileError as e:
            out[line] = Verdict(line, job_id, name, False, e.reason)
            continue
        parsed[job_id] = (line, name, spec, word)
    cycles = find_cycles({i: s.parent_id for i, (_, _, s, _) in parsed.items() if s.parent_id})
    for job_id, (line, name, spec, word) in parsed.items():
        out[line] = Verdict(line, job_id, name, *_verdict(job_id, spec, word, lines, parsed,
                                                          cycles, models))
    # a row that waits on a parent in the file moves only if its parent will be Done:
    # it is Done, or moves itself (core.can_progress's rule, from the file)
    by_id = {v.id: v for v in out.values() if v.id in parsed}

    def moves(job_id: str, seen: frozenset = frozenset()) -> bool:
        verdict = by_id.get(job_id)
        if verdict is None or not verdict.moves or job_id in seen:
            return False
        parent, word = parsed[job_id][2].parent_id, parsed[job_id][3]
        if not parent or parent not in by_id or word.rerun or (
                word.status is not None and word.status.is_active):
            return True
        above = parsed[parent][3]
        return (above.status is S.DONE and not above.rerun) or moves(parent, seen | {job_id})

    for line, verdict in list(out.items()):
        if verdict.moves and not moves(verdict.id):
            out[line] = dataclasses.replace(verdict, moves=False)
    return [out[line] for line in sorted(out)]


def _verdict(job_id, spec, word, ids, parsed, cycles, models) -> tuple:
    """``(ok, text, moves)``; ``moves`` (a driver would run, wait to run or re-attach it)
    is left out where it is false."""
    status = word.status
    parent = spec.parent_id
    if parent and job_id in cycles:
        return False, (f"PretrainedModelId={parent!r} makes a cycle — break the chain so "
                       "that no row waits on itself")
    if parent and parent not in ids and (models is None or models(parent) is None):
        return False, (f"PretrainedModelId={parent!r}: no row has that ID and no registered "
                       "model has that id or name[:version] — use another row's ID or a "
                       "model from `orchestrator registry models`")
    if word.rerun:
        return True, "runs again from scratch (Rerun)", True
    if status is S.HOLD:
        return True, "held (Hold): it waits until you clear TrainingCheck"
    if status is S.DONE:
        return True, "Done: it does not run again (write Rerun to run it again)"
    if status is not None and status.is_active:
        return (True, f"{status.value}: a driver ran it; the next one re-attaches or "
                "re-queues it", True)
    if status is not None and status.is_finished:
        return True, (f"{status.value}: it does not run again until you clear TrainingCheck "
                      "(or write Rerun)")
    if parent and parent not in parsed and parent in ids:
        return True, f"Blocked: its parent {parent} is Invalid — fix {parent} first"
    ended = parsed[parent][3].status if parent in parsed else None
    if ended in (S.CRASH, S.STOPPED):
        return True, f"Blocked: its parent {parent} ended {ended.value} — fix and rerun it"
    if parent and parent in ids:
        return True, f"runs after {parent} is Done, with its weights", True
    if parent:
        return True, f"runs, from the registered model {parent}", True
    return True, "runs", True


class VerdictLines:
    """The verdicts as lines (line, ID, Name, verdict), drawn without measuring each
    cell: 2,000 rows print at once. An Invalid verdict is red and whole (the terminal
    wraps it); ID and Name give way with "…" past 16 and 24 characters."""

    def __init__(self, verdicts: list[Verdict], title: str = ""):
        self.verdicts, self.title = verdicts, title

    def __rich_console__(self, console, options):
        from rich.cells import cell_len, set_cell_size
        from rich.segment import Segment
        from rich.style import Style

        def fit(text: str, size: int) -> str:
            if cell_len(text) > size:
                return set_cell_size(text, size - 1) + "…"
            return text + " " * (size - cell_len(text))

        rows = self.verdicts
        sizes = [max([4, *(len(str(v.line)) for v in rows)]),
                 min(16, max([2, *(cell_len(v.id) for v in rows)])),
                 min(24, max([4, *(cell_len(v.name) for v in rows)]))]
        if self.title:
            yield Segment(self.title, Style(italic=True))
            yield Segment.line()
        yield Segment("  ".join((fit("line", sizes[0]), fit("ID", sizes[1]),
                                 fit("Name", sizes[2]), "verdict")), Style(bold=True))
        yield Segment.line()
        red = Style(color="red")
        for v in rows:
            yield Segment("  ".join((str(v.line).rjust(sizes[0]), fit(v.id, sizes[1]),
                                     fit(v.name, sizes[2]), "")))
            if v.ok:
                yield Segment(v.text)
            else:
                yield Segment("Invalid", red)
                yield Segment(f": {v.text}")
            yield Segment.line()
