"""Each end-to-end test's drivers start their local Ray in a temp dir of their own.

Two Rays in one RAY_TMPDIR share ``session_latest``: a driver that stops its Ray there
can take down another one's (seen: the session Ray of the pytest process went with it,
and pytest exited 1 mid-run). A subfolder of the session's temp dir keeps the marker
``kill_leftover_ray`` looks for.
"""

import os
import tempfile

import pytest


@pytest.fixture(autouse=True)
def own_ray_tmpdir(monkeypatch):
    base = os.environ["RAY_TMPDIR"]
    monkeypatch.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="e", dir=base))
    yield
