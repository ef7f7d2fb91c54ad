"""The code each row joins the queue with, on a real git repository the test makes: the
driver (on a fake pool) snapshots a row when it first reads it waiting, every attempt
points at that snapshot, and ``orchestrator diff`` says how two rows' code differs."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from orchestrator.cli.main import main
from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.snapshot import SnapshotStore
from orchestrator.views.diff import compare, render, side_of
from tests.fake_pool import HOLD, FakePool
from tests.helpers import git, git_repo, read_rows, wait_for, write_csv
from tests.unit.test_loop import Run, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "PretrainedModelId", "GPUs"]


@pytest.fixture
def repo(tmp_path):
    return git_repo(tmp_path / "project", "runs/\n")


def job(job_id, parent="", command=None):
    return [job_id, job_id, command or f"python train.py --id {job_id}", "", parent, "0"]


def snapshot_of(r, job_id, attempt=1):
    [found] = [a for a in r.record.attempts(r.paths.name, job_id) if a.attempt == attempt]
    assert found.snapshot, f"attempt {attempt} of {job_id} names no snapshot"
    return SnapshotStore(r.paths.state_dir / "snapshots").load(found.snapshot)


def test_every_attempt_points_at_the_code_its_row_was_queued_with(repo):
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    first = run(q, FakePool())
    a = snapshot_of(first, "a")
    assert (a.commit, a.dirty, a.files) == (git(repo, "rev-parse", "HEAD"), False, {})
    first.record.close()

    (repo / "train.py").write_text("print('v2')\n")
    (repo / "cfg.yaml").write_text("lr: 0.01\n")
    with open(q, "a", newline="", encoding="utf-8") as f:   # two rows join; a stays Done
        csv.writer(f).writerows([job("b", command="python train.py --config cfg.yaml"),
                                 job("c")])
    second = run(q, FakePool())
    b, c = snapshot_of(second, "b"), snapshot_of(second, "c")
    assert b.dirty and b.commit == a.commit and "cfg.yaml" in b.files
    assert c.id == b.id, "the same code at the same moment (cfg.yaml is untracked: c has it " \
        "too): one snapshot"
    assert [x.attempt for x in second.record.attempts(second.paths.name, "a")] == [1], \
        "a ran once: a new read of it is not a new queueing"

    objects = git(repo, "count-objects")
    left, right, code = compare(second.paths, "a", "b")
    assert "-print('v1')" in code and "+print('v2')" in code and "+lr: 0.01" in code
    assert ".queue.csv.lock" not in code and "queue.csv" not in code, "our own files are not code"
    shown = render(left, right, code)
    assert f"a: a (attempt 1): ran the live folder as queued (snapshot {a.id}) — commit" \
        in shown and "clean" in shown
    assert "b (attempt 1)" in shown and "+ local changes" in shown
    assert "a: python train.py --id a" in shown and "b: python train.py --config cfg.yaml" in shown
    assert compare(second.paths, "b", "b:1")[2] == "", "the same attempt: the same code"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == "M train.py"
    assert git(repo, "count-objects") == objects, "diff never writes the user's repository"


def edited_while_then_waited(repo) -> Run:
    """Rows first and then (first's child), train.py saved while then waited: the run."""
    q = write_csv(repo / "queue.csv", HEADER, [job("first"), job("then", parent="first")])
    pool = FakePool(outcomes={"first": [HOLD]})
    r = Run(q, pool).start()
    wait_for(lambda: read_rows(q)["first"]["TrainingCheck"] == "Training", what="Training")
    (repo / "train.py").write_text("print('edited while it waited')\n")
    pool.finish("first")
    assert r.join() == 0
    return r


def test_a_row_keeps_the_code_of_the_moment_it_joined_not_of_its_start(repo):
    r = edited_while_then_waited(repo)
    waited = snapshot_of(r, "then")
    assert waited.id == snapshot_of(r, "first").id and not waited.dirty, \
        "the row that waited keeps the code it was queued with"


def test_under_record_an_edit_saved_while_a_row_waited_runs_and_is_recorded(repo):
    r = edited_while_then_waited(repo)
    [first], [then] = (r.record.attempts(r.paths.name, j) for j in ("first", "then"))
    assert first.ran_snapshot == first.snapshot, "first ran the code it was queued with"
    assert then.snapshot == first.snapshot and then.ran_snapshot != then.snapshot
    ran = SnapshotStore(r.paths.state_dir / "snapshots").load(then.code)
    assert ran.dirty and not then.frozen
    left, right, code = compare(r.paths, "first", "then")
    assert "+print('edited while it waited')" in code, "diff compares the code each ran"
    assert f"ran the live folder as it was at its start (snapshot {ran.id}; edited since it " \
        f"was queued with {then.snapshot})" in render(left, right, code)
    assert json.loads(json.dumps(right.to_json()))["queued_snapshot"] == then.snapshot
    r.record.close()


def test_thousands_of_starts_while_the_code_changes_each_record_the_code_of_their_start(
        repo):
    """2,000 instant rows while another thread keeps saving train.py: every attempt gets
    the code of its start (none is lost or mixed up), and since scans run in start order,
    a later start never records older code than an earlier one."""
    import os
    import threading

    q = write_csv(repo / "queue.csv", HEADER, [job(f"r{i:04d}") for i in range(2000)])
    saving, versions = threading.Event(), [0]

    def save():
        while not saving.is_set():
            versions.append(versions[-1] + 1)
            tmp = repo / ".train.py.tmp"
            tmp.write_text(f"VERSION = {versions[-1]}\n")
            os.replace(tmp, repo / "train.py")   # never half written
            saving.wait(0.005)

    editor = threading.Thread(target=save, daemon=True)
    pool = FakePool()
    editor.start()
    try:
        r = run(q, pool)
    finally:
        saving.set()
        editor.join()
    assert r.code == 0
    store = SnapshotStore(r.paths.state_dir / "snapshots")
    attempts = {a.job_id: a for a in r.record.attempts(r.paths.name)}
    seen = {}
    for digest in {a.ran_snapshot for a in attempts.values()}:
        snap = store.load(digest)
        text = store.blob(snap.diff).decode() if snap.diff else ""
        seen[digest] = int(text.split("+VERSION = ")[1].split()[0]) if text else 0
    ran = [seen[attempts[launch.job_id].ran_snapshot] for launch, _ in pool.launches]
    assert len(ran) == 2000 and ran == sorted(ran), "each start's code, in start order"
    assert len(set(ran)) > 1, "the code changed while the rows started"
    r.record.close()


def test_a_secret_is_never_kept_and_a_folder_without_git_is_its_files(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "train.py").write_text("print(1)\n")
    (folder / ".env").write_text("WANDB_API_KEY=PLANTED-SECRET-9\n")
    q = write_csv(folder / "queue.csv", HEADER, [job("a")])
    r = run(q, FakePool())
    snap = snapshot_of(r, "a")
    assert (snap.commit, set(snap.files)) == ("", {"train.py"})
    kept = b"".join(p.read_bytes() for p in (r.paths.state_dir / "snapshots").rglob("*")
                    if p.is_file())
    assert b"PLANTED-SECRET-9" not in kept


def test_snapshot_mode_off_keeps_nothing(repo, tmp_path):
    ini = tmp_path / "orch.ini"
    ini.write_text("[snapshot]\nmode = off\n")
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    r = run(q, FakePool(), config_path=ini)
    assert [a.snapshot for a in r.record.attempts(r.paths.name, "a")] == [None]
    assert not (r.paths.state_dir / "snapshots").exists()
    with pytest.raises(OrchestratorError, match="has no code snapshot .*mode = off"):
        side_of(r.paths, "a")


def test_a_misspelled_snapshot_mode_is_said_with_the_nearest(tmp_path):
    from orchestrator.infra.errors import ConfigError
    from orchestrator.store.config import load_config

    ini = tmp_path / "orch.ini"
    ini.write_text("[snapshot]\nmode = recrod\n")
    with pytest.raises(ConfigError, match="did you mean record\\? use record, run or off"):
        load_config(ini)


def test_under_mode_run_an_attempt_runs_in_the_frozen_copy_of_its_snapshot(repo, tmp_path):
    ini = tmp_path / "orch.ini"
    ini.write_text("[snapshot]\nmode = run\n")
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    pool = FakePool()
    r = run(q, pool, config_path=ini)
    [(launch, _)] = pool.launches
    copy = r.paths.state_dir / "a" / "attempt-1" / "code"
    store = r.paths.state_dir / "snapshots"
    assert f"-m orchestrator.store.snapshot {store} {snapshot_of(r, 'a').id} {copy}" \
        in launch.script and f"cd -- {copy} ||" in launch.script
    assert launch.script.index("orchestrator.store.snapshot") < launch.script.index("cd --")


def test_a_rows_config_is_read_from_the_frozen_copy(repo, tmp_path):
    from orchestrator.core import JobSpec
    from orchestrator.execution.launch import FrozenCode, build_launch
    from orchestrator.store.config import Config

    (repo / "sub").mkdir()
    (repo / "sub" / "sweep.yaml").write_text("method: grid\nparameters: {lr: {values: [1]}}\n")
    spec = JobSpec("s", 2, kind="sweep", command="train.py", config_text="sweep.yaml",
                   config_path=repo / "sub" / "sweep.yaml")
    code = FrozenCode(tmp_path / "snaps", "abc", str(repo))
    launch = build_launch(spec, Config(), queue="q", attempt=1, base_dir=repo / "sub",
                          state_dir=tmp_path / "runs", wandb_run_id="w", pinned=None,
                          pretrained_path="", cluster_address="", code=code)
    copy = tmp_path / "runs" / "s" / "attempt-1" / "code"
    assert f"cd -- {copy / 'sub'} ||" in launch.script
    assert str(copy / "sub" / "sweep.yaml") in launch.script
    assert str(repo / "sub" / "sweep.yaml") not in launch.script

    outside = tmp_path / "shared" / "base.yaml"   # named by the command, from outside
    outside.parent.mkdir()
    outside.write_text("lr: 1\n")
    kept, left = repo / "sub" / "kept.yaml", tmp_path / "shared" / "secret.yaml"
    kept.write_text("a: 1\n")
    left.write_text("token: x\n")
    spec = JobSpec("c", 2, command=f"python train.py --config {outside} --cfg={kept} "
                   f"-c ../sub/kept.yaml --config {left}")
    code = FrozenCode(tmp_path / "snaps", "abc", str(repo), outside=(str(outside),))
    launch = build_launch(spec, Config(), queue="q", attempt=1, base_dir=repo / "sub",
                          state_dir=tmp_path / "runs", wandb_run_id="w", pinned=None,
                          pretrained_path="", cluster_address="", code=code)
    copy = tmp_path / "runs" / "c" / "attempt-1" / "code"
    frozen = copy / ".orchestrator-outside" / outside.relative_to("/")
    assert f"--config {frozen} --cfg={copy / 'sub' / 'kept.yaml'} -c ../sub/kept.yaml " \
        f"--config {left}" in launch.script, "absolute and outside names point at the copy; " \
        "a relative one inside already does; one the snapshot left out stays live"


@pytest.mark.parametrize("mode", ["run", "record"])
def test_a_kind_judges_a_row_by_the_metric_of_the_config_it_runs(repo, mode):
    """A sweep file's metric edited while its row waits: under run the row runs the file
    as queued, so the runner ranks it by the queued metric; under record, by the new; and
    the report, read after the file changed again, names the metric the row ran with."""
    sweep = "program: train.py\nmethod: grid\nmetric: {name: acc, goal: maximize}\n" \
            "parameters: {lr: {values: [1]}}\n"
    (repo / "sweep.yaml").write_text(sweep)
    q = write_csv(repo / "queue.csv", [*HEADER, "Kind", "Config"], [
        [*job("first"), "", ""], [*job("sw", parent="first", command=" "), "sweep",
                                  "sweep.yaml"]])
    pool = FakePool(outcomes={"first": [HOLD]})
    r = Run(q, pool, snapshot_mode=mode).start()
    wait_for(lambda: read_rows(q)["first"]["TrainingCheck"] == "Training", what="Training")
    (repo / "sweep.yaml").write_text(sweep.replace("{name: acc, goal: maximize}",
                                                   "{name: loss, goal: minimize}"))
    pool.finish("first")
    assert r.join() == 0, read_rows(q)
    [launch] = [launch for launch, _ in pool.launches if launch.job_id == "sw"]
    assert (launch.metric, launch.metric_goal) == \
        (("acc", "max") if mode == "run" else ("loss", "min"))
    r.record.close()
    (repo / "sweep.yaml").write_text(sweep.replace("acc", "f1"))   # saved after it ran
    from orchestrator.views.report import _load_runs

    [shown] = [run.metric for run in _load_runs(q, r.paths.registry, r.paths.name)
               if run.row.id == "sw"]
    assert shown == launch.metric, "the report names the metric of the config it ran"


def test_under_mode_run_a_relative_path_out_of_the_tree_is_said(repo, caplog):
    """From the frozen copy, ../datasets leads into the state dir, not beside the repo:
    the user is told to write it whole (a config named that way is copied, so not said)."""
    (repo.parent / "datasets").mkdir()
    (repo.parent / "shared.yaml").write_text("lr: 1\n")
    q = write_csv(repo / "queue.csv", HEADER, [job("a", command="python train.py "
                                                    "--data=../datasets --config ../shared.yaml")])
    with caplog.at_level("WARNING"):
        run(q, FakePool(), snapshot_mode="run").record.close()
    said = [m for m in caplog.messages if "does not lead to" in m]
    assert said == [f"a: under [snapshot] mode = run it runs in a copy of {repo}, where "
                    f"../datasets does not lead to {repo.parent / 'datasets'}: write that path "
                    "as an absolute one"]


def test_under_mode_run_a_package_imported_from_src_comes_from_the_copy(repo, tmp_path,
                                                                       monkeypatch):
    """A src layout installed with `pip install -e .` (or PYTHONPATH=src) imports the live
    tree from anywhere: the job puts the copy's src first, so an edit saved after
    queueing does not reach it. The job's script runs here as its runner would run it."""
    import os
    import subprocess
    import sys

    (repo / "src" / "mypkg").mkdir(parents=True)
    (repo / "src" / "mypkg" / "__init__.py").write_text("V = 'queued'\n")
    (repo / "use.py").write_text("import sys, mypkg\nopen(sys.argv[1], 'w').write(mypkg.V)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a package")
    monkeypatch.syspath_prepend(str(repo / "src"))   # as the editable install puts it
    out = tmp_path / "out.txt"
    q = write_csv(repo / "queue.csv", HEADER, [job("a", command=f"{sys.executable} use.py "
                                                    f"{out}")])
    pool = FakePool()
    run(q, pool, snapshot_mode="run").record.close()
    [(launch, _)] = pool.launches
    (repo / "src" / "mypkg" / "__init__.py").write_text("V = 'edited after queueing'\n")
    subprocess.run(["bash", "-c", launch.script], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(repo / "src"), **dict(launch.env)})
    assert out.read_text() == "queued"


