"""Joining Ray: a cluster (token auth kept on) or a new local Ray on 127.0.0.1.

The driver (``driver.session``), a Ray Train kind's job (``trainers.ray_job``) and a
sweep's job all join through ``connect``; none of them needs the driver's config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["connect", "use_token_auth", "dashboard_url", "session_dir", "reap_session",
           "processes_naming", "end_processes"]

_connected = {"dashboard_url": ""}   # what the last connect() found


def connect(address: str | None = None, *, namespace: str = "orchestrator",
            runtime_env: dict | None = None, log_to_driver: bool = False,
            dashboard: bool = False, num_gpus: float = -1, num_cpus: float = -1) -> bool:
    """Join ``address``, else RAY_ADDRESS's cluster, else start a local Ray.

    ``runtime_env`` is the job's (e.g. ``{"env_vars": {...}}`` every worker gets);
    ``log_to_driver``: workers' output is printed here; ``num_gpus``/``num_cpus`` (-1:
    detect) and ``dashboard`` only matter for a new local Ray, whose dashboard binds to
    127.0.0.1. Returns True when this process started Ray (it ends when the process does).
    """
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    # Ray keeps a metrics series per task name for as long as the process lives, and
    # every row names its tasks (for `ray list tasks`): ~20 KB a row, 0.5 GB at 10,000
    # rows. Off unless the user turns it on (on a local Ray we start: off there too).
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    if joining:
        use_token_auth()   # read when ray loads: before the import
    import ray

    _quiet_token_notice()
    common = dict(namespace=namespace, log_to_driver=log_to_driver,
                  logging_level=logging.WARNING)
    if runtime_env:
        common["runtime_env"] = runtime_env
    if joining:
        _connected["dashboard_url"] = ray.init(address=address or None, **common).dashboard_url
        return False
    options = dict(address="local", include_dashboard=dashboard, dashboard_host="127.0.0.1",
                   **common)
    if num_gpus >= 0:
        options["num_gpus"] = num_gpus
    if num_cpus >= 0:
        options["num_cpus"] = num_cpus
    token = Path.home() / ".ray" / "auth_token"   # where a new local Ray writes its token
    had_token = token.exists()
    _connected["dashboard_url"] = ray.init(**options).dashboard_url
    if not had_token and token.exists():
        token.chmod(0o600)   # Ray writes a new token world-readable
    return True


class _DropTokenNotice(logging.Filter):
    """Ray's "Token authentication is enabled …" warning opens every run; what a user
    needs of it (where the token is) our own dashboard line says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled")


def _quiet_token_notice() -> None:
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropTokenNotice) for f in log.filters):
        log.addFilter(_DropTokenNotice())


def dashboard_url() -> str:
    """``http://host:port`` of the dashboard of the Ray this process joined ('' if none)."""
    url = _connected["dashboard_url"] or ""
    return url if not url or "://" in url else f"http://{url}"


def use_token_auth() -> None:
    """Joining a cluster: Ray >= 2.52 clusters want token auth, and a client must say
    RAY_AUTH_MODE=token itself. We never turn auth off; a user's explicit setting wins."""
    has_token = (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                 or (Path.home() / ".ray" / "auth_token").exists())
    if has_token:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def session_dir() -> str:
    """The session folder of the Ray this process started ('' when unknown)."""
    try:
        import ray._private.worker as worker

        node = worker._global_node
        return str(node.get_session_dir_path()) if node is not None else ""
    except Exception:  # an internal API: without it nothing is reaped, nothing breaks
        return ""


def reap_session(folder: str, grace: float = 3.0) -> int:
    """End the processes a local Ray left running after its driver was killed: those
    whose command line names its session ``folder`` (never matched by process name).
    Returns how many there were."""
    if not folder or not Path(folder).name.startswith("session_"):
        return 0
    found = processes_naming(folder)
    end_processes(found, grace)
    return len(found)


def processes_naming(marker: str) -> list:
    """This machine's processes (not this one) with ``marker`` in their command line."""
    import psutil

    mine, found = os.getpid(), []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.info["pid"] != mine and any(marker in part
                                                for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.Error, TypeError):
            continue
    return found


def end_processes(procs: list, grace: float = 3.0) -> None:
    """SIGTERM, ``grace`` seconds, then SIGKILL for those still there."""
    import psutil

    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
