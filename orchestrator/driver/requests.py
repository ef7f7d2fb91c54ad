"""Stop requests to the running driver: from its own process's other threads (the
UI) through ``Inbox``, and from other terminals through its state dir.

``orchestrator stop`` (or a TUI attached from elsewhere) writes
``<state-dir>/.requests-<queue>/<id>.json``; the driver's loop answers it in
``<id>.answer`` within one turn (at most half a second) and deletes the request. So a
stop goes through the driver's own lifecycle core, on any machine that shares the
state dir, without joining Ray.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from orchestrator.store.paths import QueuePaths

__all__ = ["ask", "serve", "Inbox"]

logger = logging.getLogger(__name__)


Stop = Callable[[list[str] | None], dict[str, str]]


class Inbox:
    """The requests the driver's loop answers once per turn, wherever they come from."""

    def __init__(self, paths: QueuePaths):
        self.paths = paths
        self._local: queue.Queue = queue.Queue()   # (ids, reply queue) from other threads

    def ask(self, ids: list[str] | None, timeout: float = 30.0) -> dict[str, str]:
        """Stop rows (any thread of the driver's process; ``None``: every row not
        finished); what happened to each."""
        reply: queue.Queue = queue.Queue()
        self._local.put((ids, reply))
        try:
            return reply.get(timeout=timeout)
        except queue.Empty:
            return {i: "the driver did not answer in time" for i in ids or ["*"]}

    def serve(self, stop: Stop) -> None:
        """Answer every request waiting now (the loop's thread)."""
        while True:
            try:
                ids, reply = self._local.get_nowait()
            except queue.Empty:
                break
            reply.put(stop(ids))
        serve(self.paths, stop)

    def close(self, message: str) -> None:
        """The driver is leaving: answer what is still waiting, so no caller hangs."""
        self.serve(lambda ids: {i: message for i in ids or ["*"]})


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def ask(paths: QueuePaths, ids: list[str] | None, timeout: float = 30.0) -> dict | None:
    """Ask the running driver to stop ``ids`` (None: every row not finished); its answer
    ``{ID: what happened}``, or None when it did not answer within ``timeout``."""
    paths.requests.mkdir(parents=True, exist_ok=True)
    name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"
    request, answer = paths.requests / f"{name}.json", paths.requests / f"{name}.answer"
    _write(request, {"op": "stop", "ids": ids, "pid": os.getpid()})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer.exists():
            try:
                return json.loads(answer.read_text(encoding="utf-8"))
            finally:
                answer.unlink(missing_ok=True)
        time.sleep(0.05)
    request.unlink(missing_ok=True)
    answer.unlink(missing_ok=True)
    return None


def serve(paths: QueuePaths, stop: Stop) -> None:
    """Answer the requests waiting in the state dir (the driver's loop, once per turn)."""
    try:
        waiting = sorted(p for p in paths.requests.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return
    for request in waiting:
        try:
            data = json.loads(request.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue   # being written, or not ours: its writer gives up in time
        if data.get("op") == "stop":
            ids = data.get("ids")
            outcome = stop(list(ids) if ids is not None else None)
        else:
            outcome = {"*": f"unknown request {data.get('op')!r}"}
        _write(request.with_suffix(".answer"), outcome)
        request.unlink(missing_ok=True)
