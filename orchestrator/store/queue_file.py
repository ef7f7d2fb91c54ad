"""The queue file: a CSV the user edits while the orchestrator updates it.

Reading keeps every record's raw text, so rows and cells the orchestrator does
not change are written back byte for byte (quotes, newlines inside cells, BOM,
line endings, unknown columns and their order). Writing is a merge by ID into
the file as it is *now*, under a file lock, through a temp file and an atomic
rename, so the user's concurrent edits survive and the file is never
half-written.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from orchestrator.core import REQUIRED_COLUMNS, canonical_column, column_typos
from orchestrator.infra.errors import QueueFileError
from orchestrator.infra.text import printable as printable_text

__all__ = ["QueueFile", "Table", "Record"]

logger = logging.getLogger(__name__)

csv.field_size_limit(sys.maxsize)  # a long command or log excerpt is not an error
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r|$)")
_BOM = "\ufeff"
#: Seconds a file must have been left alone before we trust a read for a merge.
QUIET_S = 0.25


@dataclass
class Record:
    """One CSV record: its cells (padded to the header), raw text and first line."""

    cells: list[str]
    raw: str            # the record's text without its line terminator
    line: int           # 1-based physical line where the record starts
    extra: list[str] = field(default_factory=list)  # cells beyond the header

    def get(self, header_index: dict[str, int], column: str) -> str:
        i = header_index.get(column)
        return self.cells[i] if i is not None and i < len(self.cells) else ""


@dataclass
class Table:
    """The parsed queue file."""

    path: Path
    header: list[str]
    records: list[Record]          # data records (blank lines are kept in `blanks`)
    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\n"
    header_raw: str = ""
    trailing_newline: bool = True
    layout: list[tuple[str, int]] = field(default_factory=list)  # ("rec", i) / ("raw", text)
    blanks: list[str] = field(default_factory=list)
    stat: tuple[int, int] = (0, 0)  # (mtime_ns, size) of what was read
    #: a table ``update`` wrote: the (mtime_ns, size) of the file it merged into (so a
    #: caller that had read exactly that file knows nobody else changed a cell)
    merged_into: tuple[int, int] | None = None

    @property
    def names(self) -> list[str]:
        """The header as the orchestrator reads it: a known column in any case or with
        spaces around it is that column (``gpus`` → ``GPUs``); the file keeps its text."""
        return [canonical_column(h) for h in self.header]

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def column_notices(self, own: Collection[str] = ()) -> list[str]:
        """One line per header cell that is probably a misspelled known column (``GPU``,
        ``Priorty``): its cells are not read as that column until it is renamed or
        declared the user's own (``own_columns``)."""
        return [f"{self.path} line 1: column {cell!r} is probably {known} (did you mean "
                f"{known}?): its cells are not read as {known} — rename the column, or list "
                f"it in own_columns in [general] if it is your own"
                for cell, known in column_typos(self.header, own)]

    def rows(self) -> list[tuple[int, dict[str, str]]]:
        """``(line, {column: value})`` for every data record, in file order. Cells in no
        named column (beyond the header, or under an empty header name) are joined under
        the key "" when any holds text: the row's cells do not line up with the header."""
        out = []
        names = self.names
        if all(n.strip() for n in names) and not any(r.extra for r in self.records):
            # the common file: every cell under a named column
            return [(r.line, dict(zip(names, r.cells, strict=False))) for r in self.records]
        for r in self.records:
            row, stray = {}, []
            for name, value in zip(names, r.cells, strict=False):
                if name.strip():
                    row[name] = value
                elif value.strip():
                    stray.append(value)
            stray += [v for v in r.extra if v.strip()]
            if stray:
                row[""] = ",".join(stray)
            out.append((r.line, row))
        return out


