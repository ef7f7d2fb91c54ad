"""The driver's whole loop on a fake runner pool: no Ray, a real CSV and a real SQLite
record. What Ray itself must do (runners, GPUs, lost nodes) is in tests/ray."""

from __future__ import annotations

import csv
import json
import threading

import pytest

from orchestrator.core import RowStatus
from orchestrator.driver import requests
from orchestrator.driver.loop import Scheduler
from orchestrator.infra.errors import StateUnwritable
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import RunRecord
from tests.fake_pool import HOLD, FakePool
from tests.helpers import read_rows, wait_for, write_csv

HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "PretrainedModelId", "GPUs",
          "Retries", "OnOOM", "Notes"]
CUDA_OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def row(job_id, check="", parent="", gpus="0.5", retries="", on_oom="", notes=""):
    return [job_id, f"name {job_id}", f"python train.py --id {job_id}", check, parent, gpus,
            retries, on_oom, notes]


class Run:
    """A driver on ``pool`` in a thread, with every status change it told observers."""

    def __init__(self, csv_path, pool, config_path=None, local_ray=True, **settings):
        settings.setdefault("retry_backoff", 0.0)
        self.config = load_config(config_path, **settings)
        self.paths = queue_paths(csv_path, self.config)
        self.record = RunRecord(self.paths.registry)
        self.changes = []
        self.pool = pool
        self.loop = Scheduler(QueueFile(csv_path), self.config, self.paths.state_dir,
                              self.record, queue_name=self.paths.name, local_ray=local_ray,
                              observers=(self.changes.append,), pool=pool)
        self.code, self.error = None, None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.code = self.loop.run()
        except Exception as e:  # noqa: BLE001 - the test looks at it
            self.error = e

    def start(self):
        self.thread.start()
        return self

    def join(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the loop did not finish"
        return self.code

    def attempts(self, job_id):
        return [(a.attempt, a.status, a.failure)
                for a in self.record.attempts(self.paths.name, job_id)]


def run(csv_path, pool, **settings) -> Run:
    r = Run(csv_path, pool, **settings).start()
    r.join()
    return r


def test_a_chain_with_a_retry_runs_in_order_and_records_every_attempt(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a", retries="1"), row("b", parent="a"),
                                               row("c", parent="gone")])
    pool = FakePool(outcomes={"a": [{"exit_code": 3, "log_tail": "boom"}, 0]})
    r = run(q, pool)
    rows = read_rows(q)
    assert r.code == 1    # c is Invalid
    assert (rows["a"]["TrainingCheck"], rows["a"]["Attempts"]) == ("Done", "2")
    assert rows["b"]["TrainingCheck"] == "Done"
    assert rows["c"]["TrainingCheck"] == "Invalid" and rows["c"]["Error"].startswith(
        "invalid: PretrainedModelId='gone'")
    assert r.attempts("a") == [(1, "Crash", "exit"), (2, "Done", "")]
    assert [launch.job_id for launch, _ in pool.launches] == ["a", "a", "b"]


def test_a_row_bigger_than_the_cluster_is_invalid_naming_file_line_cell_and_fix(
        tmp_path, caplog):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("ok"), row("huge", gpus="1e9"),
                                               row("wide", gpus="3")])
    pool = FakePool(gpus=2)
    with caplog.at_level("ERROR"):
        r = run(q, pool, allow_multi_gpu=True)
    rows = read_rows(q)
    assert rows["ok"]["TrainingCheck"] == "Done"
    assert rows["huge"]["TrainingCheck"] == rows["wide"]["TrainingCheck"] == "Invalid"
    assert rows["huge"]["Error"] == ("invalid: GPUs='1e+09': needs 1e+09 GPU but the cluster "
                                     "has 2 GPU — lower it, or start with --num-gpus N / "
                                     "--num-cpus N")
    assert "{" not in rows["wide"]["Error"] and "needs 3 GPU" in rows["wide"]["Error"]
    said = [m for m in caplog.messages if "needs 1e+09 GPU" in m]
    assert said and said[0].startswith(f"{q} line 3 (ID=huge): GPUs='1e+09'")
    assert [launch.job_id for launch, _ in pool.launches] == ["ok"] and r.code == 1


