"""The ``hf`` kind's YAML: defaults < base file(s) < the experiment file < environment < CLI.

The queue reads this module when it loads a row (to refuse a bad config early and
to learn the row's metric), so it imports only the standard library, yaml and pydantic.

The section dataclasses below (frozen pydantic dataclasses) are the one table of keys:
their fields are the valid keys, their defaults are the base config, and their types say
how a value is read and bounded (``1e-5`` is a string to YAML; ``"4"`` from the command
line is an int; ``epochs`` is at least 1). Values are merged as written and checked once,
so an error names the file, ``$VAR`` or command line that wrote the bad value. A file
may name a base file with ``base: other.yaml``; relative paths in a file (``data.*``, a
local ``model.checkpoint``, ``base``) are relative to that file's folder.
``LEARNING_RATE``, ``BATCH_SIZE`` and ``NUM_EPOCHS`` in the environment override the
files, and ``--training.learning_rate=1e-4`` (or ``--learning_rate=1e-4`` where the name
is unique) overrides everything: that is how a W&B sweep passes its parameters.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from orchestrator.api import batch_divisor
from orchestrator.infra.validation import (
    Bool,
    Float,
    Int,
    did_you_mean,
    nearest,
    parse_bool,
    problem_for,
)
from trainers.configfile import located, read_mapping
from trainers.errors import ConfigError

__all__ = ["HFConfig", "load", "metric", "SECTIONS", "ENV_OVERRIDES", "BUILTIN_METRICS",
           "ALIASES", "fp16_enabled", "parse_overrides", "resolve_key"]

#: Environment variables that override a key (the names these users' scripts already set).
ENV_OVERRIDES = {"LEARNING_RATE": "training.learning_rate", "BATCH_SIZE": "training.batch_size",
                 "NUM_EPOCHS": "training.epochs"}
#: What an evaluation reports (``eval_loss`` keeps its prefix; "loss" is the training loss).
BUILTIN_METRICS = ("rouge1", "rouge2", "rougeL", "rouge_sum", "rouge_combined", "eval_loss")
_PATH_KEYS = ("data.train", "data.dev", "data.test")
_CALLBACK_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _opt_text(value: Any) -> Any:
    return None if value is None or value == "" else _plain(value)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else value


def _names(value: Any) -> Any:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.lstrip().startswith("[") else value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of names")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _auto_bool(value: Any) -> Any:
    if str(value).strip().lower() == "auto":
        return "auto"
    parsed = parse_bool(value) if str(value).strip() else None
    if parsed is None:
        raise ValueError("must be auto, true or false")
    return parsed


# The value types of the sections' keys (``Int``, ``Float``, ``Bool``: ``1e-5`` and ``"4"``
# as numbers, ``yes`` as true; see orchestrator.infra.validation).
Text = Annotated[str, BeforeValidator(_plain)]
OptText = Annotated[str | None, BeforeValidator(_opt_text)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
AutoBool = Annotated[bool | Literal["auto"], BeforeValidator(_auto_bool)]
Count = Annotated[Int, Field(ge=0)]
Positive = Annotated[Int, Field(ge=1)]
Restarts = Annotated[Int, Field(ge=-1)]
Rate = Annotated[Float, Field(gt=0)]
NonNegative = Annotated[Float, Field(ge=0)]


@pydantic_dataclass(frozen=True)
class Model:
    checkpoint: OptText = None           # a hub name or a local folder (--pretrained_path wins)
    architecture: OptText = None         # a label (kobart, t5 …): recorded, not used


@pydantic_dataclass(frozen=True)
class Tokenizer:
    encoder_max_len: Positive = 512
    decoder_max_len: Positive = 100
    special_tokens: Names = ()            # added to the tokenizer, e.g. ["#Person1#"]


@pydantic_dataclass(frozen=True)
class Training:
    epochs: Positive = 20
    batch_size: Positive = 50
    eval_batch_size: Count = 0            # 0 = batch_size
    learning_rate: Rate = 1e-5
    weight_decay: NonNegative = 0.01
    warmup_steps: Count = 500
    save_total_limit: Count = 3           # 0 = keep every checkpoint
    logging_steps: Positive = 100
    early_stopping_patience: Count = 3    # 0 = no early stopping
    gradient_accumulation_steps: Positive = 1
    seed: Int = 42
    gradient_checkpointing: Bool = False
    fp16: AutoBool = "auto"               # auto = only where CUDA is present
    metric_for_best_model: Text = "rouge_combined"
    generation_max_len: Positive = 100
    num_beams: Positive = 4
    predict_samples: Count = 100          # dev predictions saved beside the best model
    callbacks: Names = ()                 # "module:Class" TrainerCallbacks
    resume: Bool = True                   # continue from the output dir's latest checkpoint
    max_failures: Restarts = 1            # Ray Train worker-group restarts (-1 = no limit)
    dataloader_num_workers: Count = 0


@pydantic_dataclass(frozen=True)
class Data:
    train: OptText = None
    dev: OptText = None
    test: OptText = None                  # optional: the guides' prepare_data() returns it
    dialogue_column: Text = "dialogue"
    summary_column: Text = "summary"


@pydantic_dataclass(frozen=True)
class Wandb:
    enabled: Bool = False
    project: Text = "hf-summarization"
    entity: OptText = None
    log_model: Bool = False               # the best model as a W&B artifact


@pydantic_dataclass(frozen=True)
class Experiment:
    name: OptText = None
    tags: Names = ()


SECTIONS: dict[str, type] = {"model": Model, "tokenizer": Tokenizer, "training": Training,
                             "data": Data, "wandb": Wandb, "experiment": Experiment}

#: Other names of keys, as the summarization guides and HF's TrainingArguments spell them
#: (``per_device_train_batch_size``; the tracker guide's ``meta`` and ``general``).
ALIASES = {"training.num_train_epochs": "training.epochs",
           "training.per_device_train_batch_size": "training.batch_size",
           "training.per_device_eval_batch_size": "training.eval_batch_size",
           "training.generation_max_length": "training.generation_max_len",
           "training.generation_num_beams": "training.num_beams",
           "meta.experiment_name": "experiment.name", "meta.tags": "experiment.tags",
           "general.seed": "training.seed"}
ALIAS_SECTIONS = {a.split(".")[0] for a in ALIASES} - set(SECTIONS)


@dataclass(frozen=True)
class HFConfig:
    model: Model = field(default_factory=Model)
    tokenizer: Tokenizer = field(default_factory=Tokenizer)
    training: Training = field(default_factory=Training)
    data: Data = field(default_factory=Data)
    wandb: Wandb = field(default_factory=Wandb)
    experiment: Experiment = field(default_factory=Experiment)
    source: str = ""                      # the experiment file
    folder: str = ""                      # its folder (for callbacks' modules)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: {k: list(v) if isinstance(v, tuple) else v
                       for k, v in dataclasses.asdict(getattr(self, name)).items()}
                for name in SECTIONS}

    @property
    def run_name(self) -> str:
        return self.experiment.name or Path(self.source).stem or "hf"


# ---- loading -------------------------------------------------------------------------------


@located
def load(path: str | Path | Mapping, overrides: Iterable[str] | Mapping[str, Any] = (),
         environ: Mapping[str, str] | None = None, *, require_data: bool = True,
         origin: str | Path | None = None) -> HFConfig:
    """Validate the config at ``path`` (with its bases, the environment and ``overrides``);
    ``path`` may be the mapping itself: relative paths in it start at the folder of
    ``origin`` (the file it was read from), else at the working folder.
    ``require_data``: the data files must be named (not when the caller brings datasets)."""
    tree = {name: {} for name in SECTIONS}   # the values as written, later ones winning
    origins: dict[str, Any] = {}             # section.key -> where its value was written
    if isinstance(path, Mapping):
        data = dict(path)
        base = data.pop("base", None)
        where = Path(origin).resolve() if origin else Path.cwd() / "<config>"
        if base:
            for file, values in _file_chain((where.parent / str(base)).resolve(), ()):
                _merge_file(tree, origins, values, file)
        _merge_file(tree, origins, data, where)
        path = where
    else:
        path = Path(path).expanduser().resolve()
        for file, data in _file_chain(path, ()):
            _merge_file(tree, origins, data, file)
    environ = os.environ if environ is None else environ
    for var, dotted in ENV_OVERRIDES.items():
        if environ.get(var, "").strip():
            section, key = dotted.split(".")
            tree[section][key], origins[dotted] = environ[var].strip(), f"${var}"
    items = overrides.items() if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for name, raw in items:
        section, key = _resolve_key("command line", name, str(name))
        tree[section][key], origins[f"{section}.{key}"] = raw, "command line"
    sections = {name: _section(name, tree[name], origins, path) for name in SECTIONS}
    training = sections["training"]
    changes = {"metric_for_best_model": _metric_name(training.metric_for_best_model)}
    divisor = batch_divisor(environ)   # an earlier attempt ran out of memory (halve_batch)
    if divisor > 1:
        for key in ("batch_size", "eval_batch_size"):
            if getattr(training, key):
                changes[key] = max(1, getattr(training, key) // divisor)
    sections["training"] = dataclasses.replace(training, **changes)
    cfg = HFConfig(**sections, source=str(path), folder=str(path.parent))
    _validate(cfg, require_data)
    return cfg


def _section(name: str, values: dict, origins: dict, source: Path):
    """The section ``name`` made from ``values``; a bad value is a ``ConfigError`` that
    names where it was written (the file, ``$VAR`` or the command line), the key, the
    value and the fix."""
    cls = SECTIONS[name]
    try:
        return cls(**values)
    except ValidationError as e:
        error = e.errors()[0]
        key = str(error["loc"][0])
        dotted = f"{name}.{key}"
        default = {f.name: f.default for f in dataclasses.fields(cls)}[key]
        fix = (f"set {dotted} to {(error.get('ctx') or {}).get('ge')} or more"
               if error.get("type") == "greater_than_equal" else
               f"e.g. {key}: {_example(default)}")
        raise ConfigError(origins.get(dotted, source), problem=problem_for(error), key=dotted,
                          value=values.get(key), fix=fix) from None


def metric(cfg: HFConfig) -> tuple[str, str]:
    """The row's metric: ``(metric_for_best_model, "max" | "min")`` (min for a loss)."""
    name = cfg.training.metric_for_best_model
    return name, "min" if name.endswith("loss") else "max"


