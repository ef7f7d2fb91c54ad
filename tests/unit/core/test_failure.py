"""Failure kinds, from what the runner saw of an attempt."""

import pytest

from orchestrator.core import AttemptReport, Failure, FailureKind, classify

K = FailureKind
CUDA = ("Traceback (most recent call last):\n  File \"train.py\", line 9\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("facts,kind,says", [
    ({"exit_code": 0}, None, ""),
    ({"exit_code": 1, "log_tail": "ValueError: bad lr"}, K.EXIT, "exit code 1: ValueError: bad lr"),
    ({"exit_code": 2}, K.EXIT, "exit code 2"),
    ({"exit_code": -1}, K.EXIT, "the process vanished"),
    ({"exit_code": 1, "log_tail": CUDA}, K.OOM, "CUDA out of memory"),
    ({"exit_code": 1, "log_tail": "RuntimeError: CUDA error: out of memory"}, K.OOM, "out of"),
    ({"exit_code": 1, "log_tail": "CUBLAS_STATUS_ALLOC_FAILED when calling"}, K.OOM, "CUBLAS"),
    ({"exit_code": 1, "log_tail": "[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: "
      "can't allocate memory"}, K.OOM, "DefaultCPUAllocator"),
    ({"exit_code": 1, "log_tail": "MemoryError"}, K.OOM, "MemoryError"),
    ({"exit_code": 137}, K.OOM, "out-of-memory killer"),
    ({"exit_code": 97, "log_tail": "[orchestrator] setup_script s.sh failed (exit 1): fix it"},
     K.SETUP, "setup_script s.sh failed"),
    ({"exit_code": 98, "log_tail": "[orchestrator] use_conda = true but conda is not on this "
      "node's PATH: install conda"}, K.SETUP, "install conda"),
    ({"exit_code": None, "start_error": "the parent's weights: no such file"}, K.SETUP,
     "could not start: the parent's weights"),
    ({"exit_code": 143, "stopped": True}, K.STOPPED, "stopped on request"),
    ({"exit_code": 143, "killed_for": "timeout", "kill_note": "it ran past its time limit of "
      "2m00s"}, K.TIMEOUT, "time limit of 2m00s"),
    ({"exit_code": 143, "killed_for": "stalled"}, K.STALLED, "no log output"),
    ({"exit_code": 0, "output_error": "its weights could not be uploaded"}, K.EXIT,
     "could not be uploaded"),
])
def test_classify(facts, kind, says):
    failure = classify(**facts, log_file="runs/m1/attempt-1/run.log")
    if kind is None:
        assert failure is None
        return
    assert failure.kind is kind and says in failure.message
    assert failure.text().startswith(f"{kind.value}: "), "the kind is the first word"
    if kind is not K.STOPPED:
        assert "runs/m1/attempt-1/run.log" in failure.message


def test_a_limit_wins_over_the_stop_it_caused_and_a_stop_over_an_oom():
    assert classify(exit_code=143, stopped=True, killed_for="stalled").kind is K.STALLED
    assert classify(exit_code=1, stopped=True, log_tail=CUDA).kind is K.STOPPED


def test_the_oom_message_quotes_the_matching_line_not_the_last():
    tail = CUDA + "\nwandb: Synced 3 files\n"
    assert "Tried to allocate" in classify(exit_code=1, log_tail=tail).message


def test_a_report_knows_its_outcome():
    assert AttemptReport("m1", 1, exit_code=0).ok
    report = AttemptReport("m1", 1, exit_code=1, log_tail=CUDA)
    assert not report.ok and report.failure().kind is K.OOM


@pytest.mark.parametrize("text,kind", [
    ("oom: exit code 1, out of memory", K.OOM), ("lost: attempt 1 lost", K.LOST),
    ("invalid: GPUs='x'", K.INVALID), ("waiting for p", None), ("", None),
    ("note: something", None)])
def test_an_error_cell_names_its_kind(text, kind):
    parsed = Failure.parse(text)
    assert (parsed.kind if parsed else None) is kind
