"""The terminal UI: a live table of a queue, read from its files only.

``QueueApp`` reads the CSV, ``registry.db``, each attempt's ``run.log`` and
``metrics.jsonl`` (never Ray, never W&B) every second, so it can be attached from
any terminal while a driver runs. Leaving it stops nothing. It *observes* the
queue; the one thing it does is stop a row, through the ``stop`` it is given (the
driver's own when it runs in the driver, ``orchestrator stop``'s otherwise).
"""

from __future__ import annotations

import codecs
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Log, Static

from orchestrator.core import RowStatus
from orchestrator.infra.errors import OrchestratorError
from orchestrator.infra.nvml import gpu_usage
from orchestrator.infra.text import printable
from orchestrator.store.config import Config
from orchestrator.store.paths import QueuePaths, read_driver_info
from orchestrator.views.table import (
    COLUMNS,
    NAME_MAX,
    ColumnSpec,
    QueueSource,
    RowView,
    fit_columns,
    style_of,
)

__all__ = ["QueueApp", "COLUMNS", "StopRows"]

logger = logging.getLogger(__name__)

#: Stops rows of the queue: ``stop([ID]) -> {ID: what happened}``.
StopRows = Callable[[list[str]], dict[str, str]]
REFRESH_S = 1.0
LOG_POLL_S = 0.5
LOG_TAIL_BYTES = 256 * 1024
WHY_MAX = 48   # the Why column's width; the whole text is in the log view and `status`


def _cell(column: str, text: str):
    if column == "status":
        return Text(text, style=style_of(text))
    if column in ("name", "why"):
        return Text(text, no_wrap=True, overflow="ellipsis")
    return text


# ------------------------------------------------------------------ screens
class QueueTable(DataTable):
    BINDINGS = [
        Binding("up", "cursor_up", "Up", key_display="↑", show=False),   # obvious; ? lists
        Binding("down", "cursor_down", "Down", key_display="↓", show=False),
        Binding("enter", "select_cursor", "Log", key_display="⏎"),
    ]

    def on_resize(self) -> None:
        self.post_message(self.Resized())

    class Resized(Message):
        """The table changed size: columns may be shown or hidden."""


class FilterInput(Input):
    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter")]


class ConfirmScreen(ModalScreen[bool]):
    """``question`` — y / n."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: auto; max-width: 90%; padding: 1 2;
                             border: thick $warning; background: $surface; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No", show=False)]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{escape(self.question)}  [b]y[/b]/[b]n[/b]", id="question")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class LogScreen(Screen):
    """Follows one file like ``tail -f``: its end first, then whatever is appended."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("q", "app.pop_screen", "Back")]

    def __init__(self, title: str, path: Path | None, why: str = ""):
        super().__init__()
        self.title_text, self.path, self.why = title, path, why
        self._offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._missing_shown = False

    def compose(self) -> ComposeResult:
        title = f"[b]{escape(self.title_text)}[/b]  {escape(str(self.path or '(no log)'))}"
        if self.why:   # why the row is where it is, whole (the table cuts it)
            title += f"\n[i]{escape(self.why)}[/i]"
        yield Static(title, id="log-title", markup=True)
        yield Log(id="log", max_lines=20000)
        yield Footer()

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(LOG_POLL_S, self.poll)

    def poll(self) -> None:
        log = self.query_one(Log)
        try:
            size = self.path.stat().st_size if self.path else -1
        except OSError:
            size = -1
        if size < 0:
            if not self._missing_shown:
                log.write_line(f"(no log yet{f' at {self.path}' if self.path else ''})")
                self._missing_shown = True
            return
        if size < self._offset:  # truncated or replaced: start over
            log.clear()
            self._offset, self._decoder = 0, codecs.getincrementaldecoder("utf-8")("replace")
        if self._offset == 0 and size > LOG_TAIL_BYTES:
            self._offset = size - LOG_TAIL_BYTES
        if size == self._offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        self._offset += len(data)
        if self._missing_shown:
            log.clear()
            self._missing_shown = False
        log.write(self._decoder.decode(data))


