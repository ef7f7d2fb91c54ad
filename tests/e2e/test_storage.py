"""A queue whose run outputs live in S3 (``--storage s3://…``), against a real local
S3-compatible server: Ray Train keeps a ddp row's checkpoints there, every attempt's
weights and log are uploaded, WeightFile cells are URIs, and children download their
parent's weights (the runner for a command row, each Ray Train worker for a ddp row)."""

from __future__ import annotations

import csv as csvlib
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import read_rows, write_csv
from tests.notify_servers import closed_port
from tests.s3_server import CREDENTIALS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HEADER = ["ID", "Kind", "Config", "TrainingCommand", "PretrainedModelId", "GPUs", "CPUs",
          "Workers", "TrainingCheck"]
INI = "[ray]\ndashboard = false\nnum_cpus = 2\n[general]\nretry_backoff = 0.2\n"
#: what a command row runs: checks its parent's weights, writes its own
CHILD = """\
import hashlib, os, sys
args = sys.argv[1:]
if "--pretrained_path" in args:
    path = args[args.index("--pretrained_path") + 1]
    data = open(path, "rb").read()
    print(f"parent weights {path} sha1 {hashlib.sha1(data).hexdigest()}", flush=True)
open(os.path.join(os.environ["ORCH_RUN_DIR"], "model.pt"), "wb").write(args[0].encode())
"""


def run_queue(csv: Path, ini: Path, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.run", str(csv), "--config",
                           str(ini), "--no_ui", *extra], capture_output=True, text=True,
                          timeout=timeout)


