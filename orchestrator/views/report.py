"""The results report: one self-contained HTML page about a queue's runs.

``build_report`` reads the queue CSV, the run record and each run's latest
``metrics.jsonl`` and writes a single HTML file: status counts, a table of runs,
metric curves, the best models by a metric, and the metric against
hyperparameters for sweeps. Charts are PNGs drawn with matplotlib's Agg canvas
and the bundled DejaVu font, embedded as base64; the page loads nothing from
anywhere else. The page is Jinja2 templates (``templates/report.html.j2``, a partial
per section, the stylesheet and script beside them) rendered with autoescape: every CSV
cell is user input, and a template escapes whatever the code did not mark ``Markup``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import math
import os
import re
import shlex
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from markupsafe import Markup

from orchestrator.api import goal_of, read_metrics
from orchestrator.core import KNOWN_COLUMNS, JobSpec, RowStatus, canonical_column
from orchestrator.kinds import KINDS
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import Attempt, read_attempts
from orchestrator.store.registry import Experiment, read_experiments
from orchestrator.store.snapshot import Snapshot, SnapshotError, SnapshotStore, kept_copy
from orchestrator.views.diff import how_it_ran
from orchestrator.views.table import RowView, format_duration, gpus_text, status_rows

__all__ = ["build_report"]

MAX_METRIC_FIGURES = 6   # curve figures (one per metric key)
MAX_RUNS_PER_FIGURE = 12
MAX_BEST = 15            # bars in the best-models chart
MAX_PARAM_PLOTS = 4
MAX_POINTS = 2000        # points per curve; longer curves are thinned evenly
MAX_PARAM_COLUMNS = 8    # hyperparameter columns in the runs table (those that vary)
MAX_DIFF_LINES = 400     # of a run's local changes in its details
COMPARE_POINTS = 120     # points per curve kept for the interactive comparison
COMPARE_FIRST = 5        # runs compared when the page opens (the best ones)
NOT_METRICS = frozenset({"time", "step", "global_step", "epoch", "weight_file", "epochs",
                         "total_epochs", "num_epochs", "max_epochs", "total_steps",
                         "max_steps", "num_steps", "epochs_done"})   # progress, not results
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
       "savefig.dpi": 100, "svg.hashsalt": "report"}
_BADGE = {s.label: color for s, color in (
    (RowStatus.PENDING, "#8a8f98"), (RowStatus.HOLD, "#b07d2a"), (RowStatus.QUEUED, "#0e9aa7"),
    (RowStatus.TRAINING, "#2f6fdb"), (RowStatus.DONE, "#2e9e4f"), (RowStatus.CRASH, "#d0342c"),
    (RowStatus.STOPPED, "#d99a00"), (RowStatus.BLOCKED, "#a347ba"),
    (RowStatus.INVALID, "#8b1e1e"))}
_TEMPLATES = Path(__file__).with_name("templates")


@functools.lru_cache(maxsize=1)
def _environment():
    """The report's Jinja2 templates (``templates/report*.j2``), autoescaped: every value
    a template prints is escaped unless the code made it ``Markup``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.globals["BADGES"] = _BADGE
    return env


@dataclass
class Run:
    """One queue row as the report sees it."""

    row: RowView                                               # the row as every view sees it
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    last: dict = field(default_factory=dict)                   # the record's last metrics
    experiment: dict = field(default_factory=dict)             # its latest attempt's
    metric: str = ""                                           # its kind's own, if it has one
    goal: str = ""                                             # and that metric's goal
    trials: list[dict] = field(default_factory=list)           # a sweep's, from the registry
    cells: dict = field(default_factory=dict)                  # the CSV row as written
    params: dict = field(default_factory=dict)                 # its kind's config's values
    code: Snapshot | None = None                               # the code it was queued with
    code_diff: str = ""                                        # that code's local changes
    code_frozen: bool = False                                  # it ran in a copy of that code
    code_queued: str = ""            # it ran the live folder: the snapshot it was queued with

    @property
    def own_metric(self) -> tuple[str, float] | None:
        """The metric the row's kind judges it by (a sweep's, YOLO's mAP, the summarizer's
        ROUGE) and its best value as the registry recorded it; None for a command row."""
        if not self.metric:
            return None
        for source in ("best_metrics", "final_metrics"):
            value = (self.experiment.get(source) or {}).get(self.metric)
            if _is_number(value):
                return self.metric, float(value)
        return None

    @property
    def id(self) -> str:
        return self.row.id

    def values(self, key: str) -> list[float]:
        """Every value of ``key`` this run reported (the record's last one if no curve)."""
        if key in self.curves:
            return [y for _, y in self.curves[key]]
        return [float(self.last[key])] if _is_number(self.last.get(key)) else []

    def best(self, key: str, goal: str) -> float | None:
        values = self.values(key)
        return (max(values) if goal == "max" else min(values)) if values else None


