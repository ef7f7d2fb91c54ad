"""Code snapshots (orchestrator.store.snapshot) on real git repositories and plain
folders the tests make: what is kept, what is left out and why, and that equal code
gives one snapshot."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from orchestrator.store.snapshot import (
    MAX_FILE_BYTES,
    SnapshotStore,
    materialize,
    named_files,
    take,
)
from tests.helpers import git, git_repo

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def repo(tmp_path):
    return git_repo(tmp_path / "repo", "data/\n")


def test_a_clean_tree_is_its_commit_and_equal_code_is_one_snapshot(repo, tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    first = take(repo, [], store)
    assert (first.commit, first.dirty, first.diff, first.files) == (head, False, "", {})
    assert take(repo, [], store).id == first.id, "the same code, the same snapshot"
    assert store.load(first.id) == first


def test_edits_and_untracked_files_are_kept_ignored_and_secret_ones_are_not(repo, tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    runs = repo / "runs"          # the state dir inside the tree, not ignored
    (runs / "a" / "attempt-1").mkdir(parents=True)
    (runs / "a" / "attempt-1" / "run.log").write_text("log\n")
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "model.py").write_text("class M: pass\n")
    (repo / ".env").write_text("WANDB_API_KEY=PLANTED-VALUE-7\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"0" * 10)
    (repo / "weights.pt").write_bytes(b"0" * (MAX_FILE_BYTES + 1))
    (repo / "outside").symlink_to(tmp_path)
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    (repo / "link.py").symlink_to(tmp_path / "elsewhere.py")
    (repo / "queue.csv").write_text("ID,TrainingCommand\n")
    snap = take(repo, [], store, leave_out=[runs, repo / "queue.csv"])
    assert snap.dirty and snap.diff
    assert b"+print('v2')" in store.blob(snap.diff)
    assert set(snap.files) == {"model.py"}, snap.files
    assert store.blob(snap.files["model.py"]) == b"class M: pass\n"
    said = "\n".join(snap.skipped)
    assert ".env: left out: it may hold secrets" in said
    assert "weights.pt:" in said and "over the snapshot's cap" in said
    assert "link.py: left out: a symlink out of the work tree" in said
    assert "outside: left out: a symlink out of the work tree" in said
    assert "runs/" not in said and "queue.csv" not in said, \
        "the state dir and the queue file are not even listed"
    assert "data/" not in said, "ignored files are not the code"
    kept = b"".join(p.read_bytes() for p in (tmp_path / "snaps").rglob("*") if p.is_file())
    assert b"PLANTED-VALUE-7" not in kept


def test_a_folder_without_git_is_its_files_and_a_row_adds_the_files_it_names(tmp_path):
    folder = tmp_path / "plain"
    (folder / "pkg").mkdir(parents=True)
    (folder / "train.py").write_text("print(1)\n")
    (folder / "pkg" / "net.py").write_text("W = 2\n")
    (folder / "notes.md").write_text("not code\n")
    (folder / "cfg.yaml").write_text("lr: 0.1\n")
    store = SnapshotStore(tmp_path / "snaps")
    named = named_files("python train.py --config cfg.yaml --lr 1", "", folder)
    assert named == [folder / "cfg.yaml"]
    snap = take(folder, named, store, globs=("*.py",))
    assert (snap.commit, snap.diff) == ("", "")
    assert set(snap.files) == {"train.py", "pkg/net.py", "cfg.yaml"}
    (folder / "cfg.yaml").write_text("lr: 0.2\n")
    assert take(folder, named, store, globs=("*.py",)).id != snap.id, "a config edit is code"


def test_a_frozen_copy_has_the_snapshots_code_and_links_what_is_not_code(repo, tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    (repo / "train.py").write_text("print('queued')\n")
    (repo / "model.py").write_text("W = 1\n")
    (repo / "data").mkdir()
    (repo / "data" / "rows.csv").write_text("1,2\n")
    (repo / ".env").write_text("KEY=1\n")
    snap = take(repo, [], store)
    (repo / "train.py").write_text("print('edited after')\n")
    (repo / "model.py").write_text("W = 2\n")
    (repo / "later.py").write_text("new after queueing\n")
    copy = materialize(snap, store, tmp_path / "copy")
    assert (copy / "train.py").read_text() == "print('queued')\n"
    assert (copy / "model.py").read_text() == "W = 1\n"
    assert (copy / ".gitignore").read_text() == "data/\n", "the commit's own files"
    assert not (copy / "later.py").exists(), "code saved after queueing never leaks in"
    assert (copy / "data").is_symlink() and (copy / "data" / "rows.csv").read_text() == "1,2\n"
    assert (copy / ".env").is_symlink(), "a secret is linked for the job, never copied"
    assert (repo / "train.py").read_text() == "print('edited after')\n", "the live tree is " \
        "untouched"


def test_a_frozen_copy_without_git_links_the_folders_that_hold_no_code(tmp_path):
    folder = tmp_path / "plain"
    (folder / "pkg").mkdir(parents=True)
    (folder / "data" / "imgs").mkdir(parents=True)
    (folder / "train.py").write_text("print(1)\n")
    (folder / "pkg" / "net.py").write_text("W = 1\n")
    (folder / "pkg" / "table.csv").write_text("x\n")
    (folder / "data" / "imgs" / "a.jpg").write_bytes(b"jpg")
    store = SnapshotStore(tmp_path / "snaps")
    snap = take(folder, [], store, globs=("*.py",))
    (folder / "pkg" / "net.py").write_text("W = 2\n")
    (folder / "pkg" / "new.py").write_text("after\n")
    copy = materialize(snap, store, tmp_path / "copy", globs=("*.py",))
    assert (copy / "pkg" / "net.py").read_text() == "W = 1\n"
    assert not (copy / "pkg" / "new.py").exists()
    assert (copy / "data").is_symlink() and (copy / "pkg" / "table.csv").is_symlink()


def test_a_tracked_secret_files_changes_stay_out_of_the_diff(repo, tmp_path):
    (repo / ".env").write_text("KEY=old\n")
    (repo / "prod.Secret.yaml").write_text("token: old\n")
    git(repo, "add", "-f", ".env", "prod.Secret.yaml")
    git(repo, "commit", "-q", "-m", "tracked secrets (it happens)")
    (repo / ".env").write_text("KEY=PLANTED-NEW-5\n")
    (repo / "prod.Secret.yaml").write_text("token: PLANTED-NEW-6\n")
    (repo / "train.py").write_text("print('v2')\n")
    store = SnapshotStore(tmp_path / "snaps")
    snap = take(repo, [], store)
    diff = store.blob(snap.diff)
    assert b"+print('v2')" in diff and b"PLANTED" not in diff
    assert ".env: its changes left out: it may hold secrets" in snap.skipped
    assert "prod.Secret.yaml: its changes left out: it may hold secrets" in snap.skipped


def test_a_folder_without_git_is_walked_without_the_state_dir_and_within_a_cap(
        tmp_path, monkeypatch):
    import orchestrator.store.snapshot as snapshot

    folder = tmp_path / "plain"
    (folder / "runs" / "a" / "attempt-1" / "code").mkdir(parents=True)
    (folder / "runs" / "a" / "attempt-1" / "code" / "train.py").write_text("copy\n")
    (folder / "train.py").write_text("print(1)\n")
    store = SnapshotStore(tmp_path / "snaps")
    snap = take(folder, [], store, leave_out=[folder / "runs"])
    assert set(snap.files) == {"train.py"} and snap.skipped == (), \
        "the state dir (with its attempts' copies) is not even walked"
    for i in range(5):
        (folder / f"m{i}.py").write_text(f"{i}\n")
    monkeypatch.setattr(snapshot, "MAX_WALK_FILES", 3)
    capped = take(folder, [], store, leave_out=[folder / "runs"])
    assert not capped.files and "holds more than 3 files" in capped.skipped[0]


def test_a_node_without_the_state_dir_is_told_how_to_run_from_a_snapshot(tmp_path, capsys):
    from orchestrator.store.snapshot import main

    assert main([str(tmp_path / "elsewhere" / "snapshots"), "abc123", str(tmp_path / "code"),
                 "*.py"]) == 1
    said = capsys.readouterr().err
    assert "snapshot abc123 is not in" in said and "on this node" in said
    assert "share the state dir with every node" in said and "mode = record" in said
    assert not (tmp_path / "code").exists()


def test_a_node_without_the_state_dir_fetches_a_published_snapshot(repo, tmp_path,
                                                                     s3_server):
    """With a storage URI the driver publishes what a row runs from; a node whose disk
    does not hold the driver's state dir fetches it into its own before the copy is made
    (only what it lacks), and a damaged blob is refused."""
    from orchestrator.store.snapshot import main, publish

    driver = SnapshotStore(tmp_path / "driver-state" / "snapshots")
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "model.py").write_text("class M: pass\n")
    snap = take(repo, [], driver)
    remote = s3_server.bucket_uri("runs/snapshots")   # s3://…/runs/snapshots?endpoint_…
    sent: set[str] = set()
    publish(snap.id, driver, remote, sent)
    assert sent == {snap.diff, snap.files["model.py"], driver.tree_of(snap.commit),
                    f"commit {snap.commit}"}, "the blobs, and the commit's files packaged"
    (repo / "train.py").write_text("print('v3: saved after queueing')\n")

    node = tmp_path / "node-state" / "snapshots"
    assert main([str(node), snap.id, str(tmp_path / "code"), "*.py", remote]) == 0
    assert (tmp_path / "code" / "train.py").read_text() == "print('v2')\n"
    assert (tmp_path / "code" / "model.py").read_text() == "class M: pass\n"
    assert (node / f"{snap.id}.json").is_file(), "kept on the node for its next attempt"

    other = tmp_path / "other-node" / "snapshots"
    from orchestrator.infra.storage import join, write_bytes

    digest = snap.files["model.py"]
    write_bytes(join(remote, "blobs", digest[:2], digest), b"tampered\n")
    assert main([str(other), snap.id, str(tmp_path / "code2"), "*.py", remote]) == 1
    assert not (tmp_path / "code2").exists()


def test_a_node_whose_checkout_lacks_the_commit_gets_its_files_from_storage(repo, tmp_path,
                                                                            s3_server):
    """A git snapshot names its commit; with a storage URI the driver also copies the
    commit's files there (once), so a node without that commit in its checkout (or without
    the checkout) still makes the frozen copy. Without them, the node says what to do."""
    from orchestrator.store.snapshot import SnapshotError, main, publish

    (repo / "lib.py").write_text("X = 1\n")
    git(repo, "add", "lib.py")
    git(repo, "commit", "-q", "-m", "lib")
    (repo / "lib.py").write_text("X = 2\n")          # a local change on top of the commit
    driver = SnapshotStore(tmp_path / "driver-state" / "snapshots")
    snap = take(repo, [], driver)
    unpacked = SnapshotStore(tmp_path / "shared-without-storage" / "snapshots")
    take(repo, [], unpacked)
    remote = s3_server.bucket_uri("runs/snapshots")
    sent: set[str] = set()
    assert publish(snap.id, driver, remote, sent) == ""
    tree = driver.tree_of(snap.commit)
    assert tree in sent and f"commit {snap.commit}" in sent
    repo.rename(tmp_path / "elsewhere")                # this node has no checkout of it

    node = tmp_path / "node-state" / "snapshots"
    assert main([str(node), snap.id, str(tmp_path / "code"), "*.py", remote]) == 0
    assert (tmp_path / "code" / "train.py").read_text() == "print('v1')\n"
    assert (tmp_path / "code" / "lib.py").read_text() == "X = 2\n", "commit + local change"
    assert SnapshotStore(node).tree_of(snap.commit) == tree, "kept for its next attempt"

    with pytest.raises(SnapshotError, match=f"commit {snap.commit[:10]} is not in .* on this "
                       "node .* set a storage URI"):
        materialize(unpacked.load(snap.id), unpacked, tmp_path / "code2")


def test_a_scan_again_sees_every_change_even_at_the_same_size_and_time(tmp_path):
    """Scans reuse the hash of a file unchanged since the last one (each attempt's start
    scans again), so a change that keeps the size and even the mtime must still count."""
    import hashlib
    import os
    import time

    folder = tmp_path / "plain"
    folder.mkdir()
    code = folder / "a.py"
    code.write_text("x = 1\n")
    store = SnapshotStore(tmp_path / "snaps")
    assert take(folder, [], store).files["a.py"] == hashlib.sha256(b"x = 1\n").hexdigest()
    code.write_text("x = 2\n")                               # the same size, at once
    assert take(folder, [], store).files["a.py"] == hashlib.sha256(b"x = 2\n").hexdigest()
    old = time.time() - 60
    os.utime(code, (old, old))
    take(folder, [], store)
    code.write_text("x = 3\n")
    os.utime(code, (old, old))                               # its mtime put back too
    assert take(folder, [], store).files["a.py"] == hashlib.sha256(b"x = 3\n").hexdigest()


def test_untracked_files_over_the_total_cap_are_one_line_and_named_files_still_kept(
        repo, tmp_path, monkeypatch):
    """An untracked data folder nobody put in .gitignore: the snapshot keeps files up to
    its cap and says the rest in one line (not one per file); the config the row names is
    kept whatever the total."""
    from orchestrator.store import snapshot as module

    monkeypatch.setattr(module, "MAX_TOTAL_BYTES", 100)
    (repo / "images").mkdir()
    for i in range(50):
        (repo / "images" / f"{i:02d}.jpg").write_bytes(b"x" * 10)
    (repo / "zoo").mkdir()
    (repo / "zoo" / "cfg.yaml").write_text("lr: 0.1\n" * 20)     # 160 bytes, named
    snap = take(repo, [repo / "zoo" / "cfg.yaml"], SnapshotStore(tmp_path / "snaps"))
    kept = sorted(f for f in snap.files if f.startswith("images/"))
    assert kept == [f"images/{i:02d}.jpg" for i in range(len(kept))] and 0 < len(kept) < 50
    assert "zoo/cfg.yaml" in snap.files, "a file the row names is kept past the cap"
    [line] = [s for s in snap.skipped if "in all" in s]
    assert line == (f"images/{len(kept):02d}.jpg and the {50 - len(kept)} files after it: "
                    "left out, over the snapshot's cap of 0 MiB in all: add data folders to "
                    ".gitignore, or commit what is code")
    assert len(snap.skipped) == 1


def test_a_frozen_copy_holds_each_submodule_at_the_commit_the_snapshot_names(
        repo, tmp_path, capsys):
    """``git archive`` leaves a submodule an empty folder: the copy fills it with the
    submodule's commit — the one the local changes moved it to — from its checkout, and
    links the live checkout (said) where that lacks the commit."""
    from orchestrator.store.snapshot import main

    lib = git_repo(tmp_path / "lib", "")
    (lib / "lib.py").write_text("V = 1\n")
    git(lib, "add", ".")
    git(lib, "commit", "-q", "-m", "v1")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib),
        "third_party/lib")
    git(repo, "commit", "-q", "-m", "a submodule")
    sub = repo / "third_party" / "lib"
    (sub / "lib.py").write_text("V = 2\n")
    git(sub, "commit", "-q", "-am", "v2")          # the superproject's diff moves it
    v2 = git(sub, "rev-parse", "HEAD")
    store = SnapshotStore(tmp_path / "snaps")
    snap = take(repo, [], store)
    (sub / "lib.py").write_text("V = 3: saved after queueing\n")
    git(sub, "commit", "-q", "-am", "v3")
    copy = materialize(snap, store, tmp_path / "code")
    assert (copy / "third_party" / "lib" / "lib.py").read_text() == "V = 2\n"
    assert (copy / "train.py").read_text() == "print('v1')\n"

    shutil.rmtree(sub)                              # a checkout without that commit
    sub.mkdir()
    git(sub, "init", "-q")
    assert main([str(store.folder), snap.id, str(tmp_path / "code2"), "*.py"]) == 0
    assert (tmp_path / "code2" / "third_party" / "lib").resolve() == sub.resolve()
    assert f"submodule third_party/lib: commit {v2[:10]} is " \
        f"not in its checkout; the frozen copy links the live checkout {sub}" \
        in capsys.readouterr().err


def test_the_folders_an_editable_install_points_into_are_found(repo, monkeypatch):
    """setuptools' editable finder maps each package to its folder (no sys.path entry):
    the folders holding those packages inside the tree are what a frozen copy puts first
    on PYTHONPATH; ones outside the tree are not."""
    import sys
    import types

    from orchestrator.store.snapshot import import_dirs

    (repo / "lib" / "pkg").mkdir(parents=True)
    finder = types.SimpleNamespace(MAPPING={"pkg": str(repo / "lib" / "pkg"),
                                            "other": "/usr/lib/other"})
    monkeypatch.setitem(sys.modules, "__editable___proj_0_1_0_finder", finder)
    monkeypatch.syspath_prepend(str(repo))
    assert import_dirs(repo) == (".", "lib")