HELP = """\
[b]Keys[/b]
  ↑ ↓          move                       ⏎ / l   the row's log, and why
  d            details of the row on/off  o       order: file ↔ running first
  s            stop the row (asks)        h       hold a waiting row / release a held one
  R            run a finished row again   + / -   raise / lower its Priority
  /            filter (Esc clears)        r       refresh now
  ?            this help                  q       quit (the driver's UI asks first)

[b]Columns[/b]
  GPUs     asked, and @ the GPU ids it holds: 0.5@1 is half of GPU 1
  Progress epoch x/y or step x/y from what the job reports: report(epoch=, epochs=),
           report(step=, total_steps=)
  Metric   the queue's metric (or the first number) in the job's last report
  Why      what a pending row waits for, or how the last attempt failed

h, R, + and - edit the CSV as you would (TrainingCheck = Hold / blank / Rerun, Priority);
the driver reads them like any edit. Press Escape or ? to close."""


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; max-width: 96; padding: 1 2; border: thick $accent;
                          background: $surface; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Close"),
                Binding("question_mark", "app.pop_screen", "Close", show=False)]

    def compose(self) -> ComposeResult:
        yield Static(HELP)


def gpu_use_text(usage: list[dict] | None) -> str:
    """The header's line about this machine's GPUs, from NVML."""
    if usage is None:
        return "GPU use: n/a (NVML does not answer here: logical GPUs, or no NVIDIA driver)"
    if not usage:
        return "GPU use: this machine has no GPU"
    return "GPU use: " + " · ".join(
        f"{g['index']}: {g['util']}% {g['mem_used_gib']:.1f}/{g['mem_total_gib']:.0f} GiB"
        for g in usage)


def details_text(view: RowView) -> str:
    """The details pane of one row (rich markup, every value escaped)."""
    asked = f"{view.gpus:g}" if view.gpus is not None else (view.gpus_cell or "default")
    ids = view.gpu_ids
    held = (f"GPU {','.join(map(str, ids))}" if len(ids) == 1 else
            f"GPUs {','.join(map(str, ids))}") if ids else "none"
    lines = [f"[b]{escape(view.id)}[/b] {escape(view.cells['name'])}  "
             f"[{style_of(view.status)}]{view.status}[/]  kind {escape(view.kind)}"
             f"  attempt {view.attempts or '-'}  priority {view.priority}"
             f"  parent {escape(view.parent or '-')}",
             f"GPUs asked {escape(str(asked))}, holds {held}  "
             f"node {escape(view.node or '-')}"
             f"  time {escape(view.cells.get('time') or '-')}"
             f"  progress {escape(view.cells.get('progress') or '-')}",
             f"command: {escape(printable(view.command or view.config or ''))}"]
    if view.why:
        lines.append(f"[i]why: {escape(view.why)}[/i]")
    if view.log_path:
        lines.append(f"log: {escape(str(view.log_path))}")
    return "\n".join(lines)


#: The statuses ``h`` (Hold) and ``R`` (Rerun) apply to.
HOLDABLE = (RowStatus.PENDING, RowStatus.BLOCKED, RowStatus.INVALID)
RERUNNABLE = (RowStatus.DONE, RowStatus.CRASH, RowStatus.STOPPED)
#: ``o``: running rows first, then waiting ones, then held, then the rest.
_ORDER = {RowStatus.TRAINING: 0, RowStatus.QUEUED: 0, RowStatus.PENDING: 1,
          RowStatus.BLOCKED: 1, RowStatus.HOLD: 2}