def build_report(csv_path: str | Path, registry_path: str | Path, queue_name: str,
                 output: str | Path, metric: str = "", goal: str = "", *,
                 wandb_entity: str = "", wandb_project: str = "", encoding: str = "") -> Path:
    """Write the HTML report of ``queue_name`` to ``output`` and return its path.
    ``goal`` empty: from the metric's name (``val_loss`` is minimised). With a W&B
    entity and project, run ids link to their W&B pages (nothing is fetched). ``encoding``:
    the CSV's, when it is not UTF-8."""
    if goal not in ("", "max", "min"):
        raise ValueError(f"goal={goal!r}: use max or min")
    import matplotlib

    csv_path, output = Path(csv_path), Path(output)
    runs = _load_runs(csv_path, Path(registry_path), queue_name, encoding)
    params = _parameters(runs)
    note, given = "", bool(metric)
    if not metric:
        metric = _default_metric(runs)
    if metric:
        why = "" if goal else " (from its name)"
        goal = goal or goal_of(metric)
        better = "higher" if goal == "max" else "lower"
        note = (Markup("Ranked by <b>{}</b>, {} is better{}").format(metric, better, why)
                if given else
                Markup("No metric was given; using <b>{}</b>, the first numeric metric "
                       "found, {} is better{}").format(metric, better, why)) \
            + " — choose with --metric and --goal."
    goal = goal or "max"
    params.pop(metric, None)
    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")  # DejaVu lacks CJK
        wandb = (wandb_entity, wandb_project) if wandb_entity and wandb_project else None
        context = {
            "queue_name": queue_name, "csv_path": str(csv_path.resolve()),
            "generated": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
            "counts": _counts(runs), "n_runs": len(runs),
            "table": _runs_table(runs, metric, goal, wandb, _hyperparameters(runs, params)),
            "best": _best_section(runs, metric, goal, note),
            "compare": _compare_section(runs, metric, goal, skip=params),
            "curves": _curves_section(runs, metric, goal, skip=params),
            "params": _params_section(runs, params, metric, goal),
            "sweeps": _sweeps_section(runs),
            "css": _static("report.css"), "script": _static("report.js")}
    page = _environment().get_template("report.html.j2").render(context)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, output)
    return output


# ------------------------------------------------------------------ loading
def _load_runs(csv_path: Path, registry_path: Path, queue_name: str,
               encoding: str = "") -> list[Run]:
    latest = _latest_attempts(registry_path, queue_name)
    experiments = read_experiments(registry_path, queue_name) if registry_path.is_file() else []
    by_attempt = {(e.job_id, e.attempt): e for e in experiments if not e.parent_id}
    trials: dict[int, list[Experiment]] = {}
    for e in experiments:
        if e.parent_id:
            trials.setdefault(e.parent_id, []).append(e)
    runs = []
    code_of = functools.cache(functools.partial(_code_of, registry_path.parent / "snapshots"))
    table = QueueFile(csv_path, encoding=encoding or None).read()
    raw = {}
    for _, cells in table.rows():
        raw.setdefault((cells.get("ID") or "").strip(), cells)
    for row in status_rows(table.rows(), latest, base_dir=csv_path.parent):
        attempt = latest.get(row.id)
        row = _fill_from_record(row, attempt)
        path = Path(row.log).parent / "metrics.jsonl" if row.log else None
        last = (attempt.metrics if attempt else None) or {}
        exp = by_attempt.get((row.id, attempt.attempt if attempt else None)) or {}
        code, local = code_of(attempt.code if attempt else None)
        spec = _kind_spec(row, csv_path.parent, code, registry_path.parent / "snapshots")
        metric, goal = _kind_metric(row, spec)
        params = _kind_params(row, spec)
        runs.append(Run(row=row, curves=_read_curves(path) if path else {}, last=last,
                        experiment=exp, trials=trials.get(exp.get("id"), []),
                        metric=metric, goal=goal, cells=raw.get(row.id, {}),
                        params=params, code=code, code_diff=local,
                        code_frozen=bool(attempt and attempt.frozen),
                        code_queued=(attempt.snapshot or "") if attempt and attempt.ran_snapshot
                        else ""))
    return runs


