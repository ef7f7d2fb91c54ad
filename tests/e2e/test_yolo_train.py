"""Kind yolo end to end, on CPU: real ultralytics training of yolov8n on tiny synthetic data,
run through the job entry point as the orchestrator runs it (a subprocess with
ORCH_METRICS_FILE set), watched for any network access by an audit hook."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import wait_for
from trainers.yolo.synthetic import make_data

pytestmark = pytest.mark.slow

# Imported by every Python process the job starts (PYTHONPATH): records any attempt to
# resolve or connect to a non-loopback address.
SITECUSTOMIZE = '''
import os, sys
_LOG = os.environ.get("NET_AUDIT_LOG")

def _loopback(host):
    if host is None:  # getaddrinfo(None, port): local addresses, no lookup
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host)
    return host in ("", "localhost", "0.0.0.0", "::", "::1") or host.startswith("127.")

def _hook(event, args):
    if not _LOG or event not in ("socket.connect", "socket.getaddrinfo"):
        return
    if event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):  # a unix socket
            return
        host = address[0]
    else:
        host = args[0]
    if not _loopback(host):
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {event} {args!r}\\n")

sys.addaudithook(_hook)
'''


@dataclass
class Job:
    code: int
    output: str
    lines: list[dict]

    @property
    def epochs(self) -> list[dict]:
        return [line for line in self.lines if "step" in line]

    @property
    def final(self) -> dict:
        return [line for line in self.lines if "weight_file" in line][-1]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("yolo")
    make_data(root / "shapes", train=16, val=8, imgsz=64, unlabelled=6)
    make_data(root / "flat", train=12, val=0, imgsz=64, flat=True, seed=1)
    (root / "hook").mkdir()
    (root / "hook" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return root


def config(work: Path, name: str, text: str) -> Path:
    path = work / name
    path.write_text(text)
    return path


def job_env(work: Path, metrics: Path, **extra) -> dict:
    env = {**os.environ, "ORCH_METRICS_FILE": str(metrics), "PYTHONPATH": str(work / "hook"),
           "NET_AUDIT_LOG": str(work / "network.log"), "OMP_NUM_THREADS": "1", **extra}
    env.pop("PYTEST_CURRENT_TEST", None)   # run as the orchestrator would
    return env


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def start(work: Path, metrics: Path, *args: str, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainers.yolo", *args], cwd=work,
                            env=job_env(work, metrics, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, metrics: Path, timeout: float = 240) -> Job:
    out, _ = proc.communicate(timeout=timeout)
    return Job(proc.returncode, out, read_lines(metrics))


def run(work: Path, metrics: Path, *args: str, **env) -> Job:
    return finish(start(work, metrics, *args, **env), metrics)


def assert_offline(work: Path) -> None:
    log = work / "network.log"
    assert not log.exists() or log.read_text() == "", log.read_text()


def test_the_network_watch_sees_a_lookup(work, tmp_path):
    """The control for every assert_offline below: the hook does record a real attempt."""
    log = tmp_path / "control.log"
    code = "import socket\ntry:\n    socket.getaddrinfo('example.invalid', 80)\nexcept OSError:\n" \
           "    pass\nsocket.getaddrinfo('127.0.0.1', 80)\n"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=job_env(work, tmp_path / "m.jsonl", NET_AUDIT_LOG=str(log)))
    assert "example.invalid" in log.read_text() and "127.0.0.1" not in log.read_text()


TINY = "data: shapes/data.yaml\nmodel: n\nimgsz: 64\nbatch_per_gpu: 8\nworkers: 0\n"


@pytest.fixture(scope="module")
def trained(work) -> Job:
    cfg = config(work, "tiny.yaml", TINY + "epochs: 2\n")
    # Two logical GPUs and no CUDA, as in a Ray actor on this machine: auto → CPU, with a note.
    return run(work, work / "train.jsonl", "train", str(cfg), "--project", str(work / "p-train"),
               CUDA_VISIBLE_DEVICES="0,1")


def test_training_reports_every_epoch_and_the_best_weights_offline(work, trained):
    assert trained.code == 0, trained.output[-3000:]
    best = work / "p-train" / "train" / "weights" / "best.pt"
    assert best.is_file() and (best.parent / "last.pt").is_file()
    assert "CUDA is not available although this row was given 2 GPUs" in trained.output
    assert [line["step"] for line in trained.epochs] == [1, 2]
    for line in trained.epochs:
        assert {"mAP50-95", "mAP50", "precision", "recall", "box_loss", "cls_loss"} <= set(line)
        assert all(isinstance(v, (int, float)) for v in line.values())
    final = trained.final
    assert final["weight_file"] == str(best)
    assert {"mAP50-95", "mAP50", "precision", "recall", "box_loss", "best_epoch"} <= set(final)
    assert final["epochs_done"] == 2
    assert_offline(work)
    # ultralytics' settings, fonts and temp files live in the row's project folder.
    settings = json.loads((work / "p-train" / "ultralytics" / "Ultralytics" / "settings.json")
                          .read_text())
    assert settings["sync"] is False and not settings["wandb"] and not settings["mlflow"]
    assert (work / "p-train" / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()


def test_auto_labelling_with_the_trained_weights(work, trained):
    assert trained.code == 0
    images = work / "to-label"
    shutil.copytree(work / "shapes" / "images" / "val", images)
    cfg = config(work, "label.yaml", "source: to-label\nconf: 0.001\nimgsz: 64\nbatch: 3\n")
    best = trained.final["weight_file"]
    job = run(work, work / "label.jsonl", "label", str(cfg), "--pretrained_path", best)
    assert job.code == 0, job.output[-3000:]
    summary = job.final
    assert summary["weight_file"] == best and summary["labels_dir"] == str(images)
    assert summary["images"] == 8 and summary["skipped"] == 0
    assert summary["labelled"] + summary["empty"] == 8
    labels = sorted(images.glob("*.txt"))
    names = [p for p in labels if p.name != "classes.txt"]
    assert [p.stem for p in names] == sorted(p.stem for p in images.glob("*.png"))
    assert sum(1 for p in names if p.read_text()) == summary["labelled"]
    rows = [line.split() for p in names for line in p.read_text().splitlines()]
    assert len(rows) == summary["boxes"]
    assert all(len(r) == 5 and r[0] in ("0", "1") and all(0 <= float(v) <= 1 for v in r[1:])
               for r in rows)
    assert (images / "classes.txt").read_text() == "red\ngreen\n"
    assert f"labelled {summary['labelled']}, empty {summary['empty']}" in job.output
    # A second pass keeps the labels it already wrote.
    again = run(work, work / "label2.jsonl", "label", str(cfg), "--pretrained_path", best)
    assert again.code == 0 and again.final["skipped"] == 8 and again.final["labelled"] == 0

    # The chain's third row: train again on the set grown by the labelled folder.
    grown = config(work, "grown.yaml", "data: [shapes, to-label]\nmodel: n\nimgsz: 64\n"
                                       "batch_per_gpu: 8\nworkers: 0\nepochs: 1\n")
    job = run(work, work / "grown.jsonl", "train", str(grown), "--project", str(work / "p-grown"),
              "--pretrained_path", best)
    assert job.code == 0, job.output[-3000:]
    # 24 human-labelled + 8 auto-labelled (an empty label file is a labelled background)
    assert "data: 26 train / 6 val images (32 labelled)" in job.output
    assert [line["step"] for line in job.epochs] == [1] and "mAP50-95" in job.final
    assert_offline(work)


def test_two_trainings_at_once_on_one_folder_do_not_collide(work, trained):
    """Both split the same flat folder and fine-tune from the first run's best.pt."""
    before = sorted(p.name for p in (work / "flat").iterdir())
    cfg = config(work, "folder.yaml", "data: flat\nmodel: n\nimgsz: 64\nbatch_per_gpu: 4\n"
                                      "workers: 0\nepochs: 1\nactivation: ReLU\n")
    procs = [start(work, work / f"both{i}.jsonl", "train", str(cfg), "--project",
                   str(work / f"p-both{i}"), "--pretrained_path", trained.final["weight_file"])
             for i in (1, 2)]
    jobs = [finish(p, work / f"both{i}.jsonl") for i, p in zip((1, 2), procs, strict=True)]
    for i, job in zip((1, 2), jobs, strict=True):
        assert job.code == 0, job.output[-3000:]
        project = work / f"p-both{i}"
        assert job.final["weight_file"] == str(project / "train" / "weights" / "best.pt")
        assert "fine-tuning from" in job.output and "nn.ReLU()" in job.output
        assert "data: 10 train / 2 val images (12 labelled)" in job.output
        assert len(list((project / "data" / "images" / "train").iterdir())) == 10
        assert [line["step"] for line in job.epochs] == [1]
    assert sorted(p.name for p in (work / "flat").iterdir()) == before
    assert_offline(work)


