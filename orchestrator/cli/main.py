"""The command line: ``orchestrator run|status|stop|logs``.

``python -m orchestrator.run queue.csv`` is ``orchestrator run queue.csv``. The
seed's flags (``--csv --config --create_config --check_interval
--max_training_process --wandb_entity --wandb_project --no_ui --auto_continue``)
keep working: every long flag takes dashes or underscores (help shows dashes).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.markup import escape

from orchestrator.cli import registry as registry_cli
from orchestrator.core import ATTEMPT_ACTIVE
from orchestrator.driver.control import NoPool, nothing_to_run, stop_rows, stop_rows_isolated
from orchestrator.driver.session import connect_ray
from orchestrator.infra import localray, storage
from orchestrator.infra.errors import ConfigError, OrchestratorError
from orchestrator.infra.raycluster import dashboard_url, reap_session, session_dir
from orchestrator.infra.validation import nearest
from orchestrator.store.config import Config, check_here, load_config, write_default_config
from orchestrator.store.paths import (
    DriverLock,
    QueuePaths,
    queue_paths,
    read_driver_info,
    record_run_config,
    recorded_config,
    recorded_encoding,
)
from orchestrator.store.record import RunRecord
from orchestrator.views.table import QueueSource, RowView, print_status

if TYPE_CHECKING:
    from orchestrator.observers.notify import Notifier

__all__ = ["main", "run_main", "drive"]

logger = logging.getLogger("orchestrator")


# ----------------------------------------------------------------- parsers
def _add_queue_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("queue", nargs="?", help="the queue CSV")
    p.add_argument("--config", help="INI or YAML config")
    p.add_argument("--state-dir", dest="state_dir", help="runs/ and registry.db (default: "
                   "runs/ beside the CSV)")
    p.add_argument("--name", dest="queue_name", help="queue name on Ray (default: CSV file name)")
    p.add_argument("--encoding", dest="csv_encoding", help="the CSV's encoding when it is not "
                   "UTF-8, e.g. cp949 or cp1252 (default: UTF-8, or UTF-16 with a BOM; the "
                   "views read it as the driver did)")


def _run_parser(p: argparse.ArgumentParser) -> None:
    _add_queue_args(p)
    p.add_argument("--csv", help="the queue CSV (seed flag; same as the positional)")
    p.add_argument("--create-config", metavar="PATH", help="write a commented default config "
                   "to PATH and exit")
    p.add_argument("--check-interval", type=float, help="seconds between full CSV re-reads")
    p.add_argument("--max-training-process", type=int, help="most jobs at once (0 = no cap)")
    p.add_argument("--wandb-entity")
    p.add_argument("--wandb-project")
    p.add_argument("--no-ui", action="store_true", default=None,
                   help="plain progress lines (also what a non-terminal gets)")
    p.add_argument("--auto-continue", action=argparse.BooleanOptionalAction, default=None,
                   help="keep starting rows as slots free (default); --no-auto-continue runs "
                   "the rows that fit now and exits when they finish")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else start a "
                   "local Ray)")
    p.add_argument("--num-gpus", dest="num_gpus", type=float,
                   help="logical GPUs for a new local Ray (try GPU packing on a laptop)")
    p.add_argument("--num-cpus", dest="num_cpus", type=float, help="CPUs for a new local Ray")
    p.add_argument("--storage", help="run outputs at a URI (s3://bucket/runs, gs://…) for a "
                   "cluster without a shared filesystem; see docs/cluster.md")
    p.add_argument("--watch", action="store_true", default=None,
                   help="keep running when the queue is finished, waiting for new rows")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _dashed(arg: str) -> str:
    """``--no_ui`` → ``--no-ui`` (a value after ``=`` is kept as written)."""
    if not arg.startswith("--") or arg == "--":
        return arg
    name, eq, value = arg.partition("=")
    return name.replace("_", "-") + eq + value


class _Parser(argparse.ArgumentParser):
    """Long flags in either spelling — the seed's ``--no_ui``, ``--check_interval`` and
    ours ``--num-gpus`` alike (help shows dashes) — and an unknown flag gets the
    nearest real one."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        return super().parse_known_args([*map(_dashed, args[:end]), *args[end:]], namespace)

    def _flags(self) -> list[str]:
        flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += sub._flags() if isinstance(sub, _Parser) else []
        return flags

    def error(self, message: str):
        found = re.search(r"unrecognized arguments: (.*)", message)
        if found:
            flags = sorted(set(self._flags()))
            hints = []
            for word in found.group(1).split():
                near = nearest(word.split("=")[0], flags)
                if word.startswith("-") and near:
                    hints.append(f"{word}: did you mean {near}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator", description=(
        "Run a CSV queue of training jobs on Ray."))
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub.add_parser("run", help="run a queue (the driver)"))
    p = sub.add_parser("status", help="show a queue's rows and their status")
    _add_queue_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("check", help="every row's verdict before anything runs (no Ray)")
    _add_queue_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("stop", help="stop rows of a queue (running or not yet started)")
    _add_queue_args(p)
    p.add_argument("ids", nargs="*", help="row IDs")
    p.add_argument("--all", action="store_true", help="every row not finished yet")
    p = sub.add_parser("tui", help="a live terminal UI of a queue (leaving it stops nothing)")
    _add_queue_args(p)
    p = sub.add_parser("logs", help="print a row's log")
    _add_queue_args(p)
    p.add_argument("id", help="row ID")
    p.add_argument("--attempt", type=int, help="which attempt (default: the latest)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while it runs")
    p.add_argument("--storage", help="the queue's storage URI: read a log that is not on this "
                   "machine from there")
    p = sub.add_parser("rerun", help="run finished rows again (as writing Rerun in "
                       "TrainingCheck does)")
    _add_queue_args(p)
    p.add_argument("ids", nargs="+", help="row IDs")
    p.add_argument("--same-code", dest="same_code", action="store_true",
                   help="from the code its attempt ran with (its snapshot), not the folder's now")
    p.add_argument("--attempt", type=int, help="with --same-code: which attempt's code "
                   "(default: the latest)")
    p = sub.add_parser("diff", help="how two rows or attempts differ: command and code "
                       "(the code each ran); `diff queue.csv ID` shows what changed since it")
    _add_queue_args(p)
    p.add_argument("a", help="a row ID (its latest attempt), ID:N (attempt N), or . (the "
                   "folder now)")
    p.add_argument("b", nargs="?", default=".", help="the other one (default: ., the queue's "
                   "folder as it is now)")
    p.add_argument("--stat", action="store_true", help="only which files changed, and how much")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    registry_cli.add_parser(sub)
    p = sub.add_parser("sweep", help="W&B sweep files")
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("check", help="validate a sweep file without running it")
    q.add_argument("file", help="a W&B sweep YAML")
    q.add_argument("--json", action="store_true", help="the normalized spec as JSON")
    q = verbs.add_parser("run", help="run a sweep on Ray Tune (also what a Kind=sweep row runs)")
    q.add_argument("file", help="a W&B sweep YAML")
    q.add_argument("--gpus-per-trial", type=float, default=0.0)
    q.add_argument("--cpus-per-trial", type=float, default=1.0)
    q.add_argument("--max-concurrent", type=int, default=0, help="0 = as many as fit")
    q.add_argument("--storage", help="Tune results: a folder (default: runs/sweeps beside the "
                   "file) or a URI such as s3://bucket/sweeps")
    q.add_argument("--name", help="sweep name (default: the file's name); reruns resume it")
    q.add_argument("--program", help="what ${program} runs, for a file without program: "
                   "(or instead of its own): a script (train.py) or a command line "
                   "(python train.py), which then stands for ${env} ${interpreter} ${program}")
    q.add_argument("--workdir", help="each trial's working folder (default: the sweep "
                   "file's folder)")
    q.add_argument("--seed", type=int, help="draw a random/bayes sweep's points from this "
                   "seed (default: the file's seed:, else a fresh one, printed at the end)")
    q.add_argument("--retries", type=int, default=1, help="retries of a crashed trial")
    q.add_argument("--address", help="Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    q.add_argument("--num-gpus", type=float, help="logical GPUs for a new local Ray")
    q.add_argument("--pretrained-path", help="appended to every run's arguments (a parent "
                   "row's weights; a URI is downloaded onto each trial's node)")
    q.add_argument("--report", action="store_true",
                   help="report the best metric, config and weights to $ORCH_METRICS_FILE")
    p = sub.add_parser("ray", help="the local Ray kept running between runs ([ray] "
                       "keep_alive)")
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("status", help="where it is, what it was started with, what uses it")
    q.add_argument("--json", action="store_true")
    verbs.add_parser("stop", help="stop it now (and whatever still runs on it)")
    p = sub.add_parser("report", help="one self-contained HTML page with tables and plots")
    _add_queue_args(p)
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write")
    p.add_argument("--metric", help="metric to rank by (default: the config's metric)")
    p.add_argument("--goal", choices=["max", "min"],
                   help="default: the config's metric_goal, else from the metric's name")
    return parser


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("filelock", "ray", "urllib3", "apprise"):  # apprise logs URLs with secrets
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args) -> tuple[Config, QueuePaths]:
    overrides = {k: getattr(args, k, None) for k in (
        "check_interval", "max_training_process", "wandb_entity", "wandb_project", "no_ui",
        "auto_continue", "address", "num_gpus", "num_cpus", "state_dir", "watch", "queue_name",
        "storage", "csv_encoding")}
    config = load_config(args.config, **overrides)
    csv = getattr(args, "queue", None) or getattr(args, "csv", None) or config.csv_file
    if not csv:
        raise OrchestratorError("no queue file: give its path (orchestrator run queue.csv) or "
                                "set csv_file in [general]")
    if not getattr(args, "queue", None) and not getattr(args, "csv", None) and args.config:
        csv = str(Path(args.config).expanduser().parent / csv) if not Path(csv).is_absolute() \
            else csv
    paths = queue_paths(csv, config)
    if args.config is None and getattr(args, "command", "run") != "run":   # the views
        used = recorded_config(paths)
        if used is not None:
            config = load_config(used, **overrides)
            paths = queue_paths(csv, config)
            print(f"(config: {used}, as the driver ran it; --config picks another)",
                  file=sys.stderr)
        if not paths.encoding:   # read the CSV as the driver did
            paths = dataclasses.replace(paths, encoding=recorded_encoding(paths))
    return config, paths


