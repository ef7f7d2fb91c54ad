"""GPU utilisation and memory of this machine's GPUs, from NVML (``nvidia-ml-py``).

``gpu_usage()`` is None where NVML does not answer: no NVIDIA driver (logical GPUs on a
laptop, a CPU box, a container without the driver mounted). NVML numbers the GPUs the
way ``nvidia-smi`` does; Ray's GPU ids on a node are the same unless the driver was
started under a ``CUDA_VISIBLE_DEVICES`` of its own.
"""

from __future__ import annotations

import threading

__all__ = ["gpu_usage"]

_lock = threading.Lock()
_state = {"ready": None}   # None: not tried yet; False: NVML is not here


def _ready() -> bool:
    with _lock:
        if _state["ready"] is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["ready"] = True
            except Exception:  # noqa: BLE001 - no library, no driver, no GPU: all the same
                _state["ready"] = False
        return bool(_state["ready"])


def gpu_usage() -> list[dict] | None:
    """``[{"index", "util", "mem_used_gib", "mem_total_gib"}]`` per GPU, or None."""
    if not _ready():
        return None
    import pynvml

    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append({"index": i, "util": int(util.gpu),
                        "mem_used_gib": mem.used / 2**30, "mem_total_gib": mem.total / 2**30})
        return out
    except Exception:  # noqa: BLE001 - a GPU fell off the bus mid-read: say n/a, go on
        return None
