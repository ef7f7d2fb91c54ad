"""The kept local Ray's rules that need no Ray: the idle time, which runs may join it,
its folder's owner and mode, and what holds it (a live driver's lease; a dead one's is
dropped)."""

import os
import subprocess
import sys
import time

import pytest

from orchestrator.infra import localray
from orchestrator.infra.errors import OrchestratorError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return localray.state_folder()


def kept(**changes) -> localray.KeptRay:
    base = dict(address="127.0.0.1:1", dashboard="", temp_dir="/nowhere", num_cpus=2.0,
                num_gpus=-1.0, keep_alive=300.0, started=time.time(), python=sys.executable)
    return localray.KeptRay(**{**base, **changes})


def test_the_environment_overrides_the_configured_idle_time(monkeypatch):
    monkeypatch.delenv(localray.KEEP_ALIVE_ENV, raising=False)
    assert localray.keep_alive(120) == 120
    monkeypatch.setenv(localray.KEEP_ALIVE_ENV, "0")
    assert localray.keep_alive(120) == 0
    monkeypatch.setenv(localray.KEEP_ALIVE_ENV, "soon")
    with pytest.raises(OrchestratorError, match="ORCH_RAY_KEEP_ALIVE='soon'"):
        localray.keep_alive(120)


def test_a_kept_ray_is_joined_only_as_it_was_started():
    ray = kept()
    assert localray._fits(ray, 2.0, -1.0)
    assert not localray._fits(ray, 2.0, 4.0), "4 logical GPUs asked, detected ones kept"
    assert not localray._fits(kept(num_gpus=4.0), 2.0, -1.0)
    assert not localray._fits(ray, -1.0, -1.0)
    assert not localray._fits(kept(python="/other/venv/bin/python"), 2.0, -1.0)


def test_its_folder_is_the_users_alone(folder):
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)
    assert localray.state_folder().stat().st_mode & 0o777 == 0o700


def test_a_live_drivers_lease_holds_it_and_a_dead_ones_is_dropped(folder):
    ray = kept()
    assert localray.busy(ray, folder) == ""
    with localray.lease(folder):
        assert localray.busy(ray, folder) == f"the driver pid {os.getpid()}"
    assert localray.busy(ray, folder) == ""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = folder / "drivers" / gone
    stale.write_text(f"{gone} 12345.0")
    assert localray.busy(ray, folder) == "" and not stale.exists()


def test_no_record_means_no_kept_ray(folder):
    assert localray.find(folder) is None and localray.status(folder) is None
    (folder / "ray.json").write_text("{not json")
    assert localray.find(folder) is None
