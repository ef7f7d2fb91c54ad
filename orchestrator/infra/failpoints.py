"""Named moments where a test may kill the driver with SIGKILL, to prove what a crash at
exactly that moment leaves behind (the failpoints of etcd and FoundationDB's buggify).

``ORCH_FAILPOINT=<name>[:<n>]`` kills the process the ``n``-th time (default 1) it
reaches ``<name>``; unset (always, outside tests) each point is one dictionary lookup.
The points:

- ``after-record-end``: an attempt's end is in the run record, the CSV not yet written.
- ``after-record-begin``: an attempt is recorded as started, its runner not yet asked.
"""

from __future__ import annotations

import os
import signal

__all__ = ["reach"]

_ARMED: dict[str, int] = {}


def _arm() -> None:
    spec = os.environ.get("ORCH_FAILPOINT", "")
    if spec:
        name, _, count = spec.partition(":")
        _ARMED[name] = int(count or 1)


_arm()


def reach(name: str) -> None:
    """Die here (SIGKILL, no clean-up) when the armed failpoint ``name`` is due."""
    if name not in _ARMED:
        return
    _ARMED[name] -= 1
    if _ARMED[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
