"""A local Ray that outlives one driver: started once, joined by the next runs, stopped
when it has been idle for ``keep_alive`` seconds.

Starting Ray costs 4–6 s and stopping it ~2 s; a researcher runs the tool dozens of
times a day. The first ``orchestrator run`` without an address starts
``ray start --head`` in the background (127.0.0.1 only, free ports, token auth on: the
user's own ``~/.ray/auth_token``) and writes where it is to ``ray.json`` in the user's
state folder (``$XDG_STATE_HOME/orchestrator/ray``, mode 0700, never another user's);
the next run finds it and joins it. A watchdog process stops it once no driver has held
it and no job has run on it for ``keep_alive`` seconds. Drivers hold it with a lease
file (``drivers/<pid>``); a job is any Ray worker of that Ray that is not idle.

Jobs on it behave as on a cluster: a driver that is stopped detaches, and its running
rows keep running for the next driver to re-attach. ``orchestrator ray status|stop``
show and end it. ``ORCH_RAY_KEEP_ALIVE`` (seconds; 0: a Ray of the driver's own, as
before) overrides the config; the test suite sets it to 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.infra.errors import OrchestratorError
from orchestrator.infra.raycluster import end_processes, processes_naming

__all__ = ["KEEP_ALIVE_ENV", "KeptRay", "keep_alive", "state_folder", "find", "ensure",
           "stop", "lease", "status", "busy"]

KEEP_ALIVE_ENV = "ORCH_RAY_KEEP_ALIVE"
_INFO, _LOCK, _DRIVERS = "ray.json", "lock", "drivers"
#: Ray workers of these titles are no job: idle pool workers and the node's own agents.
_NOT_WORK = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")
_WATCH_S = 2.0


@dataclass(frozen=True)
class KeptRay:
    """Where a kept local Ray is and what it was started with."""

    address: str            # 127.0.0.1:PORT (the GCS)
    dashboard: str          # http://127.0.0.1:PORT ("" without a dashboard)
    temp_dir: str           # its --temp-dir: every process of it names this folder
    num_cpus: float         # as asked (-1: Ray detected them)
    num_gpus: float
    keep_alive: float
    started: float
    python: str = ""        # the interpreter (so the venv) its workers run: joined only by it


def keep_alive(configured: float) -> float:
    """Seconds a local Ray stays up idle: ``ORCH_RAY_KEEP_ALIVE`` if set, else the config's."""
    text = os.environ.get(KEEP_ALIVE_ENV, "").strip()
    if not text:
        return max(0.0, float(configured))
    try:
        return max(0.0, float(text))
    except ValueError:
        raise OrchestratorError(f"{KEEP_ALIVE_ENV}={text!r} is not a number of seconds — "
                                "set it to 0 (a Ray per driver) or e.g. 300") from None


def state_folder() -> Path:
    """This user's folder for the kept Ray (0700, refused when it is not this user's)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    folder = base / "orchestrator" / "ray"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise OrchestratorError(f"{folder} belongs to another user (uid {st.st_uid}): its Ray "
                                "is not joined — set XDG_STATE_HOME to a folder of your own")
    if st.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def _temp_dir(folder: Path) -> Path:
    """Ray's --temp-dir: under the state folder when its socket paths stay short enough
    (Unix sockets allow ~107 bytes), else a folder of this user's under /tmp."""
    inside = folder / "tmp"
    if len(str(inside)) <= 48:
        return inside
    import hashlib

    mark = hashlib.sha1(str(folder).encode()).hexdigest()[:8]   # one per state folder
    return Path("/tmp") / f"orch-ray-{os.getuid()}-{mark}"


@contextmanager
def _locked(folder: Path):
    from filelock import FileLock

    with FileLock(str(folder / _LOCK), timeout=120):
        yield


