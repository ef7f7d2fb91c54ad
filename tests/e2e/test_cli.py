"""The real command line, each run starting its own local Ray."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import probe, probe_records, read_rows, wait_for, write_csv
from tests.notify_servers import JsonSink, closed_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "WeightFile", "PretrainedModelId",
          "GPUs", "Notes"]
INI = "[ray]\ndashboard = false\nnum_cpus = 2\n[general]\nretry_backoff = 0.2\n"


def cli(*args, cwd=None, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "orchestrator", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, **kw)


def start_driver(csv: Path, ini: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                             str(ini), "--num-gpus", "2", "--no_ui", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def kill_leftover_ray(tmpdir: str) -> None:
    """Ray processes of a driver we SIGKILLed (they carry our private temp dir)."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(tmpdir in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "manager.ini"
    path.write_text(INI)
    return path


def test_run_then_status_and_logs(tmp_path, ini):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["a", "모델 A", probe("a", out, "--weights"), "", "", "", "0.5", "keep, me"],
        ["b", "B", probe("b", out), "", "", "a", "0.5", ""],
        ["c", "toy", f"{sys.executable} {ROOT}/examples/train_toy.py --sleep 0", "", "", "",
         "0", ""],
    ])
    ini.write_text(INI + "metric = accuracy\n")
    done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                           str(ini), "--num-gpus", "2", "--no_ui"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a (모델 A) Queued → Training" in done.stdout
    assert "registry:" in done.stdout and str(csv) in done.stdout
    rows = read_rows(csv)
    assert rows["a"]["Notes"] == "keep, me"
    assert rows["b"]["TrainingCheck"] == "Done"
    status = cli("status", csv, "--json")
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert [(r["id"], r["status"]) for r in info["rows"]] == [
        ("a", "Done"), ("b", "Done"), ("c", "Done")]
    assert info["driver_pid"] is None
    logs = cli("logs", csv, "b")
    assert "b attempt 1" in logs.stdout
    best = cli("registry", "best", "--metric", "accuracy", "--queue", csv, "--json")
    assert [m["name"] for m in json.loads(best.stdout)] == ["c"]
    assert float(rows["c"]["BestMetric"]) == json.loads(best.stdout)[0]["performance"]["accuracy"]
    report = cli("report", csv, "--config", ini, "-o", tmp_path / "r.html")
    assert report.returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "모델 A" in page


def test_bad_input_fails_before_anything_runs(tmp_path, ini):
    missing = cli("run", tmp_path / "nope.csv", "--config", ini)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    assert "does not exist" in missing.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = cli("run", empty, "--config", ini)
    assert result.returncode == 2 and "empty" in result.stderr
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text("[general]\nprocess_gpu_mapping = process0=0+x\n"
                       "[gpu]\nenable_gpu_assignment = true\n")
    good = write_csv(tmp_path / "q.csv", HEADER, [["a", "", "true", "", "", "", "0", ""]])
    result = cli("run", good, "--config", bad_ini)
    assert result.returncode == 2
    assert "process0=0+x" in result.stderr and "process0=0+1" in result.stderr
    assert read_rows(good)["a"]["TrainingCheck"] == ""   # nothing ran, nothing written
    created = cli("run", "--create_config", tmp_path / "new.ini")
    assert created.returncode == 0 and "[gpu]" in (tmp_path / "new.ini").read_text()


def test_stop_from_another_terminal(tmp_path, ini):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["blk", "", probe("blk", out, "--block"), "", "", "", "0", ""],
        ["later", "", probe("later", out), "", "", "blk", "0", ""],
    ])
    driver = start_driver(csv, ini)
    try:
        pid = wait_for(lambda: (probe_records(out) or [{}])[0].get("pid"), timeout=60)
        status = json.loads(cli("status", csv, "--json").stdout)
        assert status["driver_pid"] == driver.pid
        follow = subprocess.Popen([sys.executable, "-m", "orchestrator", "logs", str(csv),
                                   "blk", "-f"], stdout=subprocess.PIPE, text=True)
        stop = cli("stop", csv, "blk")
        assert stop.returncode == 0 and "stopping" in stop.stdout
        assert driver.wait(timeout=60) == 1
        # `logs -f` printed the job's output and ended with the job
        followed, _ = follow.communicate(timeout=30)
        assert "blk attempt 1" in followed and "stopping the job" in followed
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="job process gone")
    rows = read_rows(csv)
    assert rows["blk"]["TrainingCheck"] == "Stopped"
    assert rows["later"]["TrainingCheck"] == "Blocked"