def test_hold_never_starts_and_a_made_up_word_is_invalid(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("h", check="Hold"), row("w", check="Hodl"),
                                               row("k", parent="h"), row("ok")])
    pool = FakePool()
    r = run(q, pool)
    rows = read_rows(q)
    assert rows["h"]["TrainingCheck"] == "Hold", "kept as written"
    assert rows["w"]["TrainingCheck"] == "Hodl", "the user's word is not written over"
    assert rows["w"]["Error"].startswith("invalid: TrainingCheck='Hodl'")
    assert "Rerun" in rows["w"]["Error"]
    assert [c.new for c in r.changes if c.job_id == "w"][-1] is RowStatus.INVALID
    assert rows["k"]["TrainingCheck"] == "", "it waits for its held parent"
    assert rows["ok"]["TrainingCheck"] == "Done"
    assert [launch.job_id for launch, _ in pool.launches] == ["ok"]
    assert r.code == 1
    again = FakePool()
    assert run(q, again).code == 1 and not again.launches, "a second driver reads it again"


def test_a_stale_save_reruns_nothing_and_keeps_the_users_edit(tmp_path):
    ids = [f"r{i}" for i in range(8)]
    q = write_csv(tmp_path / "q.csv", HEADER, [row(i) for i in ids] + [row("last")])
    editor_copy = q.read_bytes()          # the editor opened the file before the run
    pool = FakePool(outcomes={"last": [HOLD]})
    r = Run(q, pool, max_training_process=9).start()
    wait_for(lambda: all(read_rows(q)[i]["TrainingCheck"] == "Done" for i in ids),
             what="eight rows Done")
    lines = editor_copy.decode().splitlines()
    cells = list(csv.reader(lines))
    cells[1][1] = "renamed by hand"       # the one edit the user made
    with open(q, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(cells)
    wait_for(lambda: read_rows(q)["r0"]["TrainingCheck"] == "Done", what="r0 restored")
    pool.finish("last")
    assert r.join() == 0
    rows = read_rows(q)
    assert all(rows[i]["TrainingCheck"] == "Done" and rows[i]["Attempts"] == "1" for i in ids)
    assert rows["r0"]["Name"] == "renamed by hand"
    assert [launch.job_id for launch, _ in pool.launches].count("r0") == 1, "nothing ran twice"
    assert len(pool.launches) == 9


def test_a_stale_save_made_while_no_driver_ran_reruns_nothing(tmp_path, caplog):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a"), row("b"), row("c", parent="a")])
    editor_copy = list(csv.reader(q.read_text().splitlines()))   # opened before the run
    run(q, FakePool())
    done = read_rows(q)
    editor_copy[2][1] = "renamed by hand"                        # b's Name
    editor_copy.append(row("d"))                                 # and a new row
    with open(q, "w", newline="", encoding="utf-8") as f:        # saved after the driver quit
        csv.writer(f).writerows(editor_copy)
    pool = FakePool()
    with caplog.at_level("WARNING"):
        assert run(q, pool).code == 0
    assert [launch.job_id for launch, _ in pool.launches] == ["d"], "only the new row runs"
    rows = read_rows(q)
    for job_id in "abc":
        assert {c: rows[job_id][c] for c in ("TrainingCheck", "Attempts", "WandbRunID",
                                             "Started", "Ended")} == \
               {c: done[job_id][c] for c in ("TrainingCheck", "Attempts", "WandbRunID",
                                             "Started", "Ended")}
    assert rows["b"]["Name"] == "renamed by hand"
    stale = [r.getMessage() for r in caplog.records if "older copy" in r.getMessage()]
    assert len(stale) == 1 and "a, b, c" in stale[0], "one warning names the rows"


def test_clearing_trainingcheck_alone_runs_a_row_again(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a"), row("b")])
    run(q, FakePool())
    QueueFile(q).update({"a": {"TrainingCheck": ""}})
    pool = FakePool()
    run(q, pool)
    assert [launch.job_id for launch, _ in pool.launches] == ["a"]
    assert read_rows(q)["a"]["Attempts"] == "2"


def test_a_setup_failure_makes_one_attempt_whatever_the_retries(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("s", retries="2")])
    tail = ("[orchestrator] use_conda = true but conda is not on this node's PATH: install "
            "conda, add it to PATH in setup_script, or set use_conda = false")
    pool = FakePool(outcomes={"s": [{"exit_code": 98, "log_tail": tail}]})
    r = run(q, pool)
    final = read_rows(q)["s"]
    assert final["TrainingCheck"] == "Crash" and final["Attempts"] == "1"
    assert final["Error"].startswith("setup: ") and "set use_conda = false" in final["Error"]
    assert r.attempts("s") == [(1, "Crash", "setup")]


def test_an_oom_under_more_gpu_retries_with_twice_the_gpus(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("o", gpus="0.5", on_oom="more_gpu")])
    pool = FakePool(gpus=4, outcomes={"o": [{"exit_code": 1, "log_tail": CUDA_OOM}] * 3 + [0]})
    r = run(q, pool)
    assert [shape.gpus for _, shape in pool.launches] == [0.5, 1.0, 2.0, 4.0]
    assert read_rows(q)["o"]["TrainingCheck"] == "Done"
    assert [a[2] for a in r.attempts("o")] == ["oom", "oom", "oom", ""]


