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
from pathlib import Path

from orchestrator.core import Launched, RowState, RowStatus, Unplaceable
from orchestrator.execution.launch import build_launch
from orchestrator.execution.pool import Shape
from orchestrator.infra.errors import QueueFileError
from orchestrator.kinds import KINDS, Holds

__all__ = ["launch", "default_gpus", "new_run_id", "MAX_WAITING_FOR_NODES"]

#: Rows queued on Ray for resources no node has yet (an autoscaler's demand), at most.
MAX_WAITING_FOR_NODES = 8


def launch(loop, state: RowState, full: dict | None = None) -> str:
    """Start the next attempt of ``state`` if a runner for it is free: "" when it did,
    else why not (what it waits for). ``full``: the shapes no runner was free for earlier
    in this turn, with the reason (filled in here): a queue of thousands of waiting rows
    asks the pool once per shape, not once per row."""
    placed = _shape(loop, state)
    if isinstance(placed, str):
        return placed
    shape, pinned, force = placed
    if full is not None and pinned is None and shape in full:
        return full[shape]
    runner = loop.pool.acquire(shape, state.id, force=force)
    if runner is None:
        if loop.ledger is not None:
            loop.ledger.release(state.id)
        why = f"waits for {_demand_text(shape)} to free up"
        if full is not None and pinned is None:
            full[shape] = why
        return why
    spec = dataclasses.replace(state.spec, gpus=state.asked_gpus)
    if shape.workers:  # a Ray Train row: its trainer asks for what the pool counted
        per_worker = {k: v / spec.workers for k, v in shape.workers}
        spec = dataclasses.replace(spec, gpus=per_worker.get("GPU", 0.0),
                                   cpus=per_worker.get("CPU", 0.0))
    readiness = state.readiness
    attempt = state.attempt + 1
    wandb_run_id = state.wandb_run_id or new_run_id()
    spec_launch = build_launch(
        spec, loop.config, queue=loop.queue_name, attempt=attempt, base_dir=loop.base_dir,
        state_dir=loop.state_dir, wandb_run_id=wandb_run_id, pinned=pinned,
        pretrained_path=readiness.pretrained_path, cluster_address=loop.pool.address,
        generation=_generation(loop, state.id), batch_divisor=state.batch_divisor)
    log_path = Path(spec_launch.run_dir) / "run.log"
    if readiness.missing_weights:
        loop.note(f"{state.id}: {readiness.reason}")
    loop.runners[state.id] = runner
    loop.apply(state.id, Launched(
        attempt, wandb_run_id, loop.display_path(log_path), runner=runner.name,
        gpus=spec.gpus, missing_weights_of=spec.parent_id if readiness.missing_weights else "",
        warning=readiness.reason if readiness.missing_weights else "",
        clear_best_config=bool(state.cell("BestConfig")),
        record={"command": state.spec.command, "log_path": str(log_path),
                "gpus": ",".join(map(str, pinned)) if pinned else ""}))
    loop.pool.start(runner, spec_launch)
    return ""


def _demand_text(shape: Shape) -> str:
    demand = {k: v for k, v in shape.demand().items() if v > 0}
    return " + ".join(f"{v:g} {k}" for k, v in demand.items()) or "a runner"


def new_run_id() -> str:
    """An 8-character id in W&B's style, assigned before the run starts."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def default_gpus(loop) -> float:
    """A row's GPUs when its cell is empty (per worker for a Ray Train row)."""
    if loop.config.default_gpus == "auto":
        return 1.0 if loop.pool.totals().get("GPU", 0) > 0 else 0.0
    return float(loop.config.default_gpus)


def _unplaceable(loop, state: RowState, column: str, value: str, problem: str,
                 fix: str) -> str:
    """Mark the row Invalid: the console names file, line, ID, cell and fix; the row's
    Error says the cell, the problem and the fix."""
    error = QueueFileError(loop.queue.path, problem, line=state.line or None,
                           job_id=state.id, column=column, value=value, fix=fix)
    loop.note(str(error), logging.ERROR)
    loop.apply(state.id, Unplaceable(error.reason))
    return error.reason


def _amounts(amounts) -> str:
    """``{'GPU': 1e9, 'CPU': 1}`` → ``1e+09 GPU, 1 CPU``."""
    return ", ".join(f"{v:g} {k}" for k, v in amounts.items()) or "nothing"


def _too_big(loop, state: RowState, demand: dict, cells: dict, fix: str) -> str:
    """The row asks for more than the whole (local) cluster has: which cell, in numbers."""
    totals = loop.pool.totals()
    over = [k for k, v in demand.items() if v > totals.get(k, 0.0)] or list(demand)
    column, value = next(((c, v) for k, (c, v) in cells.items() if k in over),
                         ("Resources", ",".join(f"{k}={v:g}" for k, v in demand.items())))
    return _unplaceable(loop, state, column, value,
                        f"needs {_amounts(demand)} but the cluster has "
                        f"{_amounts({k: totals.get(k, 0.0) for k in demand})}", fix)


