"""Where a queue lives, how the driver joins Ray, and how other terminals find it.

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

from orchestrator.config import Config
from orchestrator.exceptions import OrchestratorError

__all__ = ["QueuePaths", "queue_paths", "connect_ray", "DriverLock", "read_driver_info"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuePaths:
    csv: Path
    state_dir: Path
    name: str

    @property
    def registry(self) -> Path:
        return self.state_dir / "registry.db"

    @property
    def driver_info(self) -> Path:
        return self.state_dir / f".driver-{self.name}.json"

    @property
    def driver_lock(self) -> Path:
        return self.state_dir / f".driver-{self.name}.lock"


def queue_paths(csv_path: str | Path, config: Config) -> QueuePaths:
    csv_path = Path(csv_path).expanduser().resolve()
    if config.state_dir:
        state = Path(config.state_dir).expanduser()
        state = state if state.is_absolute() else (Path.cwd() / state)
    else:
        state = csv_path.parent / "runs"
    name = config.queue_name or csv_path.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "queue"
    return QueuePaths(csv=csv_path, state_dir=state.resolve(), name=name)


def connect_ray(config: Config, address: str | None = None,
                runtime_env: dict | None = None, log_to_driver: bool = False) -> bool:
    """Join the configured cluster, RAY_ADDRESS's, or start a local Ray.

    ``runtime_env`` is the job's (e.g. ``{"env_vars": {...}}`` every worker gets);
    ``log_to_driver``: workers' output is printed here (a trainer job's log shows its
    workers' progress; the queue's driver keeps its terminal for itself).

    Returns True when this process started Ray (it ends when the process does).
    A local Ray keeps token authentication on and its dashboard on 127.0.0.1.
    """
    address = address or config.address
    if address or os.environ.get("RAY_ADDRESS"):
        _use_token_auth()  # read when ray loads: before the import
    import ray

    common = dict(namespace=config.namespace, log_to_driver=log_to_driver,
                  logging_level=logging.WARNING)
    if runtime_env:
        common["runtime_env"] = runtime_env
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, **common)
        return False
    options = dict(address="local", include_dashboard=config.dashboard,
                   dashboard_host="127.0.0.1", **common)
    if config.num_gpus >= 0:
        options["num_gpus"] = config.num_gpus
    if config.num_cpus >= 0:
        options["num_cpus"] = config.num_cpus
    ray.init(**options)
    return True


def _use_token_auth() -> None:
    """Joining a cluster: Ray >= 2.52 clusters want token auth, and a client must say
    RAY_AUTH_MODE=token itself. We never turn auth off; a user's explicit setting wins."""
    has_token = (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                 or (Path.home() / ".ray" / "auth_token").exists())
    if has_token:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


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
        return self

    def publish(self, address: str, namespace: str) -> None:
        info = {"pid": os.getpid(), "address": address, "namespace": namespace,
                "queue": self.paths.name, "csv": str(self.paths.csv), "started": time.time()}
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
