"""The corpus of hostile input: one folder per case under tests/corpus, each with the
user's ``queue.csv`` (bytes as a spreadsheet or editor left them), maybe a
``manager.ini``, and ``expect.json``: what ``orchestrator check`` says, and what the
driver does with it (on a ``FakePool``: no Ray).

For every case: no traceback reaches the user; a file refused is refused the same way
by ``check`` and ``run``, before anything runs, and never written; otherwise the bad
rows are Invalid with file, line, cell and fix, the rest run, the file stays readable
and every cell of the user's own columns is as the user wrote it.

A case is a folder: add one by writing its three files (see any ``expect.json``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.core import OWNED_COLUMNS, canonical_column
from orchestrator.store.queue_file import QueueFile
from tests.fake_pool import FakePool
from tests.unit.test_loop import Run

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.json").is_file())


def _flat(text: str) -> str:
    return " ".join(text.split())


def _rows(path: Path) -> dict[str, dict[str, str]]:
    """The file's rows by ID (first row of an ID), columns by their canonical names."""
    out: dict[str, dict[str, str]] = {}
    for _, row in QueueFile(path).read().rows():
        job_id = (row.get("ID") or "").strip()
        if job_id and job_id not in out:
            out[job_id] = {canonical_column(k): v for k, v in row.items()}
    return out


def test_the_corpus_covers_every_class_it_claims():
    assert len(CASES) >= 25
    for name in CASES:
        expect = json.loads((CORPUS / name / "expect.json").read_text(encoding="utf-8"))
        assert expect["class"] and "check" in expect and "run" in expect, name


@pytest.mark.parametrize("name", CASES)
def test_hostile_input(name, tmp_path, capsys, caplog):
    case = tmp_path / name
    shutil.copytree(CORPUS / name, case)
    expect = json.loads((case / "expect.json").read_text(encoding="utf-8"))
    queue, ini = case / "queue.csv", case / "manager.ini"
    config_args = ["--config", str(ini)] if ini.exists() else []
    original = queue.read_bytes()

    # ------------------------------------------------ orchestrator check
    code = main(["check", str(queue), "--json", *config_args])
    out, err = capsys.readouterr()
    said = _flat(out + err)
    assert code == expect["check"]["exit"], said
    assert "Traceback" not in said
    for text in expect["check"].get("says", []):
        assert text in said
    if code != 2:
        report = json.loads(out)
        verdicts = {r["id"]: r for r in report["rows"]}
        invalid = expect["check"].get("invalid", {})
        assert {i for i, r in verdicts.items() if not r["ok"] and i} == set(invalid), said
        for job_id, texts in invalid.items():
            for text in texts:
                assert text in verdicts[job_id]["verdict"], verdicts[job_id]
        seen = _flat(" ".join(report["notices"] + [r["verdict"] for r in report["rows"]]))
        for text in expect["check"].get("says_json", []):
            assert text in seen
    assert queue.read_bytes() == original, "check never writes"

    run = expect["run"]
    if run.get("refused"):
        # `run` refuses it the same way, before Ray starts (check shares its preflight)
        assert code == 2
        assert main(["run", str(queue), "--no_ui", *config_args]) == 2
        assert _flat(capsys.readouterr().err) == _flat(err)
        assert queue.read_bytes() == original, "a refused file is never written"
        assert not (case / "runs").exists() or not any((case / "runs").rglob("attempt-*"))
        return

    # ------------------------------------------------ the driver, on a FakePool
    before = _rows(queue)
    pool = FakePool(gpus=run.get("gpus", 4))
    with caplog.at_level(logging.INFO):
        driver = Run(queue, pool, config_path=ini if ini.exists() else None,
                     local_ray=run.get("local_ray", True))
        driver.start().join(timeout=60)
    after = _rows(queue)
    logged = _flat(caplog.text)
    assert "Traceback" not in logged
    errors = _flat(" ".join(r.get("Error", "") for r in after.values()))
    for job_id, status in run.get("rows", {}).items():
        assert after[job_id].get("TrainingCheck") == status, (job_id, after[job_id], logged)
    for text in run.get("says", []):
        assert text in logged or text in errors, (text, logged, errors)
    for text in run.get("never_says", []):
        assert text not in logged and text not in errors
    if "launched" in run:
        assert sorted({launch.job_id for launch, _ in pool.launches}) == run["launched"]
    for job_id, cells in run.get("kept", {}).items():
        for column, value in cells.items():
            assert after[job_id][column] == value
    for job_id, cells in before.items():   # the user's own cells, byte for byte
        for column, value in cells.items():
            if column not in OWNED_COLUMNS:
                assert after[job_id].get(column) == value, (job_id, column)
