"""``orchestrator registry …``: read the experiment tracker and model registry."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.api import goal_of
from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.registry import Experiment, ExperimentTracker, ModelRegistry, ModelVersion

__all__ = ["add_parser", "run", "find_registry"]


def add_parser(sub) -> None:
    p = sub.add_parser("registry", help="experiments and models (registry.db)")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--state-dir", help="folder holding registry.db (default: ./runs, "
                       "else the newest ./*/runs)")
    where.add_argument("--queue", help="a queue CSV: use the registry beside it (runs/)")
    where.add_argument("--json", action="store_true", help="machine-readable output")
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("experiments", parents=[where], help="list experiments")
    q.add_argument("--status", choices=["running", "completed", "failed", "stopped"])
    q.add_argument("--limit", type=int)
    q = verbs.add_parser("models", parents=[where], help="list registered models")
    q.add_argument("--name")
    q = verbs.add_parser("best", parents=[where], help="best models by a metric")
    q.add_argument("--metric", required=True)
    q.add_argument("--goal", choices=["max", "min"],
                   help="max or min (default: from the metric's name — loss, error, wer… "
                   "are lowest first — as the driver and the report rank)")
    q.add_argument("--limit", type=int, default=10)
    q = verbs.add_parser("search", parents=[where], help="filter models")
    q.add_argument("--architecture")
    q.add_argument("--name")
    q.add_argument("--min", action="append", default=[], metavar="METRIC=VALUE",
                   help="minimum performance (repeatable)")
    q = verbs.add_parser("show", parents=[where], help="one model: id, name:version or name")
    q.add_argument("model")
    q = verbs.add_parser("compare", parents=[where],
                         help="metrics of several models: ids, name:version or name")
    q.add_argument("models", nargs="+")
    q = verbs.add_parser("export", parents=[where], help="every model and experiment")
    q.add_argument("--format", choices=["csv", "json"], default="json")
    q.add_argument("-o", "--output", help="file (default: standard output)")


def find_registry(state_dir: str | None, queue: str | None) -> Path:
    """The registry.db to read: the one named, else ./runs, else the newest ./*/runs."""
    if state_dir:
        path = Path(state_dir) / "registry.db"
    elif queue:
        path = Path(queue).resolve().parent / "runs" / "registry.db"
    else:
        path = Path("runs") / "registry.db"
        if not path.exists():
            found = sorted(Path(".").glob("*/runs/registry.db"), key=lambda p: p.stat().st_mtime)
            if found:
                path = found[-1]
                print(f"(using {path})", file=sys.stderr)
    if not path.exists():
        raise OrchestratorError(f"no registry at {path} — run a queue first, or pass "
                                "--state-dir DIR / --queue QUEUE.csv")
    return path


def _when(ts) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _models_table(models: list[dict], metric: str = "") -> Table:
    keys = [metric] if metric else sorted({k for m in models for k in (m["performance"] or {})})[:6]
    table = Table(header_style="bold")
    for col in ("id", "model", "arch", *keys, "weights", "created"):
        table.add_column(col, justify="right" if col in keys or col == "id" else "left",
                         overflow="fold")
    for m in models:
        perf = m["performance"] or {}
        table.add_row(str(m["id"]), f"{m['name']}:{m['version']}", m["architecture"] or "",
                      *(_fmt(perf.get(k)) for k in keys), m["file_path"] or "",
                      _when(m["created"]))
    return table


def _experiments_table(exps: list[dict]) -> Table:
    table = Table(header_style="bold")
    for col in ("id", "name", "status", "started", "duration", "best metrics", "model", "W&B"):
        table.add_column(col, overflow="fold")
    for e in exps:
        duration = f"{e['ended'] - e['started']:.1f}s" if e["ended"] and e["started"] else ""
        best = ", ".join(f"{k}={_fmt(v)}" for k, v in list((e["best_metrics"] or {}).items())[:4])
        table.add_row(str(e["id"]), e["name"], e["status"], _when(e["started"]), duration, best,
                      str(e["model_id"] or ""), e["wandb_run_id"] or "")
    return table


