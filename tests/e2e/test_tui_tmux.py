"""The TUI in a real terminal (tmux, 80×24): layout, stop a row, quit."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.helpers import read_rows, wait_for, write_csv

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]
ROOT = Path(__file__).resolve().parents[2]
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "Attempts", "WandbRunID"]
START = ("import sys; from orchestrator.cli import main; "
         "raise SystemExit(main(['tui', sys.argv[1]]))")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def test_tui_in_tmux(tmp_path):
    csv_path = write_csv(tmp_path / "queue.csv", HEADER, [
        ["m1", "resnet", "python t.py", "Done", "1", "wb-1"],
        ["m2", "학습-모델-한국어", "python t.py", "Crash", "2", "wb-2"],
        ["p1", "pending-one", "python t.py", "", "", ""],
    ])
    rc_file = tmp_path / "rc"
    command = (f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -c "
               f"{shlex.quote(START)} {shlex.quote(str(csv_path))}; "
               f"echo $? > {shlex.quote(str(rc_file))}; sleep 60")
    session = f"orch-tui-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
                   check=True, env=env)
    try:
        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", session)

        wait_for(lambda: "pending-one" in screen() and "Quit" in screen(), timeout=30,
                 what="the table and its footer")
        lines = {}   # the table's rows (the details pane below starts with an ID too)
        for line in screen().splitlines():
            if line.split() and line.split()[0] in ("m1", "m2", "p1"):
                lines.setdefault(line.split()[0], line)
        # the status column starts at the same terminal cell on every row, Korean or not
        starts = {cell_len(lines[k][:lines[k].index(word)])
                  for k, word in (("m1", "Done"), ("m2", "Crash"), ("p1", "Pending"))}
        assert len(starts) == 1, screen()
        assert "no driver" in screen()

        tmux("send-keys", "-t", session, "Down", "Down", "s")
        wait_for(lambda: "y/n" in screen(), timeout=10, what="the confirm dialog")
        tmux("send-keys", "-t", session, "y")
        wait_for(lambda: read_rows(csv_path)["p1"]["TrainingCheck"] == "Stopped", timeout=10)
        wait_for(lambda: "Stopped" in screen(), timeout=10, what="Stopped on screen")
        tmux("send-keys", "-t", session, "q")
        wait_for(rc_file.exists, timeout=10, what="the app to exit")
        assert rc_file.read_text().strip() == "0"
        assert read_rows(csv_path)["m1"]["TrainingCheck"] == "Done"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_run_in_a_terminal_shows_the_ui_then_the_summary(tmp_path):
    """`orchestrator run` in a real terminal: the live UI while it runs, then the summary."""
    csv_path = write_csv(tmp_path / "queue.csv", ["ID", "Name", "TrainingCommand", "GPUs"], [
        ["slow", "느린 모델", "sleep 4", "0"], ["fast", "quick", "true", "0"]])
    ini = tmp_path / "m.ini"
    ini.write_text("[ray]\ndashboard = false\n")
    rc_file = tmp_path / "rc"
    command = (f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m "
               f"orchestrator.run queue.csv --config m.ini; "
               f"echo $? > {shlex.quote(str(rc_file))}; sleep 60")
    session = f"orch-run-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    command], check=True, env=env)
    try:
        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", session)

        wait_for(lambda: "driver pid" in screen() and "Training" in screen(), timeout=60,
                 what="the live UI with a running row")
        wait_for(rc_file.exists, timeout=60, what="the run to end")
        assert rc_file.read_text().strip() == "0"
        assert "updated CSV:" in screen() and "Done 2" in screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert {r["TrainingCheck"] for r in read_rows(csv_path).values()} == {"Done"}


def test_tui_from_a_second_terminal_stops_a_running_job(tmp_path):
    """A driver runs the queue; `orchestrator tui` in another terminal: `s`, `y` → Stopped."""
    from tests.helpers import probe, probe_records

    out = tmp_path / "out"
    csv_path = write_csv(tmp_path / "queue.csv", ["ID", "Name", "TrainingCommand", "GPUs"], [
        ["blk", "blocking", probe("blk", out, "--block"), "0"]])
    ini = tmp_path / "m.ini"
    ini.write_text("[ray]\ndashboard = false\n[general]\nstop_grace = 2\n")
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(csv_path),
                               "--config", str(ini), "--no_ui"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    session = f"orch-att-{uuid.uuid4().hex[:8]}"
    try:
        pid = wait_for(lambda: (probe_records(out) or [{}])[0].get("pid"), timeout=60)
        command = (f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m "
                   f"orchestrator tui queue.csv; sleep 60")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "24",
                        command], check=True, env={**os.environ, "TERM": "xterm-256color"})

        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", session)

        wait_for(lambda: "blocking" in screen() and "driver pid" in screen(), timeout=30)
        tmux("send-keys", "-t", session, "s")
        wait_for(lambda: "y/n" in screen(), timeout=10, what="the confirm dialog")
        tmux("send-keys", "-t", session, "y")
        try:
            wait_for(lambda: read_rows(csv_path)["blk"].get("TrainingCheck") == "Stopped",
                     timeout=60, what="the CSV to say Stopped")
        except AssertionError:
            raise AssertionError(screen()) from None
        assert driver.wait(timeout=60) == 1
        import psutil
        wait_for(lambda: not psutil.pid_exists(pid), timeout=15, what="the job to stop")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        if driver.poll() is None:
            driver.kill()
