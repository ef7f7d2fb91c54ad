"""The run record: every attempt of every row, in SQLite (``<state-dir>/registry.db``).

The driver is the only writer; ``orchestrator status/logs/stop`` read it from other
terminals (WAL mode lets them read while it writes). The schema is versioned with
``PRAGMA user_version``; each migration is a list of statements.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.status import ATTEMPT_ACTIVE
from orchestrator.infra.errors import StateUnwritable

__all__ = ["RunRecord", "Attempt", "UNFROZEN", "PINNED", "FROZEN", "unwritable", "connect",
           "connect_read_only", "read_attempts", "read_only_query", "transaction"]

#: SQLite's words for a write the disk or the folder refused.
_UNWRITABLE = ("disk is full", "readonly", "read-only", "disk I/O error", "unable to open")
_UNWRITABLE_ERRNO = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM}

_MIGRATIONS: list[list[str]] = [
    [  # version 1
        """CREATE TABLE attempts (
            queue TEXT NOT NULL, job_id TEXT NOT NULL, attempt INTEGER NOT NULL,
            status TEXT NOT NULL, command TEXT, runner TEXT, node TEXT, gpus TEXT,
            started REAL, ended REAL, exit_code INTEGER, log_path TEXT, weight_file TEXT,
            metrics TEXT, best_metric REAL, error TEXT, wandb_run_id TEXT,
            PRIMARY KEY (queue, job_id, attempt))""",
        "CREATE INDEX attempts_status ON attempts (queue, status)",
        """CREATE TABLE runners (
            queue TEXT NOT NULL, name TEXT NOT NULL, shape TEXT NOT NULL, created REAL,
            PRIMARY KEY (queue, name))""",
    ],
    [  # version 2: the experiment tracker and model registry (orchestrator/registry.py)
        """CREATE TABLE experiments (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, description TEXT,
            status TEXT NOT NULL, started REAL, ended REAL, config TEXT, model_type TEXT,
            dataset_info TEXT, wandb_run_id TEXT, metrics TEXT, best_metrics TEXT,
            final_metrics TEXT, model_id INTEGER, checkpoint_path TEXT, notes TEXT,
            queue TEXT, job_id TEXT, attempt INTEGER)""",
        "CREATE INDEX experiments_job ON experiments (queue, job_id, attempt)",
        """CREATE TABLE experiment_metrics (
            experiment_id INTEGER NOT NULL REFERENCES experiments(id), step INTEGER,
            time REAL, name TEXT NOT NULL, value REAL)""",
        "CREATE INDEX experiment_metrics_exp ON experiment_metrics (experiment_id, name)",
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
            architecture TEXT, checkpoint TEXT, config TEXT, performance TEXT,
            training_info TEXT, file_path TEXT, experiment_id INTEGER, created REAL,
            UNIQUE (name, version))""",
    ],
    [  # version 3: sweep trials point at their sweep's experiment
        "ALTER TABLE experiments ADD COLUMN parent_id INTEGER REFERENCES experiments(id)",
    ],
    [  # version 4: an ended attempt's failure kind; one status vocabulary (the row's)
        "ALTER TABLE attempts ADD COLUMN failure TEXT",
        "ALTER TABLE experiments ADD COLUMN failure TEXT",
        "UPDATE attempts SET status = 'Crash', failure = 'lost' WHERE status = 'Lost'",
        "UPDATE attempts SET status = 'Stopped', failure = 'stopped' "
        "WHERE status = 'Interrupted'",
    ],
    [  # version 5: the owned cells a driver last wrote into each row, so the next driver
        # can tell an editor's stale save made while none ran from the user's own edit
        """CREATE TABLE row_cells (
            queue TEXT NOT NULL, job_id TEXT NOT NULL, cells TEXT NOT NULL, command TEXT,
            PRIMARY KEY (queue, job_id))""",
    ],
    [  # version 6: lineage: the model a row started from (PretrainedModelId)
        "ALTER TABLE models ADD COLUMN parent_id INTEGER REFERENCES models(id)",
    ],
    [  # version 7: the code each row was queued with (orchestrator/store/snapshot.py)
        "ALTER TABLE attempts ADD COLUMN snapshot TEXT",
        "ALTER TABLE attempts ADD COLUMN frozen INTEGER",
        """CREATE TABLE row_snapshots (
            queue TEXT NOT NULL, job_id TEXT NOT NULL, definition TEXT NOT NULL,
            snapshot TEXT NOT NULL, taken REAL, frozen INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (queue, job_id))""",
    ],
    [  # version 8: under [snapshot] mode = record, the live folder's code an attempt ran
        "ALTER TABLE attempts ADD COLUMN ran_snapshot TEXT",
    ],
]