# ---------------------------------------------------------------- commands
def _console() -> Console:
    """A console that stays readable when piped (rich would squeeze it to 80 columns)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def cmd_run(args) -> int:
    if args.create_config:
        path = write_default_config(args.create_config)
        print(f"wrote {path}")
        return 0
    config, paths, table = _preflight(args)
    verdicts = _verdicts(paths, config, table)[0]
    said = [f"{paths.csv} {v.message}" for v in verdicts if not v.ok]
    for message in said:   # rows that cannot run: said before Ray starts, and once
        logging.getLogger("orchestrator").error(message)
    from orchestrator.observers.notify import Notifier  # apprise: only the driver needs it

    notifier = Notifier.from_config(config, queue_name=paths.name)  # so does a bad [notify]
    if config.storage:  # wrong credentials or a missing bucket too
        try:
            storage.probe(config.storage)
        except storage.StorageError as e:
            raise ConfigError(config.source, "storage", storage.public(config.storage),
                              str(e)) from None
    console = _console()
    with DriverLock(paths) as lock, contextlib.ExitStack() as held:
        # all finished, held or Invalid: no Ray needed (the driver's own reading decides,
        # asked only when the check found no row that would move)
        if not any(v.moves for v in verdicts) and nothing_to_run(paths, config):
            record_run_config(paths, config)
            try:
                return drive(paths, config, True, console, notifier=notifier, said=said,
                             pool=NoPool())
            finally:
                notifier.close(timeout=10)
        left = reap_session(lock.stale.get("ray_session", ""))
        if left:
            logging.getLogger("orchestrator").info(
                "stopped %d process(es) the local Ray of a killed driver (pid %s) left "
                "running", left, lock.stale.get("pid", "?"))
        kept = None
        idle = localray.keep_alive(config.keep_alive)
        if idle > 0 and not (config.address or os.environ.get("RAY_ADDRESS")):
            held.enter_context(localray.lease())   # before it starts: never idle meanwhile
            kept = localray.ensure(config.num_cpus, config.num_gpus, config.dashboard, idle)
        started_here = connect_ray(config, kept.address if kept else None)
        import ray  # after connect: joining sets the token mode Ray reads when it loads

        here = started_here or kept is not None   # this machine's Ray: resources fixed
        try:
            if here:   # pinned GPUs this machine does not have: refused before a row runs
                check_here(config, paths.csv.parent, ray.cluster_resources().get("GPU", 0.0))
            record_run_config(paths, config)
            lock.publish(ray.get_runtime_context().gcs_address, config.namespace,
                         ray_session=session_dir() if started_here else "")
            return drive(paths, config, here, console, notifier=notifier, said=said,
                         owns_ray=started_here, kept=kept)
        finally:
            notifier.close(timeout=10)
            ray.shutdown()


def drive(paths: QueuePaths, config: Config, local: bool, console: Console,
          install_signals: bool = True, notifier: Notifier | None = None,
          said: Iterable[str] = (), pool=None, owns_ray: bool | None = None,
          kept: localray.KeptRay | None = None) -> int:
    """Run the queue on the Ray this process is connected to (``pool``: another pool,
    a ``NoPool`` when nothing runs and Ray was not started); print the summary.
    ``local``: this machine's Ray; ``owns_ray``: it ends with this process (default:
    ``local``); ``kept``: the local Ray kept running between runs, which this joined."""
    owns_ray = local if owns_ray is None else owns_ray
    from orchestrator.driver.loop import Scheduler

    record = RunRecord(paths.registry)
    if isinstance(pool, NoPool):
        console.print(f"[bold]{paths.name}[/]: {paths.csv} — nothing to run (every row is "
                      "finished, held or Invalid), so Ray was not started")
    else:
        import ray

        resources = ray.cluster_resources()
        where = ("local, kept running between runs (stops after "
                 f"{kept.keep_alive:g} s idle; `orchestrator ray stop` ends it)" if kept
                 else "started here" if owns_ray else "cluster")
        console.print(f"[bold]{paths.name}[/]: {paths.csv} — Ray {where} with "
                      f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    if pool is None and dashboard_url():
        token = os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled"
        console.print(f"Ray dashboard: {dashboard_url()}" + (
            " — it asks for the cluster's token: `ray get-auth-token` prints it" if token
            else " (token authentication is off)"), highlight=False)
    from orchestrator.observers.console import ProgressPrinter
    from orchestrator.observers.metrics import QueueMetrics
    from orchestrator.observers.tracking import JobTracking

    tracking = JobTracking(paths.registry, paths.name, paths.csv.parent, config.metric,
                           config.goal)
    ui = console.is_terminal and not config.no_ui and not isinstance(pool, NoPool)
    printer = () if ui else (ProgressPrinter(console),)
    scheduler = Scheduler(paths.queue_file(), config, paths.state_dir, record,
                          queue_name=paths.name, local_ray=local,
                          observers=(*printer, tracking,
                                     # Ray's metrics: only with a Ray (import ray loads it)
                                     *([] if isinstance(pool, NoPool)
                                       else [QueueMetrics(paths.name)]),
                                     *([notifier] if notifier is not None else [])),
                          said=said, pool=pool, owns_ray=owns_ray)
    received: list[int] = []   # the signals that stopped the run
    try:
        if ui:
            code = _drive_with_ui(paths, config, scheduler, owns_ray)
        else:
            if install_signals:
                received = _install_interrupt(scheduler, console, owns_ray)
            code = scheduler.run()
        rows = _print_summary(console, paths, config)
        if notifier is not None:
            notifier.queue_done(rows, _best_row(rows, config.goal))
        if scheduler.interrupted:   # the shell's convention: 130 for Ctrl-C, 143 for TERM
            code = 128 + (received[0] if received else signal.SIGINT)
    finally:
        tracking.close()
        record.close()
    return code


def _drive_with_ui(paths: QueuePaths, config: Config, scheduler, local: bool) -> int:
    """The textual UI in this terminal while the scheduler runs in a thread; log lines go
    to a file meanwhile (they would tear the screen)."""
    from orchestrator.driver.ui import DriverApp

    log_file = paths.state_dir / f"driver-{paths.name}.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers = [handler]
    try:
        app = DriverApp(paths, config, scheduler, local=local)
        app.run()
        return app.join()
    finally:
        root.handlers = saved
        handler.close()


def _install_interrupt(scheduler, console: Console, local: bool) -> list[int]:
    """SIGINT / SIGTERM stop the run (twice: at once); returns the signals received."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        if scheduler.interrupted:
            raise KeyboardInterrupt
        if local:
            console.print("[yellow]stopping: running jobs get SIGTERM and go back to pending "
                          "(press Ctrl-C again to quit at once)[/]")
        else:
            console.print("[yellow]detaching: jobs keep running on the cluster; run the same "
                          "command again to re-attach[/]")
        scheduler.interrupt()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return received


