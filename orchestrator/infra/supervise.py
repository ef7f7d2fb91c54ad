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

A runner keeps one server of them (``python supervise.py --standby OWNER_PID``): it reads
jobs, one JSON line each with ``grace``, ``run_dir``, ``log``, ``cwd``, ``env`` and
``argv``, forks the supervisor of each (no interpreter start per job, so a warm runner
starts its next job in a few milliseconds) and answers one line per job; at the end of
its input it exits. A supervisor notices its job's end at once (a pidfd), not at a poll.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

#: How often the owner's presence is checked while the job runs (seconds).
_OWNER_CHECK_S = 0.5

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
    if argv[:1] == ["--standby"]:
        return standby(int(argv[1]))
    grace, owner = float(argv[0]), int(argv[1])
    cmd = argv[argv.index("--") + 1:]
    return supervise(grace, owner, cmd, os.environ.get("ORCH_RUN_DIR", "."))


def standby(owner):
    """Serve jobs, one JSON line each on stdin, until end of input: for each, fork (no
    new interpreter) a process that detaches a supervisor for it, and answer one line,
    the status of that fork ("0": the supervisor runs and its pid is in the run dir)."""
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return 0   # the runner let go of this server (it stopped, or was killed)
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _start(job, owner)
            except BaseException:   # said in the job's log when it is open, else the runner's
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


def _start(job, owner):
    """In a fork of the server: become the job's first process (its stdio the log)."""
    fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    return supervise(float(job["grace"]), owner, job["argv"], job["run_dir"])


def supervise(grace, owner, cmd, run_dir):
    child_pid = os.fork()
    if child_pid:  # the first process: record the supervisor and leave
        _write(os.path.join(run_dir, "supervisor.pid"), str(child_pid))
        os._exit(0)
    stop = []
    wake_r, wake_w = os.pipe()   # a signal wakes the wait below at once
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    child = subprocess.Popen(cmd, start_new_session=True)
    _write(os.path.join(run_dir, "pid"), str(child.pid))
    ended = _exit_waiter(child, wake_r)
    stopped = orphaned = False
    while True:
        if ended(_OWNER_CHECK_S):
            break
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


def _exit_waiter(child, wake_r):
    """``ended(timeout)``: True once ``child`` exited, waiting up to ``timeout`` for it or
    for a signal (a pidfd where the kernel has them, else short polls)."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        pidfd = None

    def ended(timeout):
        if pidfd is None:
            try:
                child.wait(timeout=min(timeout, 0.05))
                return True
            except subprocess.TimeoutExpired:
                return False
        readable = select.select([pidfd, wake_r], [], [], timeout)[0]
        if wake_r in readable:
            os.read(wake_r, 512)
        return child.poll() is not None

    return ended


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