def _shape(loop, state: RowState) -> tuple[Shape, tuple[int, ...] | None, bool] | str:
    """The runner shape, pinned GPUs, and whether to ask Ray even though the cluster
    is too small now (an autoscaler grows it for pending demand); a reason: not now."""
    spec, cfg = state.spec, loop.config
    kind = KINDS[spec.kind]
    cpus = spec.cpus if spec.cpus is not None else cfg.default_cpus
    if kind.holds is Holds.TRIALS:  # its trials ask for the resources, not its runner
        return Shape(0.0, 0.0, spec.resources), None, False
    if kind.holds is Holds.WORKERS:
        return _workers_shape(loop, state)
    if loop.ledger is not None:
        if cfg.gpu_mode == "slots":
            claimed = loop.ledger.claim_slot(spec.id)
            if claimed is None:
                return "waits for a free slot of process_gpu_mapping"
            gpus = claimed[1]
        else:
            gpus = spec.gpu_ids or (cfg.default_gpu,)
            have = loop.pool.totals().get("GPU", 0.0)
            beyond = [g for g in gpus if g >= have]
            if loop.local_ray and beyond:
                return _unplaceable(loop, state, "GpuID", "+".join(map(str, gpus)),
                                    f"names GPU {', '.join(map(str, beyond))} but this machine "
                                    f"has {_amounts({'GPU': have})}",
                                    "use GPUs it has (numbered from 0)")
            if len(gpus) > 1 and not cfg.allow_multi_gpu:
                return _unplaceable(loop, state, "GpuID", "+".join(map(str, gpus)),
                                    "names several GPUs but allow_multi_gpu = false",
                                    "use one GPU or allow it in [gpu]")
            if not loop.ledger.claim(spec.id, gpus):
                return f"waits for its pinned GPU {'+'.join(map(str, gpus))} to free up"
        return Shape(0.0, cpus, spec.resources, node_id=loop.pool.node_id), gpus, False
    gpus = state.asked_gpus if state.asked_gpus is not None else default_gpus(loop)
    if gpus > 1 and not cfg.allow_multi_gpu:
        return _unplaceable(loop, state, "GPUs", f"{gpus:g}",
                            "more than one GPU but allow_multi_gpu = false",
                            "ask for 1 GPU or less, or set allow_multi_gpu = true in [gpu]")
    shape = Shape(gpus, cpus, spec.resources)
    if not loop.pool.can_ever_fit(shape):
        totals = loop.pool.totals()
        demand = {k: v for k, v in shape.demand().items() if v > 0}
        if loop.local_ray:
            return _too_big(loop, state, demand,
                            {"GPU": ("GPUs", f"{gpus:g}"), "CPU": ("CPUs", f"{cpus:g}")},
                            "lower it, or start with --num-gpus N / --num-cpus N")
        message = f"needs {_amounts(demand)} but the cluster has " \
                  f"{_amounts({k: totals.get(k, 0.0) for k in demand})}"
        waiting = sum(st.status is RowStatus.QUEUED for st in loop.rows.values())
        if waiting >= MAX_WAITING_FOR_NODES:
            return (f"{message}; {waiting} rows already wait on Ray for nodes that fit "
                    f"(at most {MAX_WAITING_FOR_NODES})")
        loop.note(f"{spec.id}: {message}; queued on Ray until a node that fits joins (an "
                  "autoscaler starts one for this demand)")
        return shape, None, True
    return shape, None, False


def _workers_shape(loop, state: RowState) -> tuple[Shape, None, bool] | str:
    """A Ray Train row: its runner holds nothing; its ``Workers`` workers hold ``GPUs``
    (and ``CPUs``, default 1) each, which the pool counts as held while it runs."""
    spec = state.spec
    per_gpu = state.asked_gpus if state.asked_gpus is not None else default_gpus(loop)
    per_cpu = spec.cpus if spec.cpus is not None else 1.0
    workers = tuple((k, v * spec.workers) for k, v in (("CPU", per_cpu), ("GPU", per_gpu))
                    if v > 0)
    shape = Shape(0.0, 0.0, spec.resources, workers=workers)
    if not loop.pool.can_ever_fit(shape):
        totals = loop.pool.totals()
        if loop.local_ray:
            return _too_big(loop, state, dict(workers),
                            {"GPU": ("Workers", f"{spec.workers} × {per_gpu:g} GPU"),
                             "CPU": ("Workers", f"{spec.workers} × {per_cpu:g} CPU")},
                            "lower Workers/GPUs/CPUs, or start with --num-gpus N")
        message = (f"{spec.workers} workers × {per_gpu:g} GPU, {per_cpu:g} CPU need "
                   f"{_amounts(dict(workers))} but the cluster has "
                   f"{_amounts({k: totals.get(k, 0.0) for k, _ in workers})}")
        loop.note(f"{spec.id}: {message}; its trainer waits on Ray until nodes that fit join")
        return shape, None, True
    return shape, None, False


def _generation(loop, job_id: str) -> int:
    """The attempt that began the row's current run: the one after its last Done attempt
    (a row run again after Done starts afresh; a retry, a lost runner or a restarted
    driver continue the run and resume from its checkpoints)."""
    done = [a["attempt"] for a in loop.record.attempts(loop.queue_name, job_id)
            if a["status"] == RowStatus.DONE.value]
    return max(done, default=0) + 1
