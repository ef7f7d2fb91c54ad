"""runner.find_weight_file and runner.log_tail (pure functions; Ray is imported, not started)."""

import os

import pytest

from orchestrator.execution.outputs import find_weight_file, log_tail

GLOBS = ("*.pt", "*.ckpt", "*.safetensors")


def touch(path, mtime, data=b"w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "runs" / "m1" / "attempt-1"
    d.mkdir(parents=True)
    return d


def test_prefers_the_reported_best(run_dir, tmp_path):
    best = touch(tmp_path / "out" / "epoch3.pt", 100)
    last = touch(tmp_path / "out" / "epoch9.pt", 900)
    touch(run_dir / "best.pt", 1000)
    assert find_weight_file(run_dir, GLOBS, str(best), str(last)) == str(best)


def test_then_the_reported_last(run_dir, tmp_path):
    last = touch(tmp_path / "out" / "epoch9.pt", 900)
    touch(run_dir / "best.pt", 1000)
    assert find_weight_file(run_dir, GLOBS, str(tmp_path / "deleted.pt"), str(last)) == str(last)
    assert find_weight_file(run_dir, GLOBS, None, str(last)) == str(last)


def test_then_a_single_globbed_file(run_dir):
    only = touch(run_dir / "checkpoints" / "model.safetensors", 100)
    touch(run_dir / "train.log", 999)
    touch(run_dir / "metrics.jsonl", 999)
    assert find_weight_file(run_dir, GLOBS, None, None) == str(only)
    assert find_weight_file(run_dir, GLOBS, str(run_dir / "gone.pt"), "") == str(only)


def test_then_the_one_named_best(run_dir):
    best = touch(run_dir / "model_BEST.ckpt", 100)
    touch(run_dir / "last.pt", 500)
    touch(run_dir / "epoch_9.pt", 400)
    assert find_weight_file(run_dir, GLOBS, None, None) == str(best)


def test_then_the_newest(run_dir):
    touch(run_dir / "a.pt", 300)
    newest = touch(run_dir / "sub" / "b.ckpt", 500)
    touch(run_dir / "c.pt", 400)
    assert find_weight_file(run_dir, GLOBS, None, None) == str(newest)


def test_newest_among_several_best(run_dir):
    touch(run_dir / "best_e1.pt", 100)
    newer = touch(run_dir / "best_e5.pt", 200)
    touch(run_dir / "last.pt", 900)
    assert find_weight_file(run_dir, GLOBS, None, None) == str(newer)


def test_no_weights_gives_empty(run_dir):
    touch(run_dir / "train.log", 100)
    (run_dir / "dir.pt").mkdir()
    assert find_weight_file(run_dir, GLOBS, None, None) == ""
    assert find_weight_file(run_dir, (), None, None) == ""


def test_log_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 101)))
    assert log_tail(log, 3) == "line 98\nline 99\nline 100"
    assert log_tail(log).splitlines() == [f"line {i}" for i in range(61, 101)]
    short = tmp_path / "short.log"
    short.write_text("only\ntwo")
    assert log_tail(short, 5) == "only\ntwo"


def test_log_tail_of_a_big_or_odd_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"x" * 500_000 + b"\n\xff\xfe bad bytes\n" + "끝\n".encode())
    assert log_tail(log, 2) == "\ufffd\ufffd bad bytes\n끝"
    assert log_tail(tmp_path / "missing.log") == ""


def test_reaping_a_killed_drivers_ray_ends_only_the_processes_naming_its_session(tmp_path):
    """What a kill -9'd driver's local Ray leaves is found by its session folder on the
    command line, never by process name: another session's processes are untouched."""
    import subprocess
    import sys

    import psutil

    from orchestrator.infra.raycluster import reap_session

    ours = str(tmp_path / "ray" / "session_2026-01-01_00-00-00_000001_42")
    other = str(tmp_path / "ray" / "session_2026-01-01_00-00-00_000002_43")
    code = "import time; time.sleep(60)"
    left = [subprocess.Popen([sys.executable, "-c", code, f"--session-dir={ours}"])
            for _ in range(2)]
    bystander = subprocess.Popen([sys.executable, "-c", code, f"--session-dir={other}"])
    try:
        assert reap_session(ours, grace=5) == 2
        assert all(p.wait(timeout=10) is not None for p in left)
        assert psutil.Process(bystander.pid).is_running()
        assert reap_session("") == 0 and reap_session(str(tmp_path)) == 0, \
            "only a Ray session folder is ever matched"
    finally:
        for p in (*left, bystander):
            p.kill()
            p.wait()
