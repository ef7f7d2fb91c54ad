"""What a failed attempt does next, by its failure kind (``[retry]`` and the row)."""

import pytest

from orchestrator.core import Failure, FailureKind, RetryPolicy, decide, more_gpus

K = FailureKind
POLICY = RetryPolicy(backoff=5, lost=3, on_oom="fail", oom=2, stalled=1, timeout=0)


def run(kind, *, spent=None, retries=2, gpus=0.5, on_oom="", max_gpus=4.0, halve=False,
        policy=POLICY):
    return decide(policy, Failure(kind, "what happened"), attempt=3, retries=retries,
                  spent=spent or {}, gpus=gpus, on_oom=on_oom, max_gpus=max_gpus,
                  halve_batch_ok=halve)


@pytest.mark.parametrize("kind,spent,retry,counter,delay", [
    (K.SETUP, {}, False, "", 0),                          # running it again fails the same way
    (K.INVALID, {}, False, "", 0),
    (K.LOST, {}, True, "losses", 0),                      # free, at once
    (K.LOST, {"losses": 2}, True, "losses", 0),
    (K.LOST, {"losses": 3}, False, "", 0),                # bounded
    (K.EXIT, {}, True, "crashes", 5),
    (K.EXIT, {"crashes": 1}, True, "crashes", 10),        # backoff doubles
    (K.EXIT, {"crashes": 2}, False, "", 0),               # the row's Retries=2 spent
    (K.EXIT, {"losses": 3, "ooms": 2}, True, "crashes", 5),   # budgets are separate
    (K.STALLED, {}, True, "stalls", 5),
    (K.STALLED, {"stalls": 1}, False, "", 0),
    (K.TIMEOUT, {}, False, "", 0),                        # [retry] timeout = 0
    (K.OOM, {}, False, "", 0),                            # on_oom = fail
])
def test_decisions(kind, spent, retry, counter, delay):
    d = run(kind, spent=spent)
    assert (d.retry, d.counter, d.delay) == (retry, counter, delay)
    assert "what happened" in d.message


def test_setup_and_exhausted_retries_say_why():
    assert "after 3 attempts" in run(K.EXIT, spent={"crashes": 2}).message
    assert "retry 1/2 in 5s (the row's Retries)" in run(K.EXIT).message
    assert "[retry] lost" in run(K.LOST, spent={"losses": 3}).message
    assert "set OnOOM (or [retry] on_oom) to more_gpu" in run(K.OOM).message


@pytest.mark.parametrize("gpus,bigger", [(0.25, 0.5), (0.5, 1.0), (0.75, 1.0), (1, 2), (2, 4)])
def test_more_gpu_doubles_a_fraction_to_a_whole_gpu_then_whole_gpus(gpus, bigger):
    assert more_gpus(gpus) == bigger
    d = run(K.OOM, gpus=gpus, on_oom="more_gpu")
    assert d.retry and d.gpus == bigger and d.counter == "ooms" and f"GPUs={bigger:g}" in d.message


def test_more_gpu_stops_at_the_cluster_and_for_cpu_rows():
    assert not run(K.OOM, gpus=4, on_oom="more_gpu", max_gpus=4).retry
    assert run(K.OOM, gpus=4, on_oom="more_gpu", max_gpus=None).retry, "a cluster may grow"
    cpu = run(K.OOM, gpus=0, on_oom="more_gpu")
    assert not cpu.retry and "no GPU" in cpu.message
    assert not run(K.OOM, on_oom="more_gpu", spent={"ooms": 2}).retry


def test_the_rows_on_oom_wins_over_the_policy():
    policy = RetryPolicy(on_oom="more_gpu")
    assert run(K.OOM, policy=policy).retry
    assert not run(K.OOM, policy=policy, on_oom="fail").retry


def test_halve_batch_needs_a_kind_that_knows_its_batch():
    assert not run(K.OOM, on_oom="halve_batch").retry
    d = run(K.OOM, on_oom="halve_batch", halve=True)
    assert d.retry and d.batch_divisor == 2 and d.gpus is None
    again = decide(POLICY, Failure(K.OOM, "x"), attempt=4, retries=0, spent={"ooms": 1},
                   gpus=1, on_oom="halve_batch", batch_divisor=2, halve_batch_ok=True)
    assert again.batch_divisor == 4


def test_backoff_is_capped():
    policy = RetryPolicy(backoff=100, max_backoff=300)
    assert run(K.EXIT, retries=9, spent={"crashes": 5}, policy=policy).delay == 300
