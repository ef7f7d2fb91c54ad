"""Supervise one job; run as a script: ``python supervise.py GRACE OWNER_PID -- argv...``
(``SCRIPT`` is its path).

It detaches (double fork: Ray kills its workers' children when they exit, and
the supervisor must outlive the actor long enough to clean up), writes its pid
to ``$ORCH_RUN_DIR/supervisor.pid``, starts the job in a session of its own and
waits for it. On SIGTERM/SIGINT, or when the owner (the job's Ray actor) is
gone, it stops the job's whole process tree: SIGTERM, a grace period, then
SIGKILL. So a job never outlives the actor that owns it, and a stop reaches
every process the job started. It writes the job's exit code (128 + signal when
the job died of a signal) to ``$ORCH_RUN_DIR/exit_code`` (to ``orphaned`` instead when
it stopped the job because the owner was gone: that attempt did not finish).
"""

import os
import signal
import subprocess
import sys
import time

#: The path to run (``[sys.executable, SCRIPT, grace, owner_pid, "--", *argv]``).
SCRIPT = os.path.abspath(__file__)


def _tree(pid):
    try:
        import psutil
        proc = psutil.Process(pid)
        return [proc] + proc.children(recursive=True)
    except Exception:
        return []


def _signal_all(child, sig):
    procs = _tree(child.pid)
    try:
        os.killpg(child.pid, sig)
    except OSError:
        pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except Exception:
            pass
    return procs


def _stop(child, grace):
    procs = _signal_all(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [p for p in procs if _alive(p)]
        if child.poll() is not None and not alive:
            return
        time.sleep(0.05)
    _signal_all(child, signal.SIGKILL)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except Exception:
            pass


def _alive(proc):
    try:
        return proc.is_running() and proc.status() != "zombie"
    except Exception:
        return False


def _owner_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    grace, owner = float(argv[0]), int(argv[1])
    cmd = argv[argv.index("--") + 1:]
    run_dir = os.environ.get("ORCH_RUN_DIR", ".")
    child_pid = os.fork()
    if child_pid:  # the first process: record the supervisor and leave
        _write(os.path.join(run_dir, "supervisor.pid"), str(child_pid))
        os._exit(0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    child = subprocess.Popen(cmd, start_new_session=True)
    _write(os.path.join(run_dir, "pid"), str(child.pid))
    stopped = orphaned = False
    while True:
        try:
            child.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if not stopped and (stop or not _owner_alive(owner)):
            stopped, orphaned = True, not stop
            print(f"[orchestrator] stopping the job (SIGTERM, then SIGKILL after {grace:g}s)",
                  flush=True)
            _stop(child, grace)
    rc = child.returncode
    # a job stopped because its owner vanished did not finish: say so, not an exit code
    _write(os.path.join(run_dir, "orphaned" if orphaned else "exit_code"),
           str(128 - rc if rc < 0 else rc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
