"""What the terminal shows: one line per status change, and status tables."""

from __future__ import annotations

import sys
import time
from datetime import datetime

from rich.console import Console
from rich.table import Table

from orchestrator.jobs import JobStatus

__all__ = ["ProgressPrinter", "status_rows", "render_status", "STATUS_STYLE"]

STATUS_STYLE = {
    "": "dim", "Queued": "cyan", "Training": "bold blue", "Done": "green", "Crash": "bold red",
    "Stopped": "yellow", "Blocked": "magenta", "Invalid": "red",
}


class ProgressPrinter:
    """A scheduler observer printing ``time ID (name) old → new …`` lines."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True)

    def __call__(self, job, old: JobStatus, new: JobStatus, cells: dict) -> None:
        now = datetime.now().strftime("%H:%M:%S")
        name = f" ({job.spec.name})" if job.spec is not None and job.spec.name else ""
        label = new.value or "Pending"
        style = STATUS_STYLE.get(new.value, "")
        extra = ""
        cells = {**job.row, **cells}
        if new == JobStatus.QUEUED:
            extra = f" attempt {job.attempt}"
        elif new in (JobStatus.DONE, JobStatus.CRASH, JobStatus.STOPPED, JobStatus.INVALID,
                     JobStatus.BLOCKED) or (new == JobStatus.PENDING and old.active):
            error = cells.get("Error", "")
            weight = cells.get("WeightFile", "") if new == JobStatus.DONE else ""
            if weight:
                extra += f" weights {weight}"
            if error:
                extra += f" — {error}"
        elif new == JobStatus.TRAINING:
            extra = f" on {cells.get('Node', '')}"
        self.console.print(f"{now} [bold]{job.id}[/]{name} {old.value or 'Pending'} → "
                           f"[{style}]{label}[/]{extra}", markup=True, highlight=False)


def status_rows(rows: list[tuple[int, dict]], attempts: dict[str, dict]) -> list[dict]:
    """One dict per queue row for ``orchestrator status`` (and its ``--json``)."""
    out = []
    now = time.time()
    for line, row in rows:
        job_id = (row.get("ID") or "").strip()
        if not job_id:
            continue
        latest = attempts.get(job_id) or {}
        started, ended = latest.get("started"), latest.get("ended")
        status = JobStatus.parse(row.get("TrainingCheck", "")).value
        elapsed = None
        if started and status in ("Training", "Done", "Crash", "Stopped"):
            elapsed = (ended or now) - started if status != "Training" else now - started
        out.append({
            "id": job_id, "name": row.get("Name", ""), "status": status or "Pending",
            "line": line, "attempts": row.get("Attempts", ""), "node": row.get("Node", ""),
            "gpus": latest.get("gpus") or "", "started": row.get("Started", ""),
            "ended": row.get("Ended", ""), "elapsed_s": round(elapsed, 1) if elapsed else None,
            "best_metric": row.get("BestMetric", ""), "weight_file": row.get("WeightFile", ""),
            "wandb_run_id": row.get("WandbRunID", ""), "error": row.get("Error", ""),
            "log": row.get("LogFile", ""),
        })
    return out


def format_duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def render_status(rows: list[dict], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left", header_style="bold")
    for column, kw in (("ID", {"no_wrap": True}), ("Name", {"no_wrap": True, "max_width": 20}),
                       ("Status", {"no_wrap": True}),
                       ("Try", {"justify": "right"}), ("GPUs", {}),
                       ("Node", {"no_wrap": True, "max_width": 16}),
                       ("Time", {"justify": "right"}), ("Best", {"justify": "right"}),
                       ("W&B run", {"no_wrap": True}),
                       ("Weights / error", {"overflow": "ellipsis", "no_wrap": True,
                                            "max_width": 60})):
        table.add_column(column, **kw)
    for r in rows:
        style = STATUS_STYLE.get("" if r["status"] == "Pending" else r["status"], "")
        detail = r["error"] if r["status"] not in ("Done",) else (r["weight_file"] or r["error"])
        table.add_row(r["id"], r["name"], f"[{style}]{r['status']}[/]", r["attempts"], r["gpus"],
                      r["node"], format_duration(r["elapsed_s"]), r["best_metric"],
                      r["wandb_run_id"], detail)
    return table
