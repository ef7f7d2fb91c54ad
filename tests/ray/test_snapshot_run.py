"""``[snapshot] mode = run`` on a real local Ray: an edit saved after a row was queued never
reaches it (it runs in a frozen copy of its snapshot, reading its data through the copy's
links); under ``record`` the same edit runs, and the attempt records both the code as queued and
the edited code that ran."""

import sys
import time

import pytest

from orchestrator.store.snapshot import SnapshotStore
from tests.helpers import QueueRun, git, git_repo, read_rows, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "TrainingCommand", "TrainingCheck", "PretrainedModelId", "GPUs"]
TRAIN = """\
import pathlib, sys
VERSION = "v1"
data = pathlib.Path("data/input.txt").read_text().strip()
cfg = pathlib.Path(sys.argv[3]).read_text().strip()
pathlib.Path(sys.argv[1]).write_text(f"{VERSION} {data} {cfg} {pathlib.Path.cwd()}")
"""
GATE = """\
import pathlib, sys, time
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
"""


@pytest.mark.parametrize("mode", ["run", "record"])
def test_an_edit_saved_after_queueing_runs_only_under_record(tmp_path, mode):
    repo = git_repo(tmp_path / "project", "data/\nruns/\n")
    (repo / "train.py").write_text(TRAIN)
    (repo / "gate.py").write_text(GATE)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train")
    (repo / "data").mkdir()
    (repo / "data" / "input.txt").write_text("rows\n")
    flag, out = tmp_path / "go", tmp_path / "later.txt"
    cfg = tmp_path / "shared" / "cfg.yaml"        # a config the row names, outside the tree
    cfg.parent.mkdir()
    cfg.write_text("lr=1\n")
    py = sys.executable
    q = write_csv(repo / "queue.csv", HEADER, [
        ["gate", f"{py} gate.py {flag}", "", "", "0"],
        ["later", f"{py} train.py {out} --config {cfg}", "", "gate", "0"]])
    run = QueueRun(q, snapshot_mode=mode).start()
    wait_for(lambda: read_rows(q)["gate"]["TrainingCheck"] == "Training", timeout=60,
             what="gate Training")
    (repo / "train.py").write_text(TRAIN.replace('"v1"', '"v2"'))   # saved while it waits
    cfg.write_text("lr=2\n")
    time.sleep(0.2)
    flag.write_text("go")
    assert run.join() == 0, read_rows(q)
    version, data, lr, cwd = out.read_text().split()
    assert data == "rows", "the data is read through the copy's link"
    record = run.record()
    [attempt] = record.attempts(run.paths.name, "later")
    snap = SnapshotStore(run.paths.state_dir / "snapshots").load(attempt.snapshot)
    assert not snap.dirty, "the snapshot is the code as queued"
    if mode == "run":
        assert (version, lr) == ("v1", "lr=1"), "the edits saved after queueing never " \
            "reached the row, in the tree or in the config it names from outside it"
        assert cwd == str(run.paths.state_dir / "later" / "attempt-1" / "code")
        assert attempt.frozen and attempt.code == attempt.snapshot
    else:
        assert (version, lr) == ("v2", "lr=2") and cwd == str(repo)
        ran = SnapshotStore(run.paths.state_dir / "snapshots").load(attempt.code)
        assert ran.dirty and b'+VERSION = "v2"' in SnapshotStore(
            run.paths.state_dir / "snapshots").blob(ran.diff), "the edit that ran is recorded"
    record.close()
