"""Shared fixtures: a private Ray temp dir, one Ray instance per test session."""

import os
import tempfile

import pytest

# Before anything imports ray: never join another Ray on this machine.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.pop("RAY_ADDRESS", None)
os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="orch-rt-", dir="/tmp")  # short: unix sockets
os.environ["WANDB_MODE"] = "offline"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
# A run starts a Ray of its own and stops it (no local Ray kept between runs) unless a test
# asks for one (tests/e2e/test_kept_ray.py, with a state folder of its own).
os.environ["ORCH_RAY_KEEP_ALIVE"] = "0"


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 4 CPUs and 4 logical GPUs, shared by the tests in tests/ray."""
    import ray

    ray.init(address="local", num_cpus=4, num_gpus=4, include_dashboard=False,
             namespace="orchestrator", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (tests/s3_server.py); its test credentials are in the
    environment while it runs."""
    from tests.s3_server import S3Server

    with S3Server() as server:
        yield server
