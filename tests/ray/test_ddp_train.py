"""Kind=ddp on a real local Ray: 2 DDP workers (gloo, CPU), a killed worker, the entry point.

Each TorchTrainer.fit costs ~20 s here, so there are few of these tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import wait_for

# Before the session's Ray starts (collection runs before any fixture): Ray Train collects
# reports every 0.2 s instead of 2 s. Ray Train also passes it from this driver to its controller.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# The user's code, next to the row's YAML: the dummy trainer, plus what the test needs to see.
KILLABLE = '''
import os
import time
from pathlib import Path

from ddp_dummy import DummyTrainer


class KillableTrainer(DummyTrainer):
    """Rank 0 records where each attempt starts; on the first attempt rank 1 waits to be
    killed once two epochs are checkpointed. Files land in the YAML's folder (the cwd)."""

    started = False

    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        if not self.started:
            self.started = True
            if self.rank == 0:
                with open("starts.txt", "a") as f:
                    f.write(f"{epoch} {self.world_size}\\n")
        if epoch == 2 and self.rank == 1 and not Path("victim.pid").exists():
            time.sleep(1.0)  # the controller collects epoch 2's checkpoint (every 0.2 s)
            Path("victim.pid").write_text(str(os.getpid()))
            time.sleep(120)  # the test kills this process here

    def on_epoch_end(self, logs):
        super().on_epoch_end(logs)   # logs: averaged over the ranks; epoch_train: this rank's
        with open(f"rank{self.rank}.txt", "a") as f:
            f.write(f"{self.epoch} {self.epoch_train['train_loss']!r} {logs['train_loss']!r}\\n")