def _best_row(rows: list[RowView], goal: str) -> dict | None:
    scored = [(r.best_metric, r) for r in rows if r.best_metric is not None]
    if not scored:
        return None
    value, row = (max if goal == "max" else min)(scored, key=lambda vr: vr[0])
    return {"id": row.id, "name": row.name, "best_metric": value}


def _print_summary(console: Console, paths: QueuePaths, config: Config) -> list[RowView]:
    source = QueueSource(paths, config)
    try:
        rows = source.rows()
    finally:
        source.close()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print_status(console, rows, title=f"{paths.name}: {paths.csv}")
    console.print(" · ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(f"updated CSV: {paths.csv}\nlogs:        {paths.state_dir}/<ID>/attempt-N/run.log"
                  f"\nregistry:    {paths.registry}")
    return rows


def _record(paths: QueuePaths) -> RunRecord | None:
    return RunRecord(paths.registry) if paths.registry.exists() else None


def cmd_status(args) -> int:
    config, paths = _load(args)
    source = QueueSource(paths, config)
    try:
        rows = source.rows()
    finally:
        source.close()
    driver = read_driver_info(paths)
    if args.json:
        print(json.dumps({"queue": paths.name, "csv": str(paths.csv),
                          "driver_pid": driver["pid"] if driver else None,
                          "rows": [r.to_json() for r in rows],
                          "notices": source.notices}, ensure_ascii=False, indent=1))
        return 0
    console = _console()
    print_status(console, rows, title=f"{paths.name}: {paths.csv}")
    for notice in source.notices:
        console.print(f"[yellow]warning:[/] {escape(notice)}", highlight=False)
    console.print(f"driver: pid {driver['pid']}" if driver else "driver: not running")
    return 0


