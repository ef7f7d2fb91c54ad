"""The results report: one self-contained HTML page about a queue's runs.

``build_report`` reads the queue CSV, the run record and each run's latest
``metrics.jsonl`` and writes a single HTML file: status counts, a table of runs,
metric curves, the best models by a metric, and the metric against
hyperparameters for sweeps. Charts are PNGs drawn with matplotlib's Agg canvas
and the bundled DejaVu font, embedded as base64; the page loads nothing from
anywhere else. Every CSV cell is user input and is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.api import goal_of, read_metrics
from orchestrator.core import JobSpec, RowStatus
from orchestrator.kinds import KINDS
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import read_attempts
from orchestrator.store.registry import read_experiments
from orchestrator.views.table import format_duration, gpus_text, status_rows

__all__ = ["build_report"]

MAX_METRIC_FIGURES = 6   # curve figures (one per metric key)
MAX_RUNS_PER_FIGURE = 12
MAX_BEST = 15            # bars in the best-models chart
MAX_PARAM_PLOTS = 4
MAX_POINTS = 2000        # points per curve; longer curves are thinned evenly
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
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{margin-bottom:.2em}.meta{color:#666;font-size:.9em}
.badge{display:inline-block;padding:.15em .6em;border-radius:1em;color:#fff;font-size:.85em}
.counts .badge{font-size:1em;margin-right:.4em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path,td.err{max-width:28em;overflow-wrap:anywhere}.note{color:#666;font-style:italic}
td.notes{min-width:12em;max-width:24em}td.path{min-width:9em}
figure{margin:1em 0}figcaption{color:#444;font-size:.9em}img{max-width:100%}
"""


@dataclass
class Run:
    """One queue row as the report sees it."""

    row: dict                                                  # a ``status_rows`` entry
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    last: dict = field(default_factory=dict)                   # the record's last metrics
    experiment: dict = field(default_factory=dict)             # its latest attempt's
    metric: str = ""                                           # its kind's own, if it has one
    goal: str = ""                                             # and that metric's goal
    trials: list[dict] = field(default_factory=list)           # a sweep's, from the registry

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
        return self.row["id"]

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
        note = (f"Ranked by <b>{_e(metric)}</b>, {better} is better{why}" if given else
                f"No metric was given; using <b>{_e(metric)}</b>, the first numeric metric "
                f"found, {better} is better{why}") + " — choose with --metric and --goal."
    goal = goal or "max"
    params.pop(metric, None)
    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")  # DejaVu lacks CJK
        wandb = (wandb_entity, wandb_project) if wandb_entity and wandb_project else None
        body = [_header(queue_name, csv_path), _counts(runs),
                _runs_table(runs, metric, goal, wandb),
                _best_section(runs, metric, goal, note),
                _curves_section(runs, metric, goal, skip=params),
                _params_section(runs, params, metric, goal), _sweeps_section(runs)]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(queue_name)} report</title><style>{_CSS}</style></head>"
            f"<body>\n{''.join(body)}</body></html>\n")
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
    by_attempt = {(e["job_id"], e["attempt"]): e for e in experiments if not e.get("parent_id")}
    trials: dict[int, list[dict]] = {}
    for e in experiments:
        if e.get("parent_id"):
            trials.setdefault(e["parent_id"], []).append(e)
    runs = []
    table = QueueFile(csv_path, encoding=encoding or None).read()
    for row in status_rows(table.rows(), latest, base_dir=csv_path.parent):
        attempt = latest.get(row["id"]) or {}
        _fill_from_record(row, attempt)
        path = Path(row["log"]).parent / "metrics.jsonl" if row["log"] else None
        last = attempt.get("metrics") if isinstance(attempt.get("metrics"), dict) else {}
        exp = by_attempt.get((row["id"], attempt.get("attempt"))) or {}
        metric, goal = _kind_metric(row, csv_path.parent)
        runs.append(Run(row=row, curves=_read_curves(path) if path else {}, last=last,
                        experiment=exp, trials=trials.get(exp.get("id"), []),
                        metric=metric, goal=goal))
    return runs


