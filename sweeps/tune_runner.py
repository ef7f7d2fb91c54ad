"""Run a W&B sweep file on Ray Tune: ``run_sweep(path, storage_path=...)`` → ``SweepOutcome``.

Each trial runs the sweep's ``program`` (built by ``build_command``) under
``orchestrator.infra.supervise``, as W&B's agent would, with:

* ``WANDB_SWEEP_PARAM_PATH`` → a YAML ``{name: {value: v}}`` file in the trial
  folder, so ``wandb.init()`` fills ``wandb.config`` (works offline);
* ``WANDB_MODE=offline`` unless set, ``WANDB_DIR`` = the trial folder;
* ``ORCH_METRICS_FILE`` / ``ORCH_RUN_DIR`` in the trial folder;
* ``CUDA_VISIBLE_DEVICES`` = the GPUs Ray gave the trial ("" when none);
* ``sweeps/_wandb_shim`` first on ``PYTHONPATH``: its ``sitecustomize`` copies
  each ``wandb.log`` into ``ORCH_METRICS_FILE``;
* ``--pretrained_path P`` after its arguments when the sweep starts from a parent's
  weights (a URI is downloaded onto the trial's node first).

With a storage URI (``s3://…``) each trial works in a folder on its own node and, when
its program ends, uploads that folder to ``<storage>/<name>/<trial>``; weight paths in
its ``metrics.jsonl`` are rewritten relative to that folder, so the best trial's weights
are found in the bucket whichever node it ran on.

The trial reads the metrics file as it grows and calls ``tune.report`` for
each line that holds the sweep's metric, so Tune's searchers and ASHA see the
run live. A stop from Tune (ASHA) reaches the program: ``tune.report`` raises
``SystemExit`` in a stopped trial (``ray/train/_internal/session.py``,
``_TrainSession._report_training_result``) and ``reset_config`` sets the
session's ``stop_event`` (``ray/tune/trainable/function_trainable.py``);
either way the supervisor gets SIGTERM, and if the actor itself is killed the
supervisor sees its owner pid vanish.

Uses the Ray this process is connected to; it never calls ``ray.init``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.infra.storage import (
    StorageError,
    is_uri,
    join,
    local_copy,
    public,
    read_text,
    upload,
    write_text,
)
from orchestrator.infra.supervisors import Supervised, SupervisorServer
from sweeps.command import build_command
from sweeps.space import grid, to_tune_space
from sweeps.spec import SweepSpec, load_sweep

__all__ = ["run_sweep", "SweepOutcome", "DEFAULT_RUN_CAP", "SHIM_DIR"]

log = logging.getLogger(__name__)

DEFAULT_RUN_CAP = 20
SHIM_DIR = str(Path(__file__).resolve().parent / "_wandb_shim")
_PARAMS_FILE = "sweep-params.yaml"
_STOP_GRACE = 1.0      # seconds between SIGTERM and SIGKILL for a program Tune stops
_POLL = 0.05


@dataclass
class SweepOutcome:
    """What a sweep found. ``trials``: one dict per trial
    (``config`` nested, ``metric``, ``status``, ``error``, ``trial_dir``, ``iterations``)."""

    best_config: dict[str, Any] | None
    best_metric: float | None
    best_trial_dir: str | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    num_trials: int = 0
    path: str = ""        # the sweep's own folder (or URI, with its options): its trials
    seed: int = 0         # what drew its points: the same seed draws them again


# -- the trial ------------------------------------------------------------------------------

def _stop_requested() -> bool:
    """Has Tune asked this function trainable to stop? (best effort, internal API)."""
    try:
        from ray.train._internal.session import get_session
        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except Exception:
        return False


def _trial_dir() -> Path:
    """The trial's folder under ``storage_path/name``.

    ``tune.get_context().get_trial_dir()`` is a driver-side staging folder
    (``<ray session>/artifacts/<time>/<name>/driver_artifacts/<trial>``) that Tune
    copies to storage only now and then (``ray/train/_internal/storage.py``,
    ``trial_driver_staging_path``): files of a trial stopped early may never get
    there. With local storage we write to the storage folder itself.
    """
    try:
        from ray.train._internal.session import get_session
        path = Path(get_session().storage.trial_fs_path)
        if path.is_absolute():
            return path
    except Exception:
        pass
    from ray import tune
    return Path(tune.get_context().get_trial_dir()).resolve()


def _gpu_ids() -> str:
    import ray
    try:
        ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    except Exception:
        ids = ray.get_gpu_ids()
    return ",".join(str(g) for g in ids)


def _tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class _Trial:
    """The function trainable (a picklable callable: Tune names it ``sweep_trial``)."""

    __name__ = "sweep_trial"

    def __init__(self, spec: SweepSpec, workdir: str, env: Mapping[str, str] | None,
                 pretrained_path: str | None = None, upload_to: str = ""):
        self.spec, self.workdir, self.env = spec, workdir, dict(env or {})
        self.pretrained_path, self.upload_to = pretrained_path, upload_to

    def __call__(self, config: dict[str, Any]) -> None:
        flat = dict(config.get("__grid_point__", config))
        trial_dir = _trial_dir()
        trial_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("exit_code", "orphaned", "supervisor.pid", "pid", "metrics.jsonl"):
            (trial_dir / stale).unlink(missing_ok=True)
        nested = self.spec.run_config(flat)
        params_file = trial_dir / _PARAMS_FILE
        params_file.write_text(yaml.safe_dump({k: {"value": v} for k, v in nested.items()}),
                               encoding="utf-8")
        metrics_file = trial_dir / "metrics.jsonl"
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("WANDB_MODE", "offline")
        env.update(WANDB_DIR=str(trial_dir), WANDB_SWEEP_PARAM_PATH=str(params_file),
                   ORCH_METRICS_FILE=str(metrics_file), ORCH_RUN_DIR=str(trial_dir),
                   CUDA_VISIBLE_DEVICES=_gpu_ids())
        env["PYTHONPATH"] = os.pathsep.join(
            [SHIM_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.pop("RAY_ADDRESS", None)
        argv = build_command(self.spec, flat, workdir=trial_dir, environ=env)
        if self.pretrained_path:   # a URI is fetched onto this trial's node
            argv += ["--pretrained_path", local_copy(self.pretrained_path)]
        log_path = trial_dir / "run.log"
        try:
            self._run(trial_dir, argv, env, metrics_file, log_path)
        finally:
            if self.upload_to:
                _upload_trial(trial_dir, join(self.upload_to, _trial_name(trial_dir)))

    def _run(self, trial_dir: Path, argv: list[str], env: dict, metrics_file: Path,
             log_path: Path) -> None:
        with open(log_path, "ab") as out:
            out.write(f"[orchestrator] {time.strftime('%H:%M:%S')} run: {argv}\n".encode())
        started = _supervisors().launch({
            "grace": _STOP_GRACE, "run_dir": str(trial_dir), "log": str(log_path),
            "cwd": self.workdir, "env": env, "argv": argv})
        if started != 0:
            raise RuntimeError(f"the supervisor failed to start (see {log_path})")
        supervisor = Supervised(int((trial_dir / "supervisor.pid").read_text()), trial_dir)
        try:
            rc, reported = self._follow(supervisor, metrics_file)
        except BaseException:   # SystemExit from tune.report: Tune stopped this trial
            _terminate(supervisor)
            raise
        finally:
            supervisor.close()
        if rc is None:          # stopped by Tune between reports
            sys.exit(0)
        if rc != 0:
            raise RuntimeError(f"the program exited with {rc}; last lines of {log_path}:\n"
                               f"{_tail(log_path)}")
        metric = self.spec.metric
        if metric is not None and not reported:
            raise RuntimeError(f"the program exited 0 but never logged {metric.name!r} "
                               f"(see {log_path})")

    def _follow(self, supervisor: Supervised, metrics_file: Path):
        """Report metric lines until the program ends; (exit code or None if stopped, count)."""
        from ray import tune

        metric = self.spec.metric.name if self.spec.metric else None
        offset, reported = 0, 0
        while True:
            rc = supervisor.poll()
            offset, lines = _read_lines(metrics_file, offset)
            for line in lines:
                if metric and _is_number(line.get(metric)):
                    tune.report({k: v for k, v in line.items() if _is_number(v)})
                    reported += 1
            if rc is not None:
                return rc, reported
            if _stop_requested():
                _terminate(supervisor)
                return None, reported
            supervisor.wait(_POLL)   # returns at once when the program's supervisor exits


def _terminate(supervisor: Supervised) -> None:
    """SIGTERM to the program's supervisor, then wait (at most its grace) for its end."""
    try:
        supervisor.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + _STOP_GRACE + 0.5
    while time.monotonic() < deadline and supervisor.poll() is None:
        supervisor.wait(0.05)


