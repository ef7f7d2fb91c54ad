"""The code each row joins the queue with: a snapshot (``store.snapshot``) taken when the
driver first reads the row waiting to run — not when it starts — kept in the run record
by the row's definition, and named by each of its attempts.

Under ``[snapshot] mode = run`` each attempt runs in a frozen copy of its row's snapshot
(``FrozenCode``: the job makes it on its own node before its command). Under ``record``
an attempt runs the live folder, and what that held when it started is recorded too
(``started``): a thread of its own scans it, so no start waits for a scan; attempts that
start during one scan share the next.

All rows of a queue run in the queue's folder, so one read of the file scans that folder
once and every row it brings shares the scan (rows that name no file of their own share
the snapshot too). A row already queued costs nothing when it starts. A snapshot that
cannot be taken (no permission, a broken repository) is said once and the row runs
without one: recording never stops a queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shlex
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from orchestrator.core import JobSpec
from orchestrator.execution.launch import FrozenCode
from orchestrator.infra.errors import StateUnwritable
from orchestrator.infra.storage import StorageError, join, public
from orchestrator.store.record import FROZEN, PINNED, UNFROZEN, RunRecord, unwritable
from orchestrator.store.snapshot import (
    Scan,
    Snapshot,
    SnapshotError,
    SnapshotStore,
    import_dirs,
    kept_copy,
    named_files,
    named_words,
    publish,
    scan,
    take,
)

__all__ = ["Snapshots", "definition_of"]

logger = logging.getLogger(__name__)


def definition_of(spec: JobSpec) -> str:
    """A digest of what a row asks to run: a new one (an edited command or config) is
    a new queueing of the row, with a new snapshot."""
    text = json.dumps([spec.kind, spec.command, spec.config_text], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Snapshots:
    """The snapshot of each row of one queue, taken as rows join it."""

    def __init__(self, record: RunRecord, queue_name: str, folder: Path, state_dir: Path, *,
                 leave_out: tuple[Path, ...], globs: tuple[str, ...], enabled: bool,
                 note: Callable[[str], None], run_from: bool = False, storage: str = ""):
        self.record, self.queue_name, self.folder = record, queue_name, Path(folder)
        self.store = SnapshotStore(Path(state_dir) / "snapshots")
        self.leave_out, self.globs, self.enabled, self.note = leave_out, globs, enabled, note
        self.run_from = run_from and enabled
        self._known = record.row_snapshots(queue_name)   # (a pin holds whatever the mode)
        self._scan: Scan | None = None
        self._taken: dict[tuple[Path, ...], str] = {}
        self._loaded: dict[str, Snapshot] = {}   # the snapshots rows run from, by id
        self._import_dirs: dict[str, tuple[str, ...]] = {}   # by tree: store.import_dirs
        #: with a storage URI (nodes without the shared state dir), where snapshots to run
        #: from are published; what this driver published, and the blobs it sent
        self.remote = join(storage, "snapshots") if storage else ""
        self._publishing: dict[str, Future] = {}   # by snapshot id, in a thread of its own
        self._publisher: ThreadPoolExecutor | None = None
        self._sent: set[str] = set()   # (only the publishing thread touches it)
        #: what the live folder held as attempts started: asked of the scanning thread
        #: ((job id, attempt, named files)), answered in ``_ran`` ((job id, attempt,
        #: snapshot id or None, why not))
        self._asked: queue.SimpleQueue = queue.SimpleQueue()
        self._ran: queue.SimpleQueue = queue.SimpleQueue()
        self._scanner: threading.Thread | None = None
        self._pending = 0

    def new_read(self) -> None:
        """A new read of the queue file: the folder is scanned again when a row needs it."""
        self._scan, self._taken = None, {}

    def joined(self, job_id: str, spec: JobSpec, *, again: bool = False) -> None:
        """``job_id`` waits to run as ``spec`` says: snapshot its code unless this
        definition of it already has one (``again``: the user ran a finished row again,
        which joins the queue anew — from the snapshot ``rerun --same-code`` pinned, if
        it did)."""
        definition = definition_of(spec)
        if again:   # a pin is written by another process: read it now
            self._known.update(self.record.row_snapshots(self.queue_name, job_id))
        known = self._known.get(job_id)
        if known is not None and known[2] == PINNED and again:
            self.record.save_snapshot(self.queue_name, job_id, definition, known[1], FROZEN)
            self._known[job_id] = (definition, known[1], FROZEN)
            return
        if not self.enabled:
            if again and known is not None and known[2] == FROZEN:   # that rerun is over
                self.record.save_snapshot(self.queue_name, job_id, known[0], known[1])
                self._known[job_id] = (known[0], known[1], UNFROZEN)
            return
        if not again and known is not None and known[0] == definition:
            return
        try:
            named = tuple(named_files(spec.command, spec.config_text, self.folder))
            snapshot_id = self._taken.get(named)
            if snapshot_id is None:
                if self._scan is None:
                    self._scan = scan(self.folder, self.store, leave_out=self.leave_out,
                                      globs=self.globs)
                    for line in self._scan.skipped:
                        if "over the snapshot's cap of" in line and " in all" in line:
                            self.note(f"the code snapshot of {self._scan.root} is full: {line} "
                                      "(the commit and the diff are always recorded)")
                snapshot_id = self._taken[named] = take(
                    self.folder, named, self.store, scanned=self._scan).id
            self.record.save_snapshot(self.queue_name, job_id, definition, snapshot_id)
            if self.run_from:   # published as it joins: its start seldom waits for it
                self._publish(snapshot_id, wait=False)
                self._say_paths_out(job_id, spec, self._scan.root)
        except StateUnwritable:
            raise
        except Exception as e:  # noqa: BLE001 - recording never stops a queue
            refused = unwritable(e, self.store.folder)
            if refused is not None:
                raise refused from None
            logger.debug("snapshot of %s failed", job_id, exc_info=True)
            self.note(f"{job_id}: could not record its code ({type(e).__name__}: {e}); it "
                      "runs without a snapshot ([snapshot] mode = off stops trying)")
            self._known.pop(job_id, None)   # not an older one in its place
            return
        self._known[job_id] = (definition, snapshot_id, UNFROZEN)

    def _say_paths_out(self, job_id: str, spec: JobSpec, root: Path) -> None:
        """Say which relative paths in ``job_id``'s command leave the tree: from the
        frozen copy it runs in, they lead elsewhere (its named configs are copied)."""
        try:
            words = shlex.split(spec.command or "")
        except ValueError:
            return
        named = set(named_words(spec.command))
        for word in words:
            value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
            path = Path(value)
            if value in named or path.is_absolute() or ".." not in path.parts:
                continue
            target = (self.folder / path).resolve()
            if root != target and root not in target.parents and target.exists():
                self.note(f"{job_id}: under [snapshot] mode = run it runs in a copy of "
                          f"{root}, where {value} does not lead to {target}: write that path "
                          "as an absolute one")

    def of(self, job_id: str) -> str | None:
        """The snapshot ``job_id`` was queued with, or None (also under ``mode = off``,
        unless ``rerun --same-code`` runs it from one)."""
        known = self._known.get(job_id)
        return known[1] if known is not None and (self.enabled or known[2] == FROZEN) else None

    def runs_from(self, job_id: str) -> str | None:
        """The snapshot ``job_id``'s next attempt runs in a frozen copy of (``mode = run``,
        or a ``rerun --same-code``); None when it runs the live folder."""
        known = self._known.get(job_id)
        return known[1] if known and (self.run_from or known[2] == FROZEN) else None

    def frozen(self, job_id: str, config: Path | None = None) -> FrozenCode | None:
        """Where ``job_id``'s next attempt takes its code from: its snapshot under
        ``[snapshot] mode = run`` or when ``rerun --same-code`` ran it again from one;
        None otherwise (it runs the live folder), or when it has none. ``config``: the
        row's ``Config`` file, whose queued content its kind then reads at launch."""
        snapshot_id = self.runs_from(job_id)
        if snapshot_id is None:
            return None
        if snapshot_id not in self._loaded:
            self._loaded[snapshot_id] = self.store.load(snapshot_id)
        snapshot = self._loaded[snapshot_id]
        published = self._publish(snapshot_id)   # (pinned by rerun --same-code: now)
        queued = kept_copy(snapshot, self.store, config) if config is not None else None
        if snapshot.root not in self._import_dirs:
            self._import_dirs[snapshot.root] = import_dirs(Path(snapshot.root))
        return FrozenCode(self.store.folder, snapshot_id, snapshot.root, self.globs,
                          remote=self.remote if published else "",
                          outside=tuple(n for n in snapshot.files if n.startswith("/")),
                          config=str(queued or ""), import_dirs=self._import_dirs[snapshot.root])

    def started(self, job_id: str, attempt: int, spec: JobSpec) -> None:
        """Attempt ``attempt`` of ``job_id`` was just sent to run the live folder: record
        the code that holds (``ran``), scanned by the scanning thread as soon as it can."""
        if not self.enabled:
            return
        named = tuple(named_files(spec.command, spec.config_text, self.folder))
        if self._scanner is None:
            self._scanner = threading.Thread(target=self._scan_started, daemon=True,
                                             name="orchestrator-code-scan")
            self._scanner.start()
        self._pending += 1
        self._asked.put((job_id, attempt, named))

    def ran(self, wait: float = 0.0) -> list[tuple[str, int, str | None, str]]:
        """The scans of started attempts done since the last call: ``(job id, attempt,
        snapshot id or None, why not)``; ``wait``: seconds to wait for all asked so far."""
        out, deadline = [], time.monotonic() + wait
        while self._pending:
            try:
                item = self._ran.get(timeout=max(0.0, deadline - time.monotonic())) \
                    if wait else self._ran.get_nowait()
            except queue.Empty:
                break
            self._pending -= 1
            out.append(item)
        return out

    def _scan_started(self) -> None:
        """The scanning thread: each scan answers every attempt asked before it began.
        It (and the git it runs) yields the CPU to the loop and the jobs starting: on
        Linux a thread has a nice value of its own, which the processes it starts keep."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):   # another system: it scans at the driver's
            pass
        while True:
            batch = [self._asked.get()]
            while True:
                try:
                    batch.append(self._asked.get_nowait())
                except queue.Empty:
                    break
            answered = 0   # each asked once, answered once
            try:
                live = scan(self.folder, self.store, leave_out=self.leave_out, globs=self.globs)
                taken: dict[tuple[Path, ...], str] = {}
                for job_id, attempt, named in batch:
                    if named not in taken:
                        taken[named] = take(self.folder, named, self.store, scanned=live).id
                    self._ran.put((job_id, attempt, taken[named], ""))
                    answered += 1
            except Exception as e:  # noqa: BLE001 - recording never stops a queue
                logger.debug("scan of the live folder failed", exc_info=True)
                for job_id, attempt, _ in batch[answered:]:
                    self._ran.put((job_id, attempt, None, f"{type(e).__name__}: {e}"))

    def close(self) -> None:
        """The driver leaves: copies of snapshots no row launched yet are not started."""
        if self._publisher is not None:
            self._publisher.shutdown(wait=False, cancel_futures=True)

    def _publish(self, snapshot_id: str, wait: bool = True) -> bool:
        """Copy a snapshot to run from to the storage URI, once, in the publishing thread
        (a commit's files can take seconds: the queue's loop never waits for them as a
        row joins); ``wait``: until it is there (as a row launches), and whether it is.
        One that cannot be copied is said, and its rows' nodes need the shared state dir."""
        if not self.remote:
            return False
        future = self._publishing.get(snapshot_id)
        if future is None:
            if self._publisher is None:
                self._publisher = ThreadPoolExecutor(1, "orchestrator-publish")
            future = self._publishing[snapshot_id] = self._publisher.submit(
                publish, snapshot_id, self.store, self.remote, self._sent)
        if not wait:
            return False
        try:
            said = future.result()
        except (OSError, StorageError, SnapshotError) as e:
            self.note(f"snapshot {snapshot_id} could not be copied to {public(self.remote)}"
                      f" ({e}); rows run from it need the state dir on their node")
            return False
        if said:
            self.note(said)
        return True