def test_an_oom_under_halve_batch_tells_the_next_attempt_to_halve_its_batch(tmp_path):
    (tmp_path / "d.yaml").write_text("entry: m:T\nbuild: m:b\nparams: {batch_size: 32}\n")
    q = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "Kind", "Config", "GPUs",
                                       "OnOOM"],
                  [["d", "", "ddp", "d.yaml", "1", "halve_batch"]])
    pool = FakePool(gpus=4, outcomes={"d": [{"exit_code": 1, "log_tail": CUDA_OOM}] * 2 + [0]})
    run(q, pool)
    assert [dict(launch.env).get("ORCH_BATCH_DIVISOR") for launch, _ in pool.launches] == \
        [None, "2", "4"]
    assert len({shape for _, shape in pool.launches}) == 1, "the resources stay as asked"
    assert read_rows(q)["d"]["TrainingCheck"] == "Done"


def test_an_oom_without_a_policy_crashes_and_says_how(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("o", retries="3")])
    pool = FakePool(outcomes={"o": [{"exit_code": 1, "log_tail": CUDA_OOM}]})
    run(q, pool)
    final = read_rows(q)["o"]
    assert final["TrainingCheck"] == "Crash" and final["Error"].startswith("oom: ")
    assert "more_gpu" in final["Error"] and len(pool.launches) == 1


def test_a_stalled_attempt_is_retried_per_its_budget(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("st")])
    stalled = {"exit_code": 143, "killed_for": "stalled", "kill_note": "no log output and no "
               "metric for 5s (stall_timeout)"}
    pool = FakePool(outcomes={"st": [stalled]})
    r = run(q, pool, stall_timeout=5)
    assert pool.launches[0][0].stall_timeout == 5, "the runner enforces it"
    final = read_rows(q)["st"]
    assert final["TrainingCheck"] == "Crash" and final["Error"].startswith("stalled: killed:")
    assert r.attempts("st") == [(1, "Crash", "stalled"), (2, "Crash", "stalled")]


def test_rows_done_at_start_are_told_to_observers(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("d", check="Done"), row("n")])
    r = run(q, FakePool())
    first_seen = {c.job_id: c.new for c in r.changes if c.old is None}
    assert first_seen == {"d": RowStatus.DONE, "n": RowStatus.PENDING}


