"""Experiment tracker and model registry, on the state directory's ``registry.db``.

The API researchers already call from their trainers::

    tracker = ExperimentTracker("runs/registry.db")
    exp = tracker.start_experiment("baseline", config={"lr": 1e-3}, model_type="bart")
    tracker.log_metrics({"loss": 0.4}, step=1)
    tracker.end_experiment(exp, final_metrics={"rouge_l": 0.31})

    models = ModelRegistry("runs/registry.db")
    models.register_model("kobart", architecture="bart", performance={"rouge_l": 0.31},
                          file_path="runs/m1/attempt-1/best.pt", experiment_id=exp)
    models.get_best_models("rouge_l", limit=5)

Every queue job is tracked the same way by the scheduler. The driver is the
only writer while a queue runs; SQLite's WAL mode lets anyone read meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from orchestrator.api import goal_of
from orchestrator.infra.errors import OrchestratorError
from orchestrator.store.record import connect, read_only_query, transaction

__all__ = ["ExperimentTracker", "ModelRegistry", "RegistryError", "Experiment", "ModelVersion",
           "FINISHED", "status_word", "read_experiments"]

RUNNING, COMPLETED, FAILED, STOPPED = "running", "completed", "failed", "stopped"
FINISHED = frozenset({COMPLETED, FAILED, STOPPED})
_STATUSES = frozenset({RUNNING}) | FINISHED
#: The words other trackers' guides use (the seed's "in_progress"…), read as ours.
_SYNONYMS = {
    RUNNING: ("in_progress", "in-progress", "started", "training", "active"),
    COMPLETED: ("complete", "done", "success", "succeeded", "finished"),
    FAILED: ("error", "errored", "crash", "crashed", "failure"),
    STOPPED: ("cancelled", "canceled", "killed", "interrupted", "aborted"),
}
_WORDS = {w: ours for ours, words in _SYNONYMS.items() for w in (ours, *words)}


def status_word(status: str) -> str:
    """The registry's word for ``status``: ours, or a synonym of it ("in_progress" is
    running); ``RegistryError`` names the words for anything else."""
    word = _WORDS.get(str(status).strip().lower())
    if word is None:
        raise RegistryError(f"status {status!r} — use one of {', '.join(sorted(_STATUSES))} "
                            f"(or {', '.join(sorted(w for w in _WORDS if w not in _STATUSES))})")
    return word


_JSON_FIELDS = ("config", "dataset_info", "metrics", "best_metrics", "final_metrics",
                "checkpoint", "performance", "training_info")


class RegistryError(OrchestratorError):
    """A registry call that cannot be done (unknown id, bad status, bad reference)."""


def _dumps(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


class _Record(Mapping):
    """A registry row read back: typed attributes (``exp.status``), and a read-only
    mapping too (``exp["status"]``, ``exp.get("notes")``), as the trackers' guides read
    what ``get_experiment`` and ``get_model_info`` return. ``to_dict`` for JSON."""

    _NAMES: ClassVar[tuple[str, ...]] = ()   # the fields, in the table's column order

    def __getitem__(self, key: str):
        if key in self._NAMES:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self._NAMES}


@dataclass(frozen=True, eq=True)
class Experiment(_Record):
    """One experiment (a queue attempt, a sweep trial, or a run a trainer started); the
    fields in the table's column order."""

    id: int
    name: str
    description: str | None
    status: str                        # running, completed, failed, stopped
    started: float | None
    ended: float | None
    config: dict | None
    model_type: str | None
    dataset_info: dict | None
    wandb_run_id: str | None
    metrics: dict | None               # the latest value of each
    best_metrics: dict | None
    final_metrics: dict | None
    model_id: int | None
    checkpoint_path: str | None
    notes: str | None
    queue: str | None
    job_id: str | None
    attempt: int | None
    parent_id: int | None              # a sweep trial's sweep
    failure: str | None                # the failure kind of an attempt that did not complete