def test_a_killed_run_resumes_and_a_finished_run_is_not_retrained(work):
    cfg = config(work, "resume.yaml", TINY + "epochs: 4\n")
    project = str(work / "p-resume")
    first = work / "resume1.jsonl"
    proc = start(work, first, "train", str(cfg), "--project", project)
    try:
        wait_for(lambda: any("step" in line for line in read_lines(first)), timeout=180,
                 what="the first epoch's metrics", interval=0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the orchestrator's stop, without the grace
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert [line["step"] for line in read_lines(first)] == [1]

    second = run(work, work / "resume2.jsonl", "train", str(cfg), "--project", project)
    assert second.code == 0, second.output[-3000:]
    assert "resuming from" in second.output
    steps = [line["step"] for line in second.epochs]
    assert steps[0] >= 2 and steps[-1] == 4, steps   # carried on, did not start again
    results = (work / "p-resume" / "train" / "results.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in results[1:]] == [1, 2, 3, 4]

    third = run(work, work / "resume3.jsonl", "train", str(cfg), "--project", project)
    assert third.code == 0 and "already finished" in third.output
    assert third.epochs == [] and third.final["weight_file"] == second.final["weight_file"]
    assert third.final["mAP50-95"] == second.final["mAP50-95"]
    assert_offline(work)


def test_a_bad_config_fails_with_one_error_line(work):
    cfg = config(work, "bad.yaml", TINY + "epochs: 1\ntrain_args: {lr00: 0.1}\n")
    job = run(work, work / "bad.jsonl", "train", str(cfg), "--project", str(work / "p-bad"))
    assert job.code == 1 and job.lines == []
    last = job.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "lr00" in last and "did you mean 'lr0'?" in last


CHECKPOINTS = '''
import json, sys
from pathlib import Path
from trainers.yolo.offline import prepare
root = Path(sys.argv[1])
prepare(root / "cfg")
import torch
from trainers.yolo.train import checkpoint_state
cases = {
    "resumable": {"epoch": 1, "optimizer": {"state": {}}, "train_args": {"epochs": 4}},
    "stripped": {"epoch": -1, "optimizer": None, "train_args": {"epochs": 4}},
    "last_epoch_saved": {"epoch": 3, "optimizer": {"state": {}}, "train_args": {"epochs": 4}},
}
out = {}
for name, ckpt in cases.items():
    torch.save(ckpt, root / f"{name}.pt")
    out[name] = checkpoint_state(root / f"{name}.pt")
(root / "cut.pt").write_bytes((root / "resumable.pt").read_bytes()[:40])
out["cut"] = checkpoint_state(root / "cut.pt")
out["missing"] = checkpoint_state(root / "missing.pt")
print(json.dumps(out))
'''


def test_what_a_retry_finds_in_last_pt(tmp_path):
    """Resume only an unfinished run; a run killed after its last epoch's save is finished
    (ultralytics refuses to resume it); a last.pt cut short by a kill starts over."""
    out = subprocess.run([sys.executable, "-c", CHECKPOINTS, str(tmp_path)], capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "resumable": "resumable", "stripped": "finished", "last_epoch_saved": "finished",
        "cut": "broken", "missing": "none"}
