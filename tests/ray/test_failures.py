"""Failure kinds and the user's words on a real local Ray, as a user meets them.

The rules themselves are table-tested in tests/unit/core; these runs show that real
processes are classified the same way: a setup failure, a CUDA out-of-memory message,
a silent job, a time limit; and that Hold, a made-up word and a stale editor save do
what the user meant with a real driver.
"""

import csv
import logging
import os

import psutil
import pytest

from tests.helpers import QueueRun, probe, probe_records, read_rows, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs", "Retries", "TimeLimit",
          "Attempts"]


def row(job_id, command, check="", gpus="0", retries="", time_limit="", attempts=""):
    return [job_id, f"name {job_id}", command, check, gpus, retries, time_limit, attempts]


def attempts(run, job_id):
    return [(a.status, a.failure) for a in run.record().attempts(run.paths.name, job_id)]


def test_conda_missing_is_a_setup_failure_that_is_not_retried(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row("env", probe("env", out), retries="2")])
    run = QueueRun(q, use_conda=True, conda_env="orch-test-no-such-env")
    # no conda on the runner's PATH (or, where conda exists, an env that does not)
    assert run.start().join() == 1
    final = read_rows(q)["env"]
    assert final["TrainingCheck"] == "Crash"
    assert final["Error"].startswith("setup:"), final["Error"]
    assert "use_conda = false" in final["Error"] or "create the env" in final["Error"]
    assert final["Attempts"] == "1"
    assert attempts(run, "env") == [("Crash", "setup")]
    assert probe_records(out) == [], "the command ran although its environment failed"


OOM = ('echo "$CUDA_VISIBLE_DEVICES" >> seen.txt; '
       'n=$(echo "$CUDA_VISIBLE_DEVICES" | tr , "\\n" | grep -c .); '
       '[ "$n" -ge 2 ] && exit 0; '
       'echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" >&2; '
       'exit 1')


def test_cuda_out_of_memory_is_retried_with_more_gpu(tmp_path):
    """0.5 GPU → 1 → 2: the job succeeds once it sees two devices."""
    q = write_csv(tmp_path / "q.csv", HEADER, [row("big", OOM, gpus="0.5", retries="0")])
    run = QueueRun(q, on_oom="more_gpu", allow_multi_gpu=True)
    assert run.start().join() == 0
    final = read_rows(q)["big"]
    assert (final["TrainingCheck"], final["Attempts"]) == ("Done", "3")
    assert final["GPUs"] == "0.5", "the user's GPUs cell was rewritten"
    seen = (tmp_path / "seen.txt").read_text().split()
    assert [len(s.split(",")) for s in seen] == [1, 1, 2]
    assert attempts(run, "big") == [("Crash", "oom"), ("Crash", "oom"), ("Done", "")]


def test_out_of_memory_under_on_oom_fail_ends_the_row_with_the_fix(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [row("big", OOM, gpus="0.5", retries="3")])
    run = QueueRun(q)   # on_oom = fail is the default
    assert run.start().join() == 1
    final = read_rows(q)["big"]
    assert (final["TrainingCheck"], final["Attempts"]) == ("Crash", "1")
    assert final["Error"].startswith("oom:"), final["Error"]
    assert "on_oom" in final["Error"]


def test_a_silent_job_is_killed_as_stalled(tmp_path):
    pid_file = tmp_path / "pid"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("quiet", f"echo $$ > {pid_file}; exec sleep 600", retries="3")])
    run = QueueRun(q, stall_timeout=3, retry_stalled=0)
    assert run.start().join(timeout=60) == 1
    final = read_rows(q)["quiet"]
    assert final["TrainingCheck"] == "Crash"
    assert final["Error"].startswith("stalled:"), final["Error"]
    assert attempts(run, "quiet") == [("Crash", "stalled")], "Retries is the budget for exit only"
    pid = int(pid_file.read_text())
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="sleep 600 to be killed")


def test_a_time_limit_kills_the_job_and_retries_per_policy(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("slow", "echo working; sleep 600", time_limit="2s")])
    run = QueueRun(q, retry_timeout=1)
    assert run.start().join(timeout=60) == 1
    final = read_rows(q)["slow"]
    assert (final["TrainingCheck"], final["Attempts"]) == ("Crash", "2")
    assert final["Error"].startswith("timeout:"), final["Error"]
    assert attempts(run, "slow") == [("Crash", "timeout"), ("Crash", "timeout")]


def test_hold_and_a_made_up_word_and_rows_done_before_the_run(tmp_path):
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [
        row("old", probe("old", out), check="Done", attempts="1"),
        row("wait", probe("wait", out), check="Hold"),
        row("typo", probe("typo", out), check="Trainig"),
        row("go", probe("go", out)),
    ])
    run = QueueRun(q)
    assert run.start().join() == 1   # an Invalid row makes the run fail
    rows = read_rows(q)
    assert rows["wait"]["TrainingCheck"] == "Hold" and rows["wait"]["Attempts"] == ""
    assert rows["typo"]["TrainingCheck"] == "Trainig", "the user's word is not written over"
    assert "'Trainig'" in rows["typo"]["Error"] and "Hold" in rows["typo"]["Error"]
    assert rows["old"]["TrainingCheck"] == rows["go"]["TrainingCheck"] == "Done"
    assert [r["name"] for r in probe_records(out)] == ["go"]
    assert run.metrics.counts["Done"] == 2, "the row Done before the run is not counted"
    assert (run.metrics.counts["Hold"], run.metrics.counts["Invalid"]) == (1, 1)


def test_an_editors_stale_save_reruns_nothing_and_keeps_the_users_edit(tmp_path, caplog):
    """The editor opened the file before the run and saves it after rows finished."""
    out = tmp_path / "out"
    q = write_csv(tmp_path / "q.csv", HEADER, [row(f"r{i}", probe(f"r{i}", out))
                                               for i in range(4)])
    before = list(csv.reader(q.read_text(encoding="utf-8").splitlines()))
    run = QueueRun(q, watch=True).start()
    wait_for(lambda: all(r["TrainingCheck"] == "Done" for r in read_rows(q).values()),
             what="every row Done")
    before[2][HEADER.index("Name")] = "renamed in the editor"
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        with open(q, "w", newline="", encoding="utf-8") as f:   # the editor's save
            csv.writer(f).writerows(before)
        wait_for(lambda: read_rows(q)["r1"]["TrainingCheck"] == "Done"
                 and read_rows(q)["r1"]["Name"] == "renamed in the editor",
                 what="the orchestrator's cells restored with the user's edit kept")
        wait_for(lambda: "older copy" in caplog.text, what="the warning")
    run.scheduler.interrupt()
    assert run.join() == 0
    rows = read_rows(q)
    assert all(r["TrainingCheck"] == "Done" and r["Attempts"] == "1" for r in rows.values())
    assert sorted(r["name"] for r in probe_records(out)) == ["r0", "r1", "r2", "r3"]
    assert caplog.text.count("older copy") == 1
    assert os.path.getsize(q) > 0
