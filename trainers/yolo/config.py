"""The YAML a ``Kind=yolo`` or ``Kind=yolo_label`` row names, checked when the queue loads.

Light on purpose: stdlib, yaml and pydantic only (the keys, their types and the words
for a bad value are the schemas in ``trainers/yolo/schema.py``). The list of ultralytics
train arguments is read from its ``cfg/default.yaml`` file (found with
``importlib.util.find_spec``, which does not import ultralytics), so a typo under
``train_args:`` is caught before any GPU waits. Relative paths are relative to the YAML
file's folder.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.infra.validation import did_you_mean
from trainers.configfile import located, read_mapping, validated
from trainers.errors import ConfigError
from trainers.yolo.device import parse_device

__all__ = ["TrainConfig", "LabelConfig", "load", "load_train", "load_label", "metric",
           "ultralytics_args", "KINDS", "SIZES"]

KINDS = ("yolo", "yolo_label")
SIZES = ("n", "s", "m", "l", "x")
#: ultralytics arguments this kind sets itself (top-level keys, the row, or the run folder).
MANAGED = ("model", "data", "epochs", "imgsz", "batch", "workers", "device", "amp", "plots",
           "project", "name", "exist_ok", "resume", "mode", "cfg")
#: torch.nn activations a model YAML's ``activation:`` may name.
ACTIVATIONS = ("SiLU", "ReLU", "ReLU6", "LeakyReLU", "GELU", "Hardswish", "Mish", "ELU", "SELU",
               "CELU", "PReLU", "RReLU", "Tanh", "Sigmoid", "Hardsigmoid", "Hardtanh",
               "Softplus", "Softsign", "LogSigmoid", "Tanhshrink", "Identity")
_LOOSE_TYPES = {"cache", "compile", "pretrained", "scale", "fraction"}  # bool/number or str/list


@dataclass(frozen=True)
class TrainConfig:
    path: Path
    data: tuple[Path, ...]           # one data.yaml, or image folders split automatically
    data_is_yaml: bool
    model: str                       # builtin yaml name, or an absolute .yaml/.pt path
    family: str = "yolov8"
    activation: str | None = None    # "nn.ReLU()" form
    val_fraction: float = 0.2
    split_seed: int = 0
    epochs: int = 100
    imgsz: int = 640
    batch_per_gpu: int | None = None
    batch: int | None = None         # total over all GPUs
    workers: int = 8
    device: str | tuple[int, ...] = "auto"
    on_oom: str = "fail"
    min_batch: int = 1
    amp: str | bool = "auto"
    plots: bool = False
    integrations: tuple[str, ...] = ()
    train_args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LabelConfig:
    path: Path
    source: Path
    weights: Path | None = None
    output: Path | None = None       # None: beside the images
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int | None = None         # None: the size the weights were trained at
    device: str | tuple[int, ...] = "auto"
    batch: int = 16
    overwrite: bool = False


def metric(cfg: TrainConfig | LabelConfig) -> tuple[str, str]:
    """(metric name, "max"|"min") the row's BestMetric follows."""
    return ("labelled", "max") if isinstance(cfg, LabelConfig) else ("mAP50-95", "max")


def load(path: str | Path, kind: str = "yolo", *, check_paths: bool = True):
    """The checked config of a ``yolo`` (TrainConfig) or ``yolo_label`` (LabelConfig) row."""
    if kind not in KINDS:
        raise ConfigError(path, problem=f"unknown kind {kind!r}",
                          fix=f"use one of {', '.join(KINDS)}")
    return (load_train if kind == "yolo" else load_label)(path, check_paths=check_paths)


# ----------------------------------------------------------------- reading
def _read(path: str | Path) -> tuple[Path, dict]:
    path = Path(path).expanduser().resolve()
    return path, read_mapping(path, example="examples/yolo_tiny.yaml")


def _checked(model, raw: dict, path: Path):
    """``raw`` as ``model`` (``trainers/yolo/schema.py``), keys said quoted."""
    return validated(model, raw, path, shown="'{}'")


def _ultralytics_key(path: Path, raw: dict, keys) -> None:
    """An ultralytics argument written at the top level belongs under ``train_args``."""
    unknown = [key for key in raw if key not in keys]
    if not unknown or _ultralytics_dir() is None:
        return
    known = ultralytics_args()
    for key in unknown:
        if key in known and key not in MANAGED:
            raise ConfigError(path, problem=f"{key!r} is an ultralytics argument", key=key,
                              fix=f"put it under train_args: ({key}: {raw[key]!r})")


