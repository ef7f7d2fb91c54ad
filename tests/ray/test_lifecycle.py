"""Row lifecycle on a real local Ray: chaining, retries, stop, edits, bad rows."""

import csv
import os
from pathlib import Path

import psutil
import pytest
import ray

from orchestrator.driver.control import stop_job
from orchestrator.store.queue_file import QueueFile
from tests.helpers import QueueRun, probe, probe_records, read_rows, run_queue, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "WeightFile", "PretrainedModelId",
          "GPUs", "Retries", "Priority", "Notes"]


def row(job_id, command, parent="", gpus="0", retries="", priority="", notes=""):
    return [job_id, f"name {job_id}", command, "", "", parent, gpus, retries, priority, notes]


def test_chain_passes_parent_weights_and_blocks_on_crash(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("parent", probe("parent", out, "--weights")),
        row("child", probe("child", out), parent="parent"),
        row("bad", probe("bad", out, "--exit", "2")),
        row("orphan", probe("orphan", out), parent="bad"),
        row("loop1", probe("loop1", out), parent="loop2"),
        row("loop2", probe("loop2", out), parent="loop1"),
        row("ghost", probe("ghost", out), parent="nobody"),
    ])
    assert run_queue(q) == 1
    rows = read_rows(q)
    ran = {r["name"]: r for r in probe_records(out)}
    assert rows["parent"]["TrainingCheck"] == "Done"
    assert rows["parent"]["WeightFile"] == "runs/parent/attempt-1/model_best.pt"
    assert ran["child"]["pretrained"] == str(tmp_path / rows["parent"]["WeightFile"])
    assert ran["child"]["start"] >= ran["parent"]["end"]
    assert rows["bad"]["TrainingCheck"] == "Crash"
    assert "exit code 2" in rows["bad"]["Error"] and "run.log" in rows["bad"]["Error"]
    assert rows["orphan"]["TrainingCheck"] == "Blocked" and "bad" in rows["orphan"]["Error"]
    assert rows["loop1"]["TrainingCheck"] == rows["loop2"]["TrainingCheck"] == "Invalid"
    assert "cycle" in rows["loop1"]["Error"]
    assert rows["ghost"]["TrainingCheck"] == "Invalid" and "nobody" in rows["ghost"]["Error"]
    assert set(ran) == {"parent", "child", "bad"}


def test_parent_without_weights_is_said_and_child_runs_without_its_cell_rewritten(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("p", probe("p", out)), row("c", probe("c", out), parent="p")])
    run = QueueRun(q).start()
    assert run.join() == 0
    rows = read_rows(q)
    assert rows["c"]["PretrainedModelId"] == "p", "the user's cell is never rewritten"
    assert rows["c"]["TrainingCheck"] == "Done" and "no weight file" in rows["c"]["Error"]
    assert {r["name"]: r for r in probe_records(out)}["c"]["pretrained"] == ""
    [attempt] = run.record().attempts(run.paths.name, "c")
    assert "no weight file" in attempt.error
    from orchestrator.store.registry import ExperimentTracker
    tracker = ExperimentTracker(run.paths.registry)
    [exp] = [e for e in tracker.list_experiments(queue=run.paths.name) if e["job_id"] == "c"]
    tracker.close()
    assert exp["config"]["pretrained_weights_missing"] == "p"


def test_retries_then_done_with_two_attempts_recorded(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("flaky", probe("flaky", out, "--fail-first-attempt"), retries="2")])
    run = QueueRun(q).start()
    assert run.join() == 0
    r = read_rows(q)["flaky"]
    assert (r["TrainingCheck"], r["Attempts"]) == ("Done", "2")
    attempts = run.record().attempts(run.paths.name, "flaky")
    assert [(a.attempt, a.status, a.exit_code) for a in attempts] == [
        (1, "Crash", 3), (2, "Done", 0)]
    assert all(os.path.exists(a.log_path) for a in attempts)


def test_job_environment_and_wandb_run_id_in_row(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("e1", probe("e1", out))])
    assert run_queue(q, wandb_project="proj", env_vars="FOO=bar") == 0
    rec = probe_records(out)[0]
    r = read_rows(q)["e1"]
    env = rec["env"]
    assert env["WANDB_RUN_ID"] == r["WandbRunID"] and len(r["WandbRunID"]) == 8
    assert env["WANDB_PROJECT"] == "proj"
    assert env["ORCH_JOB_ID"] == "e1" and env["ORCH_RUN_DIR"].endswith("e1/attempt-1")
    assert rec["cwd"] == str(tmp_path)  # commands run in the queue file's folder
    assert os.path.exists(tmp_path / r["LogFile"])
    assert "e1 attempt 1" in (tmp_path / r["LogFile"]).read_text()


