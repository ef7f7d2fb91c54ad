"""The TUI when this process is the driver: the queue runs in a thread under the UI.

``q`` asks what to do with running jobs. On a Ray the driver started, jobs cannot
outlive it: stop them (they go back to pending) or stay. On a cluster: leave them
running (rerun the same command to re-attach), or stop them. When the queue
finishes by itself the UI closes and the summary is printed as usual.
"""

from __future__ import annotations

import threading

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from orchestrator.store.config import Config
from orchestrator.store.paths import QueuePaths
from orchestrator.views.tui import QueueApp

__all__ = ["DriverApp"]


class QuitScreen(ModalScreen[str]):
    """Asks what happens to running jobs: ``keep``, ``stop`` or ``cancel`` — a button
    each (Tab moves, Enter presses; Cancel has the focus) or its key."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 76; height: auto; border: thick $warning; padding: 1 2;
                            background: $surface; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 2; }
    """

    def __init__(self, running: int, local: bool):
        super().__init__()
        self.local = local
        if local:
            self.question = (f"{running} job(s) running on the Ray this driver started: they "
                             "cannot outlive it. Stopped jobs run again next time.")
        else:
            self.question = (f"{running} job(s) running on the cluster. Kept jobs go on; run "
                             "the same command again to re-attach.")

    BINDINGS = [Binding("k", "answer('keep')", "Keep running"),
                Binding("s", "answer('stop')", "Stop jobs"),
                Binding("c", "answer('cancel')", "Cancel"),
                Binding("escape", "answer('cancel')", "Cancel", show=False)]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            with Horizontal():
                if not self.local:
                    yield Button("Keep running, quit (k)", id="keep", variant="primary")
                yield Button("Stop jobs, quit (s)", id="stop", variant="error")
                yield Button("Cancel (c)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id or "cancel")

    def action_answer(self, choice: str) -> None:
        if choice == "keep" and self.local:
            return  # not possible here; the question does not offer it
        self.dismiss(choice)


class DriverApp(QueueApp):
    """``QueueApp`` that runs ``scheduler`` in a thread and owns its lifetime."""

    def __init__(self, paths: QueuePaths, config: Config, scheduler, *, local: bool,
                 refresh_s: float | None = None):
        kwargs = {} if refresh_s is None else {"refresh_s": refresh_s}
        super().__init__(paths, config, stop=scheduler.request_stop, **kwargs)
        self.scheduler, self.local = scheduler, local
        self.code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._drive, name="scheduler", daemon=True)

    def on_mount(self) -> None:
        super().on_mount()
        self._thread.start()

    def summary_text(self) -> str:
        """Adds what the cluster has and what is in use (this process is on the cluster)."""
        text = super().summary_text()
        try:
            import ray

            total, free = ray.cluster_resources(), ray.available_resources()
        except Exception:  # Ray going down at the end: keep the last header
            return text
        used = [f"{k} {total[k] - free.get(k, 0.0):g}/{total[k]:g}"
                for k in ("GPU", "CPU") if total.get(k)]
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        return text + f"\nin use: {' · '.join(used) or 'nothing'} on {nodes} node(s)"

    def _drive(self) -> None:
        try:
            self.code = self.scheduler.run()
        except BaseException as e:  # shown after the UI closes
            self.error = e
        try:
            self.call_from_thread(self.exit, self.code)
        except RuntimeError:  # the app has already gone
            pass

    def action_quit(self) -> None:
        running = [st for st in self.scheduler.snapshot() if st.status.is_active]
        if not running:
            self.scheduler.interrupt()
            return  # the scheduler ends; its thread closes the UI

        def answered(choice: str | None) -> None:
            if choice in ("keep", "stop"):
                self.notify("finishing: " + ("stopping the jobs" if choice == "stop" else
                                             "leaving the jobs running"))
                self.scheduler.interrupt(stop_jobs=choice == "stop")

        self.push_screen(QuitScreen(len(running), self.local), answered)

    def join(self, timeout: float | None = None) -> int:
        """Wait for the scheduler thread; its exit code (re-raises its error)."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.code if self.code is not None else 1