def test_stop_rows_that_have_not_started_needs_no_ray(tmp_path):
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["a", "", "true", "", "", "", "0", ""], ["b", "", "true", "", "", "", "0", ""],
        ["c", "", "true", "Done", "", "", "0", ""]])
    result = cli("stop", csv, "--all", timeout=30)
    assert result.returncode == 0, result.stderr
    rows = read_rows(csv)
    assert [rows[i]["TrainingCheck"] for i in "abc"] == ["Stopped", "Stopped", "Done"]
    unknown = cli("stop", csv, "zz", timeout=30)
    assert unknown.returncode == 2 and "no row with ID zz" in unknown.stderr


def test_driver_killed_mid_queue_and_rerun(tmp_path, ini):
    """SIGKILL the driver while jobs run; the rerun finishes every row, none twice at once."""
    out = tmp_path / "out"
    rows = [[f"r{i}", "", probe(f"r{i}", out, "--sleep", "8"), "", "", "", "1", ""]
            for i in range(4)]
    csv = write_csv(tmp_path / "queue.csv", HEADER, rows)
    driver = start_driver(csv, ini)
    info_file = tmp_path / "runs" / ".driver-queue.json"
    try:
        wait_for(lambda: sum(r["TrainingCheck"] == "Training"
                             for r in read_rows(csv).values()) == 2, timeout=60)
        session = json.loads(info_file.read_text())["ray_session"]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        if driver.poll() is None:
            driver.kill()
    # the local Ray died with its driver: its jobs must stop rather than run on
    running = [r for r in probe_records(out) if "end" not in r]
    wait_for(lambda: not any(psutil.pid_exists(r["pid"]) for r in running), timeout=30,
             what="orphaned jobs to be stopped")
    try:   # what that Ray left running (its agents) the next driver stops
        again = start_driver(csv, ini)
        assert again.wait(timeout=120) == 0, again.stdout.read()
        left = [p.pid for p in psutil.process_iter(["cmdline"])
                if any(session in part for part in p.info["cmdline"] or ())]
        assert left == [], f"processes of the killed driver's Ray ({session}) still run"
    finally:
        kill_leftover_ray(session)
    final = read_rows(csv)
    assert all(r["TrainingCheck"] == "Done" for r in final.values())
    records = probe_records(out)
    finished = [r for r in records if "end" in r]
    assert sorted(r["name"] for r in finished) == ["r0", "r1", "r2", "r3"], "each row Done once"
    for name in {r["name"] for r in records}:
        spans = sorted((r["start"], r.get("end", r["start"])) for r in records
                       if r["name"] == name)
        overlapping = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if a[1] > b[0]]
        assert not overlapping, f"{name} ran twice at once"
    assert sorted(r["Attempts"] for r in final.values()) == ["1", "1", "2", "2"]


def test_notifications_arrive_and_a_dead_url_changes_nothing(tmp_path, ini):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["ok", "", probe("ok", out), "", "", "", "0", ""],
        ["boom", "", probe("boom", out, "--exit", "4"), "", "", "", "0", ""],
    ])
    with JsonSink() as sink, closed_port() as dead:
        ini.write_text(INI + f"[notify]\nurls = {sink.url()}, json://127.0.0.1:{dead}/x?"
                       "token=PLANTED-SECRET\nevents = done, crash, queue_done\n")
        done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                               str(ini), "--no_ui"], capture_output=True, text=True,
                              timeout=120)
        received = list(sink.received)
    assert done.returncode == 1
    titles = [m["title"] for m in received]
    assert any("ok Done" in t for t in titles) and any("boom Crash" in t for t in titles)
    crash = next(m for m in received if "boom Crash" in m["title"])
    assert "failing with exit code 4" in crash["message"] and "run.log" in crash["message"]
    summary = [m for m in received if "1 Done" in m["title"] and "1 Crash" in m["title"]]
    assert len(summary) == 1 and "Crash: boom" in summary[0]["message"]
    rows = read_rows(csv)
    assert (rows["ok"]["TrainingCheck"], rows["boom"]["TrainingCheck"]) == ("Done", "Crash")
    assert "PLANTED-SECRET" not in done.stdout + done.stderr
    assert "PLANTED-SECRET" not in csv.read_text()


