"""A kind whose extra is not installed: its rows are Invalid with the exact pip command
that adds it, and the rest of the queue runs (``check`` says the same, without Ray)."""

import shutil
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.kinds import base
from tests.fake_pool import FakePool
from tests.helpers import read_rows, write_csv
from tests.unit.test_loop import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def without_transformers(monkeypatch):
    """This Python as it is after ``pip install .`` without ``[hf]``: importing
    transformers fails (a None in sys.modules is Python's own "not importable")."""
    monkeypatch.setitem(sys.modules, "transformers", None)
    base._missing.cache_clear()
    yield
    base._missing.cache_clear()


@pytest.fixture
def queue(tmp_path):
    shutil.copy(ROOT / "examples" / "hf_tiny.yaml", tmp_path / "hf.yaml")
    return write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "TrainingCommand", "GPUs"],
                     [["summ", "hf", "hf.yaml", "", "0"], ["plain", "", "", "true", "0"]])


def test_a_row_of_a_kind_whose_extra_is_missing_is_invalid_with_the_install_command(
        without_transformers, queue):
    r = run(queue, FakePool())
    rows = read_rows(queue)
    assert rows["plain"]["TrainingCheck"] == "Done"
    assert rows["summ"]["TrainingCheck"] == "Invalid"
    error = rows["summ"]["Error"]
    assert "transformers is not installed" in error
    assert base.install_command("hf") in error
    assert r.code == 1


def test_check_names_file_line_kind_and_the_command(without_transformers, queue, capsys):
    assert main(["check", str(queue)]) != 0
    out = capsys.readouterr()
    said = " ".join((out.out + out.err).split())
    assert str(queue) in said and "2 summ Invalid: Kind='hf'" in said and "3 plain runs" in said
    assert "transformers is not installed" in said and base.install_command("hf") in said


def test_the_install_command_is_this_pythons():
    command = base.install_command("yolo")
    assert command.startswith(f"{sys.executable} -m pip install")
    assert "[yolo]" in command


def test_with_everything_installed_nothing_is_missing():
    from orchestrator.kinds import KINDS

    base._missing.cache_clear()
    assert {name: kind.missing() for name, kind in KINDS.items()} == dict.fromkeys(KINDS)
