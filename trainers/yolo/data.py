"""A folder of images + YOLO labels + ``classes.txt``, turned into a train/val split.

ultralytics wants a data.yaml with train and val image folders, and finds each image's
label by swapping ``/images/`` for ``/labels/`` in its path. The split is written as
symlinks under the run's own project folder (``<project>/data/``), never beside the
user's images: two runs on the same folder at once share nothing they write (not even
ultralytics' ``labels/*.cache``), and a retried run rebuilds the same split (seeded).

Two folder layouts are read: ``images/`` + ``labels/`` (mirrored paths), or flat (each
label ``<stem>.txt`` beside its image — what ``yolo_label`` writes by default). A list of
folders is merged (their classes.txt must agree): the way a queue trains again on a set
grown by auto-labelling.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from trainers.errors import ConfigError

__all__ = ["IMAGE_SUFFIXES", "Sample", "find_samples", "read_classes", "split_samples",
           "write_split", "list_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path | None   # None: no label file (a background image)
    key: str             # unique name inside the split


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """The images in ``folder`` (sorted), by suffix."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_classes(folder: Path) -> list[str]:
    """Class names, one a line, from ``folder/classes.txt`` (or ``folder/labels/classes.txt``,
    where ``yolo_label`` puts it when told ``output: <folder>/labels``)."""
    path = folder / CLASSES_FILE
    if not path.is_file() and (folder / "labels" / CLASSES_FILE).is_file():
        path = folder / "labels" / CLASSES_FILE
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError:
        raise ConfigError(folder, problem=f"no {CLASSES_FILE} in the data folder", key="data",
                          fix=f"write {path} with one class name a line (line 1 = class 0)") \
            from None
    names = [n for n in names if n]
    if not names:
        raise ConfigError(path, problem="lists no class names", key="data",
                          fix="write one class name a line (line 1 = class 0)")
    return names


def find_samples(folder: Path, prefix: str = "") -> list[Sample]:
    """Images and their labels in ``folder`` (``images/``+``labels/`` or flat)."""
    images_dir = folder / "images"
    if images_dir.is_dir():
        samples = []
        for image in list_images(images_dir, recursive=True):
            rel = image.relative_to(images_dir)
            label = (folder / "labels" / rel).with_suffix(".txt")
            samples.append(Sample(image, label if label.is_file() else None,
                                  prefix + "__".join(rel.with_suffix("").parts)))
    else:
        samples = [Sample(image, image.with_suffix(".txt") if image.with_suffix(".txt").is_file()
                          else None, prefix + image.stem) for image in list_images(folder)]
    return samples


def split_samples(samples: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded split: the same samples, fraction and seed give the same split every time.

    At least one image goes to each side when there are two or more.
    """
    ordered = sorted(samples, key=lambda s: getattr(s, "key", s))
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_val = min(max(round(n * val_fraction), 1), n - 1) if n > 1 else 0
    val = sorted(ordered[:n_val], key=lambda s: getattr(s, "key", s))
    train = sorted(ordered[n_val:], key=lambda s: getattr(s, "key", s))
    return train, val


def _merge(folders: tuple[Path, ...]) -> tuple[list[str], list[Sample]]:
    names: list[str] | None = None
    samples: list[Sample] = []
    for i, folder in enumerate(folders):
        these = read_classes(folder)
        if names is not None and these != names:
            raise ConfigError(folder / CLASSES_FILE,
                              problem=f"classes {these} differ from {names} in "
                              f"{folders[0]}", key="data",
                              fix="merged folders need the same classes.txt")
        names = these
        found = find_samples(folder, prefix=f"{i}_" if len(folders) > 1 else "")
        if not found:
            raise ConfigError(folder, problem="holds no images", key="data",
                              fix=f"put images ({', '.join(IMAGE_SUFFIXES)}) in it or images/")
        samples += found
    return names or [], samples


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def write_split(folders: tuple[Path, ...], out: Path, val_fraction: float,
                seed: int) -> tuple[Path, dict]:
    """Write ``out/images/{train,val}``, ``out/labels/{train,val}`` (symlinks) and
    ``out/data.yaml``; returns the data.yaml path and counts."""
    names, samples = _merge(folders)
    if len(samples) < 2:
        raise ConfigError(folders[0], problem=f"{len(samples)} image(s): too few to split",
                          key="data",
                          fix="add images (at least 2: one to train, one to validate)")
    train, val = split_samples(samples, val_fraction, seed)
    if out.exists():
        shutil.rmtree(out)
    for split, chosen in (("train", train), ("val", val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        for s in chosen:
            _link(s.image.resolve(), out / "images" / split / f"{s.key}{s.image.suffix}")
            if s.label is not None:
                _link(s.label.resolve(), out / "labels" / split / f"{s.key}.txt")
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({
        "path": str(out), "train": "images/train", "val": "images/val",
        "names": dict(enumerate(names))}, sort_keys=False), encoding="utf-8")
    counts = {"train_images": len(train), "val_images": len(val),
              "labelled_images": sum(s.label is not None for s in samples)}
    return data_yaml, counts
