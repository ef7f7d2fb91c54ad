"""Tiny synthetic detection data: coloured rectangles on noise, with YOLO labels.

``python -m trainers.yolo make-data DIR --train 16 --val 8 --imgsz 64 [--classes 2]``
writes ``images/{train,val}``, ``labels/{train,val}``, ``classes.txt`` and ``data.yaml``
(``--flat``: every image and its label side by side in DIR, for the folder form of
``data``); ``--unlabelled N`` adds ``unlabelled/`` images for the label step. Seeded:
the same arguments write the same bytes. Used by the tests, the demo and the benchmark.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

__all__ = ["make_data", "COLOURS"]

COLOURS = ((220, 40, 40), (40, 200, 60), (40, 80, 230), (230, 200, 30), (200, 40, 200),
           (30, 200, 210))
NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")


def _image(rng: random.Random, imgsz: int, classes: int):
    """One image and its label rows ``(cls, cx, cy, w, h)`` (normalized)."""
    from PIL import Image, ImageDraw

    grey = rng.randint(90, 160)
    noise = bytes(max(0, min(255, grey + rng.randint(-12, 12))) for _ in range(imgsz * imgsz))
    img = Image.frombytes("L", (imgsz, imgsz), noise).convert("RGB")
    draw = ImageDraw.Draw(img)
    rows = []
    for _ in range(rng.randint(1, 2)):
        cls = rng.randrange(classes)
        w, h = (rng.randint(imgsz // 4, imgsz // 2) for _ in range(2))
        x0, y0 = rng.randint(0, imgsz - w), rng.randint(0, imgsz - h)
        draw.rectangle((x0, y0, x0 + w - 1, y0 + h - 1), fill=COLOURS[cls])
        rows.append((cls, (x0 + w / 2) / imgsz, (y0 + h / 2) / imgsz, w / imgsz, h / imgsz))
    return img, rows


def _write(rng, folder: Path, label_folder: Path | None, count: int, imgsz: int, classes: int,
           prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img, rows = _image(rng, imgsz, classes)
        img.save(folder / f"{prefix}{i:04d}.png")
        if label_folder is not None:
            label_folder.mkdir(parents=True, exist_ok=True)
            (label_folder / f"{prefix}{i:04d}.txt").write_text(
                "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows),
                encoding="utf-8")


def make_data(out: str | Path, *, train: int = 16, val: int = 8, imgsz: int = 64,
              classes: int = 2, unlabelled: int = 0, flat: bool = False, seed: int = 0) -> Path:
    """Write the data set; returns its data.yaml (or, with ``flat``, the folder)."""
    if not 1 <= classes <= len(COLOURS):
        raise ValueError(f"classes must be 1..{len(COLOURS)}")
    out = Path(out).resolve()
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(n + "\n" for n in NAMES[:classes]), encoding="utf-8")
    if flat:
        _write(rng, out, out, train + val, imgsz, classes, "img")
    else:
        for split, count in (("train", train), ("val", val)):
            _write(rng, out / "images" / split, out / "labels" / split, count, imgsz, classes,
                   split)
    if unlabelled:
        _write(rng, out / "unlabelled", None, unlabelled, imgsz, classes, "new")
    if flat:
        return out
    data_yaml = out / "data.yaml"   # no `path:` key: ultralytics resolves from this file's folder
    data_yaml.write_text(yaml.safe_dump({"train": "images/train", "val": "images/val",
                                         "names": dict(enumerate(NAMES[:classes]))},
                                        sort_keys=False), encoding="utf-8")
    return data_yaml
