"""The local Ray kept running between runs (``[ray] keep_alive``): the first run starts
it, the next one joins it, it stops itself once idle, and it is never joined by a run
that did not ask for it (the suite's own runs set ``ORCH_RAY_KEEP_ALIVE=0``) nor found
in a folder that is not the user's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator.infra.raycluster import end_processes, processes_naming
from tests.helpers import read_rows, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture
def state():
    """A state folder of this test's own (short: Ray's socket paths live under it)."""
    folder = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    yield folder
    subprocess.run([sys.executable, "-m", "orchestrator", "ray", "stop"], env=env_for(folder),
                   capture_output=True, timeout=60)
    end_processes(processes_naming(str(folder)), grace=1)
    shutil.rmtree(folder, ignore_errors=True)


def env_for(folder: Path, keep: str = "8") -> dict:
    env = {**os.environ, "XDG_STATE_HOME": str(folder), "ORCH_RAY_KEEP_ALIVE": keep}
    env.pop("RAY_ADDRESS", None)
    return env


def run(queue: Path, env: dict) -> subprocess.CompletedProcess:
    ini = queue.parent / "q.ini"
    ini.write_text("[ray]\ndashboard = false\nnum_cpus = 2\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(queue), "--config",
                           str(ini), "--no_ui"], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def info(folder: Path) -> dict | None:
    path = folder / "orchestrator" / "ray" / "ray.json"
    return json.loads(path.read_text()) if path.exists() else None


def processes_of(temp_dir: str) -> list:
    return processes_naming(temp_dir)


def test_a_second_run_joins_the_kept_ray_which_stops_itself_when_idle(state, tmp_path):
    env = env_for(state)
    queue = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "GPUs"],
                      [["a", f"echo $WHO > {tmp_path}/a", "0"]])
    first = run(queue, {**env, "WHO": "first shell"})
    said = " ".join(first.stdout.split())
    assert "Ray local, kept running between runs (stops after 8 s idle" in said
    kept = info(state)
    assert kept is not None and processes_of(kept["temp_dir"]), "no Ray kept running"
    mode = (state / "orchestrator" / "ray").stat().st_mode & 0o777
    assert mode == 0o700

    write_csv(queue, ["ID", "TrainingCommand", "GPUs"],
              [["b", f"echo $WHO > {tmp_path}/b", "0"]])
    second = run(queue, {**env, "WHO": "second shell"})
    assert "kept running between runs" in " ".join(second.stdout.split())
    assert info(state) == kept, "the second run started another Ray instead of joining"
    assert read_rows(queue)["b"]["TrainingCheck"] == "Done"
    # each run's jobs see that run's shell, not the one that started the Ray
    assert (tmp_path / "a").read_text().strip() == "first shell"
    assert (tmp_path / "b").read_text().strip() == "second shell"

    shown = subprocess.run([sys.executable, "-m", "orchestrator", "ray", "status", "--json"],
                           env=env, capture_output=True, text=True, timeout=60)
    status = json.loads(shown.stdout)
    assert status["address"] == kept["address"] and status["busy"] == ""

    deadline = time.monotonic() + 60   # 8 s idle, then the watchdog stops it
    while time.monotonic() < deadline and (info(state) or processes_of(kept["temp_dir"])):
        time.sleep(1)
    assert info(state) is None and not processes_of(kept["temp_dir"]), \
        "the kept Ray did not stop after its idle time"


def test_a_run_that_did_not_ask_for_it_never_joins_it(state, tmp_path):
    queue = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "GPUs"],
                      [["a", "echo one", "0"]])
    run(queue, env_for(state, keep="60"))
    kept = info(state)
    write_csv(queue, ["ID", "TrainingCommand", "GPUs"], [["b", "echo two", "0"]])
    own = run(queue, env_for(state, keep="0"))   # as every run of the suite is
    assert "Ray started here" in own.stdout
    assert info(state) == kept and processes_of(kept["temp_dir"]), \
        "the kept Ray was touched by a run that did not use it"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_state_folder_of_another_user_is_refused(state, tmp_path):
    folder = state / "orchestrator" / "ray"
    folder.mkdir(parents=True)
    os.chown(folder, 65534, 65534)   # nobody's
    queue = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand"], [["a", "echo one"]])
    done = subprocess.run([sys.executable, "-m", "orchestrator.run", str(queue), "--no_ui"],
                          env=env_for(state), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())
    assert "belongs to another user" in said and "Traceback" not in said
    assert read_rows(queue)["a"].get("TrainingCheck", "") == "", "nothing ran"


def test_ctrl_c_on_the_kept_ray_detaches_and_the_next_run_reattaches(state, tmp_path):
    """Jobs on the kept Ray behave as on a cluster: Ctrl-C leaves them running, the
    same command again re-attaches and sees them end."""
    import signal

    from tests.helpers import wait_for

    done_file = tmp_path / "finished"
    queue = write_csv(tmp_path / "q.csv", ["ID", "TrainingCommand", "GPUs"],
                      [["long", f"sleep 8; echo ok > {done_file}", "0"]])
    ini = tmp_path / "q.ini"
    ini.write_text("[ray]\ndashboard = false\nnum_cpus = 2\n", encoding="utf-8")
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(queue),
                               "--config", str(ini), "--no_ui"], env=env_for(state, "60"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: read_rows(queue)["long"].get("TrainingCheck") == "Training",
                 timeout=120, what="the row to run")
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
        said = " ".join(driver.stdout.read().split())
    finally:
        if driver.poll() is None:
            driver.kill()
    assert "detaching: jobs keep running" in said
    assert read_rows(queue)["long"]["TrainingCheck"] == "Training"
    assert not done_file.exists(), "the job ended before it could be seen detached"
    again = run(queue, env_for(state, "60"))   # re-attaches, waits for the job's end
    assert done_file.read_text().strip() == "ok"
    row = read_rows(queue)["long"]
    assert (row["TrainingCheck"], row["Attempts"]) == ("Done", "1"), again.stdout[-2000:]
