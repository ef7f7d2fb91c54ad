"""``orchestrator diff A B``: how two rows (or two attempts) differ in what they ran — the
command, and the code each ran (its snapshot: commit, local changes, untracked files, the
files the row names): the frozen copy it ran from, or what the live folder held as it
started; for a row not run yet, the code it was queued with. Read-only: the record is
opened read-only and the user's repository is never written (``store.snapshot.code_diff``).

``A`` and ``B`` are a row ID (its latest attempt, or the snapshot it waits with when it
has not run), ``ID:N`` (attempt N) or ``.``: the queue's folder as it is now (snapshotted
into the state dir like a row's code; what changed since a run is ``diff A .``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.config import Config
from orchestrator.store.paths import QueuePaths
from orchestrator.store.record import read_attempts, read_only_query
from orchestrator.store.snapshot import Snapshot, SnapshotError, SnapshotStore, code_diff, take

__all__ = ["Side", "NOW", "compare", "side_of", "now_side", "how_it_ran", "render"]


@dataclass(frozen=True)
class Side:
    """One side of a comparison: which row and attempt, its command, its snapshot."""

    ref: str
    job_id: str
    attempt: int | None          # None: the row has not run yet
    command: str
    snapshot: Snapshot            # the code it ran (or, not run yet, was queued with)
    frozen: bool = False          # the attempt ran in a frozen copy of the snapshot
    queued: str = ""              # ran the live folder: the snapshot it was queued with

    @property
    def label(self) -> str:
        if self.ref == NOW:
            return f"the folder now: snapshot {self.snapshot.id} — {self.snapshot.state}"
        run = f"attempt {self.attempt}" if self.attempt else "not run yet"
        how = how_it_ran(self.snapshot, self.frozen, ran=self.attempt is not None,
                         queued=self.queued)
        return f"{self.job_id} ({run}): {how} — {self.snapshot.state}"

    def to_json(self) -> dict[str, Any]:
        s = self.snapshot
        return {"ref": self.ref, "id": self.job_id, "attempt": self.attempt,
                "command": self.command, "snapshot": s.id, "frozen": self.frozen,
                "queued_snapshot": self.queued or s.id, "commit": s.commit,
                "dirty": s.dirty, "root": s.root, "skipped": list(s.skipped)}


def how_it_ran(snapshot: Snapshot, frozen: bool, ran: bool = True, queued: str = "") -> str:
    """What ``snapshot`` is to an attempt: the frozen copy it ran (``frozen``); what the
    live folder held as it started (``queued``: the snapshot its row was queued with,
    the same or not); or, for an attempt whose start was not scanned (an older record),
    the code its row was queued with while it ran the live folder."""
    if frozen:
        return f"ran snapshot {snapshot.id}"
    if ran and queued == snapshot.id:
        return f"ran the live folder as queued (snapshot {snapshot.id})"
    if ran and queued:
        return (f"ran the live folder as it was at its start (snapshot {snapshot.id}; "
                f"edited since it was queued with {queued})")
    return f"queued with snapshot {snapshot.id}" + (", ran the live folder" if ran else "")


#: the ref of the queue's folder as it is now
NOW = "."


def now_side(paths: QueuePaths, config: Config, other: Side | None = None) -> Side:
    """The queue's folder as it is now, snapshotted as the driver snapshots a row (the
    same files left out); with the named files from outside the tree ``other`` has."""
    store = SnapshotStore(paths.state_dir / "snapshots")
    own = paths.own_files(config.source)
    named = [Path(name) for name in (other.snapshot.files if other else ())
             if name.startswith("/") and Path(name).is_file()]
    try:
        snapshot = take(paths.csv.parent, named, store, leave_out=own,
                        globs=config.snapshot_patterns)
    except (OSError, SnapshotError, subprocess.SubprocessError) as e:
        raise OrchestratorError(f".: cannot snapshot {paths.csv.parent} now ({e})") from None
    return Side(NOW, "the folder now", None, "", snapshot)


def side_of(paths: QueuePaths, ref: str) -> Side:
    """``ref`` (``ID`` or ``ID:N``) as the attempt (or waiting row) it names."""
    job_id, _, number = ref.partition(":")
    if number and not number.isdigit():
        raise OrchestratorError(f"{ref!r}: write a row ID, or ID:N for its attempt N (m1:2)")
    store = SnapshotStore(paths.state_dir / "snapshots")
    attempts = [a for a in read_attempts(paths.registry, paths.name) if a.job_id == job_id]
    if number:
        attempts = [a for a in attempts if a.attempt == int(number)]
        if not attempts:
            raise OrchestratorError(f"{ref}: {job_id} has no attempt {number} in "
                                    f"{paths.registry}")
    if attempts:
        attempt = attempts[-1]
        if not attempt.snapshot:
            raise OrchestratorError(
                f"{ref}: attempt {attempt.attempt} of {job_id} has no code snapshot (it ran "
                "before snapshots were recorded, or with [snapshot] mode = off)")
        return Side(ref, job_id, attempt.attempt, attempt.command or "",
                    _load(store, attempt.code, ref), bool(attempt.frozen),
                    attempt.snapshot if attempt.ran_snapshot else "")
    queued = read_only_query(paths.registry, "SELECT snapshot FROM row_snapshots WHERE "
                             "queue = ? AND job_id = ?", (paths.name, job_id))
    if not queued:
        raise OrchestratorError(f"{ref}: no attempt of {job_id} and no snapshot of it in "
                                f"{paths.registry} (is the ID right, and has a driver read "
                                "the queue since the row was added?)")
    command = next((row.get("TrainingCommand") or "" for _, row in
                    paths.queue_file().read().rows() if (row.get("ID") or "").strip() == job_id),
                   "")
    return Side(ref, job_id, None, command, _load(store, queued[0]["snapshot"], ref))


def _load(store: SnapshotStore, snapshot_id: str, ref: str) -> Snapshot:
    try:
        return store.load(snapshot_id)
    except OSError as e:
        raise OrchestratorError(f"{ref}: its snapshot {snapshot_id} is not in {store.folder} "
                                f"({e.strerror or e})") from None
    except SnapshotError as e:
        raise OrchestratorError(f"{ref}: {e}") from None


def compare(paths: QueuePaths, a: str, b: str, *, stat: bool = False,
            config: Config | None = None) -> tuple[Side, Side, str]:
    """Both sides and the code's diff from ``a`` to ``b`` (git's unified diff, or its
    ``--stat``; "" when the code is the same); either may be ``.`` (``NOW``), the folder
    as it is now (``config``: the queue's, whose snapshot settings it takes)."""
    config = config or Config()
    left = side_of(paths, a) if a != NOW else None
    right = side_of(paths, b) if b != NOW else now_side(paths, config, left)
    left = left or now_side(paths, config, right)
    store = SnapshotStore(paths.state_dir / "snapshots")
    if left.snapshot.id == right.snapshot.id:
        return left, right, ""
    try:
        return left, right, code_diff(left.snapshot, right.snapshot, store, stat=stat)
    except FileNotFoundError as e:   # a blob deleted by hand
        raise OrchestratorError(f"{a} and {b}: a file of their snapshots is gone from "
                                f"{store.folder} ({e.filename}): their code cannot be "
                                "compared") from None


def render(left: Side, right: Side, code: str) -> str:
    """The comparison as the terminal shows it."""
    lines = [f"a: {left.label}", f"b: {right.label}", ""]
    if NOW in (left.ref, right.ref):
        pass   # the folder has no command
    elif left.command == right.command:
        lines += [f"command: the same ({left.command})", ""]
    else:
        lines += ["command:", f"  a: {left.command}", f"  b: {right.command}", ""]
    if not code.strip():
        lines.append("code: the same")
    else:
        lines += ["code (a → b):", code.rstrip("\n")]
    for side in (left, right):
        if side.snapshot.skipped:
            lines += ["", f"left out of {side.ref}'s snapshot:",
                      *(f"  {s}" for s in side.snapshot.skipped)]
    return "\n".join(lines) + "\n"
