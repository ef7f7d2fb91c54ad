"""Helpers for the tests: waiting, running a queue in-process, a probe job."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

PROBE = Path(__file__).with_name("probe_job.py")


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def probe(name: str, out: Path, *args: str) -> str:
    """A TrainingCommand that records when/where it ran into ``out/<name>.<attempt>.json``."""
    return f"{sys.executable} {PROBE} --name {name} --out {out} " + " ".join(args)


def probe_records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> dict[str, dict]:
    from orchestrator.store.queue_file import QueueFile
    return {r["ID"]: r for _, r in QueueFile(path).read().rows()}


class QueueRun:
    """Run a queue on the session's Ray, in a thread (so a test can act meanwhile)."""

    def __init__(self, csv_path: Path, **config):
        from orchestrator.store.config import load_config
        from orchestrator.store.paths import queue_paths

        config.setdefault("retry_backoff", 0.2)
        config.setdefault("runner_idle", 2.0)
        config.setdefault("check_interval", 1.0)
        self.config = load_config(None, **config)
        self.paths = queue_paths(csv_path, self.config)
        self.output = io.StringIO()
        self.code: int | None = None
        self.error: BaseException | None = None
        self.scheduler = None
        self.local_ray = True   # False: behave as on a cluster (wait for resources to appear)
        self.extra_observers: tuple = ()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from orchestrator.driver.loop import Scheduler
        from orchestrator.observers.metrics import QueueMetrics
        from orchestrator.observers.tracking import JobTracking
        from orchestrator.store.queue_file import QueueFile
        from orchestrator.store.record import RunRecord

        try:
            record = RunRecord(self.paths.registry)
            self.metrics = QueueMetrics(self.paths.name)
            tracking = JobTracking(self.paths.registry, self.paths.name, self.paths.csv.parent,
                                   self.config.metric, self.config.metric_goal)
            self.scheduler = Scheduler(QueueFile(self.paths.csv), self.config,
                                       self.paths.state_dir, record, queue_name=self.paths.name,
                                       local_ray=self.local_ray,
                                       observers=(tracking, self.metrics,
                                                  *self.extra_observers))
            self.code = self.scheduler.run()
            tracking.close()
            record.close()
        except BaseException as e:  # surfaced by join()
            self.error = e

    def start(self) -> QueueRun:
        self._thread.start()
        return self

    def join(self, timeout: float = 120) -> int:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"queue still running after {timeout}s: " + (
            self.describe())
        if self.error:
            raise self.error
        return self.code

    def describe(self) -> str:
        s = self.scheduler
        if s is None:
            return "no scheduler"
        rows = {st.id: (st.status.label, st.attempt, st.runner) for st in s.snapshot()}
        return f"rows={rows} runners={ {k: r.name for k, r in s.runners.items()} }"

    def record(self):
        from orchestrator.store.record import RunRecord
        return RunRecord(self.paths.registry)


def run_queue(csv_path: Path, timeout: float = 120, **config) -> int:
    return QueueRun(csv_path, **config).start().join(timeout)


def console() -> Console:
    return Console(file=io.StringIO(), width=150)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` as a test's author; its output."""
    import os
    import subprocess
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                          "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@x"}).stdout.strip()


def git_repo(folder: Path, ignore: str) -> Path:
    """A git work tree at ``folder`` with train.py (``print('v1')``) committed and
    ``ignore`` as its .gitignore."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q")
    (folder / "train.py").write_text("print('v1')\n")
    (folder / ".gitignore").write_text(ignore)
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "v1")
    return folder