def test_orchestrator_diff_on_the_command_line(repo, capsys):
    q = write_csv(repo / "queue.csv", HEADER, [job("a"), job("b")])
    r = run(q, FakePool())
    r.record.close()
    assert main(["diff", str(q), "a", "b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same_code"] and not out["same_command"]
    assert out["a"]["commit"] == git(repo, "rev-parse", "HEAD") and out["a"]["dirty"] is False
    assert main(["diff", str(q), "a:x", "b"]) == 2
    assert "write a row ID, or ID:N" in capsys.readouterr().err
    assert main(["diff", str(q), "a:7", "b"]) == 2
    assert "a has no attempt 7" in capsys.readouterr().err


def test_diff_with_one_row_shows_what_changed_in_the_folder_since_it_ran(repo, capsys):
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    run(q, FakePool()).record.close()
    assert main(["diff", str(q), "a"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("a: a (attempt 1): ran the live folder as queued") and \
        "b: the folder now: snapshot" in out and "code: the same" in out
    assert "command" not in out, "the folder has no command to compare"
    (repo / "train.py").write_text("print('fixed since')\n")
    (repo / "notes.py").write_text("# new\n")
    objects = git(repo, "count-objects")
    assert main(["diff", str(q), ".", "a", "--stat"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("a: the folder now: snapshot") and "commit" in out
    assert "train.py" in out and "notes.py" in out and "queue.csv" not in out
    assert git(repo, "count-objects") == objects, "it never writes the user's repository"


def test_a_finished_row_run_again_joins_with_the_code_of_then(repo):
    q = write_csv(repo / "queue.csv", HEADER, [job("long"), job("quick")])
    pool = FakePool(outcomes={"long": [HOLD]})
    r = Run(q, pool).start()
    wait_for(lambda: read_rows(q)["quick"]["TrainingCheck"] == "Done", what="quick Done")
    (repo / "train.py").write_text("print('fixed')\n")
    QueueFile(q).update({"quick": {"TrainingCheck": "Rerun"}})
    wait_for(lambda: read_rows(q)["quick"]["Attempts"] == "2" and
             read_rows(q)["quick"]["TrainingCheck"] == "Done", what="quick ran again")
    pool.finish("long")
    assert r.join() == 0
    first, again = snapshot_of(r, "quick", 1), snapshot_of(r, "quick", 2)
    assert not first.dirty and again.dirty and again.id != first.id
    assert snapshot_of(r, "long").id == first.id, "the running row keeps its own"
    code = compare(r.paths, "quick:1", "quick:2")[2]
    assert "+print('fixed')" in code


def test_a_row_cleared_while_no_driver_ran_joins_with_the_code_of_the_next_driver(repo):
    q = write_csv(repo / "queue.csv", HEADER, [job("a"), job("held")])
    QueueFile(q).update({"held": {"TrainingCheck": "Hold"}})
    first = run(q, FakePool())
    assert "held" not in first.record.row_snapshots(first.paths.name), \
        "a held row has not joined the queue"
    first.record.close()
    (repo / "train.py").write_text("print('v2')\n")
    QueueFile(q).update({"a": {"TrainingCheck": ""}})
    second = run(q, FakePool())
    assert not snapshot_of(second, "a", 1).dirty and snapshot_of(second, "a", 2).dirty


def test_the_config_file_never_enters_a_snapshot_even_tracked_and_edited(repo, tmp_path):
    ini = repo / "orch.ini"
    ini.write_text("[notify]\nurls = json://127.0.0.1:9/hook\n")
    git(repo, "add", "orch.ini")
    git(repo, "commit", "-q", "-m", "config")
    ini.write_text("[notify]\nurls = json://127.0.0.1:9/TOKEN-PLANTED-4\n")
    (repo / "train.py").write_text("print('v2')\n")
    q = write_csv(repo / "queue.csv", HEADER, [job("a", command="python train.py -c orch.ini")])
    r = run(q, FakePool(), config_path=ini)
    snap = snapshot_of(r, "a")
    assert snap.dirty and "orch.ini" not in snap.files
    assert any("orch.ini" in s and "own file" in s for s in snap.skipped)
    kept = b"".join(p.read_bytes() for p in (r.paths.state_dir / "snapshots").rglob("*")
                    if p.is_file())
    assert b"TOKEN-PLANTED-4" not in kept and b"print('v2')" in kept


def test_the_report_shows_each_runs_commit_dirty_flag_and_local_changes(repo, tmp_path):
    from orchestrator.views.report import build_report

    q = write_csv(repo / "queue.csv", HEADER, [job("clean")])
    first = run(q, FakePool())
    first.record.close()
    (repo / "train.py").write_text("print('<b>v2</b>')\n")
    with open(q, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(job("edited"))
    r = run(q, FakePool())
    head = git(repo, "rev-parse", "HEAD")[:10]
    page = build_report(q, r.paths.registry, r.paths.name, tmp_path / "r.html").read_text()
    assert f"commit {head}, clean · ran the live folder as queued (snapshot " \
        f"{snapshot_of(r, 'clean').id})" in page
    assert f"commit {head} + local changes · ran the live folder as queued (snapshot " \
        f"{snapshot_of(r, 'edited').id})" in page
    assert "+print(&#39;&lt;b&gt;v2&lt;/b&gt;&#39;)" in page, "the diff, escaped"


def test_rerun_same_code_runs_from_the_attempts_own_snapshot_once(repo, capsys):
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    run(q, FakePool()).record.close()
    (repo / "train.py").write_text("print('v2')\n")
    assert main(["rerun", str(q), "a", "--same-code"]) == 0
    assert "a: runs again from the code of attempt 1" in capsys.readouterr().out
    pool = FakePool()
    second = run(q, pool)
    assert snapshot_of(second, "a", 2).id == snapshot_of(second, "a", 1).id
    [(launch, _)] = pool.launches
    copy = second.paths.state_dir / "a" / "attempt-2" / "code"
    assert f"cd -- {copy} ||" in launch.script, "it runs in the frozen copy, mode record or not"
    assert [x.frozen for x in second.record.attempts(second.paths.name, "a")] == [False, True]
    left, right, code = compare(second.paths, "a:1", "a:2")
    assert code == "" and "a (attempt 2): ran snapshot" in render(left, right, code)
    second.record.close()

    assert main(["rerun", str(q), "a"]) == 0   # a plain rerun: the folder as it is now
    pool = FakePool()
    third = run(q, pool)
    assert snapshot_of(third, "a", 3).dirty and f"cd -- {repo} ||" in pool.launches[0][0].script


def test_a_damaged_or_deleted_snapshot_file_is_said_not_a_traceback(repo):
    q = write_csv(repo / "queue.csv", HEADER, [job("a"), job("b")])
    (repo / "train.py").write_text("print('v2')\n")     # a and b share one dirty snapshot
    r = run(q, FakePool())
    a = snapshot_of(r, "a")
    r.record.close()
    (repo / "train.py").write_text("print('v3')\n")
    with open(q, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(job("c"))
    run(q, FakePool()).record.close()
    c = compare(r.paths, "a", "c")[1].snapshot
    store = SnapshotStore(r.paths.state_dir / "snapshots")
    blob = store.path_of(c.diff)
    blob.rename(blob.with_name("moved"))
    with pytest.raises(OrchestratorError, match="a and c: a file of their snapshots is gone "
                       "from .* their code cannot be compared"):
        compare(r.paths, "a", "c")
    manifest = store.folder / f"{a.id}.json"
    manifest.write_text("{broken")
    with pytest.raises(OrchestratorError, match=f"a: {manifest} is damaged .* cannot be shown"):
        compare(r.paths, "a", "b")


def test_rerun_says_what_it_cannot_do(repo, capsys):
    q = write_csv(repo / "queue.csv", HEADER, [job("a"), job("b")])
    run(q, FakePool()).record.close()
    assert main(["rerun", str(q), "zz"]) == 2
    assert "no row with ID 'zz'" in capsys.readouterr().err
    assert main(["rerun", str(q), "a", "--attempt", "1"]) == 2
    assert "add --same-code" in capsys.readouterr().err
    assert main(["rerun", str(q), "a", "--same-code", "--attempt", "4"]) == 2
    assert "a: no attempt 4 with a code snapshot" in capsys.readouterr().err
    QueueFile(q).update({"b": {"TrainingCheck": "Training"}})
    assert main(["rerun", str(q), "b"]) == 2
    assert "b is running: stop it first" in capsys.readouterr().err
    assert read_rows(q)["a"]["TrainingCheck"] == "Done", "nothing was changed"


def test_under_mode_off_attempts_name_no_snapshot_but_a_same_code_rerun_still_works(
        repo, tmp_path):
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    run(q, FakePool()).record.close()          # recorded under the default mode
    ini = tmp_path / "orch.ini"
    ini.write_text("[snapshot]\nmode = off\n")
    assert main(["rerun", str(q), "a"]) == 0
    run(q, FakePool(), config_path=ini).record.close()
    assert main(["rerun", str(q), "a", "--same-code", "--attempt", "1"]) == 0
    pool = FakePool()
    r = run(q, pool, config_path=ini)
    assert [(x.attempt, bool(x.snapshot), x.frozen) for x in
            r.record.attempts(r.paths.name, "a")] == [(1, True, False), (2, False, None),
                                                     (3, True, True)]
    assert "orchestrator.store.snapshot" in pool.launches[0][0].script


def test_with_a_storage_uri_a_row_to_run_from_its_snapshot_is_published_as_it_joins(
        repo, tmp_path, s3_server):
    """A cluster without a shared filesystem names a storage URI: under mode = run the
    driver copies each row's snapshot there as the row joins, and the job's first line
    fetches it from there on a node that lacks it."""
    storage = s3_server.bucket_uri()
    ini = tmp_path / "orch.ini"
    ini.write_text(f"[general]\nstorage = {storage}\n[snapshot]\nmode = run\n")
    (repo / "train.py").write_text("print('edited, not committed')\n")
    q = write_csv(repo / "queue.csv", HEADER, [job("a")])
    pool = FakePool()
    r = run(q, pool, config_path=ini)
    [(launch, _)] = pool.launches
    snap = snapshot_of(r, "a")
    remote = storage.replace("/runs?", "/runs/snapshots?")
    assert f"{snap.id} " in launch.script and f"'{remote}' ||" in launch.script
    published = s3_server.files(storage)
    assert f"snapshots/{snap.id}.json" in published
    assert f"snapshots/blobs/{snap.diff[:2]}/{snap.diff}" in published
