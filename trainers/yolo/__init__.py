"""Kinds ``yolo`` (training) and ``yolo_label`` (auto-labelling) with ultralytics.

The face is the light config module (no torch, no ultralytics): the queue calls
``load(path, kind)`` and ``metric(cfg)`` when it loads. The job itself is
``python -m trainers.yolo train|label|make-data ...``.
"""

from trainers.yolo.config import (
    KINDS,
    LabelConfig,
    TrainConfig,
    load,
    load_label,
    load_train,
    metric,
)

__all__ = ["KINDS", "TrainConfig", "LabelConfig", "load", "load_train", "load_label", "metric"]