def _code_of(folder: Path, snapshot_id: str | None) -> tuple[Snapshot | None, str]:
    """The snapshot an attempt names and its local changes (git's diff against its
    commit, cut at ``MAX_DIFF_LINES``); (None, "") when it names none or it is gone."""
    if not snapshot_id:
        return None, ""
    store = SnapshotStore(folder)
    try:
        snapshot = store.load(snapshot_id)
        lines = store.blob(snapshot.diff).decode("utf-8", "replace").splitlines() \
            if snapshot.diff else []
    except (OSError, ValueError, SnapshotError):   # gone or damaged: no code shown
        return None, ""
    more = len(lines) - MAX_DIFF_LINES
    if more > 0:
        lines = [*lines[:MAX_DIFF_LINES], f"… {more} more lines: orchestrator diff shows "
                 "the whole of it"]
    return snapshot, "\n".join(lines)


def _kind_metric(row: RowView, spec: JobSpec | None) -> tuple[str, str]:
    """The metric and goal a row's kind judges it by (a sweep file's ``metric``, YOLO's
    mAP…); ("", "") for a command row, whose metric is the queue's."""
    if spec is None:
        return "", ""
    try:
        name, goal = KINDS[row.kind].metric(spec, "", "")
    except Exception:  # noqa: BLE001 - a config that no longer loads: nothing to say
        return "", ""
    return (name, goal if goal in ("max", "min") else goal_of(name)) if name else ("", "")


def _kind_params(row: RowView, spec: JobSpec | None) -> dict[str, str]:
    """The hyperparameters a row's config file sets ({} for a command row)."""
    if spec is None:
        return {}
    try:
        return KINDS[row.kind].params(spec)
    except Exception:  # noqa: BLE001 - a config that no longer loads: nothing to say
        return {}


def _kind_spec(row: RowView, base_dir: Path, code: Snapshot | None = None,
               snapshots: Path | None = None) -> JobSpec | None:
    """The row as its kind reads it (None for a command row, or one without a config):
    its config as the code its latest attempt ran kept it (``code``), not a file saved
    since; the live file when that snapshot did not keep it."""
    if row.kind == "command" or not row.config:
        return None
    path = Path(row.config).expanduser()
    path = path if path.is_absolute() else base_dir / path
    kept = kept_copy(code, SnapshotStore(snapshots), path) if code and snapshots else None
    return JobSpec(id=row.id, line=row.line, kind=row.kind, config_path=kept or path)


def _fill_from_record(row: RowView, attempt: Attempt | None) -> RowView:
    """Cells the CSV lacks (the user cleared them, or an old file) come from the record."""
    if row.started or attempt is None or not attempt.started:
        return row
    return dataclasses.replace(row, started=datetime.fromtimestamp(attempt.started)
                               .strftime("%Y-%m-%d %H:%M:%S"))


def _latest_attempts(registry_path: Path, queue_name: str) -> dict[str, Attempt]:
    """``{job id: latest attempt}``, read-only; no record file means no attempts."""
    if not registry_path.is_file():
        return {}
    return {a.job_id: a for a in read_attempts(registry_path, queue_name)}  # last wins


def _read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``{key: [(x, value)]}`` of every numeric key; x is ``step`` or the line number."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for index, line in enumerate(read_metrics(path).history):
        x = float(line["step"]) if _is_number(line.get("step")) else float(index)
        for key, value in line.items():
            if key not in NOT_METRICS and _is_number(value):
                curves.setdefault(str(key), []).append((x, float(value)))
    return curves


