"""Where a queue lives in its state dir, and how other terminals find its driver.

A running driver holds ``<state-dir>/.driver-<queue>.lock`` (so two drivers never
run one queue) and writes ``.driver-<queue>.json`` with its Ray address, so
``orchestrator stop/status/logs`` from another terminal can reach its jobs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.config import Config
from orchestrator.store.queue_file import QueueFile

__all__ = ["QueuePaths", "queue_paths", "DriverLock", "read_driver_info", "record_run_config",
           "recorded_config", "recorded_encoding"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuePaths:
    csv: Path
    state_dir: Path
    name: str
    encoding: str = ""   # the CSV's when it is not UTF-8 ("": UTF-8, or UTF-16 with a BOM)

    def queue_file(self, writable=None) -> QueueFile:
        """The queue CSV, read in its encoding."""
        return QueueFile(self.csv, writable=writable, encoding=self.encoding or None)

    @property
    def registry(self) -> Path:
        return self.state_dir / "registry.db"

    def own_files(self, config_source: str = "") -> tuple[Path, ...]:
        """What in the queue's folder is ours, not the code a snapshot records: the state
        dir, the queue and its lock, and the config file (it holds notification tokens
        and SMTP passwords)."""
        config = Path(config_source) if config_source else None
        return (self.state_dir, self.csv, self.csv.with_name(f".{self.csv.name}.lock"),
                *([config] if config is not None and config.is_file() else []))

    @property
    def driver_info(self) -> Path:
        return self.state_dir / f".driver-{self.name}.json"

    @property
    def driver_lock(self) -> Path:
        return self.state_dir / f".driver-{self.name}.lock"

    @property
    def run_config(self) -> Path:
        """Which config file the last driver of this queue ran with."""
        return self.state_dir / f".config-{self.name}.json"

    @property
    def waiting(self) -> Path:
        """Why each pending row has not started, as the running driver sees it."""
        return self.state_dir / f".waiting-{self.name}.json"

    @property
    def requests(self) -> Path:
        """Where other terminals leave requests for the running driver (``stop``)."""
        return self.state_dir / f".requests-{self.name}"


def queue_paths(csv_path: str | Path, config: Config) -> QueuePaths:
    csv_path = Path(csv_path).expanduser().resolve()
    if config.state_dir:
        state = Path(config.state_dir).expanduser()
        state = state if state.is_absolute() else (Path.cwd() / state)
    else:
        state = csv_path.parent / "runs"
    name = config.queue_name or csv_path.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "queue"
    return QueuePaths(csv=csv_path, state_dir=state.resolve(), name=name,
                      encoding=config.csv_encoding)


def record_run_config(paths: QueuePaths, config: Config) -> None:
    """Keep the path of the config file a driver runs with (not its values: they may hold
    secrets), and the CSV's encoding, so ``status``, ``tui``, ``logs`` and ``report`` read
    the same ones."""
    source = Path(config.source) if config.source != "defaults" else None
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.run_config.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": str(source.resolve()) if source else None,
                               "encoding": paths.encoding}), encoding="utf-8")
    os.replace(tmp, paths.run_config)


def recorded_config(paths: QueuePaths) -> Path | None:
    """The config file the last driver of the queue ran with, if it is still there."""
    text = _recorded(paths).get("config")
    return Path(text) if isinstance(text, str) and text and Path(text).is_file() else None


def recorded_encoding(paths: QueuePaths) -> str:
    """The CSV encoding the last driver of the queue read it in ("" = UTF-8)."""
    value = _recorded(paths).get("encoding")
    return value if isinstance(value, str) else ""


def _recorded(paths: QueuePaths) -> dict:
    try:
        data = json.loads(paths.run_config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class DriverLock:
    """Held by the one driver of a queue; records how to reach it."""

    def __init__(self, paths: QueuePaths):
        self.paths = paths
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(paths.driver_lock), timeout=0)

    def __enter__(self) -> DriverLock:
        try:
            self._lock.acquire()
        except Timeout:
            info = read_driver_info(self.paths) or {}
            raise OrchestratorError(
                f"another driver (pid {info.get('pid', '?')}) is already running "
                f"{self.paths.csv}; watch it with `orchestrator status {self.paths.csv}` or "
                "stop it first") from None
        try:   # what a driver that died (kill -9) left: its record is still there
            self.stale = json.loads(self.paths.driver_info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.stale = {}
        return self

    def publish(self, address: str, namespace: str, ray_session: str = "") -> None:
        """``ray_session``: the session folder of the local Ray this driver started (the
        next driver reaps what of it a kill -9 left behind)."""
        info = {"pid": os.getpid(), "address": address, "namespace": namespace,
                "queue": self.paths.name, "csv": str(self.paths.csv), "started": time.time(),
                **({"ray_session": ray_session} if ray_session else {})}
        tmp = self.paths.driver_info.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
        os.replace(tmp, self.paths.driver_info)

    def __exit__(self, *exc) -> None:
        try:
            self.paths.driver_info.unlink()
        except FileNotFoundError:
            pass
        self._lock.release()


def read_driver_info(paths: QueuePaths) -> dict | None:
    """The running driver's record, or None when no driver holds the queue."""
    try:
        info = json.loads(paths.driver_info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lock = FileLock(str(paths.driver_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return info      # held: the driver is alive
    lock.release()
    return None          # a stale file from a driver that died