def _read(folder: Path) -> KeptRay | None:
    try:
        return KeptRay(**json.loads((folder / _INFO).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def find(folder: Path | None = None) -> KeptRay | None:
    """The kept Ray of this user, if it is up (a record of one that is gone is removed,
    and whatever it left running is stopped)."""
    folder = folder or state_folder()
    kept = _read(folder)
    if kept is None:
        return None
    if _answers(kept.address) and _raylet(processes_naming(kept.temp_dir)) is not None:
        return kept
    _end(kept, folder)
    return None


def _processes(kept: KeptRay) -> list:
    """Its processes: those naming its temp folder, and the raylet's children (workers
    whose titles no longer name it)."""
    import psutil

    found = processes_naming(kept.temp_dir)
    raylet = _raylet(found)
    if raylet is not None:
        try:
            found += raylet.children(recursive=True)
        except psutil.Error:
            pass
    return list({p.pid: p for p in found}.values())


def _raylet(procs: list):
    """The raylet among ``procs`` (``processes_naming`` of a kept Ray's folder)."""
    import psutil

    for proc in procs:
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if cmd and cmd[0].endswith("raylet"):
            return proc
    return None


def busy(kept: KeptRay, folder: Path) -> str:
    """What holds it now ("" when idle): a driver's lease, or a Ray worker doing work."""
    import psutil

    for path in (folder / _DRIVERS).glob("*"):
        try:
            pid, created = (float(x) for x in path.read_text().split())
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - created) < 1.0:
                return f"the driver pid {int(pid)}"
        except (OSError, ValueError, psutil.Error):
            pass
        path.unlink(missing_ok=True)   # a driver that is gone
    raylet = _raylet(processes_naming(kept.temp_dir))
    for proc in raylet.children(recursive=False) if raylet is not None else ():
        try:
            title = " ".join(proc.cmdline()[:1])
        except psutil.Error:
            continue
        if title.startswith("ray::") and not title.startswith(_NOT_WORK):
            return f"a job ({title}, pid {proc.pid})"
    return ""


@contextmanager
def lease(folder: Path | None = None):
    """Hold the kept Ray while this driver runs (the watchdog waits for it)."""
    import psutil

    folder = folder or state_folder()
    drivers = folder / _DRIVERS
    drivers.mkdir(exist_ok=True, mode=0o700)
    path = drivers / str(os.getpid())
    path.write_text(f"{os.getpid()} {psutil.Process().create_time()}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def ensure(num_cpus: float, num_gpus: float, dashboard: bool, idle_s: float) -> KeptRay:
    """This user's kept Ray, started when there is none. One started with other GPUs or
    CPUs (``-1``: detected) is started again as asked when idle, and refused while busy."""
    folder = state_folder()
    with _locked(folder):
        kept = find(folder)
        if kept is not None and _fits(kept, num_cpus, num_gpus):
            return kept
        if kept is not None:
            holder = busy(kept, folder)
            if holder:
                raise OrchestratorError(
                    f"the local Ray kept running for your runs was started with "
                    f"{_sizes(kept)} from {kept.python} and {holder} uses it; this run "
                    f"asks for "
                    f"{_sizes(dataclasses.replace(kept, num_cpus=num_cpus, num_gpus=num_gpus))}"
                    f" from {sys.executable}: ask for the same (--num-gpus/--num-cpus or "
                    "[ray], the same venv), wait for it to finish, or `orchestrator ray "
                    "stop` ends it and what runs on it")
            _end(kept, folder)
        return _start(folder, num_cpus, num_gpus, dashboard, idle_s)


def _sizes(kept: KeptRay) -> str:
    return ", ".join(f"{'the detected' if n < 0 else f'{n:g}'} {what}"
                     for n, what in ((kept.num_gpus, "GPUs"), (kept.num_cpus, "CPUs")))


def _fits(kept: KeptRay, num_cpus: float, num_gpus: float) -> bool:
    """Joined only as asked: a Ray started with 4 logical GPUs (a demo, a laptop try) is
    not what a run that lets Ray detect the GPUs wants, nor the other way round; and only
    from the same Python (its workers import this installation's code)."""
    return num_cpus == kept.num_cpus and num_gpus == kept.num_gpus and \
        kept.python == sys.executable   # another venv: another orchestrator in the workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, num_cpus: float, num_gpus: float, dashboard: bool,
           idle_s: float) -> KeptRay:
    temp = _temp_dir(folder)
    if temp.exists() and temp.stat().st_uid != os.getuid():
        raise OrchestratorError(f"{temp} belongs to another user: remove it or set "
                                "XDG_STATE_HOME to a short folder of your own")
    temp.mkdir(parents=True, exist_ok=True, mode=0o700)
    port, dash = _free_port(), _free_port()
    ports = ["--port", port, "--dashboard-port", dash, "--ray-client-server-port",
             _free_port(), "--dashboard-agent-listen-port", _free_port(),
             "--dashboard-agent-grpc-port", _free_port(), "--metrics-export-port",
             _free_port(), "--runtime-env-agent-port", _free_port(), "--node-manager-port",
             _free_port(), "--object-manager-port", _free_port()]
    env = {**os.environ, "RAY_enable_metrics_collection":
           os.environ.get("RAY_enable_metrics_collection", "0"), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    sizes = [*(["--num-cpus", f"{num_cpus:g}"] if num_cpus >= 0 else []),
             *(["--num-gpus", f"{num_gpus:g}"] if num_gpus >= 0 else [])]   # else: detected
    cmd = [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--temp-dir",
           str(temp), *sizes, "--include-dashboard", "true" if dashboard else "false",
           "--dashboard-host", "127.0.0.1", "--disable-usage-stats", *map(str, ports)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    kept = KeptRay(address=f"127.0.0.1:{port}",
                   dashboard=f"http://127.0.0.1:{dash}" if dashboard else "",
                   temp_dir=str(temp), num_cpus=num_cpus, num_gpus=num_gpus, keep_alive=idle_s,
                   started=time.time(), python=sys.executable)
    if done.returncode != 0:
        _end(kept, folder)
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise OrchestratorError("could not start a local Ray (`ray start --head`): "
                                + " | ".join(tail))
    tmp = folder / f"{_INFO}.tmp"
    tmp.write_text(json.dumps(asdict(kept)), encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, folder / _INFO)
    log = open(folder / "watchdog.log", "ab")   # noqa: SIM115 - the child keeps it
    subprocess.Popen([sys.executable, "-m", "orchestrator.infra.localray", "--watch",
                      str(folder)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    return kept


def _end(kept: KeptRay, folder: Path, grace: float = 5.0) -> None:
    """Stop every process of ``kept`` (never ``ray stop``: that ends every Ray of the
    machine) and forget it."""
    end_processes(_processes(kept), grace)
    current = _read(folder)
    if current is not None and current.temp_dir == kept.temp_dir and \
            current.started == kept.started:
        (folder / _INFO).unlink(missing_ok=True)


def stop(folder: Path | None = None) -> KeptRay | None:
    """End the kept Ray now (its jobs too); the one that was, or None."""
    folder = folder or state_folder()
    with _locked(folder):
        kept = _read(folder)
        if kept is not None:
            _end(kept, folder)
        return kept


def status(folder: Path | None = None) -> dict | None:
    """The kept Ray as ``orchestrator ray status`` shows it (None: none is up)."""
    folder = folder or state_folder()
    kept = find(folder)
    if kept is None:
        return None
    return {**asdict(kept), "busy": busy(kept, folder), "folder": str(folder)}


def watch(folder: Path) -> int:
    """The watchdog: stop the kept Ray after ``keep_alive`` idle seconds, or when it is
    gone or replaced (then this watchdog is no longer its own)."""
    mine = _read(folder)
    if mine is None:
        return 0
    idle_since = time.monotonic()
    while True:
        time.sleep(_WATCH_S)
        current = _read(folder)
        if current is None or current.started != mine.started or \
                _raylet(processes_naming(mine.temp_dir)) is None:
            return 0
        if busy(mine, folder):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= mine.keep_alive:
            with _locked(folder):
                if not busy(mine, folder):
                    print(f"{time.strftime('%H:%M:%S')} idle {mine.keep_alive:g}s: stopping "
                          f"the local Ray at {mine.address}", flush=True)
                    _end(mine, folder)
                    return 0
            idle_since = time.monotonic()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--watch"]:
        sys.exit(watch(Path(sys.argv[2])))
    sys.exit(2)
