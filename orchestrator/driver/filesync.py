"""The queue file as the driver keeps it: read only when it changed, written together.

The core's cells are staged as it decides them and written in one merge at most every
``FLUSH_S`` seconds, after the turn's launches, so writing never delays a start. A
write that merged into the very file the driver last read means nobody else changed
it: the core knows every cell already and nothing is read back. Why each pending row
waits is published beside it for the views (``status``, ``tui``).

This room does I/O and timing only; what the rows of a table mean is the loop's
(``Scheduler._read`` turns them into core events).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from orchestrator.infra.errors import QueueFileError
from orchestrator.store.queue_file import QueueFile, Table

__all__ = ["FileSync", "FLUSH_S"]

logger = logging.getLogger(__name__)
#: The file (and the views' "why waiting") is at most this many seconds behind the driver:
#: cells decided meanwhile are written together, after the turn's launches.
FLUSH_S = 0.5


class FileSync:
    """Reads, coalesced writes and the published "why waiting" of one queue file."""

    def __init__(self, queue: QueueFile, *, check_interval: float, waiting_path: Path):
        self.queue = queue
        self.check_interval = check_interval
        self.waiting_path = waiting_path
        self.cells: dict[str, dict[str, str]] = {}   # staged: job id -> cells to write
        self._stat: tuple[int, int] = (0, 0)   # (mtime ns, size) of the file last read
        self._read_at = 0.0
        self._written_at = 0.0
        self._waiting: dict[str, str] | None = None   # as published

    # -------------------------------------------------------------- reading
    def read(self) -> Table:
        """The whole file now (the driver's first read)."""
        return self.queue.read()

    def changed(self) -> Table | None:
        """The file when it changed since it was last read, or ``check_interval`` passed
        (a change within the same mtime tick); else None. While cells are staged the
        file is not read: they go in first, and the write merges any edit.
        Raises ``QueueFileError`` for a file that cannot be read as a queue."""
        if self.cells:
            return None
        try:
            st = os.stat(self.queue.path)
        except FileNotFoundError:
            return None   # the user is replacing it; keep the last good view
        changed = (st.st_mtime_ns, st.st_size) != self._stat
        if not changed and time.monotonic() - self._read_at <= self.check_interval:
            return None
        return self.queue.read(quiet=0.25 if changed else 0.0)

    def seen(self, table: Table) -> None:
        """The loop has taken in ``table``."""
        self._stat, self._read_at = table.stat, time.monotonic()

    # -------------------------------------------------------------- writing
    def stage(self, job_id: str, cells: dict[str, str]) -> None:
        self.cells.setdefault(job_id, {}).update(cells)

    def due(self) -> bool:
        """Whether a write is due (at most one every ``FLUSH_S``)."""
        return time.monotonic() - self._written_at >= FLUSH_S

    def wake_in(self, publish: bool) -> float | None:
        """Seconds until the next write is due, when there is something to write or
        (``publish``) to publish; None when there is nothing."""
        if not self.cells and not publish:
            return None
        return self._written_at + FLUSH_S - time.monotonic()

    def write(self) -> tuple[dict[str, dict[str, str]], Table | None]:
        """Write the staged cells in one merge: (the cells written, the file to read back
        when someone else changed it, else None). On an error the cells stay staged and
        are written with the next flush."""
        self._written_at = time.monotonic()
        if not self.cells:
            return {}, None
        cells, self.cells = self.cells, {}
        try:
            table = self.queue.update(cells)
        except (QueueFileError, OSError) as e:
            logger.error("could not update %s (will retry): %s", self.queue.path, e)
            for job_id, row in cells.items():
                self.stage(job_id, row)
            return {}, None
        if self._stat in (table.stat, table.merged_into):
            self._stat = table.stat   # merged into what we last read: nothing new in it
            return cells, None
        return cells, table

    def publish_waiting(self, waiting: dict[str, str]) -> None:
        """For the views: why each pending row has not started (written when it changed)."""
        if waiting == self._waiting:
            return
        self._waiting = waiting
        try:
            tmp = self.waiting_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(waiting, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.waiting_path)
        except OSError as e:   # the views lose a hint; the queue goes on
            logger.debug("could not write %s: %s", self.waiting_path, e)
