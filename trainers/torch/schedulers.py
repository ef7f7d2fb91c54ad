"""The add-on Trainer guide's scheduler, by its name and keywords.

``CosineAnnealingScheduler(optimizer=optimizer, total_iters=100)`` as the guide writes it
(``zae_engine.schedulers``): torch's ``CosineAnnealingLR`` over ``total_iters`` steps
(``T_max``), down to ``eta_min``. Whether it steps per batch or per epoch is the
Trainer's ``scheduler_step_on_batch``.
"""

from __future__ import annotations

from torch.optim.lr_scheduler import CosineAnnealingLR

__all__ = ["CosineAnnealingScheduler"]


class CosineAnnealingScheduler(CosineAnnealingLR):
    def __init__(self, optimizer, total_iters: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if total_iters < 1:
            raise ValueError(f"total_iters={total_iters!r}: the steps of one cosine, at least 1")
        self.total_iters = total_iters
        super().__init__(optimizer, T_max=total_iters, eta_min=eta_min, last_epoch=last_epoch)