class QueueFile:
    """Read and merge-write one queue CSV."""

    def __init__(self, path: str | Path, writable: Collection[str] | None = None,
                 encoding: str | None = None):
        """``writable``: the only columns ``update`` may write (None: any). ``encoding``:
        the file's encoding when it is not UTF-8 (None: UTF-8, or UTF-16 with a BOM)."""
        self.path = Path(path).expanduser().resolve()
        self.encoding = encoding or None
        self.writable = frozenset(writable) if writable is not None else None
        self._lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=30)
        self._written: tuple[int, int] | None = None  # (mtime_ns, size) of our last write
        self._last: tuple[int, Table] | None = None    # (inode, table) of our last write

    # ---------------------------------------------------------------- reading
    def read(self, quiet: float = 0.0) -> Table:
        """Parse the file. Raises ``QueueFileError`` for a missing/empty/unreadable file."""
        data, st = self._read_stable(quiet)
        return self._parse(data, st)

    def _read_stable(self, quiet: float) -> tuple[bytes, os.stat_result]:
        """Read bytes that were not being written: same stat before and after, and idle
        for ``quiet`` seconds (an editor saving in place)."""
        deadline = time.monotonic() + 5.0
        while True:
            try:
                before = os.stat(self.path)
                with open(self.path, "rb") as f:
                    data = f.read()
                after = os.stat(self.path)
            except FileNotFoundError:
                raise QueueFileError(self.path, "the queue file does not exist",
                                     fix="check the path, or create it with the columns "
                                     "ID,Name,TrainingCommand") from None
            same = (before.st_mtime_ns, before.st_size, before.st_ino) == (
                after.st_mtime_ns, after.st_size, after.st_ino) and len(data) == after.st_size
            age = time.time() - after.st_mtime_ns / 1e9
            ours = (after.st_mtime_ns, after.st_size) == self._written  # no editor involved
            if same and (ours or age >= quiet or time.monotonic() > deadline):
                return data, after
            time.sleep(min(0.05, max(quiet - age, 0.01)))

    def _parse(self, data: bytes, st: os.stat_result) -> Table:
        text, encoding, bom = self._decode(data)
        lines = _LINE_RE.findall(text)
        if lines and lines[-1] == "":
            lines.pop()
        if not "".join(lines).strip():
            raise QueueFileError(self.path, "the queue file is empty",
                                 fix="add a header line: ID,Name,TrainingCommand")
        newline = next((m for m in ("\r\n", "\n", "\r") if lines[0].endswith(m)), "\n")
        table = Table(path=self.path, header=[], records=[], encoding=encoding, bom=bom,
                      newline=newline, stat=(st.st_mtime_ns, st.st_size),
                      trailing_newline=text.endswith(("\n", "\r")))
        pos = 0  # index into `lines`
        consumed: list[str] = []

        def feed():
            nonlocal pos
            while pos < len(lines):
                consumed.append(lines[pos])
                pos += 1
                yield lines[pos - 1]

        reader = csv.reader(feed(), strict=False)
        first = True
        while True:
            start_line = pos + 1
            consumed.clear()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise QueueFileError(self.path, f"cannot parse the CSV ({e})", line=start_line,
                                     fix="close the open quote or fix the line") from None
            raw = _strip_terminator("".join(consumed))
            if '"' in raw:
                self._check_quotes(consumed, start_line, pos)
            if first:
                first = False
                table.header = [c.strip() for c in cells]
                table.header_raw = raw
                continue
            if not any(c.strip() for c in cells):
                table.layout.append(("raw", len(table.blanks)))
                table.blanks.append(raw)
                continue
            width = len(table.header)
            rec = Record(cells=(cells + [""] * width)[:width], raw=raw, line=start_line,
                         extra=cells[width:])
            table.layout.append(("rec", len(table.records)))
            table.records.append(rec)
        self._check_header(table)
        return table

    def _check_quotes(self, consumed: list[str], start_line: int, end_line: int) -> None:
        """Refuse a record whose quotes do not pair up: an opening quote that is never
        closed swallows the lines after it into one cell (and a write-back would make
        that permanent), and text after a closing quote means the quote did not close
        what the user meant. Parsing stays lenient; this asks the strict parser."""
        try:
            for _ in csv.reader(consumed, strict=True):
                pass
            return
        except csv.Error as e:
            problem = str(e)
        col = _open_quote_column(consumed[0])
        where = f", column {col}" if col else ""
        if end_line > start_line:
            what = (f"the quote opened on line {start_line}{where} is not closed where its "
                    f"cell ends, so lines {start_line}–{end_line} read as one cell")
        else:
            what = f"a quoted cell on line {start_line}{where} does not end where it should"
        raise QueueFileError(self.path, f"{what} ({problem}); nothing was run or changed",
                             line=start_line,
                             fix="close the quote at the end of the cell; write a quote "
                             'inside a quoted cell as two quotes ("say ""hi""")')

    def _decode(self, data: bytes) -> tuple[str, str, bool]:
        """The text, its encoding and whether it had a BOM. Decodes only what is certain:
        UTF-8 (with or without a BOM), UTF-16 with a BOM, or the encoding the user
        named; anything else is refused with its line and byte."""
        for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                           (b"\xfe\xff", "utf-16-be")):
            if data.startswith(bom):   # a BOM is certain, whatever --encoding says
                return self._no_nul(self._decode_as(data[len(bom):], codec)), codec, True
        codec = self.encoding or "utf-8"
        return self._no_nul(self._decode_as(data, codec)), codec, False

    def _no_nul(self, text: str) -> str:
        """A NUL is never text: the file is binary, or UTF-16 saved without a BOM (each
        ASCII letter followed by a NUL), and would run commands cut at the NUL."""
        at = text.find("\x00")
        if at < 0:
            return text
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise QueueFileError(
            self.path, f"the file holds a NUL byte (00) at column {column}: it is binary, or "
            "UTF-16 saved without a BOM; nothing was run or changed", line=line,
            fix="save it as 'CSV UTF-8' (or as UTF-16 with a BOM)")

    def _decode_as(self, data: bytes, codec: str) -> str:
        try:
            return data.decode(codec)
        except LookupError:
            raise QueueFileError(self.path, f"unknown encoding {codec!r}",
                                 fix="name a Python codec, e.g. --encoding cp949 or "
                                 "--encoding cp1252") from None
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            bad = data[e.start:e.end].hex(" ")
            name = "UTF-8" if codec == "utf-8" else codec
            raise QueueFileError(
                self.path, f"the file is not {name} text: byte(s) {bad} at column {column} "
                f"cannot be read as {name}; nothing was run or changed", line=line,
                fix=_encoding_fix(data, line)) from None

    def _check_header(self, table: Table) -> None:
        names = table.names
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            typos = dict((known, cell) for cell, known in column_typos(table.header))
            near = [f"'{typos[c]}' is probably {c}" for c in missing if c in typos]
            raise QueueFileError(
                self.path, f"missing required column(s) {', '.join(missing)} "
                f"(the header has: {', '.join(table.header) or 'nothing'})", line=1,
                fix=(f"did you mean it? {'; '.join(near)}: rename it" if near else
                     "the first line must name the columns, at least ID,TrainingCommand"))
        dupes = sorted({c for c in names if c.strip() and names.count(c) > 1})
        if dupes:
            raise QueueFileError(self.path, f"column(s) {', '.join(dupes)} appear twice in the "
                                 "header (names are read without regard to case)", line=1,
                                 fix="rename or delete the extra column")

    # ---------------------------------------------------------------- writing
    def update(self, changes: Mapping[str, Mapping[str, str]]) -> Table:
        """Merge ``{ID: {column: value}}`` into the file as it is now; return the new table.

        Missing columns are appended to the header. Rows whose ID is not in the file
        any more (the user deleted them) are skipped. Untouched records keep their
        exact text.
        """
        if self.writable is not None:
            refused = sorted({c for ch in changes.values() for c in ch} - self.writable)
            if refused:
                raise ValueError(f"refusing to write column(s) {', '.join(refused)} of "
                                 f"{self.path}: they are the user's")
        with self._lock:
            for _ in range(20):
                table = self._ours() or self.read(quiet=QUIET_S)
                rendered = self._render(table, changes)
                if rendered is None:
                    return table
                out, records = rendered
                if self._replace(out, table):
                    st = os.stat(self.path)
                    self._written = (st.st_mtime_ns, st.st_size)
                    if records is None:
                        written = self._parse(out, st)
                    else:   # the same layout with some records rewritten: no re-parse
                        written = dataclasses.replace(table, records=records,
                                                      stat=(st.st_mtime_ns, st.st_size))
                    written.merged_into = table.stat
                    self._last = (st.st_ino, written)
                    return written
            raise QueueFileError(self.path, "the file kept changing while we tried to "
                                 "update it", fix="save it less often, or stop the other writer")

    def _ours(self) -> Table | None:
        """The table we last wrote, while the file is still exactly that write."""
        if self._last is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        ino, table = self._last
        if (st.st_ino, st.st_mtime_ns, st.st_size) != (ino, *table.stat):
            self._last = None
            return None
        return table

    def _render(self, table: Table, changes: Mapping[str, Mapping[str, str]]
                ) -> tuple[bytes, list[Record] | None] | None:
        """The file's new bytes, and its records when only some were rewritten on their
        own lines (None: parse the bytes again); None when nothing changes."""
        idx = table.index
        id_col = idx["ID"]
        added = [c for c in dict.fromkeys(c for ch in changes.values() for c in ch)
                 if c not in idx]
        # stray cells beyond the header keep their own (unnamed) columns, before ours
        stray = max((len(r.extra) for r in table.records), default=0) if added else 0
        header = table.header + [""] * stray + added
        new_idx = {canonical_column(name): i for i, name in enumerate(header)}
        changed_any = bool(added)
        rendered: list[str] = []
        records: list[Record] | None = None if added else []
        for rec in table.records:
            row_changes = changes.get(rec.cells[id_col].strip()) or {}
            if not row_changes and records is not None:   # untouched: kept as it is
                rendered.append(rec.raw)
                records.append(rec)
                continue
            extra = rec.extra
            if added:
                extra = []
                cells = rec.cells + (rec.extra + [""] * stray)[:stray] + [""] * len(added)
            else:
                cells = list(rec.cells)
            dirty = False
            for column, value in row_changes.items():
                value = "" if value is None else str(value)
                if cells[new_idx[column]] != value:
                    cells[new_idx[column]] = value
                    dirty = True
            if dirty:
                raw = _format_row(cells + extra)
                rendered.append(raw)
                changed_any = True
                if records is not None and "\n" not in raw and "\r" not in raw:
                    records.append(Record(cells, raw, rec.line, list(extra)))
                else:
                    records = None   # the lines move: the new bytes are parsed again
            elif added and not rec.extra:
                rendered.append(rec.raw + "," * (stray + len(added)))
            elif added:
                rendered.append(_format_row(cells))
            else:
                rendered.append(rec.raw)
                if records is not None:
                    records.append(rec)
        if not changed_any:
            return None
        header_raw = _format_row(header) if added else table.header_raw
        parts = [header_raw]
        for kind, i in table.layout:
            parts.append(rendered[i] if kind == "rec" else table.blanks[i])
        text = table.newline.join(parts) + (table.newline if table.trailing_newline else "")
        if table.bom:
            text = _BOM + text
        try:
            return text.encode(table.encoding), records
        except UnicodeEncodeError as e:
            raise QueueFileError(self.path, f"a new value cannot be written in the file's "
                                 f"{table.encoding} encoding ({e.object[e.start:e.end]!r})",
                                 fix="save the file as 'CSV UTF-8'") from None

    def _replace(self, data: bytes, read_from: Table) -> bool:
        """Atomically replace the file, unless it changed since ``read_from`` was read."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            st = os.stat(self.path)
            os.chmod(tmp, st.st_mode & 0o7777)
            if (st.st_mtime_ns, st.st_size) != read_from.stat:
                os.unlink(tmp)
                return False
            os.replace(tmp, self.path)
            return True
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _open_quote_column(line: str) -> int:
    """The 1-based column of the first quote that opens a cell on ``line``, or 0."""
    for m in re.finditer('"', line):
        if m.start() == 0 or line[m.start() - 1] == ",":
            return m.start() + 1
    return 0


#: Encodings a spreadsheet commonly saves CSV in, tried only to suggest --encoding:
#: (the stricter codec the whole file must decode as, the one to suggest, who writes it).
_SUGGEST = (("euc_kr", "cp949", "Korean Excel"), ("cp1252", "cp1252", "Western Excel"),
            ("shift_jis", "cp932", "Japanese Excel"))


def _encoding_fix(data: bytes, line: int) -> str:
    """How to read a file that is not UTF-8: save it as UTF-8, or name the encoding it
    reads as (with the offending line shown that way, so the user can tell)."""
    text_line = data.split(b"\n")[line - 1].rstrip(b"\r")
    for test, codec, who in _SUGGEST:
        try:
            data.decode(test)
        except UnicodeDecodeError:
            continue
        shown = printable_text(text_line.decode(codec))[:60]
        return (f"save it as 'CSV UTF-8', or if line {line} reads right as {shown!r}, give "
                f"--encoding {codec} ({who}; encoding = {codec} in [general])")
    return "save it as 'CSV UTF-8', or name its encoding with --encoding"


def _strip_terminator(raw: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if raw.endswith(end):
            return raw[: -len(end)]
    return raw


def _format_row(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)  # quotes cells holding \r or \n
    return buf.getvalue()[:-2]
