"""Faults on a real Ray: the driver killed (SIGKILL) at named moments of an attempt's
life (``orchestrator.infra.failpoints``), on a Ray of its own and on the kept one. Each
case counts what a user would: rows lost, rows run twice, edits lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from orchestrator.infra.raycluster import end_processes, processes_naming
from tests.helpers import probe, probe_records, read_rows, wait_for, write_csv

pytestmark = pytest.mark.slow
HEADER = ["ID", "TrainingCommand", "TrainingCheck", "GPUs", "Notes"]
INI = "[ray]\ndashboard = false\nnum_cpus = 2\n[general]\nmax_training_process = 2\n"
ROWS = 6


def driver(csv: Path, env: dict) -> subprocess.CompletedProcess:
    ini = csv.parent / "q.ini"
    ini.write_text(INI, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                           str(ini), "--no_ui"], env=env, capture_output=True, text=True,
                          timeout=240, start_new_session=True)


@pytest.fixture
def kept_state():
    """A state folder for a kept Ray of this test's own (short: Ray's sockets live in it)."""
    folder = Path(tempfile.mkdtemp(prefix="f", dir="/tmp"))
    yield folder
    subprocess.run([sys.executable, "-m", "orchestrator", "ray", "stop"],
                   env={**os.environ, "XDG_STATE_HOME": str(folder)}, capture_output=True,
                   timeout=60)
    end_processes(processes_naming(str(folder)), grace=1)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("ray_kind, moment", [
    ("own", "after-record-end:3"),      # the record says Done, the CSV still Training
    ("kept", "after-record-begin:4"),   # an attempt recorded, its runner not yet asked,
])                                      # the runners outliving the driver
def test_a_driver_killed_at_a_named_moment_loses_nothing_and_runs_nothing_twice(
        tmp_path, kept_state, ray_kind, moment):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER,
                    [[f"r{i}", probe(f"r{i}", out, "--sleep", "0.3"), "", "0", f"note {i}"]
                     for i in range(ROWS)])
    env = {**os.environ, "ORCH_FAILPOINT": moment}
    if ray_kind == "kept":
        env.update(XDG_STATE_HOME=str(kept_state), ORCH_RAY_KEEP_ALIVE="30")
    first = driver(csv, env)
    assert first.returncode == -signal.SIGKILL, first.stdout[-2000:] + first.stderr[-2000:]
    info = json.loads((tmp_path / "runs" / ".driver-queue.json").read_text())
    session = info.get("ray_session") or ""   # the driver's own Ray's folder (none when kept)
    # the user edits the file while no driver runs
    rows = read_rows(csv)
    edited = {job_id: f"edited {job_id}" for job_id in rows}
    text = csv.read_text(encoding="utf-8")
    for i in range(ROWS):
        text = text.replace(f"note {i}", edited[f"r{i}"])
    csv.write_text(text, encoding="utf-8")

    del env["ORCH_FAILPOINT"]
    try:
        again = driver(csv, env)
    finally:
        if session:   # what the killed driver's own Ray left, should the rerun not reap it
            end_processes(processes_naming(session), grace=1)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    final = read_rows(csv)
    assert {i: r["TrainingCheck"] for i, r in final.items()} == \
        {f"r{i}": "Done" for i in range(ROWS)}, "rows lost"
    finished = sorted(r["name"] for r in probe_records(out) if "end" in r)
    assert finished == sorted(f"r{i}" for i in range(ROWS)), \
        f"each row must finish exactly once, got {finished}"
    assert {i: r["Notes"] for i, r in final.items()} == edited, "edits lost"
    assert "Traceback" not in again.stdout + again.stderr


@pytest.fixture
def small_disk():
    """A 16 MiB tmpfs of this test's own: a disk that really fills up."""
    folder = Path(tempfile.mkdtemp(prefix="disk", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"needs a tmpfs mount (root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


@pytest.mark.parametrize("ray_kind", ["kept"])   # "own" passes too (29 s): the suite's time
def test_a_state_dir_whose_disk_fills_mid_run_stops_the_driver_not_the_rows(
        tmp_path, small_disk, kept_state, ray_kind):
    """Earlier: SIGBUS in SQLite, or a job's end counted as its crash. A read-only remount
    cannot be made while the driver holds files open for writing ("mount point is busy"),
    and root ignores mode bits: a full disk is the fault here."""
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER,
                    [[f"r{i}", probe(f"r{i}", out, "--sleep", "2"), "", "0", ""]
                     for i in range(4)])
    ini = tmp_path / "q.ini"
    ini.write_text(INI + f"state_dir = {small_disk}\n", encoding="utf-8")
    command = [sys.executable, "-m", "orchestrator.run", str(csv), "--config", str(ini),
               "--no_ui"]
    env = dict(os.environ)
    if ray_kind == "kept":
        env.update(XDG_STATE_HOME=str(kept_state), ORCH_RAY_KEEP_ALIVE="30")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True, env=env)
    try:
        wait_for(lambda: sum(r["TrainingCheck"] == "Training"
                             for r in read_rows(csv).values()) == 2, timeout=90)
        info = json.loads((small_disk / ".driver-queue.json").read_text())
        running = {i for i, r in read_rows(csv).items() if r["TrainingCheck"] == "Training"}
        fill(small_disk)
        said = first.communicate(timeout=120)[0]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    end_processes(processes_naming(info.get("ray_session") or str(tmp_path)), grace=1)
    assert first.returncode not in (0, 1, -signal.SIGKILL), said[-3000:]
    assert "Traceback" not in said and "cannot write" in said and str(small_disk) in said, \
        said[-3000:]
    assert "Crash" not in said, "the disk is not the job's crash"
    rows = read_rows(csv)
    assert not any(r["Error"] for r in rows.values()), "no row was blamed for the disk"
    assert not any(r["TrainingCheck"] in ("Crash", "Failed") for r in rows.values())

    (small_disk / "filler").unlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [r["TrainingCheck"] for r in read_rows(csv).values()] == ["Done"] * 4
    # a row running when the disk refused its end runs again (nothing of that end could be
    # kept); every other row runs exactly once
    finished = sorted(r["name"] for r in probe_records(out) if "end" in r)
    assert sorted(set(finished)) == ["r0", "r1", "r2", "r3"]
    twice = {name for name in finished if finished.count(name) > 1}
    assert twice <= running, f"{twice - running} ran twice though not running at the fault"
