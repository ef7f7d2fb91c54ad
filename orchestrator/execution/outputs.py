"""What an attempt leaves in its folder, read back into its ``AttemptReport``.

Used by its runner when it ends, and by a restarted driver for an attempt that
finished while no driver watched it.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.api import read_metrics
from orchestrator.core import AttemptReport
from orchestrator.infra import storage

__all__ = ["log_tail", "find_weight_file", "collect", "upload_outputs", "finished_exit_code",
           "log_line"]

#: Log lines an attempt's report carries (what a failure is told from, and notifications).
TAIL_LINES = 40


def log_tail(path: str | Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:]) if lines > 0 else ""


def find_weight_file(run_dir: Path, globs: tuple[str, ...], reported_best: str | None,
                     reported_last: str | None) -> str:
    """What the job reported (the best by metric, else the last), else the weights it left
    in its run dir: one file, else one named like "best", else the newest."""
    for reported in (reported_best, reported_last):
        if reported and (storage.is_uri(reported) or Path(reported).exists()):
            return str(reported)   # a URI: already in storage (a sweep's best trial)
    found = {p for g in globs for p in run_dir.rglob(g) if p.is_file()}
    if not found:
        return ""
    best = [p for p in found if "best" in p.name.lower()]
    pool = best or list(found)
    return str(max(pool, key=lambda p: (p.stat().st_mtime, str(p))))


def collect(report: AttemptReport, run_dir: Path, exit_code: int, weight_globs, metric: str,
            goal: str) -> AttemptReport:
    """``report`` with what the attempt left in ``run_dir``: its exit code, metrics,
    weights (when it succeeded) and the tail of its log."""
    summary = read_metrics(run_dir / "metrics.jsonl", metric, goal)
    log_path = report.log_path or str(run_dir / "run.log")
    weight_file = ""
    if exit_code == 0:
        weight_file = find_weight_file(run_dir, tuple(weight_globs), summary.best_weight,
                                       summary.last_weight)
    return report.replace(exit_code=exit_code, metric=metric, metric_goal=goal,
                          metrics=summary.last, best_metric=summary.best,
                          history=tuple(summary.history), weight_file=weight_file,
                          log_path=log_path, log_tail=log_tail(log_path))


def upload_outputs(report: AttemptReport, run_dir: Path, uri: str) -> AttemptReport:
    """Copy an attempt's log and metrics, and the weights of one that succeeded, to its
    storage URI; the report's ``weight_file`` becomes the weights' (public) URI, which any
    node can fetch. Weights that cannot be uploaded fail the attempt (a child on another
    node could not use them); a log that cannot is only a line in the log."""
    if report.ok and report.weight_file and not storage.is_uri(report.weight_file):
        weights = Path(report.weight_file)
        try:
            relative = weights.relative_to(run_dir).parts
        except ValueError:  # reported from elsewhere (the trainer's own folder)
            relative = ("weights", weights.name)
        try:
            report = report.replace(
                weight_file=storage.upload(weights, storage.join(uri, *relative)))
        except storage.StorageError as e:
            problem = (f"its weights could not be uploaded: {e} — they stay on {report.node} "
                       f"at {weights}; check the storage's credentials and space")
            report = report.replace(output_error=problem, weight_file="")
            log_line(run_dir, f"[orchestrator] {problem}")
    for name in ("run.log", "metrics.jsonl"):
        if (run_dir / name).is_file():
            try:
                storage.upload(run_dir / name, storage.join(uri, name))
            except storage.StorageError as e:
                log_line(run_dir, f"[orchestrator] {e}")
    return report


def log_line(run_dir: Path, line: str) -> None:
    """Append one of our own lines to the attempt's log."""
    try:
        with open(run_dir / "run.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")
    except OSError:
        pass


def finished_exit_code(run_dir: Path) -> int | None:
    """The exit code an attempt's supervisor wrote, or None if it never finished."""
    try:
        return int((run_dir / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None