@functools.cache
def _supervisors() -> SupervisorServer:
    """This process's standby supervisor server, started with its first trial (Tune
    reuses trial actors): the next trials' programs start without an interpreter of
    their own for the supervisor."""
    return SupervisorServer()


def _trial_name(local_dir: Path) -> str:
    """The trial's folder name in storage (Tune's ``trial_dir_name``)."""
    try:
        from ray.train._internal.session import get_session
        return Path(get_session().storage.trial_fs_path).name
    except Exception:
        return local_dir.name


def _upload_trial(local_dir: Path, uri: str) -> None:
    """Copy a finished trial's folder to ``uri``; its ``metrics.jsonl`` names weights
    relative to the folder (a weight file outside it goes up as ``weights/<name>``)."""
    metrics = local_dir / "metrics.jsonl"
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.exists() else []
        out = []
        for raw in lines:
            try:
                line = json.loads(raw)
            except ValueError:
                out.append(raw)
                continue
            weight = line.get("weight_file") if isinstance(line, dict) else None
            if isinstance(weight, str) and weight and not is_uri(weight):
                path = Path(weight)
                try:
                    line["weight_file"] = str(path.resolve().relative_to(local_dir.resolve()))
                except ValueError:
                    if path.exists():
                        upload(path, join(uri, "weights", path.name))
                    line["weight_file"] = f"weights/{path.name}"
            out.append(json.dumps(line))
        if lines:
            metrics.write_text("\n".join(out) + "\n", encoding="utf-8")
        upload(local_dir, uri)
    except StorageError as e:
        log.error("trial %s: %s", local_dir.name, e)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _read_lines(path: Path, offset: int) -> tuple[int, list[dict]]:
    """New complete JSON lines of ``path`` after byte ``offset``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset, []
    end = data.rfind(b"\n")
    if end < 0:
        return offset, []
    out = []
    for raw in data[:end].splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append(line)
    return offset + end + 1, out


# -- the sweep ------------------------------------------------------------------------------

def _search(spec: SweepSpec, seed: int, max_concurrent: int = 0):
    """(param_space, num_samples, search_alg, method actually used).

    Tune ignores ``TuneConfig.max_concurrent_trials`` when ``search_alg`` is a
    ``BasicVariantGenerator`` (a ``SearchGenerator``, not a ``Searcher``: see
    ``ray/tune/tune.py``), so the generator gets ``max_concurrent`` itself.
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.sample import Function

    space = to_tune_space(spec, seed=seed)
    basic = BasicVariantGenerator(max_concurrent=max_concurrent, random_state=seed)
    if spec.method == "grid":
        points = grid(spec)
        if spec.run_cap is not None and spec.run_cap < len(points):
            from ray import tune
            log.info("grid: running the first %d of %d points (run_cap)", spec.run_cap,
                     len(points))
            space = {"__grid_point__": tune.grid_search(points[:spec.run_cap])}
        return space, 1, basic, "grid"
    num = spec.run_cap
    if num is None:
        num = DEFAULT_RUN_CAP
        log.warning("%s: no run_cap; running %d trials", spec.source, num)
    if spec.method == "bayes":
        if any(isinstance(v, Function) for v in space.values()):
            log.warning("%s: a parameter has no Tune domain Optuna can read (sample_from); "
                        "running random search instead of bayes", spec.source)
        else:
            from ray.tune.search.optuna import OptunaSearch
            mode = spec.metric.mode
            return space, num, OptunaSearch(metric=spec.metric.name, mode=mode, seed=seed), \
                "bayes"
    return space, num, basic, "random"


