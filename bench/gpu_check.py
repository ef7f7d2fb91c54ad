"""Every GPU path, checked in one go on a machine with NVIDIA GPUs (a few minutes).

    python bench/gpu_check.py [--dry-run] [--only NAME ...] [--work DIR] [--timeout S]

One line per check — ``PASS``, ``FAIL`` or ``NEEDS-GPU`` — with what was seen, then a
JSON summary in ``<work>/gpu_check.json``. Each check is a real queue run
(``python -m orchestrator.run``) on the machine's real GPUs, read back through
``orchestrator status --json``, the run record and the rows' logs:

  nvml        the TUI's GPU columns: NVML gives use and memory for every GPU torch sees
  fractional  two GPUs=0.5 command rows share one GPU at once: the same
              CUDA_VISIBLE_DEVICES, 256 MiB each held, NVML counting both processes
  ddp-nccl    a Kind=ddp row on every GPU (a worker per GPU) all-reduces over NCCL
  yolo-cuda   a Kind=yolo row trains YOLOv8n for one epoch on CUDA (amp: false) on
              synthetic shapes, best.pt as its WeightFile
  hf-fp16     a Kind=hf row fine-tunes a tiny random BART for one epoch with fp16 on CUDA
  oom         a Kind=ddp row asks 4/3 of the GPU's memory: attempt 1 ends as ``oom``, and
              OnOOM=halve_batch runs attempt 2 with half the batch, which fits: Done

``--dry-run`` (any machine): prepares every check's files and runs ``orchestrator check``
on its queue, so the rows are runnable as written; each check then says NEEDS-GPU. Nothing
is downloaded: the YOLO and BART models are made from their YAML/config, the data is
synthetic. On a machine without these packages, see docs/gpu-check.md (wheels).
Exit status: 0 when every check that ran passed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "bench" / "gpu_probe.py"
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs", "Workers", "Kind",
          "Config", "OnOOM", "Retries"]
INI = """\
[general]
retry_backoff = 1
metric = {metric}
fork_workers = {fork}
[retry]
oom = 2
[environment]
env_vars = TOKENIZERS_PARALLELISM=false,WANDB_MODE=offline,HF_HUB_OFFLINE=1,YOLO_OFFLINE=1
[ray]
dashboard = false
"""


@dataclass
class Outcome:
    name: str
    verdict: str            # PASS, FAIL, NEEDS-GPU
    detail: str
    seconds: float = 0.0
    facts: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.verdict:9} {self.name:11} ({self.seconds:5.1f} s) {self.detail}"


class CheckFailed(Exception):
    """What a check saw that it should not have (the line says it)."""


# ------------------------------------------------------------------ running a queue
def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "bench"),
                                                    env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["RAY_TMPDIR"] = env.get("RAY_TMPDIR") or tempfile.mkdtemp(prefix="gpu-check-ray-")
    return env


def write_queue(folder: Path, rows: list[dict], metric: str = "",
                fork: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manager.ini").write_text(INI.format(metric=metric, fork=str(fork).lower()),
                                        encoding="utf-8")
    path = folder / "queue.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HEADER})
    return path


def _orchestrator(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=ROOT)


def check_queue(queue: Path) -> None:
    """``orchestrator check``: every row runnable as written (else CheckFailed, saying why)."""
    done = _orchestrator("check", str(queue), "--config", str(queue.parent / "manager.ini"),
                         "--json", timeout=120)
    try:
        rows = json.loads(done.stdout)["rows"]
    except (ValueError, KeyError):
        raise CheckFailed("orchestrator check printed no JSON: "
                          f"{done.stderr.strip()[-300:]}") from None
    bad = [f"{r['id']}: {r['verdict']}" for r in rows if not r["ok"]]
    if bad or done.returncode:
        raise CheckFailed("; ".join(bad) or done.stderr.strip()[-300:])


LOGICAL_GPUS = 0   # --logical-gpus: Ray counts this many GPUs (the plumbing on a CPU)


def run_queue(queue: Path, timeout: float) -> dict[str, dict]:
    """Run the queue to its end; ``{ID: status --json row}``."""
    cmd = [sys.executable, "-m", "orchestrator.run", str(queue),
           "--config", str(queue.parent / "manager.ini"),
           *(["--num-gpus", str(LOGICAL_GPUS)] if LOGICAL_GPUS else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=_env(), cwd=queue.parent)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"the queue did not finish in {timeout:.0f} s") from None
    (queue.parent / "driver.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    status = _orchestrator("status", str(queue), "--config", str(queue.parent / "manager.ini"),
                           "--json", timeout=60)
    try:
        return {r["id"]: r for r in json.loads(status.stdout)["rows"]}
    except (ValueError, KeyError):
        raise CheckFailed(f"no status: {status.stderr.strip()[-300:]}") from None


def probes(row: dict) -> list[dict]:
    """The ``probe:`` lines the row's last attempt printed."""
    text = Path(row["log"]).read_text(encoding="utf-8", errors="replace") if row["log"] else ""
    return [json.loads(line.split("probe: ", 1)[1]) for line in text.splitlines()
            if "probe: {" in line]


