"""`orchestrator sweep check`: the examples pass, a broken file lists every problem."""

import json
from pathlib import Path

import pytest

from orchestrator.cli import main

EXAMPLES = sorted((Path(__file__).parents[2] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass(path, capsys):
    assert main(["sweep", "check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["spec"]["method"] in ("grid", "random", "bayes")


def test_broken_file_exits_2_with_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: bayse\nprogram: t.py\nmetric: {name: acc, goal: up}\n"
                   "parameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}\n")
    assert main(["sweep", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'bayes'" in err and "metric.goal" in err and "parameters.lr" in err


def test_a_file_without_program_checks_ok_and_refuses_to_run_without_one(tmp_path, capsys):
    """W&B accepts a sweep file without program: (wandb.agent(id, function=train)); so does
    check. Running it needs the program from somewhere: refused before Ray starts."""
    path = tmp_path / "s.yaml"
    path.write_text("method: grid\nparameters:\n  lr: {values: [0.1]}\n")
    assert main(["sweep", "check", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "program: missing" in err
    assert main(["sweep", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no program:" in err and "--program train.py" in err and "TrainingCommand" in err
