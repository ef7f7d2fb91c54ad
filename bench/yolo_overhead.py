"""YOLO job overhead (prints figures; asserts nothing): ``python -m trainers.yolo train`` vs
the same training called directly with ultralytics.

Both variants train yolov8n from ``yolov8n.yaml`` for 2 epochs at imgsz 64, batch 8,
workers 0, on the CPU, on 16+8 synthetic images, each in a fresh Python subprocess
(``OMP_NUM_THREADS=1``), and each with the same offline setup (``trainers.yolo.offline``:
a private YOLO_CONFIG_DIR with a local font and sync off — without it ultralytics
reaches for the network, so there is no fair "bare" variant here):

* direct: ``YOLO("yolov8n.yaml").train(data=..., epochs=2, ...)`` in ``python -c``;
* job: ``python -m trainers.yolo train cfg.yaml --project P`` with ``ORCH_METRICS_FILE``
  set, as a queue row runs it (config checks, device plan, per-epoch callbacks, the final
  report from results.csv).

* row: the same config as a ``Kind=yolo`` queue row, ``orchestrator run`` on a one-row
  CSV (the driver's own Ray start and stop included, as a user pays them).

One warm-up run of each (file cache) is discarded, then ``--repeats`` runs of each,
alternating. Figures: median wall time of each, the job's extra seconds, and the ratio.
JSON goes to bench/results/yolo_overhead.json.

    .venv/bin/python bench/yolo_overhead.py [--repeats 3] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results  # noqa: E402  (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "yolo_overhead.json"
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

DIRECT = """
import sys
from trainers.yolo.offline import prepare
prepare(sys.argv[1])
from ultralytics import YOLO
YOLO("yolov8n.yaml").train(data=sys.argv[2], epochs=int(sys.argv[3]), imgsz=64, batch=8,
                           workers=0, device="cpu", project=sys.argv[4], name="train",
                           exist_ok=True, amp=False, plots=False, verbose=False)
"""


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def timed(argv: list[str], cwd: Path, **extra) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env={**env(), **extra}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def direct(work: Path, data: Path, epochs: int, n: int) -> float:
    project = work / f"direct{n}"
    return timed([sys.executable, "-c", DIRECT, str(project / "ultralytics"), str(data),
                  str(epochs), str(project)], work)


def job(work: Path, cfg: Path, n: int) -> float:
    project = work / f"job{n}"
    return timed([sys.executable, "-m", "trainers.yolo", "train", str(cfg), "--project",
                  str(project)], work, ORCH_METRICS_FILE=str(work / f"job{n}.jsonl"))


def row(work: Path, cfg: Path, n: int) -> float:
    from queue_row import run_row

    return run_row(work / f"row{n}", "yolo", cfg)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args(argv)
    from trainers.yolo.synthetic import make_data

    with tempfile.TemporaryDirectory(prefix="yolo-bench-") as tmp:
        work = Path(tmp)
        data = make_data(work / "shapes", train=16, val=8, imgsz=64)
        cfg = work / "cfg.yaml"
        cfg.write_text(f"data: {data}\nmodel: n\nepochs: {args.epochs}\nimgsz: 64\n"
                       "batch_per_gpu: 8\nworkers: 0\ndevice: cpu\n")
        print("warm-up ...", flush=True)
        direct(work, data, args.epochs, 0)
        job(work, cfg, 0)
        times: dict[str, list[float]] = {"direct": [], "job": [], "row": []}
        for n in range(1, args.repeats + 1):
            runs = [("direct", lambda n=n: direct(work, data, args.epochs, n)),
                    ("job", lambda n=n: job(work, cfg, n)),
                    ("row", lambda n=n: row(work, cfg, n))]
            for name, call in runs if n % 2 else reversed(runs):
                times[name].append(call())
                print(f"  run {n} {name:6s} {times[name][-1]:6.2f} s", flush=True)
        lines = [json.loads(x) for x in (work / "job1.jsonl").read_text().splitlines()]
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"epochs": args.epochs, "repeats": args.repeats, "times_s": times,
           "median_direct_s": med["direct"], "median_job_s": med["job"],
           "overhead_s": med["job"] - med["direct"], "ratio": med["job"] / med["direct"],
           "median_row_s": med["row"], "row_ratio": med["row"] / med["direct"],
           "job_metric_lines": len(lines)}
    print(f"\ndirect ultralytics : median {med['direct']:.2f} s")
    print(f"python -m trainers.yolo train: median {med['job']:.2f} s "
          f"({len(lines)} metric lines)")
    print(f"overhead           : {out['overhead_s']:+.2f} s, ratio {out['ratio']:.3f}")
    print(f"queue row (orchestrator run, its own Ray): median {med['row']:.2f} s, "
          f"ratio {out['row_ratio']:.2f}")
    write_results(RESULTS, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
