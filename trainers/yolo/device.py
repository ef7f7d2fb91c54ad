"""Which devices a YOLO job trains on, and with which batch and precision.

The row's runner holds the row's GPUs and Ray names them in ``CUDA_VISIBLE_DEVICES``;
torch (and ultralytics 8.4, which never rewrites that variable) numbers them 0..n-1.
So ``device: auto`` means "all the GPUs this row was given", ``0,2`` means the first
and third of them, and anything past n-1 is a mistake worth a clear message.

Pure functions (no torch here): the caller passes what torch sees, so the rules are
unit-tested on a machine without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainers.errors import ConfigError

__all__ = ["DevicePlan", "parse_device", "visible_gpus", "resolve_device", "per_gpu_batch",
           "choose_amp", "AUTO", "CPU"]

AUTO, CPU = "auto", "cpu"


@dataclass(frozen=True)
class DevicePlan:
    """What ultralytics is given: ``device`` is ``"cpu"`` or ``"0,1"`` (torch indices)."""

    device: str
    gpus: int           # GPUs trained on (0 on CPU)
    note: str = ""      # printed when the plan differs from what was asked

    @property
    def replicas(self) -> int:
        """How many batch shares: one per GPU, and the CPU counts as one."""
        return max(self.gpus, 1)


def _device_error(path, value, problem: str, fix: str) -> ConfigError:
    return ConfigError(path, problem=problem, key="device", value=value, fix=fix)


def parse_device(value: object, path: str | Path | None = None) -> str | tuple[int, ...]:
    """``"auto"``, ``"cpu"`` or a tuple of GPU indices, from YAML (str, int or list)."""
    if value is None:
        return AUTO
    if isinstance(value, bool):
        raise _device_error(path, value, "not a device", "use auto, cpu, 0, or a list like 0,1")
    if isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value]
    else:
        text = str(value).strip().lower().replace("cuda:", "")
        if text in (AUTO, "", "cuda"):
            return AUTO
        if text == CPU:
            return CPU
        parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise _device_error(path, value, "not a device",
                            "use auto (the row's GPUs), cpu, a GPU index like 0, or 0,2")
    indices = tuple(int(p) for p in parts)
    if len(set(indices)) != len(indices):
        raise _device_error(path, value, "a GPU is listed twice",
                            f"list each GPU once, e.g. {','.join(map(str, sorted(set(indices))))}")
    return indices


def visible_gpus(env_value: str | None) -> list[str] | None:
    """The GPU ids in ``CUDA_VISIBLE_DEVICES`` (None when the variable is unset)."""
    if env_value is None:
        return None
    return [p.strip() for p in env_value.split(",") if p.strip() and p.strip() != "-1"]


def _given(visible: list[str] | None, cuda_count: int) -> int:
    """GPUs this row holds: what torch sees (it honours CUDA_VISIBLE_DEVICES), or, without
    CUDA, the logical GPUs Ray named."""
    return cuda_count if cuda_count or visible is None else len(visible)


def _shown(visible: list[str] | None) -> str:
    return "" if visible is None else f" (CUDA_VISIBLE_DEVICES={','.join(visible)})"


def resolve_device(spec: str | tuple[int, ...], *, visible: str | None, cuda_count: int,
                   path: str | Path | None = None, single: bool = False) -> DevicePlan:
    """The devices to use for ``spec`` given ``CUDA_VISIBLE_DEVICES`` and torch's GPU count.

    ``single`` (labelling): one device at most; ``auto`` picks the first GPU.
    """
    gpus = visible_gpus(visible)
    given = _given(gpus, cuda_count)
    if spec == CPU:
        return DevicePlan(CPU, 0)
    if spec == AUTO:
        indices = tuple(range(1 if single and given else given))
    else:
        indices = spec
        if single and len(indices) > 1:
            raise _device_error(path, ",".join(map(str, indices)), "labelling runs on one device",
                                "use auto, cpu or one GPU index")
        for index in indices:
            if index >= given:
                raise _device_error(
                    path, ",".join(map(str, indices)),
                    f"GPU {index} not available: this row was given {given} GPU"
                    f"{'' if given == 1 else 's'}{_shown(gpus)}",
                    f"use auto, cpu or indices 0..{given - 1}" if given else
                    "give the row GPUs in the queue's GPUs column, or use device: cpu")
    if not indices:
        return DevicePlan(CPU, 0, "no GPU was given to this row: training on the CPU"
                          if spec == AUTO and gpus is not None else "")
    if cuda_count == 0:
        return DevicePlan(CPU, 0, f"CUDA is not available although this row was given "
                                  f"{given} GPU{'' if given == 1 else 's'}{_shown(gpus)}: "
                                  f"running on the CPU")
    return DevicePlan(",".join(str(i) for i in indices), len(indices))


def per_gpu_batch(batch_per_gpu: int | None, batch: int | None, replicas: int,
                  path: str | Path | None = None) -> int:
    """The per-GPU batch: ``batch_per_gpu`` as given, or a total ``batch`` split evenly."""
    if batch is None:
        return batch_per_gpu or 16
    if batch % replicas:
        raise ConfigError(path, problem=f"batch {batch} does not split evenly over {replicas} GPUs",
                          key="batch", value=batch,
                          fix=f"use a multiple of {replicas}, or batch_per_gpu instead")
    return batch // replicas


def choose_amp(requested: str | bool, *, on_cuda: bool, bf16_native: bool) -> tuple[object, str]:
    """The ``amp`` value for ultralytics, and a note when it differs from what was asked.

    ultralytics' fp16 AMP check downloads ``yolo26n.pt``; bf16 skips that check, so
    ``auto`` means bf16 where the GPU has it natively, else full precision.
    """
    if requested is False or requested == "fp32" or not on_cuda:
        return False, ""
    if bf16_native:
        return "bf16", ""
    if requested == "bf16":
        return False, "this GPU has no native bfloat16: training in full precision (amp off)"
    return False, ("mixed precision off: this GPU has no native bfloat16 and ultralytics' fp16 "
                   "check would download a model")
