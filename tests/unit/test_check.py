"""`orchestrator check`: each row's verdict as the driver would decide it, without Ray."""

import json

from orchestrator.cli import main
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.registry import ModelRegistry
from orchestrator.views.check import check_rows
from tests.helpers import write_csv

HEADER = ["ID", "Name", "TrainingCommand", "GPUs", "PretrainedModelId", "TrainingCheck"]
ROWS = [
    ["a", "x", "true", "abc", "", ""],
    ["b", "y", "true", "0.5", "a", ""],
    ["c", "z", "true", "0.5", "ghost", ""],
    ["d", "w", "true", "0", "", "Hodl"],
    ["e", "v", "true", "0", "", "Done"],
    ["f", "u", "true", "0", "f2", ""],
    ["f2", "u", "true", "0", "f", ""],
    ["g", "t", "true", "0", "e", ""],
    ["h", "s", "true", "0", "", "Crash"],
    ["i", "r", "true", "0", "h", ""],
    ["j", "q", "true", "0", "base:1", "Hold"],
    ["k", "p", "true", "0", "", "Invalid"],
]


def test_every_row_gets_the_drivers_first_verdict(tmp_path):
    q = write_csv(tmp_path / "q.csv", HEADER, ROWS)
    registry = ModelRegistry(tmp_path / "registry.db")
    registry.register_model("base", "t", file_path=str(tmp_path / "w.pt"))
    verdicts = {v.id: v for v in check_rows(QueueFile(q).read(), tmp_path, registry.resolve)}
    registry.close()
    bad = {i for i, v in verdicts.items() if not v.ok}
    assert bad == {"a", "c", "d", "f", "f2"}
    assert verdicts["a"].message == ("line 2 (ID=a): GPUs='abc': not a number — use a "
                                     "fraction <= 1 (0.25, 0.5) or a whole number (1, 2, 4)")
    assert "no row has that ID" in verdicts["c"].text and "cycle" in verdicts["f"].text
    assert verdicts["d"].text.startswith("TrainingCheck='Hodl' is not a word")
    assert verdicts["b"].text == "Blocked: its parent a is Invalid — fix a first"
    assert verdicts["i"].text == "Blocked: its parent h ended Crash — fix and rerun it"
    assert verdicts["e"].text.startswith("Done: it does not run again")
    assert verdicts["g"].text == "runs after e is Done, with its weights"
    assert verdicts["j"].text.startswith("held (Hold)")
    assert verdicts["k"].text == "runs", "Invalid is re-decided: the row is fine now"


def test_check_prints_the_verdicts_and_exits_1_when_a_row_is_invalid(tmp_path, capsys):
    q = write_csv(tmp_path / "q.csv", HEADER, ROWS[:2])
    assert main(["check", str(q), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(r["line"], r["id"], r["ok"]) for r in out["rows"]] == [(2, "a", False),
                                                                     (3, "b", True)]
    assert main(["check", str(q)]) == 1
    text = " ".join(capsys.readouterr().out.split())
    assert "Invalid: GPUs='abc'" in text and "1 Blocked; 1 Invalid — fix them, then run" in text
    good = write_csv(tmp_path / "good.csv", HEADER, [ROWS[4], ROWS[7]])
    assert main(["check", str(good)]) == 0


def test_which_rows_would_move_follows_the_drivers_rule(tmp_path):
    """``moves``: a driver would run, wait to run or re-attach the row (what ``run``
    asks before deciding it needs Ray): a child moves only once its parent will be Done."""
    q = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "TrainingCheck",
                                       "PretrainedModelId"], [
        ["done", "true", "Done", ""], ["held", "true", "Hold", ""],
        ["free", "true", "", ""], ["after-done", "true", "", "done"],
        ["after-held", "true", "", "held"], ["after-that", "true", "", "after-held"],
        ["after-free", "true", "", "free"], ["again", "true", "Rerun", ""],
        ["running", "true", "Training", ""], ["crashed", "true", "Crash", ""],
        ["empty", "", "", ""]])
    moves = {v.id: v.moves for v in check_rows(QueueFile(q).read(), tmp_path)}
    assert [i for i, m in moves.items() if m] == [
        "free", "after-done", "after-free", "again", "running"]
