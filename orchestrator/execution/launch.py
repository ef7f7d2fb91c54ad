"""What one attempt runs: its environment, its script, its ``LaunchSpec``.

Pure: it reads the row's spec and the config and decides nothing about when or
where the attempt runs (that is the driver's placement).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.api import (
    ATTEMPT_ENV,
    BATCH_DIVISOR_ENV,
    JOB_ID_ENV,
    METRICS_FILE_ENV,
    QUEUE_ENV,
)
from orchestrator.core import JobSpec
from orchestrator.core.failure import SETUP_FAILED
from orchestrator.infra import storage as uris
from orchestrator.kinds import KINDS, LaunchContext, job_script
from orchestrator.store.config import Config
from orchestrator.store.snapshot import frozen_path, named_words

__all__ = ["LaunchSpec", "FrozenCode", "build_launch", "job_env"]


@dataclass(frozen=True)
class FrozenCode:
    """The snapshot an attempt runs from (``[snapshot] mode = run``): where its blobs are,
    which one, the work tree it was taken of, what counts as code without git, and the
    storage URI it was published to for nodes without the state dir."""

    store: Path
    snapshot: str
    root: str
    globs: tuple[str, ...] = ("*.py",)
    remote: str = ""      # <storage>/snapshots: where a node without the state dir finds it
    outside: tuple[str, ...] = ()   # the files from outside the tree it keeps (their paths)
    config: str = ""      # the row's Config as queued (a file here): what its kind reads
    import_dirs: tuple[str, ...] = ()   # folders of the tree an editable install points to

    def prepare(self, dest: Path) -> str:
        """The script lines that make the frozen copy at ``dest`` (on the job's node) and
        put its folders an editable install points to first on ``PYTHONPATH``."""
        q = shlex.quote
        remote = f" {q(self.remote)}" if self.remote else ""
        line = (f"{q(sys.executable)} -m orchestrator.store.snapshot {q(str(self.store))} "
                f"{q(self.snapshot)} {q(str(dest))} {q(','.join(self.globs))}{remote} || "
                f"exit {SETUP_FAILED}")
        if self.import_dirs:
            paths = ":".join(str(Path(dest) / rel) for rel in self.import_dirs)
            line += f"\nexport PYTHONPATH={q(paths)}${{PYTHONPATH:+:$PYTHONPATH}}"
        return line


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a runner needs to run one attempt."""

    job_id: str
    attempt: int
    label: str                     # "<queue>/<ID>"
    script: str                    # the bash script (kinds.job_script)
    run_dir: str
    env: tuple[tuple[str, str], ...] = ()
    pinned_gpus: tuple[int, ...] | None = None   # None: the GPUs Ray gave this runner
    stop_grace: float = 10.0
    weight_globs: tuple[str, ...] = ()
    metric: str = ""
    metric_goal: str = "max"
    fetch: tuple[tuple[str, str], ...] = ()   # (URI, local folder): parent weights to download
    upload_to: str = ""            # storage URI of this attempt: its weights and log go there
    time_limit: float = 0.0        # seconds it may run (0: no limit)
    stall_timeout: float = 0.0     # seconds without log output or a metric (0: never stalls)


def job_env(spec: JobSpec, config: Config, *, queue: str, attempt: int, run_dir: Path,
            wandb_run_id: str, batch_divisor: int = 1) -> dict[str, str]:
    """The variables a job gets (besides CUDA_VISIBLE_DEVICES, set by its runner)."""
    env = {JOB_ID_ENV: spec.id, ATTEMPT_ENV: str(attempt), QUEUE_ENV: queue,
           METRICS_FILE_ENV: str(run_dir / "metrics.jsonl"),
           "WANDB_RUN_ID": wandb_run_id, "WANDB_RESUME": "allow", "WANDB_DIR": str(run_dir),
           "WANDB_NAME": spec.name or spec.id, "PYTHONUNBUFFERED": "1", **config.env}
    if batch_divisor > 1:
        env[BATCH_DIVISOR_ENV] = str(batch_divisor)
    if config.storage:
        env[uris.STORAGE_ENV] = config.storage
    if config.wandb_project:
        env["WANDB_PROJECT"] = config.wandb_project
    if config.wandb_entity:
        env["WANDB_ENTITY"] = config.wandb_entity
    return env


def build_launch(spec: JobSpec, config: Config, *, queue: str, attempt: int, base_dir: Path,
                 state_dir: Path, wandb_run_id: str, pinned: tuple[int, ...] | None,
                 pretrained_path: str, cluster_address: str, generation: int = 1,
                 batch_divisor: int = 1, code: FrozenCode | None = None,
                 launcher: str = "ray") -> LaunchSpec:
    """The ``LaunchSpec`` of attempt ``attempt`` of row ``spec``.

    ``generation``: the attempt that began the row's current training run. Sweeps and the
    built-in kinds keep their checkpoints per run, not per attempt, so a retry resumes;
    a row run again after it was Done starts a run (and a folder) of its own.

    With a ``storage`` URI in the config, a kind that reads and writes URIs itself
    (``ddp``/``hf``/``sweep``) keeps its run there (so it resumes on any node), the runner
    uploads each attempt's weights and log there, and parent weights given as a URI are
    downloaded onto the row's node first (by the runner, or, for those kinds, by each
    worker or trial that reads them: they may be on other nodes).

    ``code``: run from that snapshot: the job first makes its frozen copy in
    ``<run dir>/code`` and runs there, the row's ``Config`` read from the copy.
    ``launcher``: how a Ray Train kind's job starts its workers (``LaunchContext``)."""
    kind = KINDS[spec.kind]
    run_dir = state_dir / spec.id / f"attempt-{attempt}"
    cwd, prepare, frozen = base_dir, "", {}
    if code is not None:
        copy = run_dir / "code"
        cwd = copy / (_inside(base_dir, Path(code.root)) or ".")
        prepare = code.prepare(copy)
        frozen = _frozen_names(spec, base_dir, copy, code)
    storage: Path | str = ""
    if kind.storage_name:
        run = kind.storage_name if generation <= 1 else f"{kind.storage_name}-{generation}"
        storage = uris.join(config.storage, spec.id, run) if config.storage and kind.uri_aware \
            else state_dir / spec.id / run

    fetch: tuple[tuple[str, str], ...] = ()
    if uris.is_uri(pretrained_path) and not kind.uri_aware:
        local = run_dir / "pretrained"
        fetch = ((uris.with_options(pretrained_path, config.storage), str(local)),)
        pretrained_path = str(local / uris.basename(pretrained_path))

    queued = dataclasses.replace(spec, config_path=Path(code.config)) \
        if code is not None and code.config else spec   # not a file saved since
    metric, goal = kind.metric(queued, config.metric, config.goal)
    command = kind.command(spec, LaunchContext(
        storage=storage, address=cluster_address, gpus=spec.gpus or 0.0,
        cpus=spec.cpus if spec.cpus is not None else 1.0, workers=spec.workers,
        max_concurrent_trials=config.max_concurrent_trials, launcher=launcher))
    for live, copied in frozen.items():   # the kind read the live files; the job, the copy's
        if spec.config_path is not None and live == str(spec.config_path):
            command = command.replace(live, copied)   # wherever the kind wrote it
        else:                                         # the user's word, as a word
            quoted = shlex.quote(copied)
            command = re.sub(rf"(?<=[\s=]){re.escape(live)}(?=[\s;&|)]|$)",
                             lambda _, q=quoted: q, command)
    upload_to = uris.join(config.storage, spec.id, f"attempt-{attempt}") if config.storage else ""
    script = job_script(command, cwd=cwd, setup_script=config.setup_script,
                        conda_env=config.conda_env if config.use_conda else "",
                        pretrained_path=pretrained_path, prepare=prepare,
                        header=f"{queue}/{spec.id} attempt {attempt}")
    env = job_env(spec, config, queue=queue, attempt=attempt, run_dir=run_dir,
                  wandb_run_id=wandb_run_id, batch_divisor=batch_divisor)
    policy = config.retry
    return LaunchSpec(job_id=spec.id, attempt=attempt, label=f"{queue}/{spec.id}",
                      script=script, run_dir=str(run_dir), env=tuple(env.items()),
                      pinned_gpus=pinned, stop_grace=config.stop_grace,
                      weight_globs=config.weight_globs, metric=metric, metric_goal=goal,
                      fetch=fetch, upload_to=upload_to,
                      time_limit=spec.time_limit or policy.time_limit,
                      stall_timeout=policy.stall_timeout)


def _frozen_names(spec: JobSpec, base_dir: Path, copy: Path, code: FrozenCode
                  ) -> dict[str, str]:
    """The paths in the row's command that would read a live file its frozen copy holds,
    and the copy's path for each: its ``Config`` (the kind writes it into the command
    whole), and a ``--config X`` written as an absolute path or reaching outside the tree
    (a relative one inside it already resolves in the copy). A file from outside the tree
    that the snapshot did not keep stays live."""
    root = Path(code.root)
    words = [(str(spec.config_path), spec.config_path)] if spec.config_path else []
    words += [(w, base_dir / Path(w).expanduser()) for w in named_words(spec.command)]
    out = {}
    for word, path in words:
        real = Path(path).resolve()
        inside = _inside(real, root)
        if inside is None and str(real) not in code.outside:
            continue
        if inside is not None and word != str(spec.config_path) \
                and not Path(word).expanduser().is_absolute():
            continue
        out[word] = str(frozen_path(copy, root, real))
    return out


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` relative to ``root`` (``Path(".")`` for root itself), or None when it is
    outside it."""
    try:
        return Path(path).resolve().relative_to(root)
    except ValueError:
        return None
