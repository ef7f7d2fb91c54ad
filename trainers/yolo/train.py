"""Kind ``yolo``: train with ultralytics in one run folder per row, resuming after a retry.

``python -m trainers.yolo train CONFIG --project DIR [--pretrained_path P]``. Everything
the run writes lives under ``DIR``:

    DIR/ultralytics/   private YOLO_CONFIG_DIR (settings, fonts, DDP temp files)
    DIR/data/          the train/val split of a folder ``data`` (symlinks + data.yaml)
    DIR/model/         the model YAML when ``activation`` overrides the default
    DIR/train/         ultralytics' run: weights/{best,last}.pt, results.csv, args.yaml

A retried or restarted row finds ``train/weights/last.pt``: an unfinished run resumes
from it (``YOLO(last.pt).train(resume=True)``), a finished one is only reported again.
The row's GPUs are ultralytics' to use: more than one, and it runs its own DDP.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.api import batch_divisor, report
from trainers.errors import ConfigError
from trainers.yolo import offline, progress
from trainers.yolo.config import TrainConfig
from trainers.yolo.data import write_split
from trainers.yolo.device import DevicePlan, choose_amp, per_gpu_batch, resolve_device
from trainers.yolo.oom import is_oom

__all__ = ["RunPaths", "OutOfMemory", "run", "run_paths", "checkpoint_state", "pretrained_file",
           "note"]


@dataclass(frozen=True)
class RunPaths:
    project: Path

    @property
    def config_root(self) -> Path:
        return self.project / "ultralytics"

    @property
    def data_dir(self) -> Path:
        return self.project / "data"

    @property
    def model_dir(self) -> Path:
        return self.project / "model"

    @property
    def run_dir(self) -> Path:
        return self.project / "train"

    @property
    def last(self) -> Path:
        return self.run_dir / "weights" / "last.pt"

    @property
    def best(self) -> Path:
        return self.run_dir / "weights" / "best.pt"

    @property
    def results(self) -> Path:
        return self.run_dir / "results.csv"

    @property
    def failure(self) -> Path:
        return self.project / "failure.txt"


class OutOfMemory(RuntimeError):
    """Training ran out of GPU memory at this per-GPU batch."""

    def __init__(self, batch: int, gpus: int, detail: str = ""):
        super().__init__(f"out of GPU memory at batch_per_gpu {batch} on {gpus} GPU(s)"
                         + (f": {detail}" if detail else ""))
        self.batch, self.gpus, self.detail = batch, gpus, detail

    def __reduce__(self):
        return (OutOfMemory, (self.batch, self.gpus, self.detail))


def note(text: str) -> None:
    print(f"[yolo] {text}", flush=True)


def run_paths(project: str | Path) -> RunPaths:
    return RunPaths(Path(project).expanduser().resolve())


def pretrained_file(path: str | Path) -> Path:
    """The weights a parent row left: a .pt file, or a run folder holding weights/best.pt."""
    p = Path(path).expanduser().resolve()
    for candidate in (p, p / "weights" / "best.pt", p / "best.pt", p / "train/weights/best.pt"):
        if candidate.is_file():
            return candidate
    raise ConfigError(None, problem=f"no weights at {p}", key="--pretrained_path", value=str(path),
                      fix="point it at a .pt file or a YOLO run folder with weights/best.pt")


def checkpoint_state(last: Path) -> str:
    """``none``, ``resumable``, ``finished`` (stripped at the end, or saved after the last
    epoch: ultralytics refuses to resume either) or ``broken`` (cut short by a kill)."""
    if not last.is_file():
        return "none"
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(last, map_location="cpu")
    except Exception:  # a file cut short by a kill mid-write
        return "broken"
    if not isinstance(ckpt, dict):
        return "broken"
    epoch = ckpt.get("epoch", -1)
    epochs = (ckpt.get("train_args") or {}).get("epochs") or 0
    if epoch < 0 or not ckpt.get("optimizer") or epoch + 1 >= epochs:
        return "finished"   # stripped at the end, or killed after the last epoch's save
    return "resumable"


def _plan(cfg: TrainConfig) -> tuple[DevicePlan, object]:
    import torch

    cuda = torch.cuda.is_available()
    plan = resolve_device(cfg.device, visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
                          cuda_count=torch.cuda.device_count() if cuda else 0, path=cfg.path)
    on_cuda = plan.gpus > 0
    bf16 = on_cuda and torch.cuda.is_bf16_supported(including_emulation=False)
    amp, amp_note = choose_amp(cfg.amp, on_cuda=on_cuda, bf16_native=bf16)
    for text in (plan.note, amp_note):
        if text:
            note(text)
    return plan, amp


def _data(cfg: TrainConfig, paths: RunPaths) -> str:
    if cfg.data_is_yaml:
        return str(cfg.data[0])
    data_yaml, counts = write_split(cfg.data, paths.data_dir, cfg.val_fraction, cfg.split_seed)
    note(f"data: {counts['train_images']} train / {counts['val_images']} val images "
         f"({counts['labelled_images']} labelled) from {', '.join(map(str, cfg.data))}")
    return str(data_yaml)


def _model(cfg: TrainConfig, paths: RunPaths) -> str:
    if cfg.activation is None:
        return cfg.model
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    spec = yaml_model_load(cfg.model)
    spec = {k: v for k, v in spec.items() if k not in ("yaml_file", "scale")}
    spec["activation"] = cfg.activation
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    out = paths.model_dir / Path(cfg.model).name   # keeps the size letter in the name
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return str(out)


def _train(model, kwargs: dict, paths: RunPaths, plan: DevicePlan, batch: int) -> None:
    paths.failure.unlink(missing_ok=True)
    os.environ[progress.FAILURE_ENV] = str(paths.failure)
    try:
        model.train(**kwargs)
    except Exception as e:
        worker = paths.failure.read_text("utf-8").strip() if paths.failure.is_file() else ""
        if is_oom(e) or is_oom(worker):
            detail = (worker or str(e) or type(e).__name__).strip().splitlines()
            raise OutOfMemory(batch, plan.gpus, detail[-1] if detail else "") from e
        if worker:
            note(f"a DDP worker failed with: {worker.splitlines()[-1]}")
        raise


def _final(paths: RunPaths) -> dict:
    metrics = progress.final_metrics(progress.read_results(paths.results))
    weights = paths.best if paths.best.is_file() else paths.last
    if not weights.is_file():
        raise RuntimeError(f"training ended without weights in {weights.parent}")
    report(weight_file=weights, **metrics)
    shown = ", ".join(f"{k}={metrics[k]:.4g}" for k in ("mAP50-95", "mAP50") if k in metrics)
    note(f"done: {weights} ({shown})")
    return {"weight_file": str(weights), **metrics}


def _model_and_args(cfg: TrainConfig, paths: RunPaths, state: str, common: dict, amp,
                    pretrained: str | Path | None):
    """The ultralytics model and ``train()`` arguments: resume, or a fresh start."""
    from ultralytics import YOLO

    if state == "resumable":
        note(f"resuming from {paths.last}")
        return YOLO(str(paths.last)), {**common, "resume": True}
    if state == "broken":
        note(f"{paths.last} is unreadable (cut short?): training from the start")
    kwargs = {**cfg.train_args, **common, "epochs": cfg.epochs, "imgsz": cfg.imgsz, "amp": amp,
              "project": str(paths.project), "name": paths.run_dir.name, "exist_ok": True}
    if pretrained:
        weights = pretrained_file(pretrained)
        note(f"fine-tuning from {weights}")
        kwargs["pretrained"] = str(weights)
    return YOLO(_model(cfg, paths)), kwargs


def run(cfg: TrainConfig, project: str | Path, pretrained: str | Path | None = None,
        batch_override: int | None = None) -> dict:
    """Train (or resume, or report a finished run); returns the final metrics."""
    paths = run_paths(project)
    paths.project.mkdir(parents=True, exist_ok=True)
    offline.prepare(paths.config_root, cfg.integrations)   # before ultralytics is imported
    plan, amp = _plan(cfg)
    batch = batch_override or per_gpu_batch(cfg.batch_per_gpu, cfg.batch, plan.replicas, cfg.path)
    divisor = batch_divisor()   # an earlier attempt ran out of memory (on_oom = halve_batch)
    if batch_override is None and divisor > 1:
        batch = max(cfg.min_batch, batch // divisor)
        note(f"an earlier attempt ran out of memory: batch divided by {divisor}")
    state = checkpoint_state(paths.last)
    if state == "finished":
        note(f"{paths.run_dir} already finished training: reporting it (delete {paths.project} "
             "to train again)")
        return _final(paths)
    common = {"data": _data(cfg, paths), "device": plan.device, "batch": batch * plan.replicas,
              "workers": cfg.workers, "plots": cfg.plots}
    model, kwargs = _model_and_args(cfg, paths, state, common, amp, pretrained)
    progress.add_callbacks(model)
    note(f"training on {plan.device} with batch {batch} per {'GPU' if plan.gpus else 'CPU'}")
    _train(model, kwargs, paths, plan, batch)
    return _final(paths)


def retry_argv(config: str, project: str, pretrained: str | None, batch: int) -> list[str]:
    """The command line that restarts this job with a smaller per-GPU batch."""
    argv = [sys.executable, "-m", "trainers.yolo", "train", config, "--project", project]
    if pretrained:
        argv += ["--pretrained_path", pretrained]
    return argv + ["--batch_per_gpu", str(batch)]