'''


def row_config(folder: Path, entry: str, epochs: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "row.yaml"
    path.write_text(f"""
entry: {entry}
build: ddp_dummy:build
params: {{lr: 0.01, samples: 256, batch_size: 32}}
epochs: {epochs}
checkpoint: {{num_to_keep: 2, format: ckpt}}
max_failures: 1
metric: valid_loss
python_path: [".", "{EXAMPLES}"]
""", encoding="utf-8")
    return path


def example():
    """examples/ddp_dummy.py, imported without putting examples/ on sys.path."""
    spec = importlib.util.spec_from_file_location("ddp_dummy_example", EXAMPLES / "ddp_dummy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def epoch_dirs(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.is_dir() and p.name.startswith("epoch_"))


def load_linear(path: Path):
    import torch
    from torch import nn

    model = nn.Linear(10, 2)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model


@pytest.mark.slow
def test_killed_worker_resumes_from_its_checkpoint(ray_session, tmp_path):
    from trainers.torch.ray_run import fit

    killed_worker_resumes(tmp_path, fit)


@pytest.mark.slow
def test_killed_worker_resumes_from_its_checkpoint_under_torchs_launcher(tmp_path):
    """The same run, its workers forked on this node by torch's launcher (no Ray), in a
    process of its own as a job's (this one holds the session's Ray: never fork it)."""
    code = ("import sys; from pathlib import Path; "
            "from tests.ray.test_ddp_train import killed_worker_resumes; "
            "from trainers.torch.local_run import fit_local; "
            "killed_worker_resumes(Path(sys.argv[1]), fit_local)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def killed_worker_resumes(tmp_path, fit):
    from trainers.torch.config import load
    from trainers.torch.ray_run import export_weights

    user = tmp_path / "user"
    config = row_config(user, "killable:KillableTrainer")
    (user / "killable.py").write_text(KILLABLE, encoding="utf-8")
    metrics = tmp_path / "metrics.jsonl"

    def kill_the_waiting_worker():
        pid = int(wait_for(lambda: (user / "victim.pid").exists()
                           and (user / "victim.pid").read_text(), timeout=180,
                           what="rank 1 to wait at epoch 2"))
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_waiting_worker, daemon=True)
    killer.start()
    cfg = load(config)
    result = fit(cfg, storage=tmp_path / "storage", name="kill", workers=2,
                 metrics_file=str(metrics))
    killer.join(timeout=5)

    # attempt 1 started at epoch 0 with 2 ranks; attempt 2 from the epoch-2 checkpoint
    assert (user / "starts.txt").read_text().split("\n")[:2] == ["0 2", "2 2"]
    assert result.metrics["epoch"] == 4
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    steps = [x["step"] for x in lines]
    assert steps[:2] == [1, 2] and steps[-2:] == [3, 4] and set(steps) == {1, 2, 3, 4}
    assert lines[-1]["valid_loss"] < lines[0]["valid_loss"]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    # every rank ends an epoch with the same logs: the mean of the ranks' own averages
    ranks = [{int(e): (float(a), float(b)) for e, a, b in map(str.split, (user / f"rank{r}.txt")
                                                                   .read_text().splitlines())}
             for r in (0, 1)]
    local0, reduced0 = ranks[0][1]
    local1, reduced1 = ranks[1][1]
    assert local0 != local1 and reduced0 == reduced1
    assert reduced0 == pytest.approx((local0 + local1) / 2)
    run = tmp_path / "storage" / "kill"
    assert epoch_dirs(run) == ["epoch_0003", "epoch_0004"]   # num_to_keep=2
    assert (run / "epoch_0004" / "checkpoint.ckpt").is_file()

    weights, best = export_weights(result, cfg, tmp_path / "out")
    assert weights == tmp_path / "out" / "model.pt"
    assert best["valid_loss"] == min(x["valid_loss"] for x in lines)
    model = load_linear(weights)
    import torch

    x, y = example().make_data(256, seed=2).tensors
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.7


def pretrained_weights(path: Path) -> tuple[Path, float]:
    """Weights trained plainly for a while, and a from-scratch first epoch's valid_loss."""
    dummy = example()
    scratch = dummy.build({"samples": 512})
    first = dummy.DummyTrainer(scratch["model"], "cpu", optimizer=scratch["optimizer"],
                               log_bar=False).run(1, scratch["train_loader"],
                                                  scratch["valid_loader"])
    parts = dummy.build({"samples": 512, "lr": 0.05})
    trainer = dummy.DummyTrainer(parts["model"], "cpu", optimizer=parts["optimizer"],
                                 log_bar=False)
    trainer.run(15, parts["train_loader"], parts["valid_loader"])
    return trainer.save(path), first[0]["valid_loss"]


@pytest.mark.slow
def test_entry_point_reports_each_epoch_and_the_weights(ray_session, tmp_path):
    parent, scratch_loss = pretrained_weights(tmp_path / "parent" / "model.safetensors")
    run_dir = tmp_path / "attempt"
    run_dir.mkdir()
    metrics = run_dir / "metrics.jsonl"
    env = {**os.environ, "ORCH_METRICS_FILE": str(metrics), "ORCH_RUN_DIR": str(run_dir),
           "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    address = ray_session.get_runtime_context().gcs_address
    argv = [sys.executable, "-m", "trainers.torch", str(EXAMPLES / "ddp_dummy.yaml"),
            "--storage", str(tmp_path / "storage"), "--name", "row", "--workers", "2",
            "--gpus-per-worker", "0.5", "--cpus-per-worker", "1", "--address", address,
            "--max-failures", "0", "--pretrained_path", str(parent)]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    per_epoch = [x for x in lines if "step" in x]
    assert [x["step"] for x in per_epoch] == [1, 2, 3, 4, 5]
    assert per_epoch[0]["valid_loss"] < scratch_loss / 2   # it started from the parent's
    final = lines[-1]
    assert final["weight_file"] == str(run_dir / "model.pt")
    assert final["valid_loss"] == min(x["valid_loss"] for x in per_epoch)
    load_linear(Path(final["weight_file"]))
    assert "epoch 5 " in done.stdout            # rank 0's progress, printed by the driver
    assert epoch_dirs(tmp_path / "storage" / "row") == ["epoch_0004", "epoch_0005"]


@pytest.mark.slow
def test_a_failing_worker_is_one_error_line(ray_session, tmp_path):
    (tmp_path / "broken.py").write_text(
        "def train(config):\n    raise ValueError(f\"lr {config['lr']} is too high\")\n")
    (tmp_path / "row.yaml").write_text("entry: broken:train\nparams: {lr: 5}\nmax_failures: 0\n")
    address = ray_session.get_runtime_context().gcs_address
    argv = [sys.executable, "-m", "trainers.torch", str(tmp_path / "row.yaml"),
            "--storage", str(tmp_path / "storage"), "--name", "broken", "--address", address]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 1
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert errors == [f"error: ddp entry broken:train failed on rank 0: ValueError: lr 5 is too "
                      f"high — see the worker logs; the run (checkpoints) is in "
                      f"{tmp_path / 'storage' / 'broken'}"]


@pytest.mark.slow
def test_a_forked_rows_workers_each_see_their_own_gpu_and_a_stop_ends_them_all(
        ray_session, tmp_path):
    """A row of 2 workers x 1 GPU on the session's (logical) GPUs: its runner holds two
    GPUs and each forked worker sees one of them, a different one (NCCL's one GPU per
    process; without CUDA, gloo). A stop ends the job and both workers: Stopped."""

    from orchestrator.driver.control import stop_job
    from tests.helpers import QueueRun, read_rows, write_csv

    (tmp_path / "waits.py").write_text(
        "import os, time\n"
        "import torch.distributed as dist\n"
        "def train(config):\n"
        "    open(f\"sees{os.environ['RANK']}\", 'w').write(\n"
        "        os.environ.get('CUDA_VISIBLE_DEVICES', '') + ' ' + dist.get_backend())\n"
        "    open(f\"pid{os.environ['RANK']}\", 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n")
    (tmp_path / "row.yaml").write_text("entry: waits:train\nmax_failures: 0\n"
                                       "python_path: [\".\"]\n")
    q = write_csv(tmp_path / "q.csv", ["ID", "Kind", "Config", "GPUs", "Workers",
                                       "TrainingCommand"],
                  [["w", "ddp", "row.yaml", "1", "2", ""]])
    run = QueueRun(q, stop_grace=2).start()
    pids = wait_for(lambda: all((tmp_path / f"pid{r}").is_file() for r in (0, 1)) and
                    [int((tmp_path / f"pid{r}").read_text()) for r in (0, 1)], timeout=120,
                    what="both workers to start")
    seen = [(tmp_path / f"sees{r}").read_text().split() for r in (0, 1)]
    assert [backend for _, backend in seen] == ["gloo", "gloo"]
    gpus = [ids for ids, _ in seen]
    assert all(len(ids.split(",")) == 1 for ids in gpus) and gpus[0] != gpus[1], gpus
    assert set(gpus) <= {"0", "1", "2", "3"}
    attempt = wait_for(lambda: run.record().latest(run.paths.name, "w"), what="the attempt")
    assert stop_job("w", attempt.runner, "orchestrator")
    assert run.join() == 1
    assert read_rows(q)["w"]["TrainingCheck"] == "Stopped"
    wait_for(lambda: not any(running(p) for p in pids), timeout=10,
             what="both workers to end")


@pytest.mark.slow
def test_forked_workers_end_with_a_job_killed_outright(tmp_path):
    """A job killed with SIGKILL (the kernel's OOM killer) takes its forked workers with
    it: none is left holding the resources the row's next attempt gets."""

    (tmp_path / "waits.py").write_text(
        "import os, time\n"
        "def train(config):\n"
        "    open(f\"pid{os.environ['RANK']}\", 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n")
    (tmp_path / "row.yaml").write_text("entry: waits:train\nmax_failures: 0\n"
                                       "python_path: [\".\"]\n")
    job = subprocess.Popen([sys.executable, "-m", "trainers.torch", str(tmp_path / "row.yaml"),
                            "--storage", str(tmp_path / "runs"), "--workers", "2",
                            "--launcher", "torch"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        pids = wait_for(lambda: all((tmp_path / f"pid{r}").is_file() for r in (0, 1)) and
                        [int((tmp_path / f"pid{r}").read_text()) for r in (0, 1)],
                        timeout=120, what="both workers to start")
        job.kill()
        job.wait(timeout=10)
        wait_for(lambda: not any(running(p) for p in pids), timeout=10,
                 what="both workers to end with their job")
    finally:
        job.kill()


def running(pid: int) -> bool:
    """The process runs (a zombie, ended but not yet reaped by whoever adopted it, holds
    nothing)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