def cmd_stop(args) -> int:
    config, paths = _load(args)
    if not args.ids and not args.all:
        raise OrchestratorError("name the row IDs to stop, or --all")
    for job_id, what in stop_rows(paths, config, None if args.all else args.ids).items():
        print(f"{job_id}: {what}")
    return 0


def cmd_logs(args) -> int:
    config, paths = _load(args)
    record = _record(paths)
    attempt = record.attempt(paths.name, args.id, args.attempt or None) if record else None
    if attempt is None:
        raise OrchestratorError(f"no attempt of {args.id} recorded in {paths.registry}")
    path = Path(attempt.log_path)
    if not path.parent.exists() and not args.follow:   # it ran on a node whose disk is not ours
        if config.storage:
            uri = storage.join(config.storage, args.id, f"attempt-{attempt.attempt}", "run.log")
            try:
                sys.stdout.write(storage.read_text(uri))
                return 0
            except storage.StorageError as e:
                raise OrchestratorError(f"{args.id}: no log at {path} here, and {e}") from None
        raise OrchestratorError(
            f"{args.id}: no log at {path} on this machine (attempt {attempt.attempt} ran on "
            f"{attempt.node or 'another node'}): read it there, or run the queue with "
            "storage = s3://… so each attempt's log is uploaded")
    pos = 0
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not args.follow:
            return 0
        latest = record.latest(paths.name, args.id)
        if latest and (latest.attempt != attempt.attempt or
                       latest.status not in ATTEMPT_ACTIVE):
            if not chunk:
                return 0
        time.sleep(0.3)


