"""Kind ``yolo_label``: write YOLO labels for a folder of images with trained weights.

``python -m trainers.yolo label CONFIG [--pretrained_path P] [--project DIR]``. Each image
gets ``<stem>.txt`` (one ``cls cx cy w h`` line per box, normalized; empty when nothing
was found) and the output folder gets ``classes.txt`` from the model's names, so the
folder can be a training row's ``data`` (alone, or in a list with the original set).
Images that already have a label file are left alone unless ``overwrite: true``, so
human labels survive and a retried row carries on where it stopped.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.api import report
from trainers.errors import ConfigError
from trainers.yolo import offline
from trainers.yolo.config import LabelConfig
from trainers.yolo.data import CLASSES_FILE, list_images
from trainers.yolo.device import resolve_device

__all__ = ["LabelCounts", "label_lines", "write_label", "write_classes", "run"]


@dataclass
class LabelCounts:
    images: int = 0
    labelled: int = 0   # images given at least one box
    empty: int = 0      # images predicted with no box (an empty label file)
    skipped: int = 0    # images that already had a label file
    boxes: int = 0


def label_lines(rows) -> str:
    """YOLO label text for ``(cls, cx, cy, w, h)`` rows (normalized 0..1)."""
    out = []
    for cls, *box in rows:
        cx, cy, w, h = (min(max(float(v), 0.0), 1.0) for v in box)
        out.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(out)


def write_label(path: Path, rows) -> int:
    """Write one label file; returns the number of boxes."""
    text = label_lines(rows)
    path.write_text(text, encoding="utf-8")
    return text.count("\n")


def write_classes(folder: Path, names: dict | list, overwrite: bool) -> Path:
    """``folder/classes.txt`` from the model's names; an existing different list is an error
    (labels would mean other classes) unless ``overwrite``."""
    ordered = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    path = folder / CLASSES_FILE
    text = "".join(f"{n}\n" for n in ordered)
    if path.is_file() and not overwrite:
        existing = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
        if existing != ordered:
            raise ConfigError(path, problem=f"lists {existing}, the weights know {ordered}",
                              key="output", fix="label into another output folder, or set "
                                                "overwrite: true to relabel everything")
        return path
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _weights(cfg: LabelConfig, pretrained: str | None) -> Path:
    from trainers.yolo.train import pretrained_file

    if cfg.weights is not None:
        return cfg.weights
    if pretrained:
        return pretrained_file(pretrained)
    raise ConfigError(cfg.path, problem="no weights to label with", key="weights",
                      fix="set weights: to a .pt, or chain the row from a yolo row "
                          "(PretrainedModelId) so --pretrained_path brings its best.pt")


def _images(cfg: LabelConfig) -> list[Path]:
    images = list_images(cfg.source)
    if not images:
        raise ConfigError(cfg.path, problem=f"no images in {cfg.source}", key="source",
                          fix="use a folder of .jpg, .jpeg, .png, .bmp, .tif, .tiff or .webp files")
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise ConfigError(cfg.path,
                              problem=f"{image.name} and {stems[image.stem].name} would share "
                              f"{image.stem}.txt", key="source", fix="rename one of them")
        stems[image.stem] = image
    return images


def _predict(model, cfg: LabelConfig, device: str, todo: list[Path], out: Path,
             counts: LabelCounts) -> None:
    extra = {"imgsz": cfg.imgsz} if cfg.imgsz else {}
    for start in range(0, len(todo), cfg.batch):
        chunk = todo[start:start + cfg.batch]
        results = model.predict([str(p) for p in chunk], conf=cfg.conf, iou=cfg.iou,
                                device=device, verbose=False, **extra)
        for image, result in zip(chunk, results, strict=True):
            boxes = result.boxes
            rows = [(c, *box) for c, box in zip(boxes.cls.tolist(), boxes.xywhn.tolist(),
                                                 strict=True)]
            n = write_label(out / f"{image.stem}.txt", rows)
            counts.boxes += n
            counts.labelled += n > 0
            counts.empty += n == 0


def run(cfg: LabelConfig, pretrained: str | None = None, project: str | None = None) -> dict:
    """Label ``cfg.source``; reports and returns the counts."""
    import os

    weights = _weights(cfg, pretrained)
    images = _images(cfg)
    out = cfg.output or cfg.source
    root = Path(project).resolve() / "ultralytics" if project else \
        Path(tempfile.mkdtemp(prefix="yolo-label-"))
    try:
        offline.prepare(root)
        import torch
        from ultralytics import YOLO

        cuda = torch.cuda.is_available()
        plan = resolve_device(cfg.device, visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
                              cuda_count=torch.cuda.device_count() if cuda else 0,
                              path=cfg.path, single=True)
        if plan.note:
            print(f"[yolo] {plan.note}", flush=True)
        model = YOLO(str(weights))
        write_classes(out, model.names, cfg.overwrite)
        counts = LabelCounts(images=len(images))
        todo = [p for p in images if cfg.overwrite or not (out / f"{p.stem}.txt").exists()]
        counts.skipped = len(images) - len(todo)
        _predict(model, cfg, plan.device, todo, out, counts)
    finally:
        if not project:
            shutil.rmtree(root, ignore_errors=True)
    summary = {"images": counts.images, "labelled": counts.labelled, "empty": counts.empty,
               "skipped": counts.skipped, "boxes": counts.boxes}
    report(weight_file=weights, labels_dir=str(out), **summary)
    print(f"[yolo] labelled {counts.labelled}, empty {counts.empty}, skipped {counts.skipped} "
          f"of {counts.images} images ({counts.boxes} boxes) → {out}", flush=True)
    return {**summary, "weight_file": str(weights), "labels_dir": str(out)}