def _scheduler(spec: SweepSpec):
    et = spec.early_terminate
    if et is None or spec.metric is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    grace = et.min_iter or (et.brackets() or [1])[0] or 1
    return ASHAScheduler(time_attr="training_iteration", metric=spec.metric.name,
                         mode=spec.metric.mode,
                         grace_period=int(grace), reduction_factor=et.eta,
                         max_t=int(et.max_iter) if et.max_iter else 10 ** 9)


def program_folder(spec: SweepSpec) -> Path:
    """Where the sweep's program runs: the sweep file's folder, unless its ``program:``
    is not there but is in the folder the sweep runs from (``wandb agent`` runs the
    program from its own working folder: a guide's ``program: trainer.py`` beside
    ``config/sweep/x.yaml`` is at the project's top)."""
    beside = Path(spec.source).parent
    program = spec.program if spec.program and not spec.program_argv else None
    if program and not (beside / program).exists() and (Path.cwd() / program).exists():
        return Path.cwd()
    return beside


def run_sweep(spec_or_path: SweepSpec | str | os.PathLike, *, storage_path: str | os.PathLike,
              name: str | None = None, gpus_per_trial: float = 0.0, cpus_per_trial: float = 1.0,
              max_concurrent_trials: int = 0, workdir: str | os.PathLike | None = None,
              env: Mapping[str, str] | None = None, seed: int | None = None,
              max_failures: int = 1,
              resume: bool = True, pretrained_path: str | None = None) -> SweepOutcome:
    """Run the sweep on the connected Ray cluster; results land in ``storage_path/name``.

    ``workdir`` (default: ``program_folder``) is each program's cwd; ``env``
    adds variables. ``max_failures``: retries of a crashed trial. With ``resume``
    an interrupted sweep under the same name continues (finished trials are kept).
    ``storage_path`` may be a URI (``s3://…``); each trial uploads its folder there, and
    the outcome's trial folders are then public URIs. ``pretrained_path``: appended to
    every run's arguments as ``--pretrained_path``.
    """
    from ray import tune

    spec = spec_or_path if isinstance(spec_or_path, SweepSpec) else load_sweep(spec_or_path)
    if spec.needs_program:
        raise ValueError(f"{spec.source}: the sweep has no program: — add one, or give it "
                         "with spec.with_program('train.py')")
    name = name or spec.name or Path(spec.source).stem
    workdir = str(Path(workdir if workdir is not None else program_folder(spec)).resolve())
    remote = is_uri(str(storage_path))
    storage = str(storage_path) if remote else str(Path(storage_path).resolve())
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # save the sweep's state often: a killed sweep resumes without redoing finished trials
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Tune's default loggers (TensorBoard's import alone costs the first trial 1.5-2 s on
    # 2 cores) write progress.csv, result.json and events files nothing here reads: a
    # trial's own run.log and metrics.jsonl are its record. (Giving Tune any callback
    # instead makes its usage stats import wandb: 0.5 s more.)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    path = join(storage, name) if remote else os.path.join(storage, name)
    restoring = resume and tune.Tuner.can_restore(path)
    seed = _seed(path, spec, seed, restoring)
    space, num_samples, search_alg, method = _search(spec, seed, max_concurrent_trials)
    searcher_limit = max_concurrent_trials if method == "bayes" else 0
    metric = spec.metric.name if spec.metric else None
    mode = None if metric is None else spec.metric.mode
    log.info("sweep %s: method %s, %s trial(s), seed %d, storage %s", spec.source, method,
             "grid" if method == "grid" else num_samples, seed,
             public(join(storage, name)) if remote else os.path.join(storage, name))
    trainable = tune.with_resources(
        _Trial(spec, workdir, env, pretrained_path, join(storage, name) if remote else ""),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    if restoring:
        log.info("resuming the sweep at %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True,
                                   restart_errored=False, param_space=space)
    else:
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(
                num_samples=num_samples, search_alg=search_alg, scheduler=_scheduler(spec),
                max_concurrent_trials=searcher_limit or None, reuse_actors=True),
            run_config=tune.RunConfig(
                name=name, storage_path=storage, verbose=0,
                failure_config=tune.FailureConfig(max_failures=max_failures)))
    results = tuner.fit()
    if not remote:   # with a URI each trial waited for its own program
        _wait_for_programs([Path(r.path) for r in results])
    outcome = _outcome(spec, results, metric, mode)
    outcome.path, outcome.seed = path, seed
    if remote:       # Tune names a trial by its path in the bucket: give it the URI
        base = public(join(storage, name))
        for trial in outcome.trials:
            trial["trial_dir"] = join(base, Path(trial["trial_dir"]).name)
        if outcome.best_trial_dir:
            outcome.best_trial_dir = join(base, Path(outcome.best_trial_dir).name)
    return outcome