# ------------------------------------------------------------------ the app
class QueueApp(App):
    """A live view of one queue: ``r`` refresh, ``s`` stop, ``l`` log, ``/`` filter,
    ``d`` details, ``h`` hold, ``R`` rerun, ``+``/``-`` priority, ``?`` help."""

    TITLE = "orchestrator"
    CSS = """
    #summary { height: auto; padding: 0 1; background: $boost; }
    QueueTable { height: 1fr; }
    #details { height: auto; max-height: 8; padding: 0 1; background: $boost; }
    #details.-hidden { display: none; }
    FilterInput { dock: bottom; display: none; }
    FilterInput.-shown { display: block; }
    """
    BINDINGS = [
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("s", "stop", "Stop"),
        Binding("l", "log", "Log", show=False),   # Enter does the same
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("h", "hold", "Hold"),
        Binding("R", "rerun", "Rerun", key_display="R"),
        Binding("plus", "priority(1)", "Priority +", key_display="+", show=False),
        Binding("minus", "priority(-1)", "Priority -", key_display="-", show=False),
        Binding("d", "details", "Details", show=False),
        Binding("o", "order", "Order", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),  # only the UI: jobs keep running
        # Ctrl-C does what q does (textual's own says "press ctrl+q to quit"); the
        # driver's UI asks first what happens to running jobs
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, paths: QueuePaths, config: Config, refresh_s: float = REFRESH_S,
                 stop: StopRows | None = None):
        super().__init__()
        self.paths, self.config, self.refresh_s = paths, config, refresh_s
        self.stop_rows = stop
        self.source = QueueSource(paths, config)
        self.views: list[RowView] = []
        self.filter_text = ""
        self.running_first = False
        self._stopping: set[str] = set()   # asked to stop while running: not yet ended
        self._edit_lock = threading.Lock()
        self.load_error = ""
        self._shown: list[RowView] = []
        self._columns: list[ColumnSpec] = []
        self._keys: list[str] = []
        self._cells: dict[str, dict] = {}
        # held directly: no DOM query on every refresh
        self.summary = Static("", id="summary")
        self.table = QueueTable(id="table", cursor_type="row", zebra_stripes=True)
        self.details = Static("", id="details")
        self.filter_box = FilterInput(placeholder="filter by ID, name or status — Enter "
                                                  "applies, Escape clears", id="filter")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield self.summary
            yield self.table
            yield self.details
            yield self.filter_box
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.reload()
        self.set_interval(self.refresh_s, self.reload)

    def on_unmount(self) -> None:
        self.source.close()

    # ---------------------------------------------------------- refresh
    def reload(self) -> None:
        """Re-read the files and update what changed."""
        before = {v.id: v.status for v in self.views}
        try:
            self.views = self.source.rows()
            self.load_error = ""
        except (OrchestratorError, OSError) as e:  # a CSV mid-edit: keep the last table
            self.load_error = str(e).splitlines()[0] if str(e) else type(e).__name__
        crash = RowStatus.CRASH.label
        crashed = [v.id for v in self.views if v.status == crash
                   and before.get(v.id, crash) != crash]
        if crashed and self.sound:
            self.bell()
        self._say_stopped()
        self._update_summary()
        self._render_rows()

    @property
    def sound(self) -> bool:
        """``[notify] sound = true``: ring the terminal bell when a row crashes."""
        return self.config.notify_sound

    def _update_summary(self) -> None:
        self.summary.update(self.summary_text())

    def summary_text(self) -> str:
        """The header: queue, driver, counts per status (subclasses add to it)."""
        driver = read_driver_info(self.paths)
        counts = Counter(v.status for v in self.views)
        parts = [f"[{style_of(s)}]{s} {n}[/]"
                 for s, n in sorted(counts.items())]
        text = (f"[b]{escape(self.paths.name)}[/b]  {escape(str(self.paths.csv))}  "
                f"{'driver pid ' + str(driver.get('pid')) if driver else 'no driver'}\n"
                f"{len(self.views)} rows: {' · '.join(parts)}")
        if self.filter_text:
            text += f"  [i]filter: {escape(repr(self.filter_text))} ({len(self._shown)} shown)[/i]"
        busy: dict[str, set] = {}   # node -> GPU ids its running rows hold
        for view in self.views:
            gpus = view.cells.get("gpu_ids") or ""
            if RowStatus.from_label(view.status).is_active and gpus:
                busy.setdefault(view.cells.get("node") or "?", set()).update(gpus.split(","))
        if busy:
            text += "\nbusy GPUs: " + " · ".join(
                f"{escape(node)} [{','.join(sorted(ids))}]" for node, ids in sorted(busy.items()))
        text += "\n" + gpu_use_text(gpu_usage())
        for notice in self.source.notices:   # a misspelled column, before anything runs
            text += f"\n[yellow]{escape(notice)}[/yellow]"
        if self.load_error:
            text += f"\n[red]{escape(self.load_error)}[/red]"
        return text

    def _matches(self, view: RowView) -> bool:
        needle = self.filter_text.casefold()
        return not needle or any(needle in s.casefold()
                                 for s in (view.id, view.cells["name"], view.status))

    def _render_rows(self) -> None:
        shown = [v for v in self.views if self._matches(v)]
        if self.running_first:   # running, then waiting, then the rest; file order within
            shown.sort(key=lambda v: _ORDER.get(RowStatus.from_label(v.status), 3))
        self._shown = shown
        columns = fit_columns(shown, max((self.table.size.width or self.size.width) - 2, 20))
        keys = [v.key for v in shown]
        if columns != self._columns or keys != self._keys:
            self._rebuild(shown, columns)
            return
        table = self.table
        for view in shown:
            old = self._cells[view.key]
            for col in columns:
                new = view.cells[col.key]
                if old.get(col.key) != new:
                    table.update_cell(view.key, col.key, _cell(col.key, new), update_width=True)
            self._cells[view.key] = view.cells
        self._update_details()

    def _rebuild(self, shown: list[RowView], columns: list[ColumnSpec]) -> None:
        table = self.table
        selected = self.selected_key()
        table.clear(columns=columns != self._columns)
        if columns != self._columns:
            for col in columns:
                cap = NAME_MAX if col.key == "name" else WHY_MAX if col.key == "why" else 0
                width = cap if cap and any(cell_len(v.cells[col.key]) > cap for v in shown) \
                    else None
                table.add_column(col.label, key=col.key, width=width)
        for view in shown:
            table.add_row(*(_cell(c.key, view.cells[c.key]) for c in columns), key=view.key)
        self._columns, self._keys = columns, [v.key for v in shown]
        self._cells = {v.key: v.cells for v in shown}
        if selected in self._keys:
            table.move_cursor(row=self._keys.index(selected), animate=False)
        self._update_summary()
        self._update_details()

    def _update_details(self) -> None:
        view = self.selected()
        self.details.update(details_text(view) if view is not None else "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_details()

    def on_queue_table_resized(self) -> None:
        self._render_rows()

    def selected_key(self) -> str | None:
        if not self._keys:
            return None
        row = self.table.cursor_row
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def selected(self) -> RowView | None:
        key = self.selected_key()
        return next((v for v in self._shown if v.key == key), None)

    # ---------------------------------------------------------- actions
    def action_refresh_now(self) -> None:
        self.reload()

    def action_filter(self) -> None:
        box = self.filter_box
        box.value = self.filter_text
        box.add_class("-shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        self._close_filter()

    def action_clear_filter(self) -> None:
        self.filter_text = ""
        self._close_filter()

    def _close_filter(self) -> None:
        self.filter_box.remove_class("-shown")
        self.table.focus()
        self._render_rows()
        self._update_summary()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_details(self) -> None:
        self.details.toggle_class("-hidden")

    def action_order(self) -> None:
        self.running_first = not self.running_first
        self.notify("running rows first" if self.running_first else "file order")
        self._render_rows()

    def action_hold(self) -> None:
        view = self.selected()
        if view is None:
            return
        status = RowStatus.from_label(view.status)
        if status is RowStatus.HOLD:
            self._edit(view.id, {"TrainingCheck": ""}, f"{view.id} released: it may start")
        elif status in HOLDABLE:
            self._edit(view.id, {"TrainingCheck": "Hold"}, f"{view.id} on hold: it will not "
                       "start until you release it (h)")
        else:
            self.notify(f"{view.id} is {view.status}: only a waiting row can be held"
                        + (" — stop it first (s)" if status.is_active else ""),
                        severity="warning")

    def action_rerun(self) -> None:
        view = self.selected()
        if view is None:
            return
        if RowStatus.from_label(view.status) in RERUNNABLE:
            self._edit(view.id, {"TrainingCheck": "Rerun"}, f"{view.id} will run again")
        else:
            self.notify(f"{view.id} is {view.status}: only a finished row (Done, Crash, "
                        "Stopped) runs again", severity="warning")

    def action_priority(self, step: int) -> None:
        view = self.selected()
        if view is None:
            return
        if RowStatus.from_label(view.status).is_active or \
                RowStatus.from_label(view.status).is_finished:
            self.notify(f"{view.id} is {view.status}: Priority only orders rows that wait",
                        severity="warning")
            return
        self._edit(view.id, {}, "", priority_step=step)

    @work(thread=True, group="edit")
    def _edit(self, job_id: str, cells: dict[str, str], done: str,
              priority_step: int = 0) -> None:
        """Write the user's edit into the CSV, as an editor would (the driver reads it).
        ``priority_step``: add it to the row's Priority as the file has it now (so quick
        presses add up)."""
        try:
            with self._edit_lock:
                if priority_step:
                    rows = {(r.get("ID") or "").strip(): r
                            for _, r in self.paths.queue_file().read().rows()}
                    try:
                        now = float((rows.get(job_id) or {}).get("Priority") or 0)
                    except ValueError:
                        now = 0.0
                    if not math.isfinite(now):   # a cell the row is Invalid for
                        now = 0.0
                    new = now + priority_step   # 3, not 3.0; 1000001, not 1e+06
                    text = str(int(new)) if new.is_integer() else str(new)
                    cells = {"Priority": text}
                    done = f"{job_id}: Priority {text}"
                self.paths.queue_file().update({job_id: cells})
            message, severity = done, "information"
        except Exception as e:  # noqa: BLE001 — shown to the user, the UI goes on
            message, severity = f"could not edit {self.paths.csv}: {e}", "error"
        self.call_from_thread(self._done, job_id, message, severity)

    def action_log(self) -> None:
        view = self.selected()
        if view is not None:
            title = f"{view.id} {view.cells['name']}".strip()
            self.push_screen(LogScreen(title, view.log_path, view.why))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_log()

    def action_stop(self) -> None:
        view = self.selected()
        if view is None:
            return
        if self.stop_rows is None:
            self.notify("this view cannot stop rows", severity="warning")
            return
        status = RowStatus.from_label(view.status)
        if status.is_finished or status in (RowStatus.HOLD, RowStatus.INVALID):
            self.notify(f"{view.id} is {view.status}: nothing runs or waits to run, so "
                        "there is nothing to stop", severity="warning")
            return
        name = f" ({view.cells['name']})" if view.cells["name"] else ""

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {view.id}…")
                self._stop(view.id)

        self.push_screen(ConfirmScreen(f"Stop {view.id}{name}, now {view.status}?"), answered)

    @work(thread=True, group="stop")
    def _stop(self, job_id: str) -> None:
        """In a thread: stopping a running job may join Ray, which takes seconds."""
        try:
            outcome = self.stop_rows([job_id])
            message, severity = outcome.get(job_id, "nothing to do"), "information"
        except Exception as e:  # noqa: BLE001 — shown to the user, the UI goes on
            logger.exception("stopping %s", job_id)
            message, severity = f"could not stop: {e}", "error"
        self.call_from_thread(self._done, job_id, message, severity)

    def _done(self, job_id: str, message: str, severity: str) -> None:
        text = message if message.startswith(job_id) else f"{job_id}: {message}"
        running = message.startswith("stopping")
        if running:   # said until the row has stopped (see _say_stopped), not for 6 s
            self._stopping.add(job_id)
        self.notify(text, severity=severity, timeout=120 if running else 6)
        self.reload()

    def _say_stopped(self) -> None:
        """A row asked to stop has ended: the "stopping…" note gives way to how it ended."""
        ended = {v.id: v.status for v in self.views
                 if v.id in self._stopping and not _running(v.status)}
        if not ended:
            return
        self._stopping -= set(ended)
        self.clear_notifications()
        for job_id, status in ended.items():
            self.notify(f"{job_id}: {status}", timeout=6)


def _running(label: str) -> bool:
    try:
        return RowStatus.from_label(label).is_active
    except ValueError:
        return False
