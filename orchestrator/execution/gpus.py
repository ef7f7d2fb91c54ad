"""Pinned GPUs for the seed's modes (``process_gpu_mapping``, ``GpuID``).

In these modes the user names physical GPU ids, so the driver keeps a ledger of
which ids are busy and never hands one out twice (the old tool's process counter
could). Ray mode needs none of this: Ray assigns GPUs.
"""

from __future__ import annotations

__all__ = ["GpuLedger"]


class GpuLedger:
    """Busy GPU ids, and the slots of process-order mode."""

    def __init__(self, slots: tuple[tuple[int, ...], ...] = ()):
        self.slots = slots
        self._busy: dict[int, str] = {}   # gpu id -> job id

    def claim_slot(self, job_id: str) -> tuple[int, tuple[int, ...]] | None:
        """The lowest free slot for ``job_id`` (its index and GPUs), or None."""
        for index, gpus in enumerate(self.slots):
            if self.claim(job_id, gpus):
                return index, gpus
        return None

    def claim(self, job_id: str, gpus: tuple[int, ...]) -> bool:
        """Take ``gpus`` for ``job_id`` if none of them is busy."""
        if any(g in self._busy for g in gpus):
            return False
        for g in gpus:
            self._busy[g] = job_id
        return True

    def release(self, job_id: str) -> None:
        for g in [g for g, owner in self._busy.items() if owner == job_id]:
            del self._busy[g]

    def busy(self) -> dict[int, str]:
        return dict(self._busy)
