"""Starting jobs' supervisors without an interpreter start each (``SupervisorServer``), and
watching one (``Supervised``).

The supervisor itself is ``orchestrator/infra/supervise.py`` (a script, standard library
only); this is its owner's side.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from orchestrator.infra.supervise import SCRIPT as SUPERVISOR

__all__ = ["SupervisorServer", "Supervised", "SUPERVISOR"]


class SupervisorServer:
    """A ``supervise.py --standby`` process, started once by its owner (a runner, or a
    sweep's trial actor, which Tune reuses): each job is a JSON line to it and one line
    back once the job's supervisor runs, so no interpreter starts per job. Started again
    if it is gone; it exits when its owner closes its stdin or dies."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, SUPERVISOR, "--standby", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True)   # out of reach of Ray's group kill

    def prepare(self) -> None:
        with self._lock:
            self._running()

    def _running(self) -> subprocess.Popen:
        """The server, started (again) if it is not running; under the lock."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._spawn()
        return self._proc

    def launch(self, job: dict) -> int:
        """Start a job's supervisor: 0 once it runs, else the status of the failed start."""
        line = json.dumps(job).encode() + b"\n"
        with self._lock:
            for _ in range(2):   # a server that died is started again, once
                proc = self._running()
                try:
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    answer = proc.stdout.readline()
                except OSError:
                    answer = b""
                if answer.strip():
                    return int(answer)
                proc.kill()
                proc.wait()
            return -1


class Supervised:
    """The detached supervisor of one job (not our child: its owner watches its pid and
    the ``exit_code`` it writes into the run folder)."""

    def __init__(self, pid: int, run_dir: Path):
        self.pid, self._exit_file = pid, run_dir / "exit_code"
        try:   # readable the moment it exits: its end is seen at once, not at a poll
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def wait(self, timeout: float) -> None:
        """Return when it exits, or after ``timeout`` seconds."""
        if self._pidfd is None:
            time.sleep(min(timeout, 0.02))
        else:
            select.select([self._pidfd], [], [], timeout)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        """Its exit code once it ended (-1: it died without a word), else None."""
        if self._exit_file.exists():
            return int(self._exit_file.read_text().strip() or -1)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:  # it died without a word (killed with SIGKILL)
            return int(self._exit_file.read_text().strip() or -1) \
                if self._exit_file.exists() else -1
        return None

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)
