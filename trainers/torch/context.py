"""Where a trainer runs: in a Ray Train worker (which rank of how many) or on its own.

Plain use never imports Ray: a process that has not imported ``ray.train`` cannot be
a Ray Train worker, so the check costs nothing there.
"""

from __future__ import annotations

import sys

__all__ = ["in_ray_train", "world"]


def in_ray_train() -> bool:
    """True inside a function that a Ray Train ``trainer.fit()`` launched."""
    if "ray.train" not in sys.modules:
        return False
    import ray.train

    try:
        ray.train.get_context()
    except (RuntimeError, DeprecationWarning):  # outside a worker; inside a Tune trial
        return False
    return True


def world() -> tuple[int, int]:
    """``(rank, world_size)``: Ray Train's when inside a worker, else ``(0, 1)``."""
    if not in_ray_train():
        return 0, 1
    import ray.train

    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()
