"""What a failed attempt does next, by its failure kind.

``setup``: nothing (running it again fails the same way; the row ends Crash with the
fix). ``lost``: re-queued for free, a bounded number of times. ``oom``: the row's
``on_oom`` — ``fail``, ``more_gpu`` (double a fraction up to a whole GPU, then whole
GPUs) or ``halve_batch`` (built-in kinds). ``stalled`` and ``timeout``: their own
budgets. ``exit``: the row's ``Retries``. Every retry but a lost one waits
``backoff`` seconds, doubling, at most ``max_backoff``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.failure import Failure, FailureKind

__all__ = ["RetryPolicy", "Decision", "decide", "more_gpus"]


@dataclass(frozen=True)
class RetryPolicy:
    """``[retry]`` in the config (``Retries`` per row is the ``exit`` budget)."""

    backoff: float = 5.0         # seconds before the first retry; doubles per retry
    max_backoff: float = 300.0
    lost: int = 3                # free re-queues of an attempt whose runner or node went away
    on_oom: str = "fail"         # fail | more_gpu | halve_batch (a row's OnOOM wins)
    oom: int = 3                 # retries after out-of-memory (more_gpu / halve_batch)
    stalled: int = 1             # retries after a stall
    timeout: int = 0             # retries after the time limit
    stall_timeout: float = 0.0   # seconds without log output or a metric: stalled (0: never)
    time_limit: float = 0.0      # seconds an attempt may run (0: no limit; TimeLimit wins)


@dataclass(frozen=True)
class Decision:
    """Retry (after ``delay`` s, with ``gpus``/``batch_divisor`` changed) or give up."""

    retry: bool
    message: str                    # the Error cell's text after the kind
    delay: float = 0.0
    counter: str = ""               # the RowState counter this retry spends
    gpus: float | None = None       # the next attempt's GPUs (more_gpu)
    batch_divisor: int = 1          # the next attempt's batch divisor (halve_batch)


def more_gpus(current: float) -> float:
    """The next size after an out-of-memory attempt: 0.25 → 0.5 → 1 → 2 → 4 …"""
    return min(1.0, current * 2) if current < 1 else float(int(current) * 2)


def _delay(policy: RetryPolicy, spent: int) -> float:
    return min(policy.max_backoff, policy.backoff * 2 ** spent)


def decide(policy: RetryPolicy, failure: Failure, *, attempt: int, retries: int, spent: dict,
           gpus: float, on_oom: str, batch_divisor: int = 1, max_gpus: float | None = None,
           halve_batch_ok: bool = False) -> Decision:
    """What happens after ``failure`` ended ``attempt``.

    ``spent``: the retries already used per counter (``crashes``, ``losses``, ``ooms``,
    ``stalls``, ``timeouts``); ``gpus``: what the attempt had; ``max_gpus``: the most a row
    can get here (None: unknown, a cluster that may grow); ``halve_batch_ok``: the row's
    kind can run with a smaller batch."""
    kind = failure.kind
    if kind in (FailureKind.SETUP, FailureKind.INVALID, FailureKind.INTERNAL):
        return Decision(False, failure.message)
    if kind is FailureKind.LOST:
        used = spent.get("losses", 0)
        if used >= policy.lost:
            return Decision(False, f"lost its runner {used + 1} times (last: {failure.message})"
                            " — check the cluster's nodes ([retry] lost sets how often it is "
                            "re-queued)")
        return Decision(True, f"attempt {attempt} lost its node or runner "
                        f"({failure.message}); re-queued", counter="losses")
    if kind is FailureKind.OOM:
        return _oom(policy, failure, attempt=attempt, used=spent.get("ooms", 0), gpus=gpus,
                    on_oom=on_oom or policy.on_oom, batch_divisor=batch_divisor,
                    max_gpus=max_gpus, halve_batch_ok=halve_batch_ok)
    budgets = {FailureKind.STALLED: ("stalls", policy.stalled, "[retry] stalled"),
               FailureKind.TIMEOUT: ("timeouts", policy.timeout, "[retry] timeout"),
               FailureKind.EXIT: ("crashes", retries, "the row's Retries")}
    counter, budget, knob = budgets.get(kind, ("crashes", 0, "the row's Retries"))
    used = spent.get(counter, 0)
    if used >= budget:
        tried = f" after {used + 1} attempts" if used else ""
        return Decision(False, f"{failure.message}{tried}" if budget else failure.message)
    delay = _delay(policy, used)
    return Decision(True, f"attempt {attempt}: {failure.message}; retry {used + 1}/{budget} "
                    f"in {delay:g}s ({knob})", delay=delay, counter=counter)


def _oom(policy, failure, *, attempt, used, gpus, on_oom, batch_divisor, max_gpus,
         halve_batch_ok) -> Decision:
    if on_oom == "fail" or used >= policy.oom:
        tip = ("set OnOOM (or [retry] on_oom) to more_gpu"
               + (" or halve_batch" if halve_batch_ok else "") + " to retry it with more"
               if on_oom == "fail" else f"it failed {used + 1} times ([retry] oom)")
        return Decision(False, f"{failure.message} — {tip}")
    if on_oom == "halve_batch":
        if not halve_batch_ok:
            return Decision(False, f"{failure.message} — on_oom = halve_batch needs a built-in "
                            "kind that knows its batch; use more_gpu")
        divisor = batch_divisor * 2
        return Decision(True, f"attempt {attempt}: {failure.message}; retry {used + 1}/"
                        f"{policy.oom} with the batch divided by {divisor}",
                        delay=_delay(policy, used), counter="ooms", batch_divisor=divisor)
    if gpus <= 0:
        return Decision(False, f"{failure.message} — the row has no GPU, so more_gpu cannot "
                        "help; give it less work or a machine with more memory")
    bigger = more_gpus(gpus)
    if max_gpus is not None and bigger > max_gpus + 1e-9:
        return Decision(False, f"{failure.message} — more_gpu: {bigger:g} GPUs would not fit "
                        f"(the cluster has {max_gpus:g})")
    return Decision(True, f"attempt {attempt}: {failure.message}; retry {used + 1}/{policy.oom} "
                    f"with GPUs={bigger:g}", delay=_delay(policy, used), counter="ooms",
                    gpus=bigger, batch_divisor=batch_divisor)
