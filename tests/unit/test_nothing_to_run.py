"""``orchestrator run`` on a queue with nothing to run (every row finished, held or
Invalid) does what a driver does with it — Invalid rows marked, the summary, the exit
code — without starting Ray; anything a driver would start or re-attach needs Ray."""

import os
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.driver.control import nothing_to_run
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths
from orchestrator.store.record import RunRecord
from tests.helpers import read_rows, write_csv

HEADER = ["ID", "TrainingCommand", "TrainingCheck", "PretrainedModelId"]


def sessions() -> list[str]:
    folder = Path(os.environ["RAY_TMPDIR"]) / "ray"
    return sorted(p.name for p in folder.glob("session_*")) if folder.is_dir() else []


def test_a_finished_queue_is_run_without_ray(tmp_path, capsys):
    import ray

    q = write_csv(tmp_path / "q.csv", HEADER, [
        ["a", "true", "Done", ""], ["b", "true", "Hold", ""], ["c", "", "", ""],
        ["d", "true", "Crash", ""], ["e", "true", "", "b"]])   # e waits on a held row
    before, joined = sessions(), ray.is_initialized()   # (the suite's own Ray may be up)
    code = main(["run", str(q), "--no_ui"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1   # c is Invalid
    assert "so Ray was not started" in out and "Done 1" in out
    assert ray.is_initialized() == joined and sessions() == before, "it started a Ray"
    rows = read_rows(q)
    assert rows["c"]["TrainingCheck"] == "Invalid" and "command is empty" in rows["c"]["Error"]
    assert [rows[i]["TrainingCheck"] for i in "abde"] == ["Done", "Hold", "Crash", ""]


def test_a_header_only_queue_is_run_without_ray(tmp_path, capsys):
    q = write_csv(tmp_path / "q.csv", HEADER, [])
    assert main(["run", str(q), "--no_ui"]) == 0
    assert "so Ray was not started" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("rows, why", [
    ([["a", "true", "", ""]], "a pending row"),
    ([["a", "true", "Done", ""], ["b", "true", "", "a"]], "a child of a Done row"),
    ([["a", "true", "Rerun", ""]], "a Rerun"),
    ([["a", "true", "Training", ""]], "a row a driver ran"),
])
def test_what_a_driver_would_start_or_reattach_needs_ray(tmp_path, rows, why):
    q = write_csv(tmp_path / "q.csv", HEADER, rows)
    config = load_config(None)
    assert not nothing_to_run(queue_paths(q, config), config), why


def test_an_attempt_still_open_in_the_record_needs_ray(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, [["a", "true", "Done", ""]])
    config = load_config(None)
    paths = queue_paths(q, config)
    assert nothing_to_run(paths, config)
    record = RunRecord(paths.registry)
    record.begin_attempt(paths.name, "a", 2, command="true")   # a driver died mid-attempt
    record.close()
    assert not nothing_to_run(paths, config)
    assert not nothing_to_run(paths, load_config(None, watch=True))
