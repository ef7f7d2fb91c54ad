"""Out of GPU memory: how to recognise it, what to advise, and the halving policy.

ultralytics halves the batch by itself only in the first epoch on one GPU. Past that,
or under DDP (where the parent only sees the launcher's exit status), the job fails;
with ``on_oom: halve_batch`` it restarts itself with half the per-GPU batch (resuming
from ``last.pt`` when there is one) until ``min_batch``.
"""

from __future__ import annotations

__all__ = ["OOM_MARKERS", "is_oom", "halved", "oom_advice"]

#: Text that marks an allocation failure on a GPU (torch's OutOfMemoryError message and
#: the cuBLAS/cuDNN failures ultralytics itself treats as memory errors).
OOM_MARKERS = ("out of memory", "outofmemoryerror", "cublas_status_alloc_failed",
               "cudnn_status_alloc_failed", "cuda error: out of memory")


def is_oom(error: BaseException | str) -> bool:
    """True when ``error`` (an exception, or the text a DDP worker left) is a GPU out-of-memory."""
    if isinstance(error, BaseException):
        chain, seen = [], set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            chain.append(f"{type(error).__name__}: {error}")
            error = error.__cause__ or error.__context__
        text = "\n".join(chain)
    else:
        text = error
    low = text.lower()
    return any(marker in low for marker in OOM_MARKERS)


def halved(batch: int, min_batch: int) -> int | None:
    """The next per-GPU batch after an OOM at ``batch``, or None when below ``min_batch``."""
    smaller = batch // 2
    return smaller if smaller >= max(min_batch, 1) else None


def oom_advice(batch: int, gpus: int, *, halving: bool, min_batch: int) -> str:
    """The fix part of the error line for an out-of-memory failure."""
    tips = [f"halve the batch (batch_per_gpu: {max(batch // 2, 1)})",
            "use a smaller model (n or s)", "lower imgsz"]
    if gpus > 1:
        tips.append("or use fewer GPUs per row so each gets its own memory")
    elif gpus == 1:
        tips.append("or give the row a whole GPU if it shares one")
    advice = ", ".join(tips)
    if halving:
        return f"the batch was halved down to min_batch {min_batch} and still did not fit: {advice}"
    return f"{advice}; or set on_oom: halve_batch to let the job retry with half the batch"
