"""Kind yolo: which devices, batch and precision a row trains with; what an OOM does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainers.errors import ConfigError
from trainers.yolo.device import choose_amp, parse_device, per_gpu_batch, resolve_device
from trainers.yolo.oom import halved, is_oom, oom_advice
from trainers.yolo.train import retry_argv


# ----------------------------------------------------------------- parsing
@pytest.mark.parametrize("value, expected", [
    ("auto", "auto"), (None, "auto"), ("", "auto"), ("AUTO", "auto"), ("cpu", "cpu"),
    (0, (0,)), ("0", (0,)), ("0,2", (0, 2)), (" 1 , 3 ", (1, 3)), ([0, 1], (0, 1)),
    ("cuda:1", (1,)),
])
def test_device_strings_parse(value, expected):
    assert parse_device(value) == expected


@pytest.mark.parametrize("value, problem", [
    ("0,0", "listed twice"), ([1, 1], "listed twice"), ("gpu", "not a device"),
    ("-1", "not a device"), ("0,", "not a device"), (True, "not a device"), ("1.5", "not a device"),
])
def test_bad_device_strings_say_why(value, problem):
    with pytest.raises(ConfigError, match=problem) as e:
        parse_device(value, "row.yaml")
    assert e.value.key == "device" and e.value.fix


# ----------------------------------------------------------------- auto
@pytest.mark.parametrize("visible, count, device, gpus", [
    ("0", 1, "0", 1),
    ("3,5", 2, "0,1", 2),              # Ray's ids 3 and 5 are torch's 0 and 1
    ("0,1,2,3", 4, "0,1,2,3", 4),
    (None, 2, "0,1", 2),               # outside Ray: every GPU torch sees
])
def test_auto_is_every_gpu_the_row_was_given(visible, count, device, gpus):
    plan = resolve_device("auto", visible=visible, cuda_count=count)
    assert (plan.device, plan.gpus, plan.replicas, plan.note) == (device, gpus, gpus, "")


@pytest.mark.parametrize("visible", ["", None])
def test_auto_without_gpus_is_the_cpu(visible):
    plan = resolve_device("auto", visible=visible, cuda_count=0)
    assert (plan.device, plan.gpus, plan.replicas) == ("cpu", 0, 1)


@pytest.mark.parametrize("visible, n", [("2", 1), ("0,1", 2), ("0,1,2,3", 4)])
def test_logical_gpus_without_cuda_fall_back_to_cpu_with_a_note(visible, n):
    plan = resolve_device("auto", visible=visible, cuda_count=0)
    assert plan.device == "cpu" and plan.gpus == 0
    assert "CUDA is not available" in plan.note and f"{n} GPU" in plan.note
    assert f"CUDA_VISIBLE_DEVICES={visible}" in plan.note


# ----------------------------------------------------------------- explicit
def test_explicit_gpus_are_indices_into_the_rows_gpus():
    plan = resolve_device((0, 2), visible="4,5,6,7", cuda_count=4)
    assert (plan.device, plan.gpus) == ("0,2", 2)
    assert resolve_device("cpu", visible="0,1", cuda_count=2).device == "cpu"


def test_a_gpu_past_the_rows_share_is_refused():
    with pytest.raises(ConfigError) as e:
        resolve_device((3,), visible="6,7", cuda_count=2, path="row.yaml")
    assert "GPU 3 not available: this row was given 2 GPUs (CUDA_VISIBLE_DEVICES=6,7)" \
        in str(e.value)
    assert "0..1" in e.value.fix


def test_a_gpu_on_a_row_without_gpus_says_how_to_get_one():
    with pytest.raises(ConfigError, match="given 0 GPUs") as e:
        resolve_device((0,), visible="", cuda_count=0)
    assert "GPUs column" in e.value.fix and "cpu" in e.value.fix


def test_explicit_gpu_on_logical_gpus_runs_on_cpu_with_a_note():
    plan = resolve_device((1,), visible="0,1", cuda_count=0)
    assert plan.device == "cpu" and "CUDA is not available" in plan.note


def test_labelling_uses_one_device():
    assert resolve_device("auto", visible="2,3", cuda_count=2, single=True).device == "0"
    assert resolve_device("auto", visible="", cuda_count=0, single=True).device == "cpu"
    with pytest.raises(ConfigError, match="one device"):
        resolve_device((0, 1), visible="2,3", cuda_count=2, single=True)


# ----------------------------------------------------------------- batch, precision
def test_batch_per_gpu_is_each_gpus_share_and_batch_is_the_total():
    assert per_gpu_batch(8, None, 4) == 8           # total 32 over 4 GPUs
    assert per_gpu_batch(None, 32, 4) == 8
    assert per_gpu_batch(None, 32, 1) == 32         # the CPU counts as one
    assert per_gpu_batch(None, None, 2) == 16       # default per GPU
    with pytest.raises(ConfigError, match="does not split evenly over 3 GPUs"):
        per_gpu_batch(None, 32, 3)


def test_precision_never_needs_the_amp_download():
    assert choose_amp("auto", on_cuda=True, bf16_native=True) == ("bf16", "")
    assert choose_amp("bf16", on_cuda=True, bf16_native=True) == ("bf16", "")
    amp, why = choose_amp("auto", on_cuda=True, bf16_native=False)
    assert amp is False and "download" in why
    assert choose_amp("auto", on_cuda=False, bf16_native=False) == (False, "")
    assert choose_amp(False, on_cuda=True, bf16_native=True) == (False, "")


# ----------------------------------------------------------------- out of memory
def test_torch_out_of_memory_is_recognised():
    import torch

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))


def test_out_of_memory_is_found_in_the_cause_chain_and_in_worker_text():
    try:
        try:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
        except RuntimeError as inner:
            raise subprocess.CalledProcessError(1, ["torch.distributed.run"]) from inner
    except subprocess.CalledProcessError as e:
        assert is_oom(e)
    assert is_oom("OutOfMemoryError: CUDA out of memory. Tried to allocate 1 GiB\n")


@pytest.mark.parametrize("error", [
    ValueError("Invalid CUDA 'device=0' requested"), RuntimeError("shape '[2, 3]' is invalid"),
    subprocess.CalledProcessError(1, ["python"]), "FileNotFoundError: images not found",
])
def test_other_failures_are_not_out_of_memory(error):
    assert not is_oom(error)


def test_halving_stops_at_min_batch():
    assert [halved(b, 1) for b in (16, 3, 2, 1)] == [8, 1, 1, None]
    assert halved(8, 4) == 4 and halved(4, 4) is None and halved(7, 4) is None
    sequence, batch = [], 64
    while (batch := halved(batch, 8)) is not None:
        sequence.append(batch)
    assert sequence == [32, 16, 8]


def test_out_of_memory_advice():
    text = oom_advice(16, 2, halving=False, min_batch=1)
    assert "batch_per_gpu: 8" in text and "smaller model" in text and "fewer GPUs" in text
    assert "on_oom: halve_batch" in text
    assert "min_batch 4" in oom_advice(4, 1, halving=True, min_batch=4)


def test_the_retry_restarts_the_same_job_with_the_smaller_batch():
    argv = retry_argv("cfg.yaml", "/runs/r1/yolo", "/runs/p/best.pt", 4)
    assert argv == [sys.executable, "-m", "trainers.yolo", "train", "cfg.yaml", "--project",
                    "/runs/r1/yolo", "--pretrained_path", "/runs/p/best.pt", "--batch_per_gpu", "4"]
    assert "--pretrained_path" not in retry_argv("cfg.yaml", "p", None, 2)


def test_a_ddp_workers_uncaught_oom_reaches_the_launching_job(tmp_path):
    """Under DDP the job only sees the launcher's exit code; each worker leaves its
    uncaught exception in $ORCH_YOLO_FAILURE_FILE (hook installed by on_train_start)."""
    failure = tmp_path / "failure.txt"
    code = ("from trainers.yolo import progress\nprogress.on_train_start(None)\n"
            "raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ORCH_YOLO_FAILURE_FILE": str(failure)})
    assert out.returncode == 1 and "Traceback" in out.stderr   # the usual traceback still shows
    assert failure.read_text() == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    assert is_oom(failure.read_text())