def parse_overrides(args: Iterable[str]) -> list[tuple[str, str]]:
    """``["--training.lr=1", "--epochs", "3"]`` → ``[("training.lr", "1"), ("epochs", "3")]``."""
    args, pairs, i = list(args), [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ConfigError("command line", problem="expected --key=value", value=arg,
                              fix="write overrides as --training.learning_rate=1e-4")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError("command line", problem="an override needs a value", key=name,
                                  fix=f"write --{name}=VALUE")
            value, i = args[i + 1], i + 1
        pairs.append((name, value))
        i += 1
    return pairs


def fp16_enabled(setting: bool | str, cuda: bool) -> bool:
    """Mixed precision only where CUDA is present (``true`` on a CPU is ignored)."""
    return bool(cuda) and setting in (True, "auto")


def _field_types(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def _file_chain(path: Path, seen: tuple[Path, ...]) -> list[tuple[Path, dict]]:
    """``[(base, data), ..., (path, data)]``: the base files first."""
    if path in seen:
        raise ConfigError(seen[-1], problem="base files name each other in a loop", key="base",
                          value=str(path), fix="remove one of the base: lines")
    data = read_mapping(path, example="examples/hf_tiny.yaml",
                        named_by=seen[-1] if seen else None)
    base = data.pop("base", None)
    if base in (None, ""):
        return [(path, data)]
    if not isinstance(base, str):
        raise ConfigError(path, problem="must be a file name", key="base", value=base,
                          fix="write base: other.yaml")
    base_path = (path.parent / Path(base).expanduser()).resolve()
    return _file_chain(base_path, (*seen, path)) + [(path, data)]


def _merge_file(tree: dict, origins: dict, data: dict, file: Path) -> None:
    for written, values in data.items():
        if written not in SECTIONS and written not in ALIAS_SECTIONS:
            raise ConfigError(file, problem="unknown section", key=str(written),
                              fix=_suggest(str(written), [*SECTIONS, "base"]))
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(file, problem="a section must be a mapping of key: value",
                              key=written,
                              value=values, fix=f"write {written}: {{key: value}}")
        for raw_key, value in values.items():
            section, key = _resolve_key(file, f"{written}.{raw_key}", f"{written}.{raw_key}")
            dotted = f"{section}.{key}"
            tree[section][key] = _relative_path(dotted, value, file.parent)
            origins[dotted] = file


def _relative_path(dotted: str, value: Any, folder: Path) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if dotted in _PATH_KEYS:
        return str((folder / Path(value).expanduser()).resolve())
    if dotted == "model.checkpoint":  # a folder beside the file wins over a hub name
        local = folder / Path(value).expanduser()
        if local.exists() or value.startswith((".", "/", "~")):
            return str(local.resolve())
    return value


def resolve_key(where, name: str) -> tuple[str, str]:
    """Where ``name`` goes: ``section.key``, one of the guides' names (``ALIASES``) or a
    bare key unique across sections → ``(section, key)``; ``ConfigError`` naming ``where``
    and the valid keys otherwise."""
    return _resolve_key(where, name, name)


def _resolve_key(where, name: str, shown: str) -> tuple[str, str]:
    """``section.key`` or a bare ``key`` unique across sections → ``(section, key)``."""
    name = name.replace("-", "_")
    all_keys = [f"{s}.{k}" for s in SECTIONS for k in _field_types(s)]
    if name in ALIASES:
        return tuple(ALIASES[name].split("."))
    by_bare = [a for a in ALIASES if a.split(".")[1] == name]
    if "." not in name and len(by_bare) == 1 and not any(
            name in _field_types(s) for s in SECTIONS):
        return tuple(ALIASES[by_bare[0]].split("."))
    if "." in name:
        section, _, key = name.partition(".")
        if section in SECTIONS and key in _field_types(section):
            return section, key
        if section not in SECTIONS:
            raise ConfigError(where, problem="unknown section", key=shown,
                              fix=_suggest(section, list(SECTIONS)))
        raise ConfigError(where, problem="unknown key", key=shown,
                          fix=_suggest(name, all_keys, [f"{section}.{k}"
                                                        for k in _field_types(section)]))
    owners = [s for s in SECTIONS if name in _field_types(s)]
    if len(owners) == 1:
        return owners[0], name
    if owners:
        raise ConfigError(where, problem="the key is in several sections", key=shown,
                          fix="name it with its section: " + ", ".join(
                              f"--{s}.{name}" for s in owners))
    bare = {k.split(".")[1]: k for k in all_keys}
    near = nearest(name, bare)
    hint = f"did you mean {bare[near]}? " if near else ""
    raise ConfigError(where, problem="unknown key", key=shown,
                      fix=hint + "valid: " + ", ".join(all_keys))


def _suggest(word: str, choices: list[str], valid: list[str] | None = None) -> str:
    return did_you_mean(word, choices) + "valid: " + ", ".join(valid or sorted(set(choices)))


def _example(default: Any) -> str:
    if isinstance(default, tuple):
        return "[a, b]"
    return "auto" if default is None else str(default).lower() if isinstance(default, bool) \
        else str(default)


# ---- validation ------------------------------------------------------------------------------

def _validate(cfg: HFConfig, require_data: bool = True) -> None:
    where = cfg.source
    for key in ("train", "dev") if require_data else ():
        if not getattr(cfg.data, key):
            raise ConfigError(where, problem="missing: the CSV of dialogue/summary pairs",
                              key=f"data.{key}", fix=f"add data: {{{key}: data/{key}.csv}}")
    for spec in cfg.training.callbacks:
        if not _CALLBACK_RE.match(spec):
            raise ConfigError(where, problem="a callback is named module:Class",
                              key="training.callbacks",
                              value=spec, fix="e.g. callbacks: [my_callbacks:LengthMetric]")
    if cfg.wandb.enabled and not cfg.wandb.project:
        raise ConfigError(where, problem="W&B needs a project", key="wandb.project",
                          fix="set wandb.project or wandb.enabled: false")
    _validate_metric(cfg)


def _metric_name(name: str) -> str:
    """``loss`` is the evaluation's loss; ``eval_rouge1`` is reported as ``rouge1``."""
    if name in ("loss", "eval_loss"):
        return "eval_loss"
    return name[len("eval_"):] if name.startswith("eval_") else name


def _validate_metric(cfg: HFConfig) -> None:
    name = cfg.training.metric_for_best_model
    if name in BUILTIN_METRICS or cfg.training.callbacks:  # a callback may add its own metric
        return
    raise ConfigError(cfg.source, problem="not a metric an evaluation reports",
                      key="training.metric_for_best_model", value=name,
                      fix=_suggest(name, list(BUILTIN_METRICS)))