@dataclass(frozen=True, eq=True)
class ModelVersion(_Record):
    """One registered version of a model; the fields in the table's column order."""

    id: int
    name: str
    version: int
    architecture: str | None
    checkpoint: dict | None
    config: dict | None
    performance: dict | None
    training_info: dict | None
    file_path: str | None
    experiment_id: int | None
    created: float | None
    parent_id: int | None              # the model it was trained from


for _cls in (Experiment, ModelVersion):
    _cls._NAMES = tuple(f.name for f in dataclasses.fields(_cls))


def _row(cls, row):
    """One row of ``experiments`` or ``models`` as ``cls``, its JSON columns decoded (None
    for no row; a column an older record lacks, read-only, is None)."""
    if row is None:
        return None
    have = row.keys()
    values = {name: row[name] if name in have else None for name in cls._NAMES}
    for key in _JSON_FIELDS:
        if values.get(key) is not None:
            try:
                values[key] = json.loads(values[key])
            except (TypeError, ValueError):
                pass
    return cls(**values)


def read_experiments(path: str | Path, queue: str) -> list[Experiment]:
    """Every experiment of ``queue`` (sweep trials included), read-only, JSON decoded."""
    return [_row(Experiment, r) for r in read_only_query(
        path, "SELECT * FROM experiments WHERE queue = ? ORDER BY id", (queue,))]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class ExperimentTracker:
    """Experiments: what ran, with which config, how it went."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = connect(self.path)
        self.current_experiment_id: int | None = None

    def close(self) -> None:
        self._db.close()

    def start_experiment(self, name: str, description: str = "", config: dict | None = None,
                         model_type: str = "", dataset_info: dict | None = None,
                         wandb_run_id: str = "", *, queue: str = "", job_id: str = "",
                         attempt: int | None = None, parent_id: int | None = None,
                         started: float | None = None) -> int:
        """A new running experiment; ``parent_id`` links a sweep trial to its sweep;
        ``started``: when it began, if not now (a trial recorded after it ran)."""
        cur = self._db.execute(
            "INSERT INTO experiments (name, description, status, started, config, model_type, "
            "dataset_info, wandb_run_id, metrics, best_metrics, queue, job_id, attempt, "
            "parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', '{}', ?, ?, ?, ?)",
            (name, description, RUNNING, time.time() if started is None else started,
             _dumps(config or {}), model_type,
             _dumps(dataset_info or {}), wandb_run_id, queue, job_id, attempt, parent_id))
        self.current_experiment_id = cur.lastrowid
        return cur.lastrowid

    def _require(self, experiment_id: int | None) -> Experiment:
        experiment_id = experiment_id or self.current_experiment_id
        exp = self.get_experiment(experiment_id) if experiment_id else None
        if exp is None:
            raise RegistryError(f"no experiment {experiment_id!r} in {self.path} — start one "
                                "with start_experiment()")
        return exp

    def update_experiment_status(self, experiment_id: int, status: str, notes: str = "",
                                 ended: float | None = None) -> bool:
        """Compare-and-set: only a running experiment changes; False when it had finished.
        ``status`` may be a synonym: ``in_progress`` (the seed guide's word) is running.
        ``ended``: when it finished, if not now."""
        status = status_word(status)
        self._require(experiment_id)
        ended = (time.time() if ended is None else ended) if status in FINISHED else None
        cur = self._db.execute(
            "UPDATE experiments SET status = ?, ended = COALESCE(?, ended), "
            "notes = CASE WHEN ? = '' THEN notes ELSE ? END WHERE id = ? AND status = ?",
            (status, ended, notes, notes, experiment_id, RUNNING))
        return cur.rowcount == 1

    def log_metrics(self, metrics: dict, step: int | None = None,
                    experiment_id: int | None = None, goal: dict | None = None) -> None:
        """Record numeric metrics at ``step``; keeps latest and best (max, or min for names
        containing "loss"/"error", unless ``goal={name: "min"|"max"}``) per metric."""
        exp = self._require(experiment_id)
        if exp["status"] in FINISHED:
            raise RegistryError(f"experiment {exp['id']} is {exp['status']}; it cannot change")
        now = time.time()
        numbers = {k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None}
        self._db.executemany(
            "INSERT INTO experiment_metrics (experiment_id, step, time, name, value) "
            "VALUES (?, ?, ?, ?, ?)", [(exp["id"], step, now, k, v) for k, v in numbers.items()])
        latest = {**(exp["metrics"] or {}), **numbers}
        best = dict(exp["best_metrics"] or {})
        for key, value in numbers.items():
            lower = (goal or {}).get(key, "min" if re.search(r"loss|error|err$", key) else "max")
            if key not in best or (value < best[key] if lower == "min" else value > best[key]):
                best[key] = value
        self._db.execute("UPDATE experiments SET metrics = ?, best_metrics = ? WHERE id = ?",
                         (_dumps(latest), _dumps(best), exp["id"]))

    def end_experiment(self, experiment_id: int, final_metrics: dict | None = None,
                       best_metrics: dict | None = None, status: str = COMPLETED,
                       notes: str = "", failure: str = "", ended: float | None = None) -> bool:
        """Finish it (status completed/failed/stopped; ``failure``: the failure kind of a
        queue attempt that did not complete; ``ended``: when, if not now); False if it had
        already finished."""
        word = status_word(status)
        if word not in FINISHED:
            raise RegistryError(f"end status {status!r} — use one of "
                                f"{', '.join(sorted(FINISHED))}")
        status = word
        exp = self._require(experiment_id)
        if exp["status"] in FINISHED:
            return False
        best = {**(exp["best_metrics"] or {}), **(best_metrics or {})}
        self._db.execute("UPDATE experiments SET final_metrics = ?, best_metrics = ?, "
                         "failure = ? WHERE id = ?",
                         (_dumps(final_metrics or {}), _dumps(best), failure or None,
                          experiment_id))
        return self.update_experiment_status(experiment_id, status, notes, ended=ended)

    def set_model(self, experiment_id: int, model_id: int | None, checkpoint_path: str) -> None:
        self._db.execute("UPDATE experiments SET model_id = ?, checkpoint_path = ? WHERE id = ?",
                         (model_id, checkpoint_path, experiment_id))

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        return _row(Experiment, self._db.execute("SELECT * FROM experiments WHERE id = ?",
                                     (experiment_id,)).fetchone())

    def metric_history(self, experiment_id: int, name: str) -> list[tuple[int | None, float]]:
        rows = self._db.execute("SELECT step, value FROM experiment_metrics WHERE "
                                "experiment_id = ? AND name = ? ORDER BY rowid",
                                (experiment_id, name)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def list_experiments(self, status: str | None = None, queue: str | None = None,
                         limit: int | None = None, parent_id: int | None = None
                         ) -> list[Experiment]:
        sql, args = "SELECT * FROM experiments WHERE 1 = 1", []
        if parent_id is not None:
            sql, args = sql + " AND parent_id = ?", [*args, parent_id]
        if status:
            sql, args = sql + " AND status = ?", [*args, status_word(status)]
        if queue:
            sql, args = sql + " AND queue = ?", [*args, queue]
        sql += " ORDER BY id"
        if limit:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        return [_row(Experiment, r) for r in self._db.execute(sql, args).fetchall()]


class ModelRegistry:
    """Versioned models: the same name registers the next version."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = connect(self.path)

    def close(self) -> None:
        self._db.close()

    def register_model(self, name: str, architecture: str = "", checkpoint: dict | None = None,
                       config: dict | None = None, performance: dict | None = None,
                       training_info: dict | None = None, file_path: str = "",
                       experiment_id: int | None = None, parent_id: int | None = None) -> int:
        """The next version of ``name``; ``parent_id``: the model it was trained from."""
        if not name or ":" in name:
            raise RegistryError(f"model name {name!r} — use a non-empty name without ':'")
        with transaction(self._db):
            version = self._db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM models "
                                       "WHERE name = ?", (name,)).fetchone()[0]
            cur = self._db.execute(
                "INSERT INTO models (name, version, architecture, checkpoint, config, "
                "performance, training_info, file_path, experiment_id, created, parent_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, architecture, _dumps(checkpoint or {}), _dumps(config or {}),
                 _dumps(performance or {}), _dumps(training_info or {}), str(file_path or ""),
                 experiment_id, time.time(), parent_id))
        return cur.lastrowid

    def get_model_info(self, model_id: int) -> ModelVersion | None:
        return _row(ModelVersion, self._db.execute("SELECT * FROM models WHERE id = ?",
                                     (model_id,)).fetchone())

    def list_models(self, name: str | None = None) -> list[ModelVersion]:
        sql, args = "SELECT * FROM models", []
        if name:
            sql, args = sql + " WHERE name = ?", [name]
        return [_row(ModelVersion, r)
                for r in self._db.execute(sql + " ORDER BY id", args).fetchall()]

    def get_best_models(self, metric: str, limit: int = 10,
                        goal: str | None = None) -> list[ModelVersion]:
        """Models that report ``metric``, best first. ``goal`` ``max``/``min``; None: from
        the metric's name, as the driver and the report rank it (``val_loss``: lowest)."""
        goal = goal or goal_of(metric)
        if goal not in ("max", "min"):
            raise RegistryError(f"goal {goal!r} — use max or min")
        scored = [(m, _number((m["performance"] or {}).get(metric))) for m in self.list_models()]
        scored = [(m, v) for m, v in scored if v is not None]
        scored.sort(key=lambda mv: mv[1], reverse=goal == "max")
        return [m for m, _ in scored[:limit]]

    def search_models(self, architecture: str | None = None, name: str | None = None,
                      min_performance: dict | None = None) -> list[ModelVersion]:
        out = []
        for model in self.list_models(name):
            if architecture and model["architecture"] != architecture:
                continue
            perf = model["performance"] or {}
            if any((_number(perf.get(k)) is None) or perf[k] < v
                   for k, v in (min_performance or {}).items()):
                continue
            out.append(model)
        return out

    def lineage(self, model_id: int) -> list[ModelVersion]:
        """The model and the models it was trained from, newest first."""
        chain, seen = [], set()
        model = self.get_model_info(model_id)
        while model is not None and model["id"] not in seen:
            seen.add(model["id"])
            chain.append(model)
            model = self.get_model_info(model["parent_id"]) if model.get("parent_id") else None
        return chain

    def compare_models(self, model_ids: list[int]) -> dict[str, list]:
        """``{metric: [value of each model, None where missing]}``."""
        models = [self.get_model_info(i) for i in model_ids]
        missing = [i for i, m in zip(model_ids, models, strict=True) if m is None]
        if missing:
            raise RegistryError(f"no model with id {', '.join(map(str, missing))}")
        names = sorted({k for m in models for k in (m["performance"] or {})})
        return {k: [(m["performance"] or {}).get(k) for m in models] for k in names}

    def resolve(self, reference: str) -> ModelVersion | None:
        """A model by id (``12``), ``name:version`` or ``name`` (its latest version)."""
        ref = reference.strip()
        if ref.isdigit():
            return self.get_model_info(int(ref))
        name, _, version = ref.rpartition(":") if ":" in ref else (ref, "", "")
        if version and version.isdigit():
            row = self._db.execute("SELECT * FROM models WHERE name = ? AND version = ?",
                                   (name, int(version))).fetchone()
        else:
            row = self._db.execute("SELECT * FROM models WHERE name = ? ORDER BY version DESC "
                                   "LIMIT 1", (ref,)).fetchone()
        return _row(ModelVersion, row)