def cmd_rerun(args) -> int:
    from orchestrator.store.record import PINNED

    _, paths = _load(args)
    queue = paths.queue_file()
    rows = {(row.get("ID") or "").strip(): row for _, row in queue.read().rows()}
    record = _record(paths)
    if args.attempt and not args.same_code:
        raise OrchestratorError("--attempt N says whose code --same-code runs: add --same-code")
    for job_id in args.ids:
        if job_id not in rows:
            raise OrchestratorError(f"{paths.csv}: no row with ID {job_id!r}")
        if (rows[job_id].get("TrainingCheck") or "").strip() in ATTEMPT_ACTIVE:
            raise OrchestratorError(f"{job_id} is running: stop it first (orchestrator stop "
                                    f"{paths.csv} {job_id})")
    pins = {}
    for job_id in args.ids if args.same_code else ():
        attempt = record.attempt(paths.name, job_id, args.attempt) if record else None
        if attempt is None or not attempt.code:
            which = f"attempt {args.attempt}" if args.attempt else "an attempt"
            raise OrchestratorError(f"{job_id}: no {which} with a code snapshot in "
                                    f"{paths.registry}, so there is no code to run it from")
        pins[job_id] = attempt
    for job_id, attempt in pins.items():   # before the word: a driver reads the pin with it
        record.save_snapshot(paths.name, job_id, "", attempt.code, PINNED)
    if record is not None:
        record.close()
    queue.update({job_id: {"TrainingCheck": "Rerun"} for job_id in args.ids})
    running = read_driver_info(paths) is not None
    for job_id in args.ids:
        code = f" from the code of attempt {pins[job_id].attempt} (snapshot " \
            f"{pins[job_id].code})" if job_id in pins else ""
        print(f"{job_id}: runs again{code}" + ("" if running else
              f" when the queue runs (orchestrator run {paths.csv})"))
    return 0