def _local(path: Path, value, key: str, *, must_exist: bool, kind: str = "") -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(path, problem="must be a path", key=key, value=value)
    p = Path(str(value)).expanduser()
    p = (p if p.is_absolute() else path.parent / p).resolve()
    if must_exist and not p.exists():
        raise ConfigError(path, problem=f"{p} does not exist", key=key, value=str(value),
                          fix=f"give an existing {kind or 'path'} (relative paths start at the "
                              f"config's folder {path.parent})")
    if must_exist and kind == "folder" and not p.is_dir():
        raise ConfigError(path, problem=f"{p} is not a folder", key=key, value=str(value))
    return p


# ----------------------------------------------------------------- ultralytics facts
@functools.cache
def _ultralytics_dir() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def ultralytics_args() -> dict:
    """ultralytics' train arguments and their defaults, from its ``cfg/default.yaml``."""
    root = _ultralytics_dir()
    if root is None:
        raise ConfigError(None, problem="ultralytics is not installed",
                          fix="pip install ultralytics==8.4.190 (and cloudpickle for multi-GPU)")
    return yaml.safe_load((root / "cfg" / "default.yaml").read_text(encoding="utf-8"))


def _builtin_model(name: str) -> bool:
    """Whether ultralytics ships ``name`` (e.g. yolov8n.yaml → cfg/models/v8/yolov8.yaml)."""
    root = _ultralytics_dir()
    if root is None:
        return False
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + ".yaml"
    return any((root / "cfg" / "models").rglob(unified))


# ----------------------------------------------------------------- train
def _data(path: Path, value, check: bool) -> tuple[tuple[Path, ...], bool]:
    if value is None:
        raise ConfigError(path, problem="is missing", key="data",
                          fix="give a data.yaml, or a folder of images + YOLO labels + classes.txt")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(path, problem="an empty list", key="data", fix="name at least one folder")
    yamls = [str(v).lower().endswith((".yaml", ".yml")) for v in values]
    if any(yamls) and len(values) > 1:
        raise ConfigError(path, problem="a list may only hold image folders", key="data",
                          value=value,
                          fix="give one data.yaml, or a list of folders")
    kind = "file" if yamls[0] else "folder"
    return tuple(_local(path, v, "data", must_exist=check, kind=kind) for v in values), yamls[0]


def _model(path: Path, model, family: str | None, check: bool) -> tuple[str, str]:
    if isinstance(model, str) and model in SIZES:
        return f"{family or 'yolov8'}{model}.yaml", family or "yolov8"
    if family is not None:
        raise ConfigError(path, problem="family goes with a size letter (n, s, m, l, x) only",
                          key="family",
                          value=family, fix="remove family, or set model to a size letter")
    text = str(model)
    if text.lower().endswith((".yaml", ".yml")):
        local = _local(path, text, "model", must_exist=False)
        if local.exists() or not check:
            return str(local), "yolov8"
        if "/" not in text and _builtin_model(text):
            return text, "yolov8"
        raise ConfigError(path, problem=f"no model YAML {local} and ultralytics has no {text}",
                          key="model", value=model, fix="use n, s, m, l, x, a model YAML or a .pt")
    if text.lower().endswith(".pt"):
        local = _local(path, text, "model", must_exist=False)
        if check and not local.exists():
            raise ConfigError(path, problem=f"{local} does not exist (nothing is downloaded here)",
                              key="model", value=model,
                              fix=f"use a size letter (n → {text[:-3]}.yaml, from scratch), or "
                                  "a local .pt; a queue row fine-tunes with PretrainedModelId")
        return str(local), "yolov8"
    raise ConfigError(path, problem="not a model", key="model", value=model,
                      fix="use a size (n, s, m, l, x), a model YAML or a .pt file")


def _activation(path: Path, value, model: str) -> str | None:
    if value is None:
        return None
    m = re.fullmatch(r"(?:torch\.)?(?:nn\.)?([A-Za-z]\w*)\s*(\(.*\))?", str(value).strip())
    name = m.group(1) if m else ""
    match = {**{a.lower(): a for a in ACTIVATIONS}, "swish": "SiLU"}.get(name.lower())
    if match is None:
        raise ConfigError(path, problem="not a torch.nn activation", key="activation", value=value,
                          fix=did_you_mean(name, ACTIVATIONS)
                          + f"use one of {', '.join(ACTIVATIONS)}")
    if model.endswith(".pt"):
        raise ConfigError(path, problem="a .pt file fixes its activation", key="activation",
                          value=value,
                          fix="use a size letter or a model YAML to choose the activation")
    return f"nn.{match}{m.group(2) or '()'}"