@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a row as the record keeps it (a row of ``attempts``)."""

    queue: str
    job_id: str
    attempt: int
    status: str                       # the row's word: Queued, Training, Done, Crash, Stopped
    command: str | None = None
    runner: str | None = None         # the runner actor's name
    node: str | None = None
    gpus: str | None = None           # the GPU ids it held: "0,1" (or a JSON list)
    started: float | None = None      # seconds since the epoch
    ended: float | None = None
    exit_code: int | None = None
    log_path: str | None = None
    weight_file: str | None = None
    metrics: dict | None = None       # its last metrics
    best_metric: float | None = None
    error: str | None = None
    wandb_run_id: str | None = None
    failure: str | None = None        # the failure kind of an ended attempt (core.FailureKind)
    snapshot: str | None = None       # the code it was queued with (store.snapshot's id)
    frozen: bool | None = None        # it ran in a frozen copy of that code (else: the live
                                      # folder, as it was when it started)
    ran_snapshot: str | None = None   # not frozen: the live folder's code at its start

    @property
    def code(self) -> str | None:
        """The snapshot of the code it ran: what the live folder held at its start, when
        that was recorded; else the one it was queued with (and ran, when ``frozen``)."""
        return self.ran_snapshot or self.snapshot


_COLUMNS = tuple(f.name for f in dataclasses.fields(Attempt))
#: ``row_snapshots.frozen``: a row runs the live folder, will run from its snapshot when it
#: next joins the queue (``orchestrator rerun --same-code``), or runs from it now.
UNFROZEN, PINNED, FROZEN = 0, 1, 2
_ATTEMPT_FIELDS = _COLUMNS[3:]   # what begin_attempt and update_attempt may write


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """Open ``registry.db`` for reading only: never migrated, never written, no journal
    files made (so a view works on a read-only mount, and beside a running driver)."""
    uri = Path(path).resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.OperationalError:   # WAL on a read-only mount: read the file as it is
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
    db.row_factory = sqlite3.Row
    return db


def read_only_query(path: str | Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    """Rows of ``sql`` on the record at ``path``, opened read-only (``[]`` when it has no
    such table yet)."""
    db = connect_read_only(path)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:   # not a run record (yet), or an older one
        return []
    finally:
        db.close()


def read_attempts(path: str | Path, queue: str) -> list[Attempt]:
    """Every attempt of ``queue`` in the record at ``path``, read-only (``[]`` if none)."""
    return [_row(r) for r in read_only_query(
        path, "SELECT * FROM attempts WHERE queue = ? ORDER BY job_id, attempt", (queue,))]


def connect(path: str | Path) -> sqlite3.Connection:
    """Open ``registry.db`` (WAL, autocommit, rows as ``sqlite3.Row``), migrated."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    _migrate(db)
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error): a write lock held for the
    whole block, so a read-then-write inside it cannot race another process."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    """Apply missing migrations; the version is read inside the write lock, so two
    processes opening a new file at once migrate it once."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= len(_MIGRATIONS):
        return
    with transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
            for sql in statements:
                db.execute(sql)
            db.execute(f"PRAGMA user_version = {int(number)}")