def test_orchestrator_stop_asks_the_running_driver(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("long"), row("later", parent="long")])
    pool = FakePool(outcomes={"long": [HOLD]})
    r = Run(q, pool).start()
    wait_for(lambda: read_rows(q)["long"]["TrainingCheck"] == "Training", what="Training")
    answer = requests.ask(r.paths, ["long", "later"], timeout=10)
    assert answer == {"long": "stopping (SIGTERM, then SIGKILL after the grace period)",
                      "later": "Stopped (had not started)"}
    assert r.join() == 1
    rows = read_rows(q)
    assert rows["long"]["TrainingCheck"] == "Stopped"
    assert rows["long"]["Error"] == "stopped: stopped on request"
    assert rows["later"]["TrainingCheck"] == "Stopped"
    assert not list(r.paths.requests.iterdir()), "the request and its answer are gone"


def test_a_run_record_that_refuses_writes_stops_the_driver_and_no_row_pays(tmp_path):
    """A full or read-only disk under the state dir (here: SQLite's own read-only mode on
    the driver's connection, what a read-only mount gives). It used to end in a
    traceback, or mark the row being handled Crash. Now the driver says what it cannot
    write and stops writing; the rows keep their status; the next driver runs what was
    running again without spending a retry, and nothing runs twice."""
    q = write_csv(tmp_path / "q.csv", HEADER,
                  [row("a", retries="0"), row("b", retries="0"), row("c"), row("d")])
    pool = FakePool(outcomes={"a": [HOLD, 0], "b": [HOLD, 0]})
    r = Run(q, pool, max_training_process=2).start()
    wait_for(lambda: read_rows(q)["b"]["TrainingCheck"] == "Training", what="a, b Training")
    r.record._db.execute("PRAGMA query_only = ON")
    pool.finish("a")
    r.join()
    assert r.code is None and isinstance(r.error, StateUnwritable)
    message = str(r.error)
    assert str(r.paths.registry) in message and "readonly" in message
    assert "free space on that disk or make it writable" in message
    rows = read_rows(q)
    assert [rows[i]["TrainingCheck"] for i in "abcd"] == ["Training", "Training", "", ""]
    assert not any(rows[i]["Error"] for i in "abcd"), "no row was blamed"

    again = FakePool()
    r2 = run(q, again)
    assert r2.code == 0 and r2.error is None
    rows = read_rows(q)
    assert [rows[i]["TrainingCheck"] for i in "abcd"] == ["Done"] * 4
    assert r2.attempts("a") == [(1, "Crash", "lost"), (2, "Done", "")], \
        "lost while no driver ran: run again though Retries = 0"
    assert sorted(launch.job_id for launch, _ in again.launches) == ["a", "b", "c", "d"]


def test_a_runner_whose_end_the_disk_refused_runs_again_once_the_disk_takes_writes(
        tmp_path):
    """The disk under the state dir filled up: the runner could not write the attempt's
    end (it says so in ``unwritable``). That is not the job's failure; by the time the
    driver hears of it the folder takes writes again (the end was held by a runner while
    no driver ran), so the attempt is lost and runs again without spending a retry.
    (While the disk still refuses, the driver stops: tests/e2e/test_faults.py fills a
    real disk.)"""
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a", retries="0"), row("b")])
    full = {"exit_code": None, "error": "the job supervisor failed to start (status 1)",
            "unwritable": f"{tmp_path}/runs/a/attempt-1: No space left on device"}
    pool = FakePool(outcomes={"a": [full, 0]})
    r = run(q, pool, max_training_process=1)
    assert r.error is None and r.code == 0
    rows = read_rows(q)
    assert rows["a"]["TrainingCheck"] == "Done" and rows["a"]["Attempts"] == "2"
    first = r.record.attempts(r.paths.name, "a")[0]
    assert first.failure == "lost", "not counted as its failure"
    assert "the disk takes writes again" in first.error