def _amp(path: Path, value):
    if value is True or str(value).lower() == "fp16":
        raise ConfigError(path, problem="fp16 AMP runs ultralytics' AMP check, which "
                          "downloads yolo26n.pt", key="amp", value=value,
                          fix="use amp: auto (bf16 where the GPU has it), bf16, or false")
    if value is False or str(value).lower() in ("auto", "bf16", "fp32", "false"):
        return False if str(value).lower() in ("false", "fp32") else str(value).lower()
    raise ConfigError(path, problem="not a precision", key="amp", value=value,
                      fix="use auto, bf16 or false")


def _check_arg_type(path: Path, key: str, value, default) -> None:
    if key in _LOOSE_TYPES or default is None or value is None:
        return
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(path, problem="must be true or false", key=f"train_args.{key}",
                          value=value)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and \
            (isinstance(value, (bool, str)) or not isinstance(value, (int, float))):
        raise ConfigError(path, problem="must be a number", key=f"train_args.{key}", value=value,
                          fix=f"ultralytics' default is {default!r}")


def _train_args(path: Path, extra, top_level) -> dict:
    """``train_args:``, checked against ultralytics' own ``cfg/default.yaml`` (its keys
    and the types of their defaults), so a typo is caught before any GPU waits."""
    if not isinstance(extra, dict):
        raise ConfigError(path, problem="must be a mapping of ultralytics argument: value",
                          key="train_args", value=extra)
    known = ultralytics_args() if extra else {}
    for key in extra:
        if key in MANAGED:
            raise ConfigError(path, problem=f"{key!r} is set by this kind, not under train_args",
                              key=f"train_args.{key}", value=extra[key],
                              fix=f"use the top-level key {key}" if key in top_level else
                              "remove it (the row's project folder, name and resume are managed)")
        if key not in known:
            valid = [k for k in known if k not in MANAGED]
            raise ConfigError(path, problem=f"unknown key {key!r} in train_args", key=str(key),
                              fix=did_you_mean(key, valid, "{!r}") + "see ultralytics' "
                              f"cfg/default.yaml; valid train_args: {', '.join(valid)}")
        _check_arg_type(path, key, extra[key], known[key])
    return dict(extra)


def _batches(path: Path, per_gpu: int | None, total: int | None, min_batch: int) -> None:
    if per_gpu is not None and total is not None:
        raise ConfigError(path, problem="batch_per_gpu and batch are both set", key="batch",
                          value=total,
                          fix="keep one: batch_per_gpu (each GPU's share) or batch (the total)")
    if per_gpu is not None and min_batch > per_gpu:
        raise ConfigError(path, problem=f"larger than batch_per_gpu {per_gpu}", key="min_batch",
                          value=min_batch, fix="min_batch is per GPU; make it <= batch_per_gpu")


@located
def load_train(path: str | Path, *, check_paths: bool = True) -> TrainConfig:
    """The checked config of a ``yolo`` (training) row."""
    from trainers.yolo.schema import Train  # pydantic, loaded when a yolo row is read

    path, raw = _read(path)
    _ultralytics_key(path, raw, Train.model_fields)
    data = _checked(Train, raw, path)
    sources, is_yaml = _data(path, data.data, check_paths)
    model, family = _model(path, data.model, data.family, check_paths)
    _batches(path, data.batch_per_gpu, data.batch, data.min_batch)
    return TrainConfig(
        path=path, data=sources, data_is_yaml=is_yaml, model=model, family=family,
        activation=_activation(path, data.activation, model),
        val_fraction=data.val_fraction, split_seed=data.split_seed, epochs=data.epochs,
        imgsz=data.imgsz, batch_per_gpu=data.batch_per_gpu, batch=data.batch,
        workers=data.workers, device=parse_device(data.device, path), on_oom=data.on_oom,
        min_batch=data.min_batch, amp=_amp(path, data.amp), plots=data.plots,
        integrations=tuple(data.integrations),
        train_args=_train_args(path, data.train_args, Train.model_fields))


# ----------------------------------------------------------------- label
@located
def load_label(path: str | Path, *, check_paths: bool = True) -> LabelConfig:
    """The checked config of a ``yolo_label`` (auto-labelling) row."""
    from trainers.yolo.schema import Label

    path, raw = _read(path)
    data = _checked(Label, raw, path)
    if data.source is None:
        raise ConfigError(path, problem="is missing", key="source",
                          fix="name the folder of unlabelled images")
    return LabelConfig(
        path=path, source=_local(path, data.source, "source", must_exist=check_paths,
                                 kind="folder"),
        weights=None if data.weights is None else
        _local(path, data.weights, "weights", must_exist=check_paths, kind="file"),
        output=None if data.output is None else
        _local(path, data.output, "output", must_exist=False),
        conf=data.conf, iou=data.iou, imgsz=data.imgsz, device=parse_device(data.device, path),
        batch=data.batch, overwrite=data.overwrite)