def done(rows: dict[str, dict], job_id: str) -> dict:
    row = rows[job_id]
    if row["status"] != "Done":
        raise CheckFailed(f"{job_id} is {row['status']}: {row['error'] or 'see ' + row['log']}")
    return row


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


# ------------------------------------------------------------------ the checks
def check_nvml(work: Path, dry: bool) -> str:
    from orchestrator.infra.nvml import gpu_usage

    usage = gpu_usage()
    if dry:
        return ("NVML: none here (no NVIDIA driver), the TUI shows n/a" if usage is None
                else f"NVML here: {len(usage)} GPU(s)")
    if not usage or len(usage) < _gpus():
        raise CheckFailed(f"NVML gave {usage!r} for {_gpus()} CUDA GPUs")
    if not all(u["mem_total_gib"] > 0 for u in usage):
        raise CheckFailed(f"NVML memory totals: {[u['mem_total_gib'] for u in usage]}")
    return ", ".join(f"GPU {u['index']}: {u['util']}% {u['mem_used_gib']:.1f}/"
                     f"{u['mem_total_gib']:.0f} GiB" for u in usage)


def check_fractional(work: Path, dry: bool) -> str:
    command = f"{sys.executable} {PROBE} hold 12 256"
    queue = write_queue(work, [{"ID": f"half-{i}", "TrainingCommand": command, "GPUs": "0.5"}
                               for i in (1, 2)])
    check_queue(queue)
    if dry:
        return "two GPUs=0.5 rows ready"
    rows = run_queue(queue, 240)
    seen = [probes(done(rows, f"half-{i}"))[-1] for i in (1, 2)]
    if seen[0]["visible"] != seen[1]["visible"] or seen[0]["visible"] in (None, ""):
        raise CheckFailed(f"CUDA_VISIBLE_DEVICES {seen[0]['visible']!r} and "
                          f"{seen[1]['visible']!r}: not one shared GPU")
    if max(s["start"] for s in seen) >= min(s["end"] for s in seen):
        raise CheckFailed("the two rows did not run at the same time")
    if min(s["held_mib"] for s in seen) < 256 or max(s["nvml_processes"] for s in seen) < 2:
        raise CheckFailed(f"held {[s['held_mib'] for s in seen]} MiB; NVML saw at most "
                          f"{max(s['nvml_processes'] for s in seen)} processes on the GPU")
    return (f"both on GPU {seen[0]['visible']} at once, {seen[0]['held_mib']} MiB each, "
            f"NVML saw {max(s['nvml_processes'] for s in seen)} processes")


def _ddp_yaml(folder: Path, entry: str, params: str = "{}") -> Path:
    path = folder / "ddp.yaml"
    path.write_text(f"entry: {entry}\nparams: {params}\nepochs: 1\nmax_failures: 0\n"
                    f"python_path: [\"{ROOT / 'bench'}\"]\n", encoding="utf-8")
    return path


def check_ddp(work: Path, dry: bool) -> str:
    """The row twice: its workers forked on the node (they fit it), and on Ray Train
    (``fork_workers = false``, as a row across nodes runs)."""
    gpus = max(_gpus(), LOGICAL_GPUS, 1)
    said = []
    for fork in (True, False):
        launcher = "forked" if fork else "ray-train"
        folder = work / launcher
        folder.mkdir(parents=True, exist_ok=True)
        config = _ddp_yaml(folder, "gpu_probe:ddp_loop")
        queue = write_queue(folder, [{"ID": "ddp", "Kind": "ddp", "Config": str(config),
                                      "GPUs": "1", "Workers": str(gpus)}],   # per worker
                            fork=fork)
        check_queue(queue)
        if dry:
            said.append(f"fork_workers = {fork}: {gpus} worker(s), 1 GPU each, ready")
            continue
        seen = probes(done(run_queue(queue, 300), "ddp"))
        if len(seen) != gpus or any(s["backend"] != "nccl" or not s["device"].startswith(
                "cuda") for s in seen):
            raise CheckFailed(f"fork_workers = {fork}: the workers said {seen}")
        said.append(f"fork_workers = {fork}: {seen[0]['world']} worker(s), backend "
                    f"{seen[0]['backend']}, devices {sorted(s['device'] for s in seen)}, "
                    f"sum {seen[0]['sum']:g}")
    return "; ".join(said)


