"""Where a ready row runs: its runner's shape, pinned GPUs, and the launch itself.

The row's kind says who holds its resources (``Holds``): its runner (the GPUs it
asks for, packed by Ray or pinned by the seed's GPU modes), nobody (a sweep: each
trial asks), or its Ray Train workers (counted by the pool, asked by the trainer).
A row that can never fit a local Ray is Invalid with the numbers; on a cluster it
waits on Ray, so an autoscaler sees the demand.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import string
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path

from orchestrator.core import (
    Event,
    Launched,
    RowState,
    RowStatus,
    Unplaceable,
    amounts,
    shortfall,
    too_many_gpus,
)
from orchestrator.execution.gpus import GpuLedger
from orchestrator.execution.launch import FrozenCode, build_launch
from orchestrator.execution.pool import Pool, Runner, Shape
from orchestrator.infra.errors import QueueFileError
from orchestrator.kinds import KINDS, Holds
from orchestrator.store.config import Config
from orchestrator.store.record import RunRecord

__all__ = ["Placer", "new_run_id", "MAX_WAITING_FOR_NODES", "inherited_env"]

#: Rows queued on Ray for resources no node has yet (an autoscaler's demand), at most.
MAX_WAITING_FOR_NODES = 8


@dataclasses.dataclass
class Placer:
    """The pool-facing part of placement: a runner for each launched row (``runners``),
    the pinned GPUs of the seed's GPU modes (``ledger``), and the launch itself. Row
    states change only through ``apply`` (the core); ``note`` tells the user once."""

    pool: Pool
    config: Config
    record: RunRecord
    queue_name: str
    queue_path: Path
    state_dir: Path
    local_ray: bool
    rows: Mapping[str, RowState]
    apply: Callable[[str, Event], RowState]
    note: Callable[..., None]
    display_path: Callable[[Path | str], str]
    runners: dict[str, Runner] = dataclasses.field(default_factory=dict)  # job id -> runner
    #: the driver's environment for every job (the kept local Ray's workers have the
    #: environment of the run that started it: a job must see this run's shell, its PATH,
    #: conda env and keys, as with a Ray of the driver's own)
    driver_env: tuple[tuple[str, str], ...] = ()
    #: where a row's next attempt takes its code from ([snapshot] mode = run), or None
    frozen: Callable[[str, Path | None], FrozenCode | None] = lambda job_id, config: None

    def __post_init__(self):
        self.base_dir = self.queue_path.parent
        self.ledger = GpuLedger(self.config.slots) if self.config.gpu_mode != "ray" else None

    def launch(self, state: RowState, full: dict | None = None) -> str:
        """Start the next attempt of ``state`` if a runner for it is free: "" when it did,
        else why not (what it waits for). ``full``: the groups (``group``) no runner was
        free for earlier in this turn, with the reason (filled in here): a queue of
        thousands of waiting rows asks the pool once per group, not once per row."""
        group = self.group(state)
        if full is not None and group is not None and group in full:
            return full[group]
        placed = self._shape(state)
        if isinstance(placed, str):
            return placed
        shape, pinned, force = placed
        runner = self.pool.acquire(shape, state.id, force=force)
        if runner is None:
            if self.ledger is not None:
                self.ledger.release(state.id)
            why = f"waits for {_demand_text(shape)} to free up"
            if full is not None and group is not None:
                full[group] = why
            return why
        spec = dataclasses.replace(state.spec, gpus=state.asked_gpus)
        forked = KINDS[spec.kind].holds is Holds.WORKERS and not shape.workers
        if shape.workers or forked:  # a Ray Train row: the command says each worker's part
            held = shape.workers or (("CPU", shape.cpus), ("GPU", shape.gpus))
            per_worker = {k: v / spec.workers for k, v in held}
            spec = dataclasses.replace(spec, gpus=per_worker.get("GPU", 0.0),
                                       cpus=per_worker.get("CPU", 0.0))
        readiness = state.readiness
        attempt = state.attempt + 1
        wandb_run_id = state.wandb_run_id or new_run_id()
        spec_launch = build_launch(
            spec, self.config, queue=self.queue_name, attempt=attempt, base_dir=self.base_dir,
            state_dir=self.state_dir, wandb_run_id=wandb_run_id, pinned=pinned,
            pretrained_path=readiness.pretrained_path, cluster_address=self.pool.address,
            generation=self._generation(state.id), batch_divisor=state.batch_divisor,
            code=self.frozen(state.id, spec.config_path), launcher="torch" if forked else "ray")
        if self.driver_env:   # the job's own variables win
            spec_launch = dataclasses.replace(spec_launch,
                                              env=(*self.driver_env, *spec_launch.env))
        log_path = Path(spec_launch.run_dir) / "run.log"
        if readiness.missing_weights:
            self.note(f"{state.id}: {readiness.reason}")
        self.runners[state.id] = runner
        self.apply(state.id, Launched(
            attempt, wandb_run_id, self.display_path(log_path), runner=runner.name,
            gpus=spec.gpus,
            missing_weights_of=spec.parent_id if readiness.missing_weights else "",
            warning=readiness.reason if readiness.missing_weights else "",
            clear_best_config=bool(state.cell("BestConfig")),
            record={"command": state.spec.command, "log_path": str(log_path),
                    "gpus": ",".join(map(str, pinned)) if pinned else ""}))
        self.pool.start(runner, spec_launch)
        return ""

    def group(self, state: RowState) -> Hashable | None:
        """The row's placement group: rows of one group ask for the same runner shape, so
        once none is free for one of them, none is for the others this turn. None: the
        row is placed on its own (the seed's pinned GPU modes claim GPUs row by row)."""
        spec = state.spec
        if spec is None or self.ledger is not None:
            return None
        return (KINDS[spec.kind].holds, state.asked_gpus, spec.cpus, spec.resources,
                spec.workers)

    def release(self, job_id: str) -> Runner | None:
        """The attempt of ``job_id`` no longer holds its runner or pinned GPUs."""
        if self.ledger is not None:
            self.ledger.release(job_id)
        return self.runners.pop(job_id, None)

    def adopted(self, job_id: str, runner: Runner, gpus: str) -> None:
        """A live runner of an earlier driver runs ``job_id`` (with ``gpus`` pinned)."""
        self.runners[job_id] = runner
        if self.ledger is not None and gpus:
            self.ledger.claim(job_id, tuple(int(g) for g in gpus.split(",")))

    def default_gpus(self) -> float:
        """A row's GPUs when its cell is empty (per worker for a Ray Train row)."""
        if self.config.default_gpus == "auto":
            return 1.0 if self.pool.totals().get("GPU", 0) > 0 else 0.0
        return float(self.config.default_gpus)

    # ------------------------------------------------------------------ shapes
    def _unplaceable(self, state: RowState, column: str, value: str, problem: str,
                     fix: str) -> str:
        """Mark the row Invalid: the console names file, line, ID, cell and fix; the
        row's Error says the cell, the problem and the fix."""
        error = QueueFileError(self.queue_path, problem, line=state.line or None,
                               job_id=state.id, column=column, value=value, fix=fix)
        self.note(str(error), logging.ERROR)
        self.apply(state.id, Unplaceable(error.reason))
        return error.reason

    def _never_fits(self, shape: Shape) -> str:
        """"" when ``shape`` fits the whole cluster once idle; else, in numbers, why not."""
        demand, totals = _demand(shape), self.pool.totals()
        if not shortfall(demand, totals):
            return ""
        return (f"needs {amounts(demand)} but the cluster has "
                f"{amounts({k: totals.get(k, 0.0) for k in demand})}")

    def _too_big(self, state: RowState, shape: Shape, problem: str, cells: dict,
                 fix: str) -> str:
        """The row asks for more than the whole (local) cluster has: which cell."""
        demand = _demand(shape)
        over = shortfall(demand, self.pool.totals()) or list(demand)
        column, value = next(((c, v) for k, (c, v) in cells.items() if k in over),
                             ("Resources", ",".join(f"{k}={v:g}" for k, v in demand.items())))
        return self._unplaceable(state, column, value, problem, fix)

    def _shape(self, state: RowState) -> tuple[Shape, tuple[int, ...] | None, bool] | str:
        """The runner shape, pinned GPUs, and whether to ask Ray even though the cluster
        is too small now (an autoscaler grows it for pending demand); a reason: not now."""
        spec, cfg = state.spec, self.config
        kind = KINDS[spec.kind]
        cpus = spec.cpus if spec.cpus is not None else cfg.default_cpus
        if kind.holds is Holds.TRIALS:  # its trials ask for the resources, not its runner
            return Shape(0.0, 0.0, spec.resources), None, False
        if kind.holds is Holds.WORKERS:
            return self._workers_shape(state)
        if self.ledger is not None:
            return self._pinned_shape(state, cpus)
        gpus = state.asked_gpus if state.asked_gpus is not None else self.default_gpus()
        if too_many_gpus(gpus, cfg.allow_multi_gpu):
            return self._unplaceable(state, "GPUs", f"{gpus:g}",
                                     "more than one GPU but allow_multi_gpu = false",
                                     "ask for 1 GPU or less, or set allow_multi_gpu = true "
                                     "in [gpu]")
        shape = Shape(gpus, cpus, spec.resources)
        message = self._never_fits(shape)
        if not message:
            return shape, None, False
        if self.local_ray:
            return self._too_big(state, shape, message,
                                 {"GPU": ("GPUs", f"{gpus:g}"), "CPU": ("CPUs", f"{cpus:g}")},
                                 "lower it, or start with --num-gpus N / --num-cpus N")
        waiting = sum(st.status is RowStatus.QUEUED for st in self.rows.values())
        if waiting >= MAX_WAITING_FOR_NODES:
            return (f"{message}; {waiting} rows already wait on Ray for nodes that fit "
                    f"(at most {MAX_WAITING_FOR_NODES})")
        self.note(f"{spec.id}: {message}; queued on Ray until a node that fits joins (an "
                  "autoscaler starts one for this demand)")
        return shape, None, True

    def _pinned_shape(self, state: RowState, cpus: float) -> tuple[Shape, tuple, bool] | str:
        """The seed's GPU modes: the row's GPUs are pinned (``GpuID``, a slot of
        ``process_gpu_mapping`` or the default GPU) on the driver's node."""
        spec, cfg = state.spec, self.config
        if cfg.gpu_mode == "slots":
            claimed = self.ledger.claim_slot(spec.id)
            if claimed is None:
                return "waits for a free slot of process_gpu_mapping"
            gpus = claimed[1]
        else:
            gpus = spec.gpu_ids or (cfg.default_gpu,)
            have = self.pool.totals().get("GPU", 0.0)
            beyond = [g for g in gpus if g >= have]
            if self.local_ray and beyond:
                return self._unplaceable(state, "GpuID", "+".join(map(str, gpus)),
                                         f"names GPU {', '.join(map(str, beyond))} but this "
                                         f"machine has {amounts({'GPU': have})}",
                                         "use GPUs it has (numbered from 0)")
            if too_many_gpus(len(gpus), cfg.allow_multi_gpu):
                return self._unplaceable(state, "GpuID", "+".join(map(str, gpus)),
                                         "names several GPUs but allow_multi_gpu = false",
                                         "use one GPU or allow it in [gpu]")
            if not self.ledger.claim(spec.id, gpus):
                return f"waits for its pinned GPU {'+'.join(map(str, gpus))} to free up"
        return Shape(0.0, cpus, spec.resources, node_id=self.pool.node_id), gpus, False

    def _workers_shape(self, state: RowState) -> tuple[Shape, None, bool] | str:
        """A Ray Train row: its runner holds nothing; its ``Workers`` workers hold ``GPUs``
        (and ``CPUs``, default 1) each, which the pool counts as held while it runs. A
        row whose kind can fork its workers (``ddp``) and whose workers fit one node is
        held whole by its runner instead (``fork_workers = true``)."""
        spec = state.spec
        per_gpu = state.asked_gpus if state.asked_gpus is not None else self.default_gpus()
        per_cpu = spec.cpus if spec.cpus is not None else 1.0
        workers = tuple((k, v * spec.workers)
                        for k, v in (("CPU", per_cpu), ("GPU", per_gpu)) if v > 0)
        whole = Shape(per_gpu * spec.workers, per_cpu * spec.workers, spec.resources)
        if self._forks(KINDS[spec.kind], per_gpu, whole):
            return whole, None, False
        shape = Shape(0.0, 0.0, spec.resources, workers=workers)
        message = self._never_fits(shape)
        if not message:
            return shape, None, False
        if self.local_ray:
            return self._too_big(state, shape, message,
                                 {"GPU": ("Workers", f"{spec.workers} × {per_gpu:g} GPU"),
                                  "CPU": ("Workers", f"{spec.workers} × {per_cpu:g} CPU")},
                                 "lower Workers/GPUs/CPUs, or start with --num-gpus N")
        self.note(f"{spec.id}: {spec.workers} workers × {per_gpu:g} GPU, {per_cpu:g} CPU: "
                  f"{message}; its trainer waits on Ray until nodes that fit join")
        return shape, None, True

    def _forks(self, kind, per_gpu: float, whole: Shape) -> bool:
        """Whether a Ray Train row's job forks its workers on one node: its kind can, the
        config lets it, each worker has whole GPUs (NCCL: one process per GPU), its
        checkpoints stay on disk (no storage URI), and one node has room for all."""
        if not kind.forks_workers or not self.config.fork_workers or \
                not float(per_gpu).is_integer() or self.config.storage:
            return False
        demand = _demand(whole)
        return any(not shortfall(demand, node) for node in self.pool.nodes())

    def _generation(self, job_id: str) -> int:
        """The attempt that began the row's current run: the one after its last Done
        attempt (a row run again after Done starts afresh; a retry, a lost runner or a
        restarted driver continue the run and resume from its checkpoints)."""
        done = [a.attempt for a in self.record.attempts(self.queue_name, job_id)
                if a.status == RowStatus.DONE.value]
        return max(done, default=0) + 1


def _demand(shape: Shape) -> dict[str, float]:
    """What ``shape`` asks for, the amounts above zero."""
    return {k: v for k, v in shape.demand().items() if v > 0}


def _demand_text(shape: Shape) -> str:
    return " + ".join(f"{v:g} {k}" for k, v in _demand(shape).items()) or "a runner"


def new_run_id() -> str:
    """An 8-character id in W&B's style, assigned before the run starts."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


#: Variables of the driver's environment a job never gets from it: Ray's own (the runner
#: has those of its Ray) and what the runner sets for each job.
_NOT_INHERITED = ("RAY_", "CUDA_VISIBLE_DEVICES", "ORCH_", "PYTHONUNBUFFERED")


def inherited_env(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The driver's environment as jobs on a kept local Ray get it."""
    return tuple((k, v) for k, v in environ.items() if not k.startswith(_NOT_INHERITED))