def _parse_min(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise OrchestratorError(f"--min {item!r} — write METRIC=NUMBER, e.g. "
                                    "--min accuracy=0.8") from None
        if not sep or not name.strip():
            raise OrchestratorError(f"--min {item!r} — write METRIC=NUMBER")
    return out


def run(args) -> int:
    path = find_registry(args.state_dir, args.queue)
    models, tracker = ModelRegistry(path), ExperimentTracker(path)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    heading = ""
    try:
        if args.verb == "experiments":
            data = tracker.list_experiments(status=args.status, limit=args.limit)
            table = _experiments_table(data)
        elif args.verb == "models":
            data = models.list_models(args.name)
            table = _models_table(data)
        elif args.verb == "best":
            goal = args.goal or goal_of(args.metric)
            data = models.get_best_models(args.metric, limit=args.limit, goal=goal)
            if not data and not args.json:
                console.print(f"no model reports {args.metric!r}")
                return 1
            table = _models_table(data, args.metric)
            heading = (f"ranked by {args.metric}, {'highest' if goal == 'max' else 'lowest'} "
                       "first" + ("" if args.goal else f" (from its name; --goal "
                                  f"{'min' if goal == 'max' else 'max'} to reverse)"))
        elif args.verb == "search":
            data = models.search_models(args.architecture, args.name, _parse_min(args.min))
            table = _models_table(data)
        elif args.verb == "show":
            model = _resolve(models, args.model, path)
            data = model.to_dict()
            if model.experiment_id:
                experiment = tracker.get_experiment(model.experiment_id)
                data["experiment"] = experiment.to_dict() if experiment else None
            data["lineage"] = [f"{m.name}:{m.version}" for m in models.lineage(model.id)[1:]]
            table = None
        elif args.verb == "compare":
            found = [_resolve(models, ref, path) for ref in args.models]
            data = models.compare_models([m.id for m in found])
            table = Table(header_style="bold")
            table.add_column("metric")
            for m in found:
                table.add_column(f"{m.name}:{m.version}", justify="right")
            for metric, values in data.items():
                table.add_row(metric, *map(_fmt, values))
        else:
            return _export(args, models, tracker)
        if args.json or table is None:
            print(json.dumps(_plain(data), ensure_ascii=False, indent=1, default=str))
        else:
            if heading:
                console.print(heading)
            console.print(table)
        return 0
    finally:
        models.close()
        tracker.close()


def _plain(data):
    """Registry rows (``Experiment``, ``ModelVersion``) as dicts, for JSON."""
    if isinstance(data, (Experiment, ModelVersion)):
        return data.to_dict()
    if isinstance(data, list):
        return [_plain(x) for x in data]
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    return data


def _resolve(models: ModelRegistry, reference: str, path: Path) -> ModelVersion:
    model = models.resolve(reference)
    if model is None:
        raise OrchestratorError(f"no model {reference!r} in {path} — give an id (12), "
                                "name:version (m1:2) or a name (m1, its latest); see "
                                "`orchestrator registry models`")
    return model


def _export(args, models: ModelRegistry, tracker: ExperimentTracker) -> int:
    data = {"models": models.list_models(), "experiments": tracker.list_experiments()}
    if args.format == "json":
        text = json.dumps(_plain(data), ensure_ascii=False, indent=1, default=str)
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["kind", "id", "name", "version", "status", "architecture",
                         "metrics", "file_path", "experiment_id", "wandb_run_id"])
        for m in data["models"]:
            writer.writerow(["model", m["id"], m["name"], m["version"], "", m["architecture"],
                             json.dumps(m["performance"]), m["file_path"], m["experiment_id"], ""])
        for e in data["experiments"]:
            writer.writerow(["experiment", e["id"], e["name"], "", e["status"], e["model_type"],
                             json.dumps(e["best_metrics"]), e["checkpoint_path"] or "", "",
                             e["wandb_run_id"]])
        text = buf.getvalue()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