def check_oom(work: Path, dry: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    config = _ddp_yaml(work, "gpu_probe:oom_loop", "{batch_size: 4}")
    queue = write_queue(work, [{"ID": "oom", "Kind": "ddp", "Config": str(config), "GPUs": "1",
                                "Workers": "1", "OnOOM": "halve_batch"}])
    check_queue(queue)
    if dry:
        return "a Kind=ddp row with OnOOM=halve_batch ready"
    rows = run_queue(queue, 300)
    from orchestrator.store.record import read_attempts

    attempts = read_attempts(queue.parent / "runs" / "registry.db", "queue")
    kinds = [(a.attempt, a.status, a.failure) for a in attempts if a.job_id == "oom"]
    done(rows, "oom")
    if [k[2] for k in kinds] != ["oom", None] and [k[2] for k in kinds] != ["oom", ""]:
        raise CheckFailed(f"attempts (number, status, failure): {kinds}")
    return f"attempt 1 ended oom, attempt 2 halved the batch and was Done: {kinds}"


def check_yolo(work: Path, dry: bool) -> str:
    data = work / "shapes"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "trainers.yolo", "make-data", str(data),
                        "--train", "16", "--val", "8", "--imgsz", "64"], check=True, cwd=ROOT,
                       env=_env(), capture_output=True)
    config = work / "yolo.yaml"
    config.write_text(f"data: {data / 'data.yaml'}\nmodel: n\nepochs: 1\nimgsz: 64\n"
                      "batch_per_gpu: 8\nworkers: 0\namp: false\nplots: false\n",
                      encoding="utf-8")
    queue = write_queue(work, [{"ID": "yolo", "Kind": "yolo", "Config": str(config),
                                "GPUs": "1"}])
    check_queue(queue)
    if dry:
        return "a Kind=yolo row (amp: false) ready"
    row = done(run_queue(queue, 300), "yolo")
    log = Path(row["log"]).read_text(encoding="utf-8", errors="replace")
    if "CUDA:" not in log:
        raise CheckFailed(f"ultralytics did not say it trained on CUDA (see {row['log']})")
    if not row["weight_file"] or not Path(row["weight_file"]).exists():
        raise CheckFailed(f"no weights: WeightFile {row['weight_file']!r}")
    return f"trained on {log.split('CUDA:', 1)[1].splitlines()[0].strip()}; {row['weight_file']}"


def check_hf(work: Path, dry: bool) -> str:
    data, model = work / "dialogue", work / "tiny-bart"
    for tool in (["make-data", str(data), "--n", "32"],
                 ["make-tiny", str(model), "--data", str(data / "train.csv")]):
        if not Path(tool[1]).exists():
            subprocess.run([sys.executable, "-m", "trainers.hf", *tool], check=True, cwd=ROOT,
                           env=_env(), capture_output=True)
    config = work / "hf.yaml"
    config.write_text(
        f"model: {{checkpoint: {model}}}\ntokenizer: {{encoder_max_len: 64, decoder_max_len: "
        "32}\ntraining: {epochs: 1, batch_size: 8, learning_rate: 1e-3, warmup_steps: 0, "
        "generation_max_len: 16, num_beams: 1, predict_samples: 2, fp16: auto, "
        f"callbacks: [gpu_probe:Fp16Probe]}}\ndata: {{train: {data / 'train.csv'}, "
        f"dev: {data / 'dev.csv'}}}\n", encoding="utf-8")
    queue = write_queue(work, [{"ID": "hf", "Kind": "hf", "Config": str(config), "GPUs": "1",
                                "Workers": "1"}])
    check_queue(queue)
    if dry:
        return "a Kind=hf row (fp16: auto) ready"
    seen = probes(done(run_queue(queue, 300), "hf"))
    if not seen or not seen[-1]["fp16"] or not seen[-1]["device"].startswith("cuda"):
        raise CheckFailed(f"the Trainer said {seen}")
    return f"fp16 on {seen[-1]['device']}"


CHECKS: dict[str, Callable[[Path, bool], str]] = {
    "nvml": check_nvml, "fractional": check_fractional, "ddp-nccl": check_ddp,
    "yolo-cuda": check_yolo, "hf-fp16": check_hf, "oom": check_oom,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="prepare and `orchestrator check` every check; run none")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    parser.add_argument("--work", type=Path, help="where the checks' files go (default: a "
                        "temporary folder, removed after a run that passed)")
    parser.add_argument("--logical-gpus", type=int, default=0, help="run the checks on a "
                        "machine without CUDA, Ray counting this many GPUs: they fail where "
                        "CUDA is needed, which shows the script's own plumbing works")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    gpus = _gpus()
    dry = args.dry_run or (gpus == 0 and not args.logical_gpus)
    global LOGICAL_GPUS
    LOGICAL_GPUS = args.logical_gpus
    print(f"gpu check: {gpus} CUDA GPU(s); {'dry run' if dry else 'running'}; files in {work}",
          flush=True)
    outcomes = []
    for name in args.only:
        start = time.monotonic()
        try:
            detail = CHECKS[name](work / name, dry)
            verdict = "NEEDS-GPU" if dry else "PASS"
        except CheckFailed as e:
            verdict, detail = "FAIL", str(e)
        except Exception as e:  # noqa: BLE001 - one broken check must not hide the others
            verdict, detail = "FAIL", f"{type(e).__name__}: {e}"
        outcome = Outcome(name, verdict, detail, time.monotonic() - start)
        print(outcome.line(), flush=True)
        outcomes.append(outcome)
    (work / "gpu_check.json").write_text(json.dumps(
        {"gpus": gpus, "dry_run": dry, "checks": [vars(o) for o in outcomes]}, indent=1))
    failed = [o for o in outcomes if o.verdict == "FAIL"]
    if not failed and args.work is None and not dry:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