_SEED_FILE = "sweep_seed.json"


def _seed(path: str, spec: SweepSpec, given: int | None, restoring: bool) -> int:
    """The seed of this sweep: a resumed sweep keeps the one it started with; else
    ``given``, else the file's ``seed:``, else a fresh one (a rerun under a new name
    draws new points). Kept beside the sweep's results."""
    where = join(path, _SEED_FILE)
    if restoring:
        try:
            return int(json.loads(read_text(where) if is_uri(path) else
                                  Path(where).read_text(encoding="utf-8"))["seed"])
        except (OSError, StorageError, ValueError, KeyError, TypeError):
            pass
    seed = given if given is not None else spec.seed
    if seed is None:
        seed = secrets.randbelow(2**31)
    if is_uri(path):
        write_text(where, json.dumps({"seed": seed}))
    else:
        os.makedirs(path, exist_ok=True)
        Path(where).write_text(json.dumps({"seed": seed}), encoding="utf-8")
    return seed


def _wait_for_programs(trial_dirs: list[Path], timeout: float = _STOP_GRACE + 2.0) -> None:
    """Let supervisors of trials Tune stopped at the very end finish (then SIGTERM them).

    Tune's last ``cleanup`` does not wait for the trial thread
    (``FunctionTrainable.cleanup``: ``session.finish(timeout=0)``), so a program
    stopped last may still be shutting down when ``fit()`` returns.
    """
    deadline = time.monotonic() + timeout
    for folder in trial_dirs:
        pid_file = folder / "supervisor.pid"
        if not pid_file.exists():
            continue
        try:
            supervisor = Supervised(int(pid_file.read_text()), folder)
        except ValueError:
            continue
        try:
            while supervisor.poll() is None and not (folder / "orphaned").exists():
                if time.monotonic() > deadline:
                    _terminate(supervisor)
                    break
                supervisor.wait(0.02)
        finally:
            supervisor.close()