def _parameters(runs: list[Run]) -> dict[str, dict[str, float]]:
    """Numeric keys constant within each run and different between runs (``lr``, ...):
    ``{key: {run id: value}}``. A key needs one run that reported it at least twice."""
    keys = dict.fromkeys(k for r in runs for k in (*r.curves, *r.last) if k not in NOT_METRICS)
    params = {}
    for key in keys:
        per_run = {r.id: r.values(key) for r in runs if r.values(key)}
        if all(len(set(v)) == 1 for v in per_run.values()) \
                and any(len(v) > 1 for v in per_run.values()) \
                and len({v[0] for v in per_run.values()}) > 1:
            params[key] = {run_id: v[0] for run_id, v in per_run.items()}
    return params


_FLAG = re.compile(r"^--?([A-Za-z][\w.-]*)$")
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def command_flags(command: str) -> dict[str, str]:
    """``--lr 0.01 --batch-size=32 -e 3`` → ``{"lr": "0.01", "batch_size": "32", "e": "3"}``:
    the flags of a command that take a value (a flag followed by another flag, or by
    nothing, is a switch: "on")."""
    try:
        words = shlex.split(command)
    except ValueError:   # an unbalanced quote: the words as they stand
        words = command.split()
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        match = _FLAG.match(name)
        if not match or _NUMBER.match(name):
            continue
        key = match.group(1).replace("-", "_")
        if eq:
            out[key] = value
        elif i + 1 < len(words) and (not words[i + 1].startswith("-")
                                     or _NUMBER.match(words[i + 1])):
            out[key] = words[i + 1]
        else:
            out[key] = "on"
    return out


def _hyperparameters(runs: list[Run], reported: dict[str, dict[str, float]]
                     ) -> tuple[list[str], dict[str, dict[str, str]], dict[str, str]]:
    """The runs' hyperparameters: the user's own columns, the command's flags and the
    values the runs report that are constant within a run (``reported``). Returns the
    keys that differ between runs (columns, at most ``MAX_PARAM_COLUMNS``), each run's
    values, and the keys every run has alike (said once above the table)."""
    values: dict[str, dict[str, str]] = {}
    for run in runs:
        own = {k.strip(): v.strip() for k, v in run.cells.items()
               if k and canonical_column(k) not in KNOWN_COLUMNS and v and v.strip()}
        flags = command_flags(run.row.command) if run.row.command else {}
        values[run.id] = {**run.params, **flags, **own}
    for key, per_run in reported.items():
        for run_id, value in per_run.items():
            values.setdefault(run_id, {}).setdefault(key, f"{value:g}")
    keys = list(dict.fromkeys(k for v in values.values() for k in v))
    varying = [k for k in keys if len({v.get(k, "") for v in values.values()}) > 1]
    same = {k: next(iter(values.values()))[k] for k in keys
            if k not in varying and len(values) > 1}
    return varying[:MAX_PARAM_COLUMNS], values, same


def _default_metric(runs: list[Run]) -> str:
    """The first numeric key that changes during a run, else the first numeric key."""
    keys = list(dict.fromkeys(k for r in runs for k in (*r.curves, *r.last)
                              if k not in NOT_METRICS and r.values(k)))
    changing = (k for k in keys if any(len(set(r.values(k))) > 1 for r in runs))
    return next(changing, keys[0] if keys else "")


def _ranked(runs: list[Run], metric: str, goal: str) -> list[tuple[Run, float]]:
    scored = [(r, r.best(metric, goal)) for r in runs] if metric else []
    scored = [(r, v) for r, v in scored if v is not None]
    return sorted(scored, key=lambda rv: rv[1], reverse=goal == "max")


# ------------------------------------------------------------------ charts
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@functools.cache
def _dejavu_chars() -> frozenset[int]:
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(findfont(FontProperties(family="DejaVu Sans"))).get_charmap())


def _drawable(text: str) -> str:
    """``text`` if DejaVu has all its glyphs, else "" (the HTML caption names it)."""
    return text if all(ord(c) in _dejavu_chars() for c in text) else ""