def _kind_metric(row: dict, base_dir: Path) -> tuple[str, str]:
    """The metric and goal a row's kind judges it by (a sweep file's ``metric``, YOLO's
    mAP…); ("", "") for a command row, whose metric is the queue's."""
    if row["kind"] == "command" or not row["config"]:
        return "", ""
    path = Path(row["config"]).expanduser()
    spec = JobSpec(id=row["id"], line=row["line"], kind=row["kind"],
                   config_path=path if path.is_absolute() else base_dir / path)
    try:
        name, goal = KINDS[row["kind"]].metric(spec, "", "")
    except Exception:  # noqa: BLE001 - a config that no longer loads: nothing to say
        return "", ""
    return (name, goal if goal in ("max", "min") else goal_of(name)) if name else ("", "")


def _fill_from_record(row: dict, attempt: dict) -> None:
    """Cells the CSV lacks (the user cleared them, or an old file) come from the record."""
    row["attempts"] = str(row["attempts"] or "")
    row["gpus"] = gpus_text(row["gpus"], row["gpu_ids"])
    if not row["started"] and attempt.get("started"):
        row["started"] = datetime.fromtimestamp(attempt["started"]).strftime("%Y-%m-%d %H:%M:%S")


def _latest_attempts(registry_path: Path, queue_name: str) -> dict[str, dict]:
    """``{job id: latest attempt}``, read-only; no record file means no attempts."""
    if not registry_path.is_file():
        return {}
    return {a["job_id"]: a for a in read_attempts(registry_path, queue_name)}  # last wins


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


def _img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _curve_chart(key: str, runs: list[Run]) -> str:
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


def _best_chart(ranked: list[tuple[Run, float]], metric: str) -> str:
    fig = _figure(7.5, 0.9 + 0.32 * len(ranked))
    ax = fig.add_subplot()
    ids = [r.id for r, _ in ranked]
    values = [v for _, v in ranked]
    bars = ax.barh(range(len(ids)), values, color="#2f6fdb")
    ax.set_yticks(range(len(ids)), ids)
    ax.invert_yaxis()  # the best at the top
    ax.bar_label(bars, labels=[f"{v:.4g}" for v in values], padding=3, fontsize=7)
    ax.margins(x=0.15)
    ax.set(xlabel=_drawable(metric), title=_drawable(f"best {metric} per run"))
    ax.grid(axis="y", visible=False)
    return _img(fig, f"best {metric} per run")


