"""The ``Kind=ddp`` YAML's schema: each key once, with its type, default and the words for
a bad value (``say``); ``trainers.torch.config.load`` validates a file with it. No
``from __future__ import annotations`` here: pydantic reads these annotations as written."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt

from trainers.configfile import say
from trainers.torch.config import _TARGET, FORMATS


def _mapping(value):   # an empty key (YAML's null) is the default
    return {} if value is None else value


def _target(value):
    if isinstance(value, str) and _TARGET.match(value.strip()):
        return value.strip()
    raise ValueError("not module:name")


def _whole(low: int, default: int, key: str):
    return Field(default, ge=low, json_schema_extra=say(
        f"must be a whole number >= {low}", f"e.g. {key}: {max(default, low)}"))


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_to_keep: StrictInt = _whole(1, 2, "checkpoint.num_to_keep")
    format: Literal[FORMATS] = Field("ckpt", json_schema_extra=say(
        f"must be one of {', '.join(FORMATS)}", "e.g. checkpoint.format: ckpt"))


def _wandb_value(value):   # true/false/empty for the whole section
    if value is None or isinstance(value, bool):
        return {"enabled": bool(value)}
    return value


def _listed(value):
    return [value] if isinstance(value, str) else value


class Wandb(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    tags: Annotated[list[Any], BeforeValidator(lambda v: _listed(v or []))] = Field(
        default_factory=list, json_schema_extra=say("must be a list of strings",
                                                    "e.g. tags: [baseline, ddp]"))


_ENTRY = say("must be 'module:name'", "write it as entry: my_module:MyTrainer (the "
                  "module is found on python_path)")


class File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry: Annotated[str, BeforeValidator(_target)] = Field(json_schema_extra=_ENTRY)
    build: Annotated[str, BeforeValidator(lambda v: "" if v in (None, "") else _target(v))
                     ] = Field("", json_schema_extra=say(
                         "must be 'module:name'", "write it as build: my_module:build "
                         "(the module is found on python_path)"))
    params: Annotated[dict, BeforeValidator(_mapping)] = Field(
        default_factory=dict, json_schema_extra=say(
            "must be a mapping", "write it as params: {lr: 0.01, batch_size: 32}"))
    epochs: StrictInt = _whole(1, 1, "epochs")
    scheduler_step: Literal["epoch", "batch"] = Field("epoch", json_schema_extra=say(
        "must be one of epoch, batch", "e.g. scheduler_step: epoch"))
    gradient_clip: StrictFloat | StrictInt = Field(0.0, ge=0, json_schema_extra=say(
        "must be a number >= 0 (0 = off)", "e.g. gradient_clip: 1.0"))
    checkpoint: Annotated[Checkpoint, BeforeValidator(_mapping)] = Field(
        default_factory=Checkpoint, json_schema_extra=say(
            "must be a mapping", "e.g. checkpoint: {num_to_keep: 2, format: ckpt}"))
    max_failures: StrictInt = _whole(-1, 1, "max_failures")
    controller_failure_limit: StrictInt = _whole(-1, 3, "controller_failure_limit")
    metric: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = Field(
        "valid_loss", min_length=1, json_schema_extra=say(
            "is empty", "name a logged value: valid_loss"))
    goal: Literal["min", "max"] | None = Field(None, json_schema_extra=say(
        "must be one of min, max", "e.g. goal: min"))
    wandb: Annotated[Wandb, BeforeValidator(_wandb_value)] = Field(
        default_factory=lambda: Wandb(enabled=False), json_schema_extra=say(
            "must be a mapping or true/false",
            "e.g. wandb: {enabled: true, project: my-project}"))
    python_path: Annotated[list[str], BeforeValidator(_listed)] = Field(
        default_factory=lambda: ["."], json_schema_extra=say(
            "must be a list of folders", 'e.g. python_path: ["."] (relative to this file)'))


__all__ = ["File", "Checkpoint", "Wandb"]
