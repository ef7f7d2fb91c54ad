"""What one attempt runs: its environment, its script, its ``LaunchSpec``.

Pure: it reads the row's spec and the config and decides nothing about when or
where the attempt runs (that is the scheduler's job).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import Config
from orchestrator.jobs import JobSpec
from orchestrator.runner import LaunchSpec
from trainers import job_script
from trainers import storage as uris
from trainers.kinds import BUILTIN, kind_command, kind_metric
from trainers.sweep import sweep_command, sweep_metric

__all__ = ["build_launch", "job_env"]


def job_env(spec: JobSpec, config: Config, *, queue: str, attempt: int, run_dir: Path,
            wandb_run_id: str) -> dict[str, str]:
    """The variables a job gets (besides CUDA_VISIBLE_DEVICES, set by its runner)."""
    env = {"ORCH_JOB_ID": spec.id, "ORCH_ATTEMPT": str(attempt), "ORCH_QUEUE": queue,
           "ORCH_METRICS_FILE": str(run_dir / "metrics.jsonl"),
           "WANDB_RUN_ID": wandb_run_id, "WANDB_RESUME": "allow", "WANDB_DIR": str(run_dir),
           "WANDB_NAME": spec.name or spec.id, "PYTHONUNBUFFERED": "1", **config.env}
    if config.storage:
        env[uris.STORAGE_ENV] = config.storage
    if config.wandb_project:
        env["WANDB_PROJECT"] = config.wandb_project
    if config.wandb_entity:
        env["WANDB_ENTITY"] = config.wandb_entity
    return env


def build_launch(spec: JobSpec, config: Config, *, queue: str, attempt: int, base_dir: Path,
                 state_dir: Path, wandb_run_id: str, pinned: tuple[int, ...] | None,
                 pretrained_path: str, cluster_address: str, generation: int = 1) -> LaunchSpec:
    """The ``LaunchSpec`` of attempt ``attempt`` of row ``spec``.

    ``generation``: the attempt that began the row's current training run. Sweeps and the
    built-in kinds keep their checkpoints per run, not per attempt, so a retry resumes;
    a row run again after it was Done starts a run (and a folder) of its own.

    With a ``storage`` URI in the config, a ``ddp``/``hf``/``sweep`` row's Ray Train or Tune
    run lives there (so it resumes on any node), the runner uploads each attempt's weights
    and log there, and parent weights given as a URI are downloaded onto the row's node
    first (by the runner, or, for those kinds, by each worker or trial that reads them:
    they may be on other nodes)."""
    run_dir = state_dir / spec.id / f"attempt-{attempt}"
    builtin = BUILTIN.get(spec.kind)
    # jobs that read and write storage URIs themselves, on whichever nodes they spread to
    uri_aware = spec.kind == "sweep" or (builtin is not None and builtin.uri_storage)

    def storage(name: str) -> Path | str:
        run = name if generation <= 1 else f"{name}-{generation}"
        if config.storage and uri_aware:
            return uris.join(config.storage, spec.id, run)
        return state_dir / spec.id / run

    fetch: tuple[tuple[str, str], ...] = ()
    if uris.is_uri(pretrained_path) and not uri_aware:
        local = run_dir / "pretrained"
        fetch = ((uris.with_options(pretrained_path, config.storage), str(local)),)
        pretrained_path = str(local / uris.basename(pretrained_path))

    command, metric, goal = spec.command, config.metric, config.metric_goal
    if spec.kind == "sweep":
        metric, goal = sweep_metric(spec.config_path)
        command = sweep_command(
            spec.config_path, gpus=spec.gpus or 0.0,
            cpus=spec.cpus if spec.cpus is not None else 1.0,
            storage=storage("tune"),
            name=spec.id, address=cluster_address, retries=spec.retries or 1,
            max_concurrent=config.max_concurrent_trials)
    elif spec.kind in BUILTIN:
        name, goal = kind_metric(spec.kind, spec.config_path)
        metric = name or metric
        command = kind_command(
            spec.kind, spec.config_path, storage=storage(spec.kind),
            name=spec.id, workers=spec.workers, gpus=spec.gpus or 0.0,
            cpus=spec.cpus if spec.cpus is not None else 1.0, address=cluster_address)
    upload_to = uris.join(config.storage, spec.id, f"attempt-{attempt}") if config.storage else ""
    script = job_script(command, cwd=base_dir, setup_script=config.setup_script,
                        conda_env=config.conda_env if config.use_conda else "",
                        pretrained_path=pretrained_path,
                        header=f"{queue}/{spec.id} attempt {attempt}")
    env = job_env(spec, config, queue=queue, attempt=attempt, run_dir=run_dir,
                  wandb_run_id=wandb_run_id)
    return LaunchSpec(job_id=spec.id, attempt=attempt, label=f"{queue}/{spec.id}",
                      script=script, run_dir=str(run_dir), env=tuple(env.items()),
                      pinned_gpus=pinned, stop_grace=config.stop_grace,
                      weight_globs=config.weight_globs, metric=metric, metric_goal=goal,
                      fetch=fetch, upload_to=upload_to)