def clear_status(path: Path, job_id: str) -> None:
    """What a user does to run a row again: empty its TrainingCheck."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csvlib.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        if row["ID"] == job_id:
            row["TrainingCheck"] = ""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csvlib.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    ddp = yaml.safe_load((ROOT / "examples" / "ddp_dummy.yaml").read_text())
    ddp.update(epochs=2, python_path=[str(ROOT / "examples")])
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(ddp))
    ini = tmp_path / "manager.ini"
    ini.write_text(INI)
    return ini


def test_ddp_checkpoints_weights_and_chains_go_through_s3(tmp_path, setup, s3_server):
    storage = s3_server.bucket_uri()
    child = f"{sys.executable} child.py child-weights"
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["base", "ddp", "ddp.yaml", "", "", "0", "1", "1", ""],
        ["tuned", "ddp", "ddp.yaml", "", "base", "0", "1", "1", ""],
        ["eval", "", "", child, "base", "0", "", "", ""]])
    done = run_queue(csv, setup, "--storage", storage)
    rows = read_rows(csv)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], rows)
    assert all(r["TrainingCheck"] == "Done" for r in rows.values()), rows

    public = storage.split("?")[0]
    assert rows["base"]["WeightFile"] == f"{public}/base/attempt-1/model.pt"
    assert rows["eval"]["WeightFile"] == f"{public}/eval/attempt-1/model.pt"
    in_s3 = s3_server.files(storage)
    # Ray Train wrote the base row's checkpoints to S3, not to the state dir
    assert any(k.startswith("base/ddp/base/checkpoint_") for k in in_s3), sorted(in_s3)
    assert not (tmp_path / "runs" / "base" / "ddp").exists()
    for job in ("base", "tuned", "eval"):
        assert f"{job}/attempt-1/run.log" in in_s3, sorted(in_s3)
    assert in_s3["eval/attempt-1/model.pt"] == b"child-weights"

    # the command row got a copy of base's weights in its own run dir, byte for byte
    digest = hashlib.sha1(in_s3["base/attempt-1/model.pt"]).hexdigest()
    fetched = tmp_path / "runs" / "eval" / "attempt-1" / "pretrained" / "model.pt"
    assert f"parent weights {fetched} sha1 {digest}" in in_s3["eval/attempt-1/run.log"].decode()
    # the ddp child was handed the URI and its worker downloaded it
    script = (tmp_path / "runs" / "tuned" / "attempt-1" / "job.sh").read_text()
    assert f"--pretrained_path {public}/base/attempt-1/model.pt" in script
    assert "[ddp] starting from the weights in" in in_s3["tuned/attempt-1/run.log"].decode()

    with sqlite3.connect(tmp_path / "runs" / "registry.db") as db:
        paths = {r[0] for r in db.execute("SELECT file_path FROM models")}
    assert f"{public}/base/attempt-1/model.pt" in paths
    # neither the endpoint options nor the credentials are written anywhere
    written = [csv.read_bytes(), (tmp_path / "runs" / "registry.db").read_bytes(),
               *in_s3.values(), (done.stdout + done.stderr).encode()]
    assert not any(CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode() in b for b in written)
    assert "endpoint_override" not in csv.read_text()


def test_missing_parent_weights_and_bad_storage_say_what_to_fix(tmp_path, setup, s3_server):
    storage = s3_server.bucket_uri()
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["p", "", "", f"{sys.executable} child.py parent-weights", "", "0", "", "", ""],
        ["c", "", "", f"{sys.executable} child.py child-weights", "p", "0", "", "", ""]])
    assert run_queue(csv, setup, "--storage", storage).returncode == 0
    assert read_rows(csv)["c"]["TrainingCheck"] == "Done"

    # a log that is not on this machine (the attempt ran elsewhere) is read from storage
    local_log = tmp_path / "runs" / "p" / "attempt-1" / "run.log"
    text = local_log.read_text()
    shutil.rmtree(local_log.parent)
    logs = subprocess.run([sys.executable, "-m", "orchestrator", "logs", str(csv), "p"],
                          capture_output=True, text=True, timeout=60)
    assert logs.returncode != 0 and f"no log at {local_log} on this machine" in logs.stderr
    logs = subprocess.run([sys.executable, "-m", "orchestrator", "logs", str(csv), "p",
                           "--storage", storage], capture_output=True, text=True, timeout=60)
    assert (logs.returncode, logs.stdout) == (0, text)

    # the parent's weights vanish from the bucket; the child is run again
    import pyarrow.fs as pafs
    fs, root = pafs.FileSystem.from_uri(storage)
    fs.delete_file(f"{root}/p/attempt-1/model.pt")
    clear_status(csv, "c")
    done = run_queue(csv, setup, "--storage", storage)
    row = read_rows(csv)["c"]
    assert done.returncode == 1 and row["TrainingCheck"] == "Crash", row
    public = storage.split("?")[0]
    assert f"{public}/p/attempt-1/model.pt: no such file or folder in storage" in row["Error"]

    # storage nobody can reach: refused before anything runs, the CSV untouched
    before = csv.read_bytes()
    with closed_port() as port:
        bad = run_queue(csv, setup, "--storage", f"s3://b/runs?endpoint_override=127.0.0.1:{port}",
                        timeout=120)
    assert bad.returncode != 0 and "storage" in bad.stderr and "cannot write there" in bad.stderr
    assert csv.read_bytes() == before


def test_hf_rows_chain_their_best_model_through_s3(tmp_path, setup, s3_server):
    """Rank 0's best model reaches the row through Ray Train's storage (it may have run on
    another node), and the child's workers download it where they run."""
    def make(*argv):
        subprocess.run([sys.executable, "-m", "trainers.hf", *map(str, argv)], cwd=ROOT,
                       check=True, capture_output=True, timeout=300)

    make("make-data", tmp_path / "dialogue", "--n", 16)
    make("make-tiny", tmp_path / "tiny", "--data", tmp_path / "dialogue" / "train.csv")
    hf = yaml.safe_load((ROOT / "examples" / "hf_tiny.yaml").read_text())
    hf["model"]["checkpoint"] = str(tmp_path / "tiny")
    hf["data"] = {"train": str(tmp_path / "dialogue" / "train.csv"),
                  "dev": str(tmp_path / "dialogue" / "dev.csv")}
    hf["training"].update(epochs=1, save_total_limit=1, callbacks=[], predict_samples=2)
    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(hf))
    storage = s3_server.bucket_uri()
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["hf1", "hf", "hf.yaml", "", "", "0", "1", "1", ""],
        ["hf2", "hf", "hf.yaml", "", "hf1", "0", "1", "1", ""]])
    done = run_queue(csv, setup, "--storage", storage)
    rows = read_rows(csv)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], rows)
    assert [r["TrainingCheck"] for r in rows.values()] == ["Done", "Done"], rows

    public = storage.split("?")[0]
    assert rows["hf1"]["WeightFile"] == f"{public}/hf1/attempt-1/best_model"
    in_s3 = s3_server.files(storage)
    assert "hf1/attempt-1/best_model/config.json" in in_s3, sorted(in_s3)
    assert any(k.startswith("hf1/hf/hf1/checkpoint_") and k.endswith("best_model/config.json")
               for k in in_s3), "the best model went through Ray Train's storage"
    script = (tmp_path / "runs" / "hf2" / "attempt-1" / "job.sh").read_text()
    assert f"--pretrained_path {public}/hf1/attempt-1/best_model" in script
    log = in_s3["hf2/attempt-1/run.log"].decode()
    assert "orchestrator-fetch" in log and "best_model on cpu" in log, log[-2000:]