def _img(fig, alt: str) -> dict:
    """The figure as a PNG the page embeds (base64): ``{"alt", "data"}``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return {"alt": alt, "data": base64.b64encode(buf.getvalue()).decode("ascii")}


def _curve_chart(key: str, runs: list[Run]) -> dict:
    import matplotlib

    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"].colors
    for run, colour in zip(runs, colours, strict=False):
        points = run.curves[key][:: max(1, len(run.curves[key]) // MAX_POINTS)]
        style = "o-" if len(points) < 30 else "-"
        ax.plot(*zip(*points, strict=True), style, label=run.id, color=colour, linewidth=1.4,
                markersize=3)
    ax.set(title=_drawable(key), xlabel="step", ylabel=_drawable(key))
    if _log_scale([y for run in runs for _, y in run.curves[key]]):
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole numbers
    ax.legend(fontsize=7, loc="best", ncols=2 if len(runs) > 6 else 1)
    return _img(fig, f"{key} per step")


def _log_scale(values: list[float]) -> bool:
    """Whether values span more than 10× (all positive): one run's scale would flatten
    the others on a linear axis."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def _best_chart(ranked: list[tuple[Run, float]], metric: str) -> dict:
    """A dot per run on an axis fitted to the values (bars from 0 would make 0.2500 and
    0.2514 look equal); log when they span more than 10×."""
    fig = _figure(7.5, 0.9 + 0.32 * len(ranked))
    ax = fig.add_subplot()
    ids = [r.id for r, _ in ranked]
    values = [v for _, v in ranked]
    ax.plot(values, range(len(ids)), "o", color="#2f6fdb", markersize=6, zorder=3)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.4g}", (v, i), textcoords="offset points", xytext=(6, -3),
                    fontsize=7)
    ax.set_yticks(range(len(ids)), ids)
    ax.invert_yaxis()  # the best at the top
    if _log_scale(values):
        ax.set_xscale("log")
        ax.margins(x=0.12)
    else:
        low, high = min(values), max(values)
        pad = (high - low) * 0.12 or abs(high) * 0.05 or 1.0
        ax.set_xlim(low - pad, high + pad * 1.6)   # room for the labels on the right
    ax.set(xlabel=_drawable(metric), title=_drawable(f"best {metric} per run"))
    ax.grid(axis="y", visible=True, alpha=0.15)
    return _img(fig, f"best {metric} per run")


