"""Run an hf job on Ray Train: ``TorchTrainer`` with ``N`` workers, each fine-tuning a replica.

The driver joins the cluster like ``orchestrator sweep run`` does (its job-level
``runtime_env`` carries the HF/W&B/orchestrator variables to every worker), asks
for ``workers`` x (``cpus``, ``gpus``) and waits. Inside each worker the
``Seq2SeqTrainer`` goes through Ray's ``prepare_trainer``; the Trainer itself
wraps the model in DDP over the process group Ray set up.

Checkpoints: each epoch rank 0 saves one into ``DIR/NAME/hf`` (the Trainer's
output dir) and hands a copy to Ray Train (``RankZeroReportCallback``), which keeps
the latest in ``DIR/NAME/checkpoint_*``. A worker restarted by ``max_failures``,
or a retried row, resumes from the output dir's latest checkpoint, or from Ray's
copy when the output dir has none (a node without the shared folder).

With ``--storage s3://…`` Ray Train's run lives in the bucket, the Trainer's output dir
stays on each worker's disk, and rank 0 hands the best model to Ray Train as the run's
last checkpoint; the driver copies it into ``$ORCH_RUN_DIR/best_model`` from there.

With logical GPUs and no CUDA (tests, a CPU laptop) the workers train on CPU:
the process group's backend is chosen on the workers (``trainers.ray_backend``: gloo
without CUDA) and ``use_cpu`` is set in the TrainingArguments.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ray
import ray.train
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

from orchestrator.api import report
from orchestrator.infra.storage import public
from trainers.hf.runtime import latest_checkpoint, pick_device
from trainers.hf.train import BEST_DIR, Job, public_metrics, train
from trainers.ray_backend import AutoBackendTorchConfig

__all__ = ["run_on_ray", "RankZeroReportCallback"]

#: Variables of the job's environment every worker gets.


class RankZeroReportCallback(RayTrainReportCallback):
    """``RayTrainReportCallback`` where only rank 0 hands over the checkpoint.

    The stock callback copies ``get_last_checkpoint(output_dir)`` on every rank.
    With one output dir shared by the workers, a rank other than 0 may copy it
    while rank 0 is still writing (no barrier between the save and ``on_save``)
    and Ray merges the ranks' copies into one folder. Every rank still calls
    ``ray.train.report`` (it is a barrier in Ray Train v2).
    """

    def on_save(self, args, state, control, **kwargs):
        metrics = public_metrics({k: v for log in state.log_history for k, v in log.items()})
        metrics["epoch"] = state.epoch
        if not state.is_world_process_zero:
            ray.train.report(metrics=metrics)
            return
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(source, Path(tmp) / self.CHECKPOINT_NAME)
            ray.train.report(metrics=metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


@contextlib.contextmanager
def _ray_resume(job: Job) -> Iterator[str | None]:
    """The output dir's latest checkpoint, else Ray Train's latest (``resume: false``: none)."""
    local = latest_checkpoint(Path(job.output_dir)) if job.cfg.training.resume else None
    checkpoint = ray.train.get_checkpoint() if job.cfg.training.resume else None
    if local or checkpoint is None:
        yield local
        return
    with checkpoint.as_directory() as folder:
        saved = Path(folder) / RankZeroReportCallback.CHECKPOINT_NAME
        yield str(saved) if saved.is_dir() else None   # the final best model is no checkpoint


def train_loop(config: dict) -> None:
    """What each Ray Train worker runs."""
    device = pick_device()
    if device != "cuda" and os.environ.get("ACCELERATE_TORCH_DEVICE", "").startswith("cuda"):
        # Ray names cuda:N for any worker given (logical) GPUs; accelerate would obey it.
        os.environ["ACCELERATE_TORCH_DEVICE"] = device
    job = config["job"]
    best = train(job, resume=_ray_resume, extra_callbacks=[RankZeroReportCallback()],
                 prepare=prepare_trainer)
    if config.get("best_to_ray"):
        _hand_over_best(job, best)


def _hand_over_best(job: Job, best: dict) -> None:
    """Rank 0 hands the best model to Ray Train as the run's last checkpoint: with the run
    in object storage, the driver gets it from there whichever node rank 0 ran on. Every
    rank reports (a barrier in Ray Train v2)."""
    metrics = {k: v for k, v in best.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics=metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(job.best_dir, Path(tmp) / BEST_DIR)
        ray.train.report(metrics=metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def run_on_ray(job: Job, *, storage: Path | str, name: str, workers: int, gpus: float,
               cpus: float, address: str | None, max_failures: int,
               best_to: Path | None = None) -> tuple[dict, Path]:
    """Fit on the cluster; the last metrics rank 0 handed to Ray and the best model's folder
    (raises if training failed).

    ``best_to``: copy the best model there from Ray Train's storage (``storage`` is then a
    URI: rank 0 may have run on a node whose disk this process cannot see), and report it
    as the job's weights."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainers.ray_job import join_ray

    join_ray(address)
    try:
        resources = {"CPU": cpus, **({"GPU": gpus} if gpus > 0 else {})}
        trainer = TorchTrainer(
            train_loop, train_loop_config={"job": job, "best_to_ray": best_to is not None},
            torch_config=AutoBackendTorchConfig(),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus > 0,
                                         resources_per_worker=resources),
            run_config=RunConfig(storage_path=str(storage), name=name,
                                 failure_config=FailureConfig(max_failures=max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=1)))
        result = trainer.fit()
    finally:
        ray.shutdown()
    metrics = dict(result.metrics or {})
    if best_to is None:
        return metrics, job.best_dir
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train kept no checkpoint in {public(str(storage))}: the best "
                           "model is lost (see the worker log above)")
    with result.checkpoint.as_directory() as folder:
        if best_to.exists():
            shutil.rmtree(best_to)
        shutil.copytree(Path(folder) / BEST_DIR, best_to)
    report(weight_file=str(best_to), **metrics)
    return metrics, best_to
