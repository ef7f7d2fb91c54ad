"""The ``Kind=yolo`` and ``Kind=yolo_label`` YAML's schemas: each key once, with its type,
default and the words for a bad value (``say``); ``trainers.yolo.config`` validates a file
with them, then checks what needs the file system or ultralytics (paths, the model, the
activation, ``train_args``). No ``from __future__ import annotations`` here: pydantic reads
these annotations as written."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.infra.validation import Bool, Float, Int
from trainers.configfile import say

FAMILIES = ("yolov8", "yolo11", "yolo26")
INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
ON_OOM = ("fail", "halve_batch")


def _whole(default, low: int | None = None, example: int = 1):
    words = "must be a whole number" + (f" >= {low}" if low is not None else "")
    return Field(default, ge=low, json_schema_extra=say(words, f"e.g. {example}"))


def _fraction(default: float, high: float):
    return Field(default, gt=0, le=high, json_schema_extra=say(
        f"must be a number in (0, {high:g}]", f"e.g. {default}"))


def _true_false(default: bool):
    return Field(default, json_schema_extra=say("must be true or false"))


def _listed(value):
    return [] if value is None else [value] if isinstance(value, str) else value


class Train(BaseModel):
    """A ``yolo`` (training) row's file."""

    model_config = ConfigDict(extra="forbid")
    data: Any = Field(json_schema_extra=say(
        "is missing", "give a data.yaml, or a folder of images + YOLO labels + classes.txt"))
    val_fraction: Float = _fraction(0.2, 0.9)
    split_seed: Int = _whole(0, example=0)
    model: Any = "n"
    family: Literal[FAMILIES] | None = Field(None, json_schema_extra=say(
        "unknown model family", f"use one of {', '.join(FAMILIES)}"))
    activation: Any = None
    epochs: Int = _whole(100, 1, 100)
    imgsz: Int = _whole(640, 32, 640)
    batch_per_gpu: Int | None = _whole(None, 1, 16)
    batch: Int | None = _whole(None, 1, 64)
    workers: Int = _whole(8, 0, 8)
    device: Any = "auto"
    on_oom: Literal[ON_OOM] = Field("fail", json_schema_extra=say(
        "not a valid choice", f"use one of {', '.join(ON_OOM)}"))
    min_batch: Int = _whole(1, 1, 1)
    amp: Any = "auto"
    plots: Bool = _true_false(False)
    integrations: Annotated[list[Literal[INTEGRATIONS]], BeforeValidator(_listed)] = Field(
        default_factory=list, json_schema_extra=say(
            "not an integration ultralytics has", f"use any of {', '.join(INTEGRATIONS)}"))
    train_args: Annotated[Any, BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=dict)


class Label(BaseModel):
    """A ``yolo_label`` (auto-labelling) row's file."""

    model_config = ConfigDict(extra="forbid")
    source: Any = Field(json_schema_extra=say("is missing",
                                              "name the folder of unlabelled images"))
    weights: Any = None
    output: Any = None
    conf: Float = _fraction(0.25, 1.0)
    iou: Float = _fraction(0.7, 1.0)
    imgsz: Int | None = _whole(None, 32, 640)
    device: Any = None
    batch: Int = _whole(16, 1, 16)
    overwrite: Bool = _true_false(False)


__all__ = ["Train", "Label", "FAMILIES", "INTEGRATIONS", "ON_OOM"]