def unwritable(error: BaseException, path: str | Path) -> StateUnwritable | None:
    """``error`` as ``StateUnwritable`` when it says the disk or folder under ``path``
    refused a write (full, read-only, not allowed); None for any other error."""
    if isinstance(error, StateUnwritable):
        return error
    if isinstance(error, sqlite3.OperationalError) and \
            any(word in str(error) for word in _UNWRITABLE):
        return StateUnwritable(path, str(error))
    if isinstance(error, OSError) and error.errno in _UNWRITABLE_ERRNO:
        return StateUnwritable(error.filename or path, error.strerror or str(error))
    return None


def refused_write(folder: str | Path) -> StateUnwritable | None:
    """Why ``folder`` (made if missing) takes no 4 KiB file now (full, read-only, not
    allowed); None when it does."""
    folder = Path(folder)
    probe = folder / ".writable"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as e:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return unwritable(e, folder)
    return None


class RunRecord:
    """Attempts and runners of the queues that share one state directory. A write the
    disk refuses (full, read-only, not allowed) raises ``StateUnwritable``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._writing():
            self._db = connect(self.path)

    @contextlib.contextmanager
    def _writing(self):
        try:
            yield
        except (sqlite3.OperationalError, OSError) as e:
            refused = unwritable(e, self.path)
            if refused is None:
                raise
            raise refused from None

    def close(self) -> None:
        self._db.close()

    # --------------------------------------------------------------- attempts
    def begin_attempt(self, queue: str, job_id: str, attempt: int, **fields) -> None:
        self._check(fields)
        fields.setdefault("status", ATTEMPT_ACTIVE[0])
        cols = ["queue", "job_id", "attempt", *fields]
        marks = ",".join("?" * len(cols))
        with self._writing():
            self._db.execute(
                f"INSERT OR REPLACE INTO attempts ({','.join(cols)}) VALUES ({marks})",
                [queue, job_id, attempt, *map(_encode, fields.values())])

    def update_attempt(self, queue: str, job_id: str, attempt: int, **fields) -> None:
        self._check(fields)
        if not fields:
            return
        sets = ",".join(f"{name} = ?" for name in fields)
        with self._writing():
            self._db.execute(f"UPDATE attempts SET {sets} WHERE queue = ? AND job_id = ? AND "
                             "attempt = ?",
                             [*map(_encode, fields.values()), queue, job_id, attempt])

    def attempts(self, queue: str, job_id: str | None = None) -> list[Attempt]:
        sql, args = "SELECT * FROM attempts WHERE queue = ?", [queue]
        if job_id is not None:
            sql, args = sql + " AND job_id = ?", [*args, job_id]
        rows = self._db.execute(sql + " ORDER BY job_id, attempt", args).fetchall()
        return [_row(r) for r in rows]

    def attempt(self, queue: str, job_id: str, number: int | None = None) -> Attempt | None:
        """Attempt ``number`` of a row, or its latest (None: no such attempt)."""
        if number is None:
            return self.latest(queue, job_id)
        row = self._db.execute("SELECT * FROM attempts WHERE queue = ? AND job_id = ? AND "
                               "attempt = ?", (queue, job_id, number)).fetchone()
        return _row(row) if row else None

    def latest(self, queue: str, job_id: str) -> Attempt | None:
        row = self._db.execute("SELECT * FROM attempts WHERE queue = ? AND job_id = ? "
                               "ORDER BY attempt DESC LIMIT 1", (queue, job_id)).fetchone()
        return _row(row) if row else None

    def active(self, queue: str) -> list[Attempt]:
        """The attempts that were on a runner when their driver last wrote."""
        marks = ",".join("?" * len(ATTEMPT_ACTIVE))
        rows = self._db.execute(f"SELECT * FROM attempts WHERE queue = ? AND status IN "
                                f"({marks}) ORDER BY job_id", (queue, *ATTEMPT_ACTIVE)).fetchall()
        return [_row(r) for r in rows]

    # -------------------------------------------------------------- row cells
    def save_cells(self, queue: str, rows: dict[str, tuple[dict, str]]) -> None:
        """``{job id: (owned cells as written, the row's command)}`` after a write."""
        if not rows:
            return
        with self._writing(), transaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO row_cells VALUES (?, ?, ?, ?)",
                [(queue, job_id, json.dumps(cells, sort_keys=True), command)
                 for job_id, (cells, command) in rows.items()])

    def written_cells(self, queue: str) -> dict[str, tuple[dict, str]]:
        """What ``save_cells`` last kept of each row of the queue."""
        rows = self._db.execute("SELECT job_id, cells, command FROM row_cells WHERE queue = ?",
                                (queue,)).fetchall()
        return {job_id: (json.loads(cells), command or "") for job_id, cells, command in rows}

    # ------------------------------------------------------------ row snapshots
    def save_snapshot(self, queue: str, job_id: str, definition: str, snapshot: str,
                      frozen: int = UNFROZEN) -> None:
        """The code ``job_id`` joined the queue with, for its definition (a digest of
        what the row asks to run); ``frozen``: whether it runs from it (``PINNED``: when
        it next joins, as ``orchestrator rerun --same-code`` asks; ``FROZEN``: now)."""
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO row_snapshots VALUES (?, ?, ?, ?, ?, ?)",
                             (queue, job_id, definition, snapshot, time.time(), frozen))

    def row_snapshots(self, queue: str, job_id: str | None = None
                      ) -> dict[str, tuple[str, str, int]]:
        """``{job id: (definition, snapshot id, frozen)}`` as ``save_snapshot`` last kept
        them (of one row, with ``job_id``)."""
        sql, args = "SELECT job_id, definition, snapshot, frozen FROM row_snapshots " \
            "WHERE queue = ?", [queue]
        if job_id is not None:
            sql, args = sql + " AND job_id = ?", [*args, job_id]
        return {job: (definition, snapshot, frozen)
                for job, definition, snapshot, frozen in self._db.execute(sql, args)}

    # ---------------------------------------------------------------- runners
    def add_runner(self, queue: str, name: str, shape: dict) -> None:
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO runners VALUES (?, ?, ?, ?)",
                             (queue, name, json.dumps(shape, sort_keys=True), time.time()))

    def remove_runner(self, queue: str, name: str) -> None:
        with self._writing():
            self._db.execute("DELETE FROM runners WHERE queue = ? AND name = ?", (queue, name))

    def runners(self, queue: str) -> dict[str, dict]:
        """``{runner name: shape}`` of the runners this queue's drivers created."""
        rows = self._db.execute("SELECT name, shape FROM runners WHERE queue = ?",
                                (queue,)).fetchall()
        return {name: json.loads(shape) for name, shape in rows}

    @staticmethod
    def _check(fields: dict) -> None:
        unknown = set(fields) - set(_ATTEMPT_FIELDS)
        if unknown:
            raise ValueError(f"unknown attempt field(s) {sorted(unknown)}; valid: "
                             f"{', '.join(_ATTEMPT_FIELDS)}")


def _encode(value):
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else value


def _row(row: sqlite3.Row) -> Attempt:
    """One row of ``attempts`` as an ``Attempt`` (its metrics decoded; ``None`` where the
    text is not a JSON object; a column an older record lacks, read-only, is ``None``)."""
    have = row.keys()
    values = {name: row[name] if name in have else None for name in _COLUMNS}
    if values["frozen"] is not None:
        values["frozen"] = bool(values["frozen"])
    metrics = values["metrics"]
    if metrics is not None:
        try:
            metrics = json.loads(metrics)
        except ValueError:
            metrics = None
        values["metrics"] = metrics if isinstance(metrics, dict) else None
    return Attempt(**values)