def _scatter_chart(param: str, points: list[tuple[str, float, float]], metric: str) -> str:
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    xs = [x for _, x, _ in points]
    ax.scatter(xs, [y for _, _, y in points], color="#d0342c", zorder=3)
    for run_id, x, y in points if len(points) <= MAX_RUNS_PER_FIGURE else ():
        ax.annotate(run_id, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if min(xs) > 0 and max(xs) / min(xs) >= 100:
        ax.set_xscale("log")
    ax.margins(0.15)
    ax.set(xlabel=_drawable(param), ylabel=_drawable(metric),
           title=_drawable(f"{metric} vs {param}"))
    return _img(fig, f"{metric} vs {param}")


# ------------------------------------------------------------------ HTML
def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(status: str, label: str = "") -> str:
    colour = _BADGE.get(status, "#555")
    return f'<span class="badge" style="background:{colour}">{_e(label or status)}</span>'


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


def _nothing(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>\n'


def _header(queue_name: str, csv_path: Path) -> str:
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f"<h1>Queue {_e(queue_name)}</h1>\n<p class=\"meta\">CSV: <code>"
            f"{_e(csv_path.resolve())}</code><br>generated {_e(when)}</p>\n")


def _counts(runs: list[Run]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.row["status"]] = counts.get(run.row["status"], 0) + 1
    order = [s for s in _BADGE if s in counts] + [s for s in counts if s not in _BADGE]
    badges = " ".join(_badge(s, f"{s} {counts[s]}") for s in order)
    return f'<h2>Status</h2>\n<p class="counts">{badges or "no rows"} ' \
           f'<span class="meta">({len(runs)} rows)</span></p>\n'


def _runs_table(runs: list[Run], metric: str, goal: str,
                wandb: tuple[str, str] | None = None) -> str:
    if not runs:
        return "<h2>Runs</h2>\n" + _nothing("The queue has no rows.")
    best_head = f"Best {metric} ({goal})" if metric else "Best metric"
    heads = ["ID", "Name", "Status", "Parent", "Attempts", "Node", "GPUs", "Started",
             "Duration", best_head, "Own metric", "Weight file", "W&B run", "Notes", "Error",
             "Command"]
    lines = ["<h2>Runs</h2>\n<p class=\"meta\">Own metric: what a row is judged by when its "
             "kind has one (a sweep's metric, YOLO's mAP, the summarizer's ROUGE), best value."
             "</p>\n<div style=\"overflow-x:auto\"><table class=\"runs\"><tr>"
             + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr>"]
    for run in runs:
        r, best = run.row, run.best(metric, goal) if metric else None
        best = best if best is not None else (r["best_metric"] if not run.own_metric else None)
        own = run.own_metric
        own_text = f"{own[0]} {own[1]:.4g}" if own and own[0] != metric else ""
        cells = [(r["id"], ""), (r["name"], ""), None, (r["parent"], ""), (r["attempts"], "num"),
                 (r["node"], ""), (r["gpus"], ""), (r["started"], ""),
                 (format_duration(r["elapsed_s"]), "num"),
                 (f"{best:.4g}" if best is not None else "", "num"), (own_text, "num"),
                 (r["weight_file"], "path"), (r["wandb_run_id"], "wandb"),
                 (r["notes"], "notes"), (r["error"], "err"),
                 (r["command"] or r["config"], "cmd")]
        tds = "".join(f"<td>{_badge(r['status'])}</td>" if c is None else
                      _wandb_cell(c[0], wandb) if c[1] == "wandb" else
                      _command_cell(c[0], run) if c[1] == "cmd" else
                      f'<td{_class(c[1])}>{_e(c[0])}</td>' for c in cells)
        lines.append(f"<tr>{tds}</tr>")
    return "\n".join(lines) + "</table></div>\n"


def _wandb_cell(run_id: str, wandb: tuple[str, str] | None) -> str:
    if not run_id or wandb is None:
        return f"<td>{_e(run_id)}</td>"
    url = f"https://wandb.ai/{wandb[0]}/{wandb[1]}/runs/{run_id}"
    return f'<td><a href="{_e(url)}">{_e(run_id)}</a></td>'


def _command_cell(command: str, run: Run) -> str:
    """The command, and the config its attempt ran with, folded."""
    config = run.experiment.get("config") or {}
    if not command and not config:
        return "<td></td>"
    shown = command if len(command) <= 40 else command[:39] + "…"
    body = "".join(f"<tr><td>{_e(k)}</td><td class=\"path\">{_e(v)}</td></tr>"
                   for k, v in config.items() if v not in (None, "", {}))
    return (f'<td class="path"><details><summary><code>{_e(shown)}</code></summary>'
            f"<code>{_e(command)}</code><table>{body}</table></details></td>")


def _best_section(runs: list[Run], metric: str, goal: str, note: str) -> str:
    out = f"<h2>Best models</h2>\n{f'<p>{note}</p>' if note else ''}"
    ranked = _ranked(runs, metric, goal)[:MAX_BEST]
    if not ranked:
        return out + _nothing("Nothing to plot: no run reported a numeric metric"
                              + (f" named {metric!r}." if metric else "."))
    order = ", ".join(r.id for r, _ in ranked)
    rows = "".join(f'<tr><td class="num">{i}</td><td class="id">{_e(r.id)}</td>'
                   f'<td>{_e(r.row["name"])}</td><td class="num">{v:.6g}</td></tr>'
                   for i, (r, v) in enumerate(ranked, 1))
    return (out + f"<figure>{_best_chart(ranked, metric)}<figcaption>{_e(metric)}, "
            f"{'higher' if goal == 'max' else 'lower'} is better; best first: {_e(order)}"
            f"</figcaption></figure>\n<table class=\"ranking\" id=\"best-models\"><tr><th>#</th>"
            f"<th>ID</th><th>Name</th><th>{_e(metric)}</th></tr>{rows}</table>\n")


def _curves_section(runs: list[Run], metric: str, goal: str, skip=()) -> str:
    out = "<h2>Metric curves</h2>\n"
    keys = list(dict.fromkeys(k for r in runs for k in r.curves))
    own = {r.metric for r in runs if r.metric}   # each kind's own metric (ROUGE, mAP…) next
    keys = sorted(keys, key=lambda k: (k != metric, k not in own))  # the chosen one first
    curved = [k for k in keys if k not in skip and any(len(set(r.values(k))) > 1 for r in runs)]
    if not curved:
        return out + _nothing("Nothing to plot: no run's metrics.jsonl has a metric that "
                              "changes during the run.")
    ranked = [r for r, _ in _ranked(runs, metric, goal)]
    order = ranked + [r for r in runs if r not in ranked]
    for key in curved[:MAX_METRIC_FIGURES]:
        with_key = [r for r in order if r.curves.get(key)]
        shown = with_key[:MAX_RUNS_PER_FIGURE]
        caption = f"{key}: {len(shown)} run(s)"
        if len(with_key) > len(shown):
            caption += f" of {len(with_key)}, the best by {metric} first"
        caption += "; x is the step (the line number where a run reports none)"
        out += (f"<figure>{_curve_chart(key, shown)}<figcaption>{_e(caption)}</figcaption>"
                "</figure>\n")
    if len(curved) > MAX_METRIC_FIGURES:
        out += _nothing(f"Not drawn: {', '.join(curved[MAX_METRIC_FIGURES:])}.")
    return out


def _params_section(runs: list[Run], params: dict, metric: str, goal: str) -> str:
    best = {r.id: v for r, v in _ranked(runs, metric, goal)}
    plots = []
    for param, values in params.items():
        points = [(run_id, x, best[run_id]) for run_id, x in values.items() if run_id in best]
        if len(points) >= 2:
            plots.append(f"<figure>{_scatter_chart(param, points, metric)}<figcaption>best "
                         f"{_e(metric)} against {_e(param)} ({len(points)} runs)</figcaption>"
                         f"</figure>")
        if len(plots) == MAX_PARAM_PLOTS:
            break
    if not plots:
        return ""
    return ("<h2>Metric vs parameter</h2>\n<div style=\"display:flex;flex-wrap:wrap;gap:1em\">"
            + "\n".join(plots) + "</div>\n")


MAX_TRIALS_SHOWN = 50


def _sweeps_section(runs: list[Run]) -> str:
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
        head = "".join(f"<th>{_e(p)}</th>" for p in params)
        rows = []
        for i, t in enumerate((scored + rest)[:MAX_TRIALS_SHOWN], 1):
            value = _trial_value(t, metric)
            cfg = t.get("config") or {}
            rows.append(f'<tr><td class="num">{i}</td><td>{_e(t.get("name", ""))}</td>'
                        f'<td>{_e(t.get("status", ""))}</td>'
                        + "".join(f'<td class="num">{_e(_short(cfg.get(p)))}</td>'
                                  for p in params)
                        + f'<td class="num">{"" if value is None else f"{value:.6g}"}</td>'
                        "</tr>")
        figures = []
        numeric = [p for p in params   # numbers that differ between trials
                   if len({t["config"][p] for t in scored
                           if _is_number((t.get("config") or {}).get(p))}) >= 2]
        for p in numeric[:MAX_PARAM_PLOTS]:
            points = [(str(i), float(t["config"][p]), _trial_value(t, metric))
                      for i, t in enumerate(scored, 1) if _is_number(t["config"].get(p))]
            figures.append(f"<figure>{_scatter_chart(p, points, metric)}<figcaption>"
                           f"{_e(metric)} against {_e(p)} ({len(points)} trials)"
                           "</figcaption></figure>")
        if len(numeric) >= 2 and len(scored) >= 2:
            figures.append(f"<figure>{_parallel_chart(scored, numeric, metric, goal)}"
                           f"<figcaption>every trial across its parameters; colour: "
                           f"{_e(metric)}, {'higher' if goal == 'max' else 'lower'} is better"
                           "</figcaption></figure>")
        out.append(
            f'<h2 id="sweep-{_e(run.id)}">Sweep {_e(run.id)}</h2>\n<p class="meta">'
            f"{len(trials)} trials, {len(scored)} with {_e(metric or 'a metric')}; best first"
            f" ({'higher' if goal == 'max' else 'lower'} is better)</p>\n"
            f'<table class="trials"><tr><th>#</th><th>trial</th><th>status</th>{head}'
            f"<th>{_e(metric)}</th></tr>{''.join(rows)}</table>\n"
            + (f'<div style="display:flex;flex-wrap:wrap;gap:1em">{"".join(figures)}</div>\n'
               if figures else ""))
    return "".join(out)


def _trial_value(trial: dict, metric: str) -> float | None:
    for source in ("best_metrics", "final_metrics"):
        value = (trial.get(source) or {}).get(metric)
        if _is_number(value):
            return float(value)
    return None


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _parallel_chart(trials: list[dict], params: list[str], metric: str, goal: str) -> str:
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
