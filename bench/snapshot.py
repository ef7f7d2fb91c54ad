"""What recording a row's code costs (printed, not asserted): ``orchestrator.store.snapshot``
on a git repository of 3,000 files (20 edited, 50 untracked) and on the same folder
without git, first (every blob new) and again (blobs shared; an unchanged file is not read
again: the files were saved over 2 s before, as most of a repository's are; one saved in
the last 2 s would be). The peer: ``git stash create`` plus ``git ls-files --others``,
what a hand-rolled "record the commit and diff"
script runs. And what the driver pays when a read of the queue brings 500 new rows
(one scan of the folder, shared); under ``mode = record``, what recording the code each
attempt ran costs (the scanning thread: one start alone, 500 starts at once); with a
storage URI, packaging a commit's files for nodes without it (``pack_tree``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.core import JobSpec  # noqa: E402
from orchestrator.driver.snapshots import Snapshots  # noqa: E402
from orchestrator.store.record import RunRecord  # noqa: E402
from orchestrator.store.snapshot import SnapshotStore, pack_tree, take  # noqa: E402

FILES = 3000
ROWS = 500
ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
       "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def make(folder: Path, with_git: bool) -> None:
    for i in range(FILES):
        path = folder / f"pkg{i % 30}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * 40)
    if with_git:
        for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "base"]):
            subprocess.run(["git", "-C", str(folder), *args], check=True, env=ENV)
    for i in range(20):
        (folder / f"pkg{i % 30}" / f"mod{i}.py").write_text("edited\n")
    for i in range(50):
        (folder / f"new{i}.py").write_text(f"new {i}\n")
    time.sleep(2.1)   # no file saved in the last 2 s, as in a repository mostly


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def peer(folder: Path) -> None:
    for args in (["stash", "create"], ["ls-files", "--others", "--exclude-standard"]):
        subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for with_git in (True, False):
            folder = Path(tmp) / ("repo" if with_git else "plain")
            folder.mkdir()
            make(folder, with_git)
            store = SnapshotStore(Path(tmp) / f"store-{with_git}")
            first = timed(take, folder, [], store)
            again = timed(take, folder, [], store)
            label = "git, 3,000 files" if with_git else "no git, 3,000 .py files"
            line = f"snapshot, {label}: first {first * 1000:.0f} ms, again {again * 1000:.0f} ms"
            if with_git:
                theirs = timed(peer, folder)
                line += f"; peer (git stash create + ls-files) {theirs * 1000:.0f} ms, " \
                        f"ratio {again / theirs:.1f}"
            print(line)
        folder = Path(tmp) / "repo"
        (folder / "cfg.yaml").write_text("lr: 0.1\n")
        record = RunRecord(Path(tmp) / "state" / "registry.db")
        rows = Snapshots(record, "q", folder, Path(tmp) / "state", leave_out=(), globs=("*.py",),
                         enabled=True, note=print)
        specs = [JobSpec(f"r{i}", i + 2, command=f"python train.py --seed {i}" + (
            " --config cfg.yaml" if i % 2 else "")) for i in range(ROWS)]
        t0 = time.perf_counter()
        rows.new_read()
        for spec in specs:
            rows.joined(spec.id, spec)
        took = time.perf_counter() - t0
        print(f"a read that queues {ROWS} rows (git, 3,000 files; half name a config): "
              f"{took * 1000:.0f} ms, {took / ROWS * 1000:.2f} ms per row")
        t0 = time.perf_counter()
        rows.started(specs[0].id, 1, specs[0])
        asked = time.perf_counter() - t0
        [(_, _, ran, _)] = rows.ran(wait=60)
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        for spec in specs:
            rows.started(spec.id, 1, spec)
        asked_all = time.perf_counter() - t0
        answered = len(rows.ran(wait=600))
        took = time.perf_counter() - t0
        print(f"recording the code each attempt ran (mode = record): a start waits "
              f"{asked * 1000:.2f} ms ({asked_all / ROWS * 1000:.3f} ms each of {ROWS} at once);"
              f" the scan behind it {alone * 1000:.0f} ms alone, {took * 1000:.0f} ms for "
              f"{answered} starts at once")
        t0 = time.perf_counter()
        pack_tree(folder, subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                         capture_output=True, text=True).stdout.strip(),
                  SnapshotStore(Path(tmp) / "trees"))
        print(f"packaging a commit's 3,000 files for nodes without it (storage URI, once a "
              f"commit): {(time.perf_counter() - t0) * 1000:.0f} ms")
        record.close()


if __name__ == "__main__":
    main()