def test_the_driver_writes_only_its_own_columns(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a", notes="mine, = keep")])
    before = {k: v for k, v in read_rows(q)["a"].items()}
    run(q, FakePool())
    after = read_rows(q)["a"]
    for column in ("ID", "Name", "TrainingCommand", "GPUs", "Notes", "PretrainedModelId"):
        assert after[column] == before[column]
    with pytest.raises(ValueError, match="Notes"):
        Scheduler(QueueFile(q), load_config(None), tmp_path / "runs",
                  RunRecord(tmp_path / "runs" / "registry.db"), queue_name="q",
                  local_ray=True, pool=FakePool()).queue.update({"a": {"Notes": "x"}})


def test_the_driver_says_why_each_pending_row_waits(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a"), row("b", parent="a"),
                                               row("c", gpus="4"), row("h", check="Hold")])
    pool = FakePool(gpus=4, outcomes={"a": [HOLD]})
    r = Run(q, pool).start()
    waiting = r.paths.waiting
    expected = {"b": "waits for its parent a (Training)", "c": "waits for 4 GPU to free up"}
    wait_for(lambda: waiting.exists() and json.loads(waiting.read_text()) == expected,
             what=f"{expected} in {waiting}")
    pool.finish("a")
    r.join()
    assert not waiting.exists(), "a driver that ended leaves no stale reasons"


def test_a_driver_killed_after_recording_an_end_but_before_the_csv_never_reruns(tmp_path):
    """kill -9 between the run record's write (an attempt Done) and the CSV's: the file
    still says Training. The next driver takes the record's word, and runs nothing."""
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a"), row("b"), row("c", retries="0")])
    first = run(q, FakePool(outcomes={"c": [{"exit_code": 3, "log_tail": "boom"}]}))
    assert {i: read_rows(q)[i]["TrainingCheck"] for i in "abc"} == \
        {"a": "Done", "b": "Done", "c": "Crash"}
    for job_id in "ab":   # the end's exit code on disk, as a runner leaves it
        (first.paths.state_dir / job_id / "attempt-1").mkdir(parents=True, exist_ok=True)
        (first.paths.state_dir / job_id / "attempt-1" / "exit_code").write_text("0\n")
    QueueFile(q).update({i: {"TrainingCheck": "Training", "Ended": ""} for i in "abc"})
    pool = FakePool()
    assert run(q, pool).code == 1            # c is still the Crash it was
    assert pool.launches == [], "nothing the record says ended runs again"
    rows = read_rows(q)
    assert {i: rows[i]["TrainingCheck"] for i in "abc"} == \
        {"a": "Done", "b": "Done", "c": "Crash"}
    assert rows["c"]["Error"].startswith("exit: ")


def test_a_row_with_more_cells_than_the_header_is_invalid_and_kept(tmp_path, caplog):
    """An unquoted comma in a command (… cfg_64,128) must not run a shorter command."""
    q = tmp_path / "q.csv"
    q.write_text("ID,Name,TrainingCommand,GPUs\nok,fine,python t.py,0.5\n"
                 "bad,comma,python t.py --sizes cfg_64,128,0.5\n", encoding="utf-8")
    pool = FakePool()
    with caplog.at_level("ERROR"):
        assert run(q, pool).code == 1
    assert [launch.job_id for launch, _ in pool.launches] == ["ok"], "only the good row ran"
    rows = read_rows(q)
    assert rows["bad"]["TrainingCheck"] == "Invalid"
    error = rows["bad"]["Error"]
    assert "more cells than the header" in error and "quote the cell" in error
    logged = [r.getMessage() for r in caplog.records if "more cells" in r.getMessage()]
    assert logged and f"{q} line 3" in logged[0] and "bad" in logged[0], logged
    assert "cfg_64,128,0.5" in q.read_text().replace('"', ""), "the user's cells are kept"


def test_a_pinned_gpu_this_machine_lacks_makes_the_row_invalid(tmp_path):
    q = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "GpuID"],
                  [["ok", "python t.py", "1"], ["far", "python t.py", "7"]])
    pool = FakePool(gpus=4)
    r = run(q, pool, enable_gpu_assignment=True, use_process_order=False)
    rows = read_rows(q)
    assert rows["ok"]["TrainingCheck"] == "Done"
    assert rows["far"]["TrainingCheck"] == "Invalid"
    assert rows["far"]["Error"] == ("invalid: GpuID='7': names GPU 7 but this machine has "
                                    "4 GPU — use GPUs it has (numbered from 0)")
    assert [launch.job_id for launch, _ in pool.launches] == ["ok"] and r.code == 1


