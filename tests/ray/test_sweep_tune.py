"""Sweeps on Ray Tune: an unmodified W&B program, driven live through wandb.log."""

import json
from pathlib import Path

import pytest
import yaml

from sweeps.tune_runner import run_sweep

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "examples" / "wandb_sweep_program.py"


def _sweep(tmp_path, **overrides):
    data = {"program": str(PROGRAM), "method": "grid",
            "metric": {"name": "val_loss", "goal": "minimize"},
            "parameters": {"lr": {"values": [0.001, 0.01, 0.1]}, "epochs": {"value": 2}}}
    data.update(overrides)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _program_lines(trial_dir, tag="SWEEP_PROGRAM "):
    text = (Path(trial_dir) / "run.log").read_text()
    return [json.loads(line[len(tag):]) for line in text.splitlines() if line.startswith(tag)]


def test_grid_runs_unmodified_wandb_program(tmp_path):
    out = run_sweep(_sweep(tmp_path), storage_path=tmp_path / "results", name="grid")
    assert out.num_trials == 3 and out.errors == 0
    lrs = sorted(t["config"]["lr"] for t in out.trials)
    assert lrs == [0.001, 0.01, 0.1]
    for trial in out.trials:
        (seen,) = _program_lines(trial["trial_dir"])
        assert seen["config"] == {"lr": trial["config"]["lr"], "epochs": 2}   # wandb.config
        assert trial["metric"] is not None and trial["iterations"] == 2       # from wandb.log
        assert list(Path(trial["trial_dir"]).glob("wandb/offline-run-*"))
    assert out.best_config == {"lr": 0.01, "epochs": 2}
    assert out.best_metric == pytest.approx(0.5)
    # the same name again resumes: finished trials are kept, not rerun
    again = run_sweep(_sweep(tmp_path), storage_path=tmp_path / "results", name="grid")
    assert again.num_trials == 3 and again.best_config == out.best_config
    for trial in again.trials:
        assert (Path(trial["trial_dir"]) / "run.log").read_text().count("[orchestrator]") == 1


def test_random_with_fractional_gpus(tmp_path):
    path = _sweep(tmp_path, method="random", run_cap=4,
                  parameters={"lr": {"distribution": "log_uniform_values", "min": 1e-4,
                                     "max": 1.0}, "epochs": {"value": 2},
                              "sleep": {"value": 0.3}})
    out = run_sweep(path, storage_path=tmp_path / "results", name="rand", gpus_per_trial=0.5,
                    cpus_per_trial=0.25, seed=1)
    assert out.num_trials == 4 and out.errors == 0
    spans = []
    for trial in out.trials:
        (seen,) = _program_lines(trial["trial_dir"])
        (end,) = _program_lines(trial["trial_dir"], "SWEEP_PROGRAM_END ")
        assert seen["cuda"] in ("0", "1", "2", "3")
        spans.append((seen["start"], end["end"], seen["cuda"]))
    for start, _, _ in spans:   # at most 2 trials on a GPU, at most 8 at a time
        running = [c for s, e, c in spans if s <= start < e]
        assert len(running) <= 8
        assert all(running.count(c) <= 2 for c in running)


def test_crashing_trial_is_retried_and_reported(tmp_path):
    path = _sweep(tmp_path, parameters={"lr": {"values": [0.01, 0.1]}, "epochs": {"value": 2},
                                        "fail_lr": {"value": 0.1}})
    out = run_sweep(path, storage_path=tmp_path / "results", name="crash", max_failures=1)
    assert out.num_trials == 2 and out.errors == 1
    (bad,) = [t for t in out.trials if t["status"] == "ERROR"]
    assert bad["config"]["lr"] == 0.1 and "exited with 1" in bad["error"]
    assert (Path(bad["trial_dir"]) / "run.log").read_text().count("failing on purpose") == 2
    (good,) = [t for t in out.trials if t["status"] == "TERMINATED"]
    assert good["config"]["lr"] == 0.01 and good["metric"] == pytest.approx(0.5)
    assert out.best_config["lr"] == 0.01


def test_hyperband_stops_poor_trials_early(tmp_path):
    path = _sweep(tmp_path, parameters={"lr": {"values": [0.01, 0.1, 1.0]},
                                        "epochs": {"value": 9}, "sleep": {"value": 0.2}},
                  early_terminate={"type": "hyperband", "min_iter": 1, "eta": 3})
    out = run_sweep(path, storage_path=tmp_path / "results", name="hb",
                    max_concurrent_trials=1)
    assert out.num_trials == 3 and out.errors == 0
    by_lr = {t["config"]["lr"]: t for t in out.trials}
    assert by_lr[0.01]["iterations"] == 9
    for lr in (0.1, 1.0):
        trial = by_lr[lr]
        assert trial["iterations"] < 9
        assert not _program_lines(trial["trial_dir"], "SWEEP_PROGRAM_END ")   # killed
        folder = Path(trial["trial_dir"])
        assert (folder / "exit_code").exists() or (folder / "orphaned").exists()


def test_bayes_searches_with_optuna(tmp_path):
    path = _sweep(tmp_path, method="bayes", run_cap=4,
                  parameters={"lr": {"distribution": "log_uniform_values", "min": 1e-4,
                                     "max": 1.0}, "epochs": {"value": 1}})
    out = run_sweep(path, storage_path=tmp_path / "results", name="bayes", seed=3,
                    cpus_per_trial=0.5)
    assert out.num_trials == 4 and out.errors == 0
    lrs = [t["config"]["lr"] for t in out.trials]
    assert all(1e-4 <= lr <= 1.0 for lr in lrs) and len(set(lrs)) == 4
    best = min(out.trials, key=lambda t: t["metric"])
    assert out.best_metric == best["metric"] and out.best_config["lr"] == best["config"]["lr"]


def test_hostile_parameter_values_never_reach_a_shell(tmp_path):
    """A sweep value like `; touch …` is one argument to the program, not shell code."""
    pwned = tmp_path / "pwned"
    hostile = f"; touch {pwned}"
    path = _sweep(tmp_path, parameters={"lr": {"value": 0.01}, "epochs": {"value": 1},
                                         "note": {"values": [hostile, f"$(touch {pwned})"]}})
    out = run_sweep(path, storage_path=tmp_path / "results", name="hostile")
    assert out.num_trials == 2 and out.errors == 0
    notes = sorted(_program_lines(t["trial_dir"])[0]["config"]["note"] for t in out.trials)
    assert notes == sorted([hostile, f"$(touch {pwned})"])   # reached wandb.config intact
    assert not pwned.exists()
