"""Supervise one job process; run as a script: ``python _supervise.py GRACE -- argv...``.

It starts the job in a session of its own and waits for it. On SIGTERM/SIGINT,
or when its parent (the job's Ray actor) disappears, it stops the job's whole
process tree: SIGTERM, a grace period, then SIGKILL. So a job never outlives the
actor that owns it, and a stop reaches every process the job started. It exits
with the job's exit code (128 + signal when the job died of a signal).
"""

import os
import signal
import subprocess
import sys
import time


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


def main(argv):
    grace = float(argv[0])
    cmd = argv[argv.index("--") + 1:]
    parent = os.getppid()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    child = subprocess.Popen(cmd, start_new_session=True)
    with open(os.path.join(os.environ.get("ORCH_RUN_DIR", "."), "pid"), "w") as f:
        f.write(str(child.pid))
    stopped = False
    while True:
        try:
            child.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if not stopped and (stop or os.getppid() != parent):
            stopped = True
            print(f"[orchestrator] stopping the job (SIGTERM, then SIGKILL after {grace:g}s)",
                  flush=True)
            _stop(child, grace)
    rc = child.returncode
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
