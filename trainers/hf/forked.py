"""An hf job whose workers fit one node: forked by ``trainers.forked`` instead of started
as Ray Train's actors. Each worker runs the same function as on Ray Train
(``driver.train_loop``: the Seq2SeqTrainer over the process group, resuming from the
output dir's latest checkpoint); the parent has already imported transformers, so a
worker costs a fork, not an interpreter and its imports."""

from __future__ import annotations

from pathlib import Path

from trainers.hf.train import Job

__all__ = ["run_forked"]


def run_forked(job: Job, *, folder: Path, workers: int, gpus: float,
               max_failures: int) -> tuple[dict, Path]:
    """Train on ``workers`` forked processes; the metrics reported with the last
    checkpoint, and the best model's folder. Raises ``trainers.forked.WorkersFailed``."""
    from trainers.forked import fork_workers, kept_checkpoints
    from trainers.hf.driver import train_loop

    fork_workers(train_loop, {"job": job, "best_to_ray": False}, folder=folder,
                 workers=workers, gpus_per_worker=gpus, restarts=max_failures, keep=1,
                 label="the hf job")
    kept = kept_checkpoints(folder)
    return (dict(kept[-1][1]) if kept else {}), job.best_dir