def _trial_times(result) -> tuple[float | None, float | None]:
    """When the trial's (last) program started and ended: its parameter file is written
    just before the start, ``exit_code`` (else ``run.log``) at the end; a trial in a
    bucket falls back to what Tune measured between its reports."""
    folder = Path(result.path)
    try:
        started = (folder / _PARAMS_FILE).stat().st_mtime
        end_file = folder / "exit_code"
        ended = (end_file if end_file.exists() else folder / "run.log").stat().st_mtime
        return started, max(started, ended)
    except OSError:
        metrics = result.metrics or {}
        end, total = metrics.get("timestamp"), metrics.get("time_total_s")
        if _is_number(end) and _is_number(total):
            return float(end) - float(total), float(end)
        return None, None


def _wandb_run_id(folder: Path) -> str:
    """The id of the W&B run the trial's program made (``wandb/offline-run-<time>-<id>``)."""
    try:
        runs = sorted(folder.glob("wandb/*run-*-*"))
    except OSError:
        return ""
    return runs[-1].name.rsplit("-", 1)[-1] if runs else ""


def _outcome(spec: SweepSpec, results, metric: str | None, mode: str | None) -> SweepOutcome:
    trials, errors = [], 0
    best = None
    for result in results:
        config = dict(result.config or {})
        config = dict(config.get("__grid_point__", config))
        value = (result.metrics or {}).get(metric) if metric else None
        value = value if _is_number(value) else None
        error = None if result.error is None else str(result.error)
        errors += error is not None
        started, ended = _trial_times(result)
        trial = {"config": spec.run_config(config), "metric": value,
                 "status": "ERROR" if error else "TERMINATED", "error": error,
                 "trial_dir": str(result.path),
                 "iterations": (result.metrics or {}).get("training_iteration"),
                 "started": started, "ended": ended,
                 "wandb_run_id": _wandb_run_id(Path(result.path))}
        trials.append(trial)
        if value is not None and error is None and (
                best is None or (value > best["metric"] if mode == "max"
                                 else value < best["metric"])):
            best = trial
    return SweepOutcome(best_config=best and best["config"], best_metric=best and best["metric"],
                        best_trial_dir=best and best["trial_dir"], trials=trials, errors=errors,
                        num_trials=len(trials))
