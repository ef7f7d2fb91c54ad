"""One row view model — what ``status``, ``--json``, the summary table and the TUI
show of each row — and its table in the terminal."""

from __future__ import annotations

import time

from rich.markup import escape
from rich.table import Table

from orchestrator.core import Failure, RowStatus, read_word

__all__ = ["status_rows", "render_status", "STATUS_STYLE", "format_duration", "style_of"]

STATUS_STYLE = {
    RowStatus.PENDING: "dim", RowStatus.HOLD: "yellow", RowStatus.QUEUED: "cyan",
    RowStatus.TRAINING: "bold blue", RowStatus.DONE: "green", RowStatus.CRASH: "bold red",
    RowStatus.STOPPED: "yellow", RowStatus.BLOCKED: "magenta", RowStatus.INVALID: "red",
}


def style_of(label: str) -> str:
    """The style of a status as shown (``Pending``, ``Done``, …)."""
    try:
        return STATUS_STYLE.get(RowStatus.from_label(label), "")
    except ValueError:
        return ""


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
        word = read_word(row.get("TrainingCheck", ""))
        status = word.status if word.known else RowStatus.INVALID
        elapsed = None
        if started and (status is RowStatus.TRAINING or status.is_finished):
            elapsed = (ended or now) - started if status is not RowStatus.TRAINING \
                else now - started
        error = row.get("Error", "")
        failure = Failure.parse(error)
        out.append({
            "id": job_id, "name": row.get("Name", ""), "status": status.label,
            "line": line, "attempts": row.get("Attempts", ""), "node": row.get("Node", ""),
            "gpus": latest.get("gpus") or "", "started": row.get("Started", ""),
            "ended": row.get("Ended", ""), "elapsed_s": round(elapsed, 1) if elapsed else None,
            "best_metric": row.get("BestMetric", ""), "weight_file": row.get("WeightFile", ""),
            "wandb_run_id": row.get("WandbRunID", ""), "error": error,
            "failure": failure.kind.value if failure is not None else None,
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
    table = Table(title=escape(title) if title else None, title_justify="left",
                  header_style="bold")
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
        detail = r["error"] if r["status"] != RowStatus.DONE.label \
            else (r["weight_file"] or r["error"])
        table.add_row(*(escape(str(v)) for v in (r["id"], r["name"])),
                      f"[{style_of(r['status'])}]{r['status']}[/]",
                      *(escape(str(v)) for v in (r["attempts"], r["gpus"], r["node"],
                                                 format_duration(r["elapsed_s"]),
                                                 r["best_metric"], r["wandb_run_id"], detail)))
    return table