def test_priority_then_row_order_under_a_cap(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("low", probe("low", out)), row("mid", probe("mid", out), priority="5"),
        row("high", probe("high", out), priority="9"), row("low2", probe("low2", out))])
    assert run_queue(q, max_training_process=1) == 0
    order = [r["name"] for r in sorted(probe_records(out), key=lambda r: r["start"])]
    assert order == ["high", "mid", "low", "low2"]


def test_bad_rows_are_invalid_and_the_rest_run(tmp_path):
    out = tmp_path / "out"
    header = HEADER + ["Kind", "Config"]
    q = write_csv(tmp_path / "q.csv", header, [
        row("good", probe("good", out)) + ["", ""],
        row("g1", probe("g1", out), gpus="abc") + ["", ""],
        row("g2", probe("g2", out), gpus="-1") + ["", ""],
        row("g3", probe("g3", out), gpus="1.5") + ["", ""],
        row("empty", "  ") + ["", ""],
        row("kind", probe("kind", out)) + ["comand", ""],
        row("cfg", probe("cfg", out)) + ["", "missing.yaml"],
        row("dup", probe("dup", out)) + ["", ""],
        row("dup", probe("dup2", out)) + ["", ""],
        row("../escape", probe("escape", out)) + ["", ""],
    ])
    assert run_queue(q) == 1
    rows = {r["ID"] + str(i): r for i, r in enumerate(csv.DictReader(open(q, encoding="utf-8")))}
    by_id = {k[:-1] if k[-1].isdigit() and k[:-1] in ("dup",) else k: v for k, v in rows.items()}
    status = {r["ID"]: r["TrainingCheck"] for r in rows.values()}
    assert status["good"] == "Done"
    for job_id in ("g1", "g2", "g3", "empty", "kind", "cfg", "dup", "../escape"):
        assert status[job_id] == "Invalid", job_id
    errors = {r["ID"]: r["Error"] for r in rows.values()}
    assert "GPUs='abc'" in errors["g1"] and "1.5" in errors["g3"]
    assert "did you mean 'command'" in errors["kind"]
    assert "missing.yaml" in errors["cfg"]
    assert "lines" in errors["dup"]
    assert [r["name"] for r in probe_records(out)] == ["good"]
    assert not (tmp_path / "escape").exists()   # an ID cannot name a folder outside runs/
    del by_id


def test_stop_a_running_job_from_another_handle(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("blk", probe("blk", out, "--block"))])
    run = QueueRun(q, stop_grace=2).start()
    pid = wait_for(lambda: (probe_records(out) or [{}])[0].get("pid"), what="the job's pid")
    assert psutil.pid_exists(pid)
    attempt = wait_for(lambda: run.record().latest(run.paths.name, "blk"), what="the attempt")
    assert stop_job("blk", attempt.runner, "orchestrator")
    assert run.join() == 1
    assert read_rows(q)["blk"]["TrainingCheck"] == "Stopped"
    wait_for(lambda: not psutil.pid_exists(pid), timeout=5, what="the job process to end")


