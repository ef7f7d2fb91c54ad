"""PretrainedModelId chaining: cycles, unknown parents, failed parents, weights."""

from pathlib import Path

import pytest

from orchestrator.core import RowStatus, find_cycles, resolve

S = RowStatus


@pytest.mark.parametrize("parents,cycle", [
    ({"a": "a"}, {"a"}),
    ({"a": "b", "b": "a"}, {"a", "b"}),
    ({"a": "b", "b": "c", "c": "a"}, {"a", "b", "c"}),
    ({"c": "b", "b": "a", "a": ""}, set()),
    ({"c": "b", "b": "a"}, set()),
    ({"x": "a", "y": "x", "a": "b", "b": "a"}, {"a", "b"}),
    ({"a": "b", "b": "a", "c": "c", "d": "e"}, {"a", "b", "c"}),
    ({}, set()),
])
def test_find_cycles(parents, cycle):
    assert find_cycles(parents) == cycle


def check(job_id, parent, statuses, tmp_path, weights=None, cycles=frozenset()):
    return resolve(job_id, parent, statuses, weights or {}, set(cycles), tmp_path, Path.exists)


def state(r) -> str:
    """What the row does: ready, wait, blocked or invalid."""
    if r.status is S.PENDING:
        return "ready" if r.ready else "wait"
    return r.status.value.lower()


def test_no_parent_is_ready(tmp_path):
    r = check("m1", "", {"m1": S.PENDING}, tmp_path)
    assert state(r) == "ready" and r.pretrained_path == "" and not r.missing_weights


def test_unknown_parent_is_invalid(tmp_path):
    r = check("m2", "m9", {"m2": S.PENDING}, tmp_path)
    assert state(r) == "invalid"
    assert "'m9'" in r.reason and "no row has that ID" in r.reason


@pytest.mark.parametrize("parents", [{"a": "a"}, {"a": "b", "b": "a"}])
def test_cycle_is_invalid(tmp_path, parents):
    statuses = {k: S.DONE for k in parents}  # even a Done parent does not help
    cycles = find_cycles(parents)
    for job_id, parent in parents.items():
        r = check(job_id, parent, statuses, tmp_path, cycles=cycles)
        assert state(r) == "invalid" and "cycle" in r.reason


@pytest.mark.parametrize("status", [S.CRASH, S.STOPPED, S.INVALID, S.BLOCKED])
def test_failed_parent_blocks(tmp_path, status):
    r = check("ft", "base", {"ft": S.PENDING, "base": status}, tmp_path)
    assert state(r) == "blocked"
    assert "base" in r.reason and status.value in r.reason and "rerun base" in r.reason


@pytest.mark.parametrize("status", [S.PENDING, S.QUEUED, S.TRAINING])
def test_unfinished_parent_waits(tmp_path, status):
    r = check("ft", "base", {"ft": S.PENDING, "base": status}, tmp_path)
    assert state(r) == "wait" and "base" in r.reason and r.pretrained_path == ""


def test_done_parent_with_weights_is_ready(tmp_path):
    (tmp_path / "runs" / "base").mkdir(parents=True)
    weight = tmp_path / "runs" / "base" / "best model.pt"
    weight.write_bytes(b"w")
    statuses = {"ft": S.PENDING, "base": S.DONE}
    rel = check("ft", "base", statuses, tmp_path, {"base": "runs/base/best model.pt"})
    assert state(rel) == "ready" and not rel.missing_weights
    assert rel.pretrained_path == str(weight), "a relative WeightFile starts at base_dir"
    absolute = check("ft", "base", statuses, tmp_path / "elsewhere", {"base": f" {weight} "})
    assert absolute.pretrained_path == str(weight)


@pytest.mark.parametrize("weight", ["", "  ", "runs/base/gone.pt", "/nonexistent/w.pt"])
def test_done_parent_without_weights_runs_without_them_and_says_so(tmp_path, weight):
    r = check("ft", "base", {"ft": S.PENDING, "base": S.DONE}, tmp_path, {"base": weight})
    assert state(r) == "ready" and r.missing_weights and r.pretrained_path == ""
    assert "base is Done but left no weight file" in r.reason
    assert "without --pretrained_path" in r.reason
