"""DDP overhead benchmark (prints figures; asserts nothing): what Ray Train adds to a loop.

The same small training loop — ``examples/ddp_dummy.py``'s DummyTrainer (a linear
classifier, Adam, cosine schedule) on ``--samples`` random rows in batches of
``--batch-size`` for ``--epochs`` epochs — runs twice:

1. plainly, in this process: ``build(params)`` then ``DummyTrainer(...).run(...)``
   (torch already imported, no checkpoints), before and after (2): the faster counts;
2. as a ``Kind=ddp`` job on Ray Train: ``python -m trainers.torch CONFIG --workers 1``
   in a child process that starts its own local Ray (private ``RAY_TMPDIR``,
   ``OMP_NUM_THREADS=1``), with checkpoints every epoch and the final weights (what a
   row across nodes, or with ``fork_workers = false``, runs);
3. the same job with its worker forked (``--launcher torch``: no Ray), as a row whose
   workers fit its node runs it;
4. as a queue row: ``orchestrator run`` on a one-row CSV (``Kind=ddp``, ``Workers=1``):
   the driver's Ray, a runner, the job and its forked worker.

Both write ``$ORCH_METRICS_FILE`` (one line per epoch, stamped with the time), so
the steady-state speed is measured the same way for both: train steps per epoch over
the median time between the ends of consecutive epochs (epoch 1 = warm-up, skipped).

Figures: wall times and their ratio; fixed cost (ddp wall - plain wall); steps/s
after warm-up for both and their ratio. JSON goes to bench/results/ddp_overhead.json.

    .venv/bin/python bench/ddp_overhead.py [--samples 32000] [--batch-size 32] [--epochs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from results_file import write_results  # noqa: E402  (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
EXAMPLE = ROOT / "examples" / "ddp_dummy.py"
RESULTS = ROOT / "bench" / "results" / "ddp_overhead.json"

CONFIG = """\
entry: ddp_dummy:DummyTrainer
build: ddp_dummy:build
params: {{lr: 0.01, samples: {samples}, batch_size: {batch}, t_max: {epochs}}}
epochs: {epochs}
checkpoint: {{num_to_keep: 2, format: ckpt}}
max_failures: 0
python_path: ["{examples}"]
"""


def epoch_times(metrics: Path) -> list[float]:
    """The time stamp of each per-epoch line (the final summary line has no step)."""
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return [x["time"] for x in lines if "step" in x]


def steady_rate(times: list[float], steps_per_epoch: int) -> float | None:
    """Train steps per second after epoch 1: over the median epoch (robust to a load spike
    from other work on the machine); None with fewer than 2 epochs."""
    durations = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    if not durations:
        return None
    return steps_per_epoch / statistics.median(durations)


def run_plain(work: Path, params: dict, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("ddp_dummy", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    metrics = work / f"plain-{time.monotonic_ns()}.jsonl"
    os.environ["ORCH_METRICS_FILE"] = str(metrics)
    try:
        start = time.perf_counter()
        parts = example.build(params)
        trainer = example.DummyTrainer(parts["model"], "cpu", optimizer=parts["optimizer"],
                                       scheduler=parts["scheduler"], log_bar=False)
        history = trainer.run(epochs, parts["train_loader"], parts["valid_loader"])
        wall = time.perf_counter() - start
    finally:
        del os.environ["ORCH_METRICS_FILE"]
    return {"wall_s": wall, "epoch_times": epoch_times(metrics),
            "valid_loss": history[-1]["valid_loss"]}


def run_ddp(work: Path, params: dict, epochs: int, timeout: float,
            launcher: str = "ray") -> dict:
    work = work / launcher
    work.mkdir()
    config = work / "bench.yaml"
    config.write_text(CONFIG.format(samples=params["samples"], batch=params["batch_size"],
                                    epochs=epochs, examples=EXAMPLE.parent), encoding="utf-8")
    metrics, run_dir = work / "ddp.jsonl", work / "attempt"
    run_dir.mkdir()
    env = {**os.environ, "ORCH_METRICS_FILE": str(metrics), "ORCH_RUN_DIR": str(run_dir),
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="bench-ddp-rt-", dir="/tmp"),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "trainers.torch", str(config), "--storage",
            str(work / "storage"), "--name", "bench", "--workers", "1", "--address", "",
            "--launcher", launcher]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"python -m trainers.torch failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return {"wall_s": wall, "epoch_times": epoch_times(metrics),
            "valid_loss": lines[-1].get("valid_loss")}


def run_row_variant(work: Path, params: dict, epochs: int, timeout: float) -> dict:
    from queue_row import run_row

    config = work / "row.yaml"
    config.write_text(CONFIG.format(samples=params["samples"], batch=params["batch_size"],
                                    epochs=epochs, examples=EXAMPLE.parent), encoding="utf-8")
    wall, metrics = run_row(work / "row", "ddp", config, workers=1, timeout=timeout)
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return {"wall_s": wall, "epoch_times": epoch_times(metrics),
            "valid_loss": lines[-1].get("valid_loss")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=32000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    params = {"lr": 0.01, "samples": args.samples, "batch_size": args.batch_size,
              "t_max": args.epochs}
    steps = math.ceil(args.samples / args.batch_size)
    work = Path(tempfile.mkdtemp(prefix="bench-ddp-", dir="/tmp"))
    print(f"work folder {work}; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}; "
          f"{args.epochs} epochs x {steps} train steps", flush=True)

    plains = [run_plain(work, params, args.epochs)]
    ddp = run_ddp(work, params, args.epochs, timeout=300 + 60 * args.epochs)
    forked = run_ddp(work, params, args.epochs, timeout=300 + 60 * args.epochs,
                     launcher="torch")
    row = run_row_variant(work, params, args.epochs, timeout=300 + 60 * args.epochs)
    plains.append(run_plain(work, params, args.epochs))   # before and after: load drifts
    for result in (*plains, ddp, forked, row):
        result["steps_per_s"] = steady_rate(result["epoch_times"], steps)
    plain = min(plains, key=lambda x: x["wall_s"])
    results = {"cpus": os.cpu_count(), "epochs": args.epochs, "steps_per_epoch": steps,
               "samples": args.samples, "batch_size": args.batch_size,
               "plain": plain, "ddp_1_worker": ddp, "ddp_forked": forked, "queue_row": row,
               "wall_ratio": ddp["wall_s"] / plain["wall_s"],
               "row_wall_ratio": row["wall_s"] / plain["wall_s"],
               "row_steps_per_s_ratio": (row["steps_per_s"] / plain["steps_per_s"]
                                         if row["steps_per_s"] and plain["steps_per_s"]
                                         else None),
               "fixed_cost_s": ddp["wall_s"] - plain["wall_s"],
               "forked_fixed_cost_s": forked["wall_s"] - plain["wall_s"],
               "steps_per_s_ratio": (ddp["steps_per_s"] / plain["steps_per_s"]
                                     if ddp["steps_per_s"] and plain["steps_per_s"] else None),
               "load_after": os.getloadavg()[0]}
    show(results)
    write_results(RESULTS, results)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def show(r: dict) -> None:
    def rate(value):
        return f"{value:8.0f}" if value else "     n/a"

    print(f"\n{'':28}{'wall s':>8}  {'steps/s after epoch 1':>22}  {'valid_loss':>10}")
    for label, key in (("plain, in-process", "plain"),
                       ("job on Ray Train, 1w", "ddp_1_worker"),
                       ("job, forked worker, 1w", "ddp_forked"),
                       ("queue row Kind=ddp, 1w", "queue_row")):
        x = r[key]
        print(f"{label:28}{x['wall_s']:8.1f}  {rate(x['steps_per_s']):>22}  "
              f"{x['valid_loss']:10.4f}")
    ratio = r["steps_per_s_ratio"]
    print(f"\nwall ratio (ddp / plain): {r['wall_ratio']:.1f}x; fixed cost on Ray Train "
          f"{r['fixed_cost_s']:.1f} s (Ray start, Train controller, worker, gloo, checkpoints), "
          f"forked {r['forked_fixed_cost_s']:.1f} s (imports, fork, gloo, checkpoints)")
    print("steady-state speed ratio (ddp / plain): "
          + (f"{ratio:.2f}" if ratio else "n/a (fewer than 2 epochs)"))
    row_ratio = r["row_steps_per_s_ratio"]
    print(f"queue row / plain: wall {r['row_wall_ratio']:.1f}x, steady-state speed "
          + (f"{row_ratio:.2f}" if row_ratio else "n/a"))


if __name__ == "__main__":
    sys.exit(main())