def _scatter_chart(param: str, points: list[tuple[str, float, float]], metric: str) -> dict:
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    xs = [x for _, x, _ in points]
    ax.scatter(xs, [y for _, _, y in points], color="#d0342c", zorder=3)
    for run_id, x, y in points if len(points) <= MAX_RUNS_PER_FIGURE else ():
        ax.annotate(run_id, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if _log_scale(xs):   # a log-uniform lr spans decades
        ax.set_xscale("log")
    ax.margins(0.15)
    ax.set(xlabel=_drawable(param), ylabel=_drawable(metric),
           title=_drawable(f"{metric} vs {param}"))
    return _img(fig, f"{metric} vs {param}")


# ------------------------------------------------------------------ HTML
# What each section's template (templates/report_*.html.j2) shows, as plain values: the
# templates escape them.

@functools.lru_cache(maxsize=4)
def _static(name: str) -> Markup:
    """The page's own stylesheet or script, inlined as written (no template syntax)."""
    return Markup((_TEMPLATES / name).read_text(encoding="utf-8"))


def _counts(runs: list[Run]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.row.status] = counts.get(run.row.status, 0) + 1
    order = [s for s in _BADGE if s in counts] + [s for s in counts if s not in _BADGE]
    return [(s, counts[s]) for s in order]


def _runs_table(runs: list[Run], metric: str, goal: str,
                wandb: tuple[str, str] | None = None,
                hyper: tuple[list[str], dict, dict] = ([], {}, {})) -> dict | None:
    """One line per run — what tells runs apart: status, the hyperparameters that differ,
    the metric, time, the error's first line — sortable and filterable; the rest (where
    it ran, weights, W&B, command and config, the whole error) a click away (▸)."""
    if not runs:
        return None
    keys, values, same = hyper
    best_head = f"Best {metric}" if metric else "Best metric"
    heads = [("ID", ""), ("Name", ""), ("Status", ""), ("Try", ""),
             *((k, "param") for k in keys), (best_head, ""), ("Duration", ""),
             ("Started", ""), ("Parent", ""), ("Error", ""), ("Notes", "")]
    # The table is as wide as the window whatever the cells hold: the short columns as
    # wide as their heading and values (at most 12 characters), Name a share of the
    # window, Error and Notes the rest; a longer cell ends in "…", whole in its tooltip
    # and its details.
    def chars(head: str, texts=(), most: int = 12) -> float:
        return min(most, max([len(head), *(len(str(t or "")) for t in texts)])) * 1.1 + 1.5
    rows = [r.row for r in runs]
    widths = {"ID": chars("ID", [r.id for r in rows]) + 4.5, "Status": 9.5, "Try": 4,
              best_head: chars(best_head, ["0.0000"]), "Duration": chars("Duration"),
              "Started": 11.5, "Parent": chars("Parent", [r.parent for r in rows])}
    for k in keys:   # many hyperparameters: narrower, so Name keeps room
        widths[k] = chars(k, [values.get(r.id, {}).get(k, "") for r in runs],
                          most=12 if len(keys) <= 4 else 8 if len(keys) <= 6 else 6)
    # Name before Error and Notes: a share of the window of its own (they are whole in
    # the ▸ details); the two share what is left
    sizes = {**{h: f"{w:.1f}ch" for h, w in widths.items()}, "Name": "11%"}
    table_rows = []
    for run in runs:
        r = run.row
        best = run.best(metric, goal) if metric else None
        best = best if best is not None else (r.best_metric if not run.own_metric else None)
        own = run.own_metric
        mine = values.get(run.id, {})
        error = (r.error or "").strip()
        table_rows.append({
            "id": r.id, "name": r.name, "status": r.status, "attempts": r.cells["attempts"],
            "params": [(mine.get(k, ""), bool(_NUMBER.match(mine.get(k, "")))) for k in keys],
            "best": f"{best:.4g}" if best is not None else "",
            "best_sort": "" if best is None else f"{best:.10g}",
            "own": f"{own[0]} {own[1]:.4g}" if own and own[0] != metric else "",
            "duration": format_duration(r.elapsed_s), "elapsed": r.elapsed_s,
            "started_short": _short_time(r.started), "started": r.started,
            "parent": r.parent, "error_line": error.splitlines()[0] if error else "",
            "error": error, "notes": r.notes, "details": _details(run, wandb)})
    return {"metric": metric, "goal": goal, "heads": heads,
            "cols": [(h, sizes.get(h, "")) for h, _ in heads],
            "same": ", ".join(f"{k}={v}" for k, v in same.items()),
            "statuses": list(dict.fromkeys(r.row.status for r in runs)),
            "rows": table_rows}


def _details(run: Run, wandb: tuple[str, str] | None) -> list[tuple[str, object, str]]:
    """What a run's ▸ opens: everything the line leaves out, as (name, value, how it is
    shown: "" text, "code", "pre" or "link")."""
    r = run.row
    gpus = gpus_text(r.gpus, r.gpu_ids)
    where = " · ".join(x for x in (r.node, f"GPUs {gpus}" if gpus else "") if x)
    run_id = r.wandb_run_id
    link = (f"https://wandb.ai/{wandb[0]}/{wandb[1]}/runs/{run_id}", run_id) \
        if run_id and wandb is not None else None
    items = [("Where", where, ""), ("Ended", r.ended, ""),
             ("Weight file", r.weight_file, "code"),
             ("W&B run", link or run_id, "link" if link else ""),
             ("Command", r.command, "code"), ("Config", r.config, "code"),
             ("Notes", r.notes, ""), ("Error", r.error, "pre")]
    config = run.experiment.get("config") or {}
    ran = " ".join(f"{k}={v}" for k, v in config.items()
                   if k != "command" and v not in (None, "", {}))
    items.append(("Ran with", ran, "code"))
    if run.code is not None:
        c = run.code
        kept = [f for f in c.files if not f.startswith("/")]
        how = how_it_ran(c, run.code_frozen, queued=run.code_queued)
        items += [("Code", f"{c.state} · {how}", ""),
                  ("Files beside the commit", ", ".join(kept) if c.commit else "", "code"),
                  ("Local changes", run.code_diff, "pre")]
    return [item for item in items if item[1]]


def _short_time(stamp: str) -> str:
    """``2026-12-07 03:21:29`` → ``12-07 03:21`` (the whole stamp in the tooltip)."""
    match = re.match(r"^\d{4}-(\d\d-\d\d) (\d\d:\d\d)", stamp or "")
    return f"{match.group(1)} {match.group(2)}" if match else (stamp or "")


def _best_section(runs: list[Run], metric: str, goal: str, note: str) -> dict:
    ranked = _ranked(runs, metric, goal)[:MAX_BEST]
    return {"note": note, "metric": metric, "metric_repr": repr(metric), "goal": goal,
            "ranked": [(r.id, r.row.name, f"{v:.6g}") for r, v in ranked],
            "order": ", ".join(r.id for r, _ in ranked),
            "chart": _best_chart(ranked, metric) if ranked else None}


def _compare_section(runs: list[Run], metric: str, goal: str, skip=()) -> dict | None:
    """The curves of the runs ticked in the table, overlaid on axes fitted to them (log
    when they span more than 10×), one metric at a time — drawn in the page by its
    script from the data below it (each curve thinned to ``COMPARE_POINTS``)."""
    keys = [k for k in dict.fromkeys(k for r in runs for k in r.curves)
            if k not in skip and any(len(set(r.values(k))) > 1 for r in runs)]
    if not keys:
        return None
    keys.sort(key=lambda k: k != metric)
    data = {}
    for run in runs:
        curves = {}
        for key in keys:
            points = run.curves.get(key) or []
            step = max(1, math.ceil(len(points) / COMPARE_POINTS))
            if points:
                kept = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
                curves[key] = [[x, y] for x, y in kept if math.isfinite(y)]
        if curves:
            data[run.id] = curves
    first = [r.id for r, _ in _ranked(runs, metric, goal) if r.id in data][:COMPARE_FIRST] \
        or list(data)[:COMPARE_FIRST]
    blob = json.dumps({"keys": keys, "runs": data, "first": first}, separators=(",", ":"),
                      allow_nan=False)
    # inside <script>: no "<", ">" or "&" can end it or start markup (unicode escapes)
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {"keys": keys, "first": len(first), "by": metric or keys[0], "blob": Markup(blob)}


def _curves_section(runs: list[Run], metric: str, goal: str, skip=()) -> dict:
    keys = list(dict.fromkeys(k for r in runs for k in r.curves))
    own = {r.metric for r in runs if r.metric}   # each kind's own metric (ROUGE, mAP…) next
    keys = sorted(keys, key=lambda k: (k != metric, k not in own))  # the chosen one first
    curved = [k for k in keys if k not in skip and any(len(set(r.values(k))) > 1 for r in runs)]
    ranked = [r for r, _ in _ranked(runs, metric, goal)]
    order = ranked + [r for r in runs if r not in ranked]
    figures = []
    for key in curved[:MAX_METRIC_FIGURES]:
        with_key = [r for r in order if r.curves.get(key)]
        shown = with_key[:MAX_RUNS_PER_FIGURE]
        caption = f"{key}: {len(shown)} run(s)"
        if len(with_key) > len(shown):
            caption += f" of {len(with_key)}, the best by {metric} first"
        caption += "; x is the step (the line number where a run reports none)"
        figures.append((_curve_chart(key, shown), caption))
    return {"figures": figures, "not_drawn": ", ".join(curved[MAX_METRIC_FIGURES:])}


def _params_section(runs: list[Run], params: dict, metric: str, goal: str) -> list:
    best = {r.id: v for r, v in _ranked(runs, metric, goal)}
    plots = []
    for param, values in params.items():
        points = [(run_id, x, best[run_id]) for run_id, x in values.items() if run_id in best]
        if len(points) >= 2:
            plots.append((_scatter_chart(param, points, metric),
                          f"best {metric} against {param} ({len(points)} runs)"))
        if len(plots) == MAX_PARAM_PLOTS:
            break
    return plots


MAX_TRIALS_SHOWN = 50


def _sweeps_section(runs: list[Run]) -> list[dict]:
    """Per sweep row: its trials (the registry's), each parameter against the metric, and
    every trial across all parameters (parallel coordinates)."""
    out = []
    for run in (r for r in runs if r.trials):
        trials = run.trials
        metric = next((str(k) for t in trials for k in (t.get("best_metrics") or {})), "")
        goal = run.goal or (goal_of(metric) if metric else "max")
        params = list(dict.fromkeys(k for t in trials for k in (t.get("config") or {})))
        scored = [t for t in trials if _trial_value(t, metric) is not None]
        scored.sort(key=lambda t: _trial_value(t, metric), reverse=goal == "max")
        rest = [t for t in trials if t not in scored]
        rows = []
        for t in (scored + rest)[:MAX_TRIALS_SHOWN]:
            value = _trial_value(t, metric)
            cfg = t.get("config") or {}
            rows.append((t.get("name", ""), t.get("status", ""),
                         [_short(cfg.get(p)) for p in params],
                         "" if value is None else f"{value:.6g}"))
        figures = []
        numeric = [p for p in params   # numbers that differ between trials
                   if len({t["config"][p] for t in scored
                           if _is_number((t.get("config") or {}).get(p))}) >= 2]
        for p in numeric[:MAX_PARAM_PLOTS]:
            points = [(str(i), float(t["config"][p]), _trial_value(t, metric))
                      for i, t in enumerate(scored, 1) if _is_number(t["config"].get(p))]
            figures.append((_scatter_chart(p, points, metric),
                            f"{metric} against {p} ({len(points)} trials)"))
        if len(numeric) >= 2 and len(scored) >= 2:
            figures.append((_parallel_chart(scored, numeric, metric, goal),
                            f"every trial across its parameters; colour: {metric}, "
                            f"{'higher' if goal == 'max' else 'lower'} is better"))
        out.append({"id": run.id, "n_trials": len(trials), "n_scored": len(scored),
                    "metric": metric, "goal": goal, "params": params, "rows": rows,
                    "figures": figures})
    return out


def _trial_value(trial: dict, metric: str) -> float | None:
    for source in ("best_metrics", "final_metrics"):
        value = (trial.get(source) or {}).get(metric)
        if _is_number(value):
            return float(value)
    return None


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _parallel_chart(trials: list[dict], params: list[str], metric: str, goal: str) -> dict:
    import matplotlib

    axes = [*params, metric]
    columns = {p: [float(t["config"].get(p)) if _is_number(t["config"].get(p)) else math.nan
                   for t in trials] for p in params}
    columns[metric] = [_trial_value(t, metric) for t in trials]
    scaled = {}
    for key, values in columns.items():
        finite = [v for v in values if not math.isnan(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if low > 0 and high / low > 10 and key != metric:   # a log-spaced parameter
            values, low, high = ([math.log10(v) if v == v else v for v in values],
                                 math.log10(low), math.log10(high))
        span = (high - low) or 1.0
        scaled[key] = [(v - low) / span for v in values]
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    scores = columns[metric]
    low, high = min(scores), max(scores)
    cmap = matplotlib.colormaps["viridis" if goal == "max" else "viridis_r"]
    for i in range(len(trials)):
        share = (scores[i] - low) / ((high - low) or 1.0)
        ax.plot(range(len(axes)), [scaled[k][i] for k in axes], "-o", color=cmap(share),
                linewidth=1.2, markersize=3, alpha=0.85)
    ax.set_xticks(range(len(axes)), [_drawable(a) for a in axes])
    ax.set_yticks([0, 1], ["low", "high"])
    ax.set(title=_drawable(f"trials: parameters and {metric}"))
    ax.grid(axis="y", visible=False)
    return _img(fig, f"parallel coordinates of the trials and {metric}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