SWEEP = """\
name: s3-sweep
program: sweep_prog.py
method: grid
metric: {name: val_loss, goal: minimize}
parameters:
  lr: {values: [0.01, 0.1]}
"""
#: a sweep program: checks the parent's weights, writes and reports its own
SWEEP_PROGRAM = """\
import hashlib, json, os, sys
argv = sys.argv[1:]
params = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
parent = argv[argv.index("--pretrained_path") + 1]
print(f"parent {parent} sha1 {hashlib.sha1(open(parent, 'rb').read()).hexdigest()}")
weights = os.path.join(os.environ["ORCH_RUN_DIR"], "model.pt")
open(weights, "w").write(f"lr={params['lr']}")
with open(os.environ["ORCH_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"val_loss": abs(float(params["lr"]) - 0.01), "weight_file": weights}))
    f.write("\\n")
"""


def test_sweep_row_trials_upload_their_folders_and_start_from_the_parent(tmp_path, setup,
                                                                         s3_server):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    (tmp_path / "sweep_prog.py").write_text(SWEEP_PROGRAM)
    storage = s3_server.bucket_uri()
    csv = write_csv(tmp_path / "queue.csv", HEADER, [
        ["p", "", "", f"{sys.executable} child.py parent-weights", "", "0", "", "", ""],
        ["sw", "sweep", "sweep.yaml", "", "p", "0", "1", "", ""]])
    done = run_queue(csv, setup, "--storage", storage)
    rows = read_rows(csv)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], rows)
    assert rows["sw"]["TrainingCheck"] == "Done", rows["sw"]["Error"]

    public = storage.split("?")[0]
    weight = rows["sw"]["WeightFile"]
    assert weight.startswith(f"{public}/sw/tune/sw/") and weight.endswith("/model.pt"), weight
    in_s3 = s3_server.files(storage)
    assert in_s3[weight[len(public) + 1:]] == b"lr=0.01", "the best trial's own weights"
    assert json.loads(in_s3["sw/tune/sw/best_config.json"]) == {"lr": 0.01}, "in its sweep"
    # every trial got base's weights, downloaded onto its node, and uploaded its folder
    digest = hashlib.sha1(in_s3["p/attempt-1/model.pt"]).hexdigest()
    logs = [v.decode() for k, v in in_s3.items()
            if k.startswith("sw/tune/sw/") and k.endswith("/run.log")]
    assert len(logs) == 2 and all("orchestrator-fetch" in log and f"sha1 {digest}" in log
                                  for log in logs), logs