def test_a_driver_killed_before_the_csv_ever_showed_the_attempt_never_reruns(tmp_path):
    """The CSV is written ~0.5 s behind: an instant job can be launched, run and recorded
    Done before the file ever said Queued. kill -9 then: the file shows the row blank,
    the record an ended attempt 1. The record's word stands; nothing runs twice."""
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a"), row("b"), row("c", retries="0")])
    pristine = q.read_bytes()
    first = run(q, FakePool(outcomes={"c": [{"exit_code": 3, "log_tail": "boom"}]}))
    for job_id in "ab":
        (first.paths.state_dir / job_id / "attempt-1").mkdir(parents=True, exist_ok=True)
        (first.paths.state_dir / job_id / "attempt-1" / "exit_code").write_text("0\n")
    q.write_bytes(pristine)   # the file as it was before any write reached it
    record = RunRecord(first.paths.registry)   # and no write of those rows was recorded
    record._db.execute("DELETE FROM row_cells")
    record.close()
    pool = FakePool()
    assert run(q, pool).code == 1
    assert pool.launches == [], "nothing the record says ended runs again"
    rows = read_rows(q)
    assert {i: (rows[i]["TrainingCheck"], rows[i]["Attempts"]) for i in "abc"} == \
        {"a": ("Done", "1"), "b": ("Done", "1"), "c": ("Crash", "1")}


def test_a_finished_row_the_user_cleared_runs_again(tmp_path):
    """The other side of the rule: clearing TrainingCheck (Attempts kept) is a rerun."""
    q = write_csv(tmp_path / "q.csv", HEADER, [row("a")])
    run(q, FakePool())
    QueueFile(q).update({"a": {"TrainingCheck": ""}})
    pool = FakePool()
    run(q, pool)
    assert [launch.job_id for launch, _ in pool.launches] == ["a"]
    assert read_rows(q)["a"]["Attempts"] == "2"


class TwoNodes(FakePool):
    """A cluster of two nodes with half the resources each."""

    def nodes(self):
        return [{k: v / 2 for k, v in self._totals.items()}] * 2


@pytest.mark.parametrize("cells,settings,pool,forked", [
    (("2", "1"), {}, FakePool(gpus=4, cpus=4), True),         # 2 workers × 1 GPU: one node
    (("2", "0"), {}, FakePool(gpus=0, cpus=4), True),         # CPU workers: gloo
    (("2", "0.5"), {}, FakePool(gpus=4, cpus=4), False),      # NCCL needs a GPU per process
    (("2", "1"), {"fork_workers": False}, FakePool(gpus=4, cpus=4), False),
    (("4", "1"), {}, TwoNodes(gpus=4, cpus=8), False),        # no node holds all four
    (("2", "1"), {}, TwoNodes(gpus=4, cpus=8), True),
])
def test_a_ddp_row_whose_workers_fit_one_node_is_held_whole_by_its_runner(
        tmp_path, cells, settings, pool, forked):
    (tmp_path / "d.yaml").write_text("entry: m:T\nbuild: m:b\nparams: {batch_size: 32}\n")
    workers, gpus = cells
    q = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "Kind", "Config", "GPUs",
                                       "Workers"], [["d", "", "ddp", "d.yaml", gpus, workers]])
    run(q, pool, **settings)
    ((launch, shape),) = pool.launches
    per_worker = f"--workers {workers} --gpus-per-worker {gpus} --cpus-per-worker 1"
    assert per_worker in launch.script, "the job is told each worker's part either way"
    if forked:   # the runner holds every worker's GPUs and CPUs; the job forks them
        assert (shape.gpus, shape.cpus, shape.workers) == (int(workers) * float(gpus),
                                                           int(workers), ())
        assert "--launcher torch" in launch.script
    else:        # Ray Train's workers ask for them; the runner holds nothing
        assert (shape.gpus, shape.cpus) == (0, 0) and shape.workers
        assert "--launcher" not in launch.script
    assert read_rows(q)["d"]["TrainingCheck"] == "Done"