def test_user_edits_while_running_are_kept_and_new_rows_run(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("first", probe("first", out, "--sleep", "3"))])
    run = QueueRun(q).start()
    wait_for(lambda: read_rows(q)["first"]["TrainingCheck"] == "Training", what="Training")
    text = q.read_text(encoding="utf-8").replace(",Notes,", ",Notes,", 1)
    lines = text.splitlines()
    lines[1] = lines[1].replace(",,", ",,", 1)
    # the user edits a cell they own and appends a row, saving in place
    rows = list(csv.reader(lines))
    rows[1][HEADER.index("Notes")] = "edited while running"
    rows.append(row("second", probe("second", out)) + [""] * (len(rows[0]) - len(HEADER)))
    with open(q, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    assert run.join() == 0
    final = read_rows(q)
    assert final["first"]["Notes"] == "edited while running"
    assert final["first"]["TrainingCheck"] == final["second"]["TrainingCheck"] == "Done"


def test_clearing_trainingcheck_runs_a_row_again(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER,
                  [row("a", probe("a", out)), row("b", probe("b", out))])
    assert run_queue(q) == 0
    QueueFile(q).update({"a": {"TrainingCheck": ""}})
    assert run_queue(q) == 0
    assert sorted((r["name"], r["attempt"]) for r in probe_records(out)) == [
        ("a", 1), ("a", 2), ("b", 1)]
    assert read_rows(q)["a"]["Attempts"] == "2"


def test_driver_restart_reattaches_to_a_live_job(tmp_path):
    """A second driver finds the running job through the run record and waits for it."""
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("long", probe("long", out, "--sleep", "4"))])
    first = QueueRun(q).start()
    wait_for(lambda: read_rows(q)["long"]["TrainingCheck"] == "Training", what="Training")
    # the first driver goes away without cleaning up (its runner is detached)
    first.scheduler.interrupt(stop_jobs=False)
    first.join()
    assert read_rows(q)["long"]["TrainingCheck"] == "Training"
    second = QueueRun(q).start()
    assert second.join() == 0
    assert read_rows(q)["long"]["TrainingCheck"] == "Done"
    assert [r["attempt"] for r in probe_records(out)] == [1], "the job ran twice"
    assert [a.status for a in second.record().attempts(second.paths.name, "long")] == ["Done"]


def test_attempt_that_finished_while_no_driver_watched_is_not_run_again(tmp_path):
    """The driver and the runner are gone, but the job finished: take its result."""
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("solo", probe("solo", out, "--sleep", "1.5", "--weights"))])
    first = QueueRun(q).start()
    wait_for(lambda: read_rows(q)["solo"]["TrainingCheck"] == "Training", what="Training")
    first.scheduler.interrupt(stop_jobs=False)   # the driver leaves, its runner keeps the job
    first.join()
    wait_for(lambda: "end" in probe_records(out)[0], what="the job to finish")
    runner = first.record().latest(first.paths.name, "solo").runner
    wait_for(lambda: (Path(first.record().latest(first.paths.name, "solo").log_path).parent
                      / "exit_code").exists(), what="the exit code on disk")
    ray.kill(ray.get_actor(runner, namespace="orchestrator"))   # the cluster "lost" it
    second = QueueRun(q).start()
    assert second.join() == 0
    final = read_rows(q)["solo"]
    assert (final["TrainingCheck"], final["Attempts"]) == ("Done", "1")
    assert final["WeightFile"].endswith("model_best.pt")
    assert len(probe_records(out)) == 1


def test_runner_killed_requeues_without_spending_a_retry(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("vict", probe("vict", out, "--sleep", "4"))])
    run = QueueRun(q).start()
    record = wait_for(lambda: run.paths.registry.exists() and run.record())

    def training():
        latest = record.latest(run.paths.name, "vict")
        return latest if latest and latest.status == "Training" else None
    attempt = wait_for(training, what="attempt 1 training")
    ray.kill(ray.get_actor(attempt.runner, namespace="orchestrator"))
    assert run.join() == 0
    final = read_rows(q)["vict"]
    assert (final["TrainingCheck"], final["Attempts"]) == ("Done", "2")
    outcomes = [(a.status, a.failure) for a in run.record().attempts(run.paths.name,
                                                                           "vict")]
    assert outcomes == [("Crash", "lost"), ("Done", "")]
    assert final["Error"] == "", "the lost attempt's message went with the retry that worked"


def test_no_auto_continue_runs_what_fits_at_start_then_exits(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row(f"n{i}", probe(f"n{i}", out)) for i in range(4)])
    assert run_queue(q, auto_continue=False, max_training_process=2) == 0
    assert [r["TrainingCheck"] for r in read_rows(q).values()] == ["Done", "Done", "", ""]


def test_watch_keeps_waiting_for_new_rows(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("w1", probe("w1", out))])
    run = QueueRun(q, watch=True).start()
    wait_for(lambda: read_rows(q)["w1"]["TrainingCheck"] == "Done", what="w1 Done")
    with open(q, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(row("w2", probe("w2", out)))
    wait_for(lambda: read_rows(q).get("w2", {}).get("TrainingCheck") == "Done", what="w2 Done")
    assert run._thread.is_alive(), "--watch must not exit when the queue is empty"
    run.scheduler.interrupt()
    assert run.join() == 0