def cmd_diff(args) -> int:
    from orchestrator.views.diff import compare, render

    config, paths = _load(args)
    if not paths.registry.exists():
        raise OrchestratorError(f"no run record at {paths.registry}: run the queue first")
    left, right, code = compare(paths, args.a, args.b, stat=args.stat, config=config)
    if args.json:
        print(json.dumps({"a": left.to_json(), "b": right.to_json(),
                          "same_command": left.command == right.command,
                          "same_code": not code.strip(), "code_diff": code}, indent=1))
    else:
        sys.stdout.write(render(left, right, code))
    return 0


def cmd_report(args) -> int:
    from orchestrator.views.report import build_report

    config, paths = _load(args)
    out = build_report(paths.csv, paths.registry, paths.name, args.output,
                       metric=args.metric or config.metric,
                       goal=args.goal or config.metric_goal,
                       wandb_entity=config.wandb_entity, wandb_project=config.wandb_project,
                       encoding=paths.encoding)
    print(f"wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    from sweeps import SweepError, load_sweep

    if args.verb == "run":
        return _sweep_run(args)
    try:
        spec = load_sweep(args.file)
    except SweepError as e:
        if args.json:
            print(json.dumps({"ok": False, "errors": [str(i) for i in e.issues]}, indent=1))
        else:
            print(f"{args.file}: {len(e.issues)} problem(s)", file=sys.stderr)
            for issue in e.issues:
                print(f"  {issue}", file=sys.stderr)
        return 2
    normalized = spec.normalized()
    if args.json:
        print(json.dumps({"ok": True, "warnings": [str(w) for w in spec.warnings],
                          "spec": normalized}, indent=1, ensure_ascii=False, default=str))
        return 0
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(yaml.safe_dump(json.loads(json.dumps(normalized, default=str)), sort_keys=False,
                         allow_unicode=True), end="")
    print(f"{args.file}: OK")
    return 0


def _sweep_run(args) -> int:
    import ray

    from orchestrator import report
    from orchestrator.api import read_metrics
    from orchestrator.execution.outputs import find_weight_file
    from orchestrator.kinds.sweep import write_trials
    from sweeps import load_sweep, run_sweep

    spec = load_sweep(args.file)   # a bad file fails before Ray starts
    if args.program:
        if spec.program and spec.program != args.program:
            print(f"{args.file}: running --program {args.program!r} instead of the file's "
                  f"program: {spec.program}", file=sys.stderr)
        spec = spec.with_program(args.program)
    if spec.needs_program:
        print(f"{args.file}: the sweep has no program: and none was given — pass --program "
              "train.py (or a command line such as 'python train.py'), or add program: to "
              "the file; a Kind=sweep row names it in TrainingCommand", file=sys.stderr)
        return 2
    config = load_config(None, address=args.address,
                         num_gpus=args.num_gpus).replace(dashboard=False)
    remote = storage.is_uri(args.storage)
    where = args.storage if remote else \
        Path(args.storage or Path(args.file).resolve().parent / "runs" / "sweeps")
    pretrained = args.pretrained_path
    if pretrained and not storage.is_uri(pretrained):
        pretrained = str(Path(pretrained).resolve())   # the trials run in their own folders
    elif pretrained:
        pretrained = storage.with_options(pretrained, args.storage)
    connect_ray(config)
    try:
        outcome = run_sweep(spec, storage_path=where, name=args.name,
                            gpus_per_trial=args.gpus_per_trial,
                            cpus_per_trial=args.cpus_per_trial,
                            max_concurrent_trials=args.max_concurrent,
                            max_failures=args.retries, pretrained_path=pretrained,
                            seed=args.seed,
                            workdir=Path(args.workdir).resolve() if args.workdir else None)
    finally:
        ray.shutdown()
    metric = spec.metric.name if spec.metric else "metric"
    for trial in sorted(outcome.trials, key=lambda t: (t["metric"] is None, t["metric"] or 0),
                        reverse=bool(spec.metric and spec.metric.mode == "max")):
        print(f"{trial['status']:<10} {metric}={trial['metric']}  {json.dumps(trial['config'])}")
    print(f"{outcome.num_trials} trials, {outcome.errors} failed; best {metric}="
          f"{outcome.best_metric} with {json.dumps(outcome.best_config)}")
    if outcome.best_config is not None:   # one per sweep, in its own folder
        best_config = json.dumps(outcome.best_config, indent=1)
        if remote:
            best_file = storage.write_text(storage.join(outcome.path, "best_config.json"),
                                           best_config)
        else:
            best_file = Path(outcome.path) / "best_config.json"
            best_file.write_text(best_config, encoding="utf-8")
        print(f"best config: {best_file}")
    print(f"seed {outcome.seed} (--seed {outcome.seed} or seed: {outcome.seed} in the file "
          "draws the same points again)")
    run_dir = os.environ.get("ORCH_RUN_DIR")
    if args.report and run_dir:  # the driver links each trial to the row's experiment
        write_trials(Path(run_dir), metric, spec.metric.goal if spec.metric else "",
                     outcome.trials)
    if args.report and outcome.best_metric is not None:
        weights = ""
        goal = spec.metric.mode if spec.metric else "min"
        if outcome.best_trial_dir and remote:   # its folder is in the bucket
            weights = _remote_trial_weights(outcome.best_trial_dir, args.storage, metric, goal)
        elif outcome.best_trial_dir:  # what the best trial reported, else the weights it left
            trial = read_metrics(Path(outcome.best_trial_dir) / "metrics.jsonl", metric, goal)
            weights = find_weight_file(Path(outcome.best_trial_dir),
                                       load_config(None).weight_globs, trial.best_weight,
                                       trial.last_weight)
        report(**{metric: outcome.best_metric}, best_config=outcome.best_config,
               trials=outcome.num_trials, failed_trials=outcome.errors, seed=outcome.seed,
               **({"weight_file": weights} if weights else {}))
    return 0 if outcome.best_metric is not None else 1


def _remote_trial_weights(trial_uri: str, storage_uri: str, metric: str, goal: str) -> str:
    """The URI of the weights a trial uploaded with its folder ("" when it reported none)."""
    from orchestrator.api import summarize_metrics

    uri = storage.with_options(trial_uri, storage_uri)
    try:
        text = storage.read_text(storage.join(uri, "metrics.jsonl"))
    except storage.StorageError as e:
        logger.warning("the best trial's metrics: %s", e)
        return ""
    summary = summarize_metrics(text, metric, goal)
    relative = summary.best_weight or summary.last_weight
    return storage.public(storage.join(uri, relative)) if relative else ""


def _verdicts(paths: QueuePaths, config: Config, table):
    """``check_rows`` of the queue's ``table``, with the registry's models if any; and
    the header's notices."""
    from orchestrator.store.registry import ModelRegistry
    from orchestrator.views.check import check_rows

    models = ModelRegistry(paths.registry) if paths.registry.exists() else None
    try:
        return (check_rows(table, paths.csv.parent, models.resolve if models else None),
                table.column_notices(config.own_column_names))
    finally:
        if models is not None:
            models.close()


def _preflight(args):
    """What ``run`` refuses before Ray starts, and ``check`` says the same way: the
    config, a file that cannot be read as a queue, a missing setup script or conda.
    Returns the config, the paths and the file as read."""
    config, paths = _load(args)
    table = paths.queue_file().read()
    check_here(config, paths.csv.parent)
    return config, paths, table


def cmd_check(args) -> int:
    config, paths, table = _preflight(args)
    verdicts, notices = _verdicts(paths, config, table)
    bad = [v for v in verdicts if not v.ok]
    if args.json:
        print(json.dumps({"csv": str(paths.csv), "notices": notices, "rows": [
            {"line": v.line, "id": v.id, "name": v.name, "ok": v.ok, "verdict": v.text}
            for v in verdicts]}, ensure_ascii=False, indent=1))
        return 1 if bad else 0
    console = _console()
    from orchestrator.views.check import VerdictLines

    console.print(VerdictLines(verdicts, f"{paths.name}: {paths.csv}"), soft_wrap=True)
    for notice in notices:
        console.print(f"[yellow]warning:[/] {escape(notice)}", highlight=False)
    blocked = sum(v.ok and v.text.startswith("Blocked") for v in verdicts)
    console.print(f"{len(verdicts)} rows: {len(verdicts) - len(bad) - blocked} will run, "
                  f"wait or are finished; {blocked} Blocked; {len(bad)} Invalid"
                  + (" — fix them, then run" if bad else ""))
    return 1 if bad else 0


def cmd_tui(args) -> int:
    from orchestrator.views.tui import QueueApp

    config, paths = _load(args)
    paths.queue_file().read()  # a missing or broken file fails here, with its message
    QueueApp(paths, config, stop=lambda ids: stop_rows_isolated(paths, config, ids)).run()
    return 0


def cmd_ray(args) -> int:
    """``orchestrator ray status|stop``: this user's kept local Ray."""
    if args.verb == "stop":
        kept = localray.stop()
        print(f"stopped the local Ray at {kept.address}" if kept
              else "no local Ray is kept running")
        return 0
    found = localray.status()
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    if found is None:
        print("no local Ray is kept running (the next `orchestrator run` starts one)")
        return 0
    age = time.time() - found["started"]
    sizes = ", ".join(f"{'detected' if found[k] < 0 else f'{found[k]:g}'} {what}"
                      for k, what in (("num_gpus", "GPUs"), ("num_cpus", "CPUs")))
    print(f"local Ray at {found['address']} ({sizes}), up {age / 60:.0f} min, stops after "
          f"{found['keep_alive']:g} s idle\n"
          f"in use by: {found['busy'] or 'nothing (idle)'}\n"
          f"dashboard: {found['dashboard'] or 'off'}\nfolder:    {found['folder']}")
    return 0


COMMANDS = {"run": cmd_run, "tui": cmd_tui, "status": cmd_status, "check": cmd_check,
            "stop": cmd_stop,
            "logs": cmd_logs, "registry": registry_cli.run, "report": cmd_report,
            "diff": cmd_diff, "rerun": cmd_rerun,
            "sweep": cmd_sweep, "ray": cmd_ray}


class _ReaderMayLeave(io.TextIOBase):
    """The driver's stdout/stderr: when its reader is gone (``run … | tee log`` and Ctrl-C
    ends ``tee`` first), writing goes quiet instead of raising ``BrokenPipeError`` into
    whatever was printing, so the shutdown and the final CSV write always happen."""

    def __init__(self, stream):
        self._stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except (BrokenPipeError, ValueError):
                self._leave()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._leave()

    def _leave(self) -> None:
        self.gone = True
        try:   # what the interpreter flushes at exit lands nowhere, without an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return not self.gone and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return self._stream.encoding

    def writable(self) -> bool:
        return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    streams = sys.stdout, sys.stderr
    if args.command == "run" and not isinstance(sys.stdout, _ReaderMayLeave):
        sys.stdout, sys.stderr = _ReaderMayLeave(sys.stdout), _ReaderMayLeave(sys.stderr)
    try:
        return _main(args)
    finally:
        sys.stdout, sys.stderr = streams


def _main(args) -> int:
    _setup_logging(getattr(args, "verbose", False))
    try:
        return COMMANDS[args.command](args)
    except OrchestratorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `orchestrator … | head`
        sys.stderr.close()
        return 0


def run_main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.run …``: the ``run`` command (seed-style flags)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(["run", *argv])