def test_planted_secrets_reach_no_output(tmp_path, ini):
    """Secrets from the environment and the config never land in what we write or send."""
    out = tmp_path / "out"
    secrets = {"NOTIFY_EMAIL_PASSWORD": "PW-PLANTED-1", "WANDB_API_KEY": "KEY-PLANTED-2"}
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["ok", "", probe("ok", out), "", "", "", "0", ""],
        ["boom", "", probe("boom", out, "--exit", "3"), "", "", "", "0", ""]])
    with JsonSink() as sink:
        ini.write_text(INI + f"[notify]\nurls = {sink.url('/TOKEN-PLANTED-3')}\n"
                       "[email]\nsmtp_server = 127.0.0.1\nsmtp_port = 9\n"
                       "username = me@example.com\nto_addr = me@example.com\n")
        done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                               str(ini), "--no_ui"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **secrets})
        # what was sent (the URL's own path is where it was sent to, not what)
        sent = json.dumps([{k: v for k, v in m.items() if k != "path"} for m in sink.received])
    report = cli("report", csv, "-o", tmp_path / "report.html")
    assert done.returncode == 1 and report.returncode == 0
    written = [csv.read_bytes(), (tmp_path / "runs" / "registry.db").read_bytes(),
               (tmp_path / "report.html").read_bytes(), (done.stdout + done.stderr).encode(),
               sent.encode()]
    written += [p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    for secret in [*secrets.values(), "TOKEN-PLANTED-3"]:
        assert not any(secret.encode() in blob for blob in written), secret
    assert "boom Crash" in sent   # the notification did go out


def test_ctrl_c_on_a_local_ray_stops_jobs_and_leaves_them_pending(tmp_path, ini):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["blk", "", probe("blk", out, "--block"), "", "", "", "0", ""]])
    driver = start_driver(csv, ini)
    try:
        pid = wait_for(lambda: (probe_records(out) or [{}])[0].get("pid"), timeout=60)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_for(lambda: not psutil.pid_exists(pid), timeout=15, what="the job to stop")
    row = read_rows(csv)["blk"]
    assert row["TrainingCheck"] == "" and "interrupted" in row["Error"]


def test_a_reader_gone_before_the_stop_never_skips_the_final_write(tmp_path, ini):
    """`orchestrator run q.csv --no_ui | tee out` and Ctrl-C (or kill): tee ends first, so
    the driver's next line meets a closed pipe. It still stops the job and writes the row,
    and exits 143 for SIGTERM (Ctrl-C's 130 is test_ctrl_c_on_a_local_ray_…)."""
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["blk", "", probe("blk", out, "--block"), "", "", "", "0", ""]])
    driver = start_driver(csv, ini)
    try:
        pid = wait_for(lambda: (probe_records(out) or [{}])[0].get("pid"), timeout=60)
        wait_for(lambda: read_rows(csv)["blk"]["TrainingCheck"] == "Training", timeout=30)
        driver.stdout.close()   # the reader is gone
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=60) == 143
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_for(lambda: not psutil.pid_exists(pid), timeout=15, what="the job to stop")
    row = read_rows(csv)["blk"]
    assert row["TrainingCheck"] == "" and "interrupted" in row["Error"]
    status = json.loads(cli("status", csv, "--json").stdout)
    assert [r["status"] for r in status["rows"]] == ["Pending"]


def test_a_pinned_gpu_the_machine_lacks_is_refused_before_any_row_runs(tmp_path, ini):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["a", "", probe("a", out), "", "", "", "", ""],
        ["x", "", probe("x", out), "", "", "", "abc", ""]])
    before = csv.read_bytes()
    ini.write_text(INI + "process_gpu_mapping = process0=0,process1=5\n"
                   "[gpu]\nenable_gpu_assignment = true\n")
    done = cli("run", csv, "--config", ini, "--num-gpus", "2", "--no_ui")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "process_gpu_mapping='process0=0,process1=5' — names GPU 5 but this machine " \
           "has GPUs 0-1" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    # a row that cannot run is said before Ray starts (the GPU check comes after it)
    assert f"ERROR {csv} line 3 (ID=x): GPUs='abc': not a number" in done.stderr
    assert not out.exists() and csv.read_bytes() == before, "nothing ran, nothing written"


def test_a_local_ray_prints_its_dashboard_and_keeps_its_new_token_private(tmp_path):
    """The driver says where the dashboard it started is and how to sign in; the token Ray
    writes for a new local cluster (world-readable by default) is made 0600."""
    home = tmp_path / "home"
    home.mkdir()
    csv = write_csv(tmp_path / "queue.csv", ["ID", "TrainingCommand", "GPUs"],
                    [["a", "echo hi", "0"]])
    ini = tmp_path / "m.ini"
    ini.write_text("[ray]\ndashboard = true\nnum_cpus = 1\n")
    env = {**os.environ, "HOME": str(home)}
    env.pop("RAY_AUTH_MODE", None)
    done = cli("run", csv, "--config", ini, "--no_ui", env=env, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"Ray dashboard: http://127\.0\.0\.1:\d+ — it asks for the cluster's "
                     r"token: `ray get-auth-token` prints it", done.stdout), done.stdout[-2000:]
    token = home / ".ray" / "auth_token"
    assert token.exists() and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert "Token authentication is enabled" not in done.stdout + done.stderr, \
        "Ray's own notice is said once, in our words"
