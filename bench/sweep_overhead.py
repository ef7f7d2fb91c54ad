"""Sweep overhead benchmark (prints figures; asserts nothing): what ``run_sweep`` adds per trial.

40 trials of a program that sleeps 1 s and logs one metric line, 4 at a time on
4 logical GPUs (``gpus_per_trial=1``), so the ideal is 40 / 4 x 1 s = 10 s.
The sweep is built in code (method random, run_cap 40, ``x`` uniform 0..1,
metric ``score`` maximize). The program is plain Python: it appends
``{"score": x}`` to ``$ORCH_METRICS_FILE`` (no wandb import, so the figure is the
orchestrator + Tune overhead, not wandb's start-up) and writes its own start/end
``time.time()`` and its GPU to ``$ORCH_RUN_DIR/bench_times.json``.

An untimed warm-up child (4 trials of the peer) runs first: the first child of a run
otherwise pays a cold start that lands on whichever variant runs first (ours).

Each variant runs in a child process of this script (private ``RAY_TMPDIR``,
``RAY_ADDRESS`` unset, ``OMP_NUM_THREADS=1``) that times ``ray.init(address="local",
num_cpus=4, num_gpus=4, include_dashboard=False)``, ``run_sweep(...)`` and
``ray.shutdown()`` separately.

Figures:

* wall: ``run_sweep`` call to return; ideal = ceil(N/4) x 1 s;
* per-trial overhead = (wall - ideal) x 4 / N (target <= 1 s: PASS/MISS);
* slot gap: on each GPU, the next program's start minus the previous program's
  end (median, p95, max);
* max programs running at once (from the programs' own times); failed trials;
* steady state: the same overhead over first program start → last program end;
* start-up (run_sweep call → first program start) and tail (last program end →
  run_sweep return).

The peer runs the same plain program as plain Ray Tune would, written by hand: a
function trainable that starts it with ``subprocess.run`` (its GPU in
``CUDA_VISIBLE_DEVICES``, the trial folder as ``ORCH_RUN_DIR``) and reports its line,
``tune.uniform(0, 1)``, ``num_samples`` = N, ``max_concurrent_trials`` = 4, actors
reused (as an expert sets it: a new actor per trial costs ~3 s here), 1 GPU and 1 CPU per
trial; the ratio of the two walls and slot gaps is the figure to beat
(target: ours <= plain Tune + 10 %).

A third variant runs an unmodified W&B program (``import wandb``,
``wandb.init(mode="offline")``, ``wandb.log``, ``wandb.finish``), 8 trials; its
per-trial overhead against the same sleep-only ideal includes wandb's own start-up,
so the figure net of the programs' median run time is printed too. Its peer: the same
wandb calls in a function trainable on plain Ray Tune (wandb imported once per reused
actor), the W&B user's own alternative (target: the program within 1.5x of it).

JSON goes to bench/results/sweep_overhead.json.

    .venv/bin/python bench/sweep_overhead.py [--trials 40] [--wandb-trials 8] [--skip-wandb]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results  # noqa: E402  (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sweep_overhead.json"
SLOTS, SLEEP, TARGET_S = 4, 1.0, 1.0
TIMES_FILE = "bench_times.json"

# The trial programs, written into the work folder at run time.
_PLAIN = '''\
import json, os, sys, time
start = time.time()
x = float(next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--x=")))
time.sleep(%(sleep)r)
with open(os.environ["ORCH_METRICS_FILE"], "a", encoding="utf-8") as f:
    f.write(json.dumps({"score": x}) + "\\n")
end = time.time()
with open(os.path.join(os.environ["ORCH_RUN_DIR"], %(times)r), "w") as f:
    json.dump({"start": start, "end": end, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "pid": os.getpid()}, f)
'''

_WANDB = '''\
import json, os, sys, time
start = time.time()
import wandb
imported = time.time()
run = wandb.init(mode="offline")
inited = time.time()
x = float(run.config.get("x", next((a.split("=", 1)[1] for a in sys.argv[1:]
                                     if a.startswith("--x=")), "nan")))
time.sleep(%(sleep)r)
wandb.log({"score": x})
logged = time.time()
wandb.finish()
end = time.time()
with open(os.path.join(os.environ["ORCH_RUN_DIR"], %(times)r), "w") as f:
    json.dump({"start": start, "end": end, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "pid": os.getpid(), "import_s": imported - start, "init_s": inited - imported,
               "finish_s": end - logged}, f)
'''


# ------------------------------------------------------------------ the child
def _peer_trainable(config: dict) -> None:
    """Plain Ray Tune's trial: the program in a child process, its line reported."""
    import ray
    from ray import tune

    folder = Path(config["work"]) / "peer-trials" / tune.get_context().get_trial_id()
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "metrics.jsonl"
    env = {**os.environ, "ORCH_METRICS_FILE": str(metrics), "ORCH_RUN_DIR": str(folder),
           "CUDA_VISIBLE_DEVICES": ",".join(map(str, ray.get_gpu_ids()))}
    subprocess.run([sys.executable, config["program"], f"--x={config['x']}"], env=env,
                   check=True)
    tune.report({**json.loads(metrics.read_text().splitlines()[-1]), "folder": str(folder)})


def _wandb_function(config: dict) -> None:
    """The W&B user's own function trainable: the same wandb calls as the W&B program,
    in the trial's process (wandb imported once per reused actor), its times written
    like the program's."""
    import ray
    import wandb
    from ray import tune

    folder = Path(config["work"]) / "peer-wandb" / tune.get_context().get_trial_id()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    run = wandb.init(mode="offline", config={"x": config["x"]}, dir=str(folder),
                     reinit="finish_previous")
    inited = time.time()
    time.sleep(SLEEP)
    run.log({"score": config["x"]})
    logged = time.time()
    run.finish()
    end = time.time()
    (folder / TIMES_FILE).write_text(json.dumps({
        "start": start, "end": end, "gpu": ",".join(map(str, ray.get_gpu_ids())),
        "pid": os.getpid(), "init_s": inited - start, "finish_s": end - logged}))
    tune.report({"score": config["x"], "folder": str(folder)})


def _timed_on_ray(sweep) -> int:
    """In the child process: ray.init, ``sweep()`` (its result dict, the trials among it),
    ray.shutdown, each timed; the JSON on the last line."""
    import ray

    out: dict = {}
    t0 = time.time()
    ray.init(address="local", num_cpus=SLOTS, num_gpus=SLOTS, include_dashboard=False,
             log_to_driver=False)
    out["ray_init_s"] = time.time() - t0
    try:
        out["sweep_start"] = time.time()
        found = sweep()
        out["sweep_end"] = time.time()
        out.update(found)
    finally:
        t1 = time.time()
        ray.shutdown()
        out["ray_shutdown_s"] = time.time() - t1
    print("\nRESULT " + json.dumps(out), flush=True)
    return 0


def peer_child(args: argparse.Namespace) -> int:
    """The peer, in the child process: the same trials on plain Ray Tune."""
    from ray import tune

    def sweep() -> dict:
        trainable = _wandb_function if args.function else _peer_trainable
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1, "gpu": 1}),
            param_space={"x": tune.uniform(0.0, 1.0), "program": args.program,
                         "work": args.work},
            tune_config=tune.TuneConfig(num_samples=args.trials, metric="score", mode="max",
                                        max_concurrent_trials=SLOTS, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(Path(args.work) / "peer-storage"),
                                      name=args.name, verbose=0))
        return {"trials": [{"trial_dir": (r.metrics or {}).get("folder"),
                            "metric": (r.metrics or {}).get("score"),
                            "status": "TERMINATED" if r.error is None else "ERROR",
                            "error": None if r.error is None else str(r.error)}
                           for r in tuner.fit()]}

    return _timed_on_ray(sweep)


def child(args: argparse.Namespace) -> int:
    """Runs in the child process: ray.init, run_sweep, ray.shutdown; JSON on the last line."""
    sys.path.insert(0, str(ROOT))
    if args.peer:
        return peer_child(args)
    from sweeps.spec import parse_sweep
    from sweeps.tune_runner import run_sweep

    spec = parse_sweep({
        "name": args.name, "program": args.program, "method": "random",
        "run_cap": args.trials, "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}},
    }, source=str(Path(args.work) / f"{args.name}.yaml"))

    def sweep() -> dict:
        outcome = run_sweep(spec, storage_path=Path(args.work) / "storage", name=args.name,
                            gpus_per_trial=1.0, cpus_per_trial=1.0,
                            max_concurrent_trials=SLOTS, workdir=args.work)
        return {"trials": [{k: t.get(k) for k in ("trial_dir", "metric", "status", "error")}
                           for t in outcome.trials],
                "errors": outcome.errors, "best_metric": outcome.best_metric}

    return _timed_on_ray(sweep)


# ------------------------------------------------------------------- figures
from dispatch import pct  # noqa: E402  (bench/ is this script's folder on sys.path)


def max_concurrent(times: list[dict]) -> int:
    events = sorted([(t["start"], 1) for t in times] + [(t["end"], -1) for t in times])
    most = now = 0
    for _, step in events:   # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def slot_gaps(times: list[dict]) -> list[float]:
    by_slot: dict[str, list[dict]] = {}
    for t in times:
        by_slot.setdefault(str(t.get("gpu")), []).append(t)
    gaps = []
    for runs in by_slot.values():
        runs.sort(key=lambda t: t["start"])
        gaps += [b["start"] - a["end"] for a, b in zip(runs, runs[1:], strict=False)]
    return gaps


def r(v, nd=3):
    return None if v is None else round(v, nd)


def figures(res: dict, n: int) -> dict:
    trials = res.get("trials", [])
    times = []
    for t in trials:
        try:
            times.append(json.loads((Path(t["trial_dir"]) / TIMES_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            pass
    wall = res["sweep_end"] - res["sweep_start"]
    ideal = math.ceil(n / SLOTS) * SLEEP
    gaps = slot_gaps(times)
    durations = [t["end"] - t["start"] for t in times]
    med_dur = pct(durations, 50)
    failed = sum(t.get("status") != "TERMINATED" for t in trials) + max(0, n - len(trials))
    fig = {
        "trials": n, "trials_returned": len(trials), "programs_timed": len(times),
        "failed_trials": failed, "missing_metric": sum(t.get("metric") is None for t in trials),
        "ray_init_s": r(res.get("ray_init_s")), "ray_shutdown_s": r(res.get("ray_shutdown_s")),
        "wall_s": r(wall), "ideal_s": ideal,
        "overhead_per_trial_s": r((wall - ideal) * SLOTS / n),
        "slot_gap_median_s": r(pct(gaps, 50)), "slot_gap_p95_s": r(pct(gaps, 95)),
        "slot_gap_max_s": r(max(gaps) if gaps else None),
        "max_concurrent": max_concurrent(times) if times else 0,
        "slots_used": len({str(t.get("gpu")) for t in times}),
        "startup_s": r(min(t["start"] for t in times) - res["sweep_start"]) if times else None,
        "tail_s": r(res["sweep_end"] - max(t["end"] for t in times)) if times else None,
        "program_run_median_s": r(med_dur),
    }
    if times:   # what each trial costs once the 4 trial actors are up
        span = max(t["end"] for t in times) - min(t["start"] for t in times)
        fig["programs_span_s"] = r(span)
        fig["overhead_per_trial_steady_s"] = r((span - ideal) * SLOTS / n)
    if med_dur is not None:   # the same, against the programs' own run time
        net_ideal = math.ceil(n / SLOTS) * med_dur
        fig["overhead_per_trial_net_of_program_s"] = r((wall - net_ideal) * SLOTS / n)
    for key in ("import_s", "init_s", "finish_s"):
        vals = [t[key] for t in times if key in t]
        if vals:
            fig[f"wandb_{key}_median"] = r(pct(vals, 50))
    errors = [t["error"] for t in trials if t.get("error")]
    if errors:
        fig["first_error"] = errors[0][-800:]
    return fig


# -------------------------------------------------------------------- parent
def run_variant(name: str, source: str, n: int, work: Path, timeout: float,
                peer: bool = False, function: bool = False) -> dict:
    program = work / f"{name}_program.py"
    program.write_text(source % {"sleep": SLEEP, "times": TIMES_FILE}, encoding="utf-8")
    ray_tmp = tempfile.mkdtemp(prefix="bench-sweep-rt-", dir="/tmp")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(RAY_TMPDIR=ray_tmp, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT), ORCH_RAY_KEEP_ALIVE="0")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--name", name,
           "--program", str(program), "--work", str(work), "--trials", str(n),
           *(["--peer"] if peer or function else []), *(["--function"] if function else [])]
    log_path = work / f"{name}.child.log"
    t0 = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=log, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)   # the child's own session only
            try:
                stdout, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, _ = proc.communicate()
            return {"error": f"timed out after {timeout:.0f} s (log: {log_path})"}
    child_wall = time.time() - t0
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        tail = log_path.read_text(errors="replace")[-1500:]
        return {"error": f"child exited {proc.returncode}", "log_tail": tail}
    fig = figures(json.loads(line[len("RESULT "):]), n)
    fig["child_process_wall_s"] = r(child_wall, 1)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return fig


def report(title: str, fig: dict, target: bool) -> None:
    print(f"\n== {title}")
    if "error" in fig:
        print(f"  ERROR: {fig['error']}")
        if fig.get("log_tail"):
            print(fig["log_tail"])
        return
    n = fig["trials"]
    print(f"  ray.init                       {fig['ray_init_s']:.2f} s "
          f"(shutdown {fig['ray_shutdown_s']:.2f} s)")
    print(f"  run_sweep wall                 {fig['wall_s']:.2f} s")
    print(f"  ideal                          {fig['ideal_s']:.2f} s "
          f"({n} x {SLEEP:g} s / {SLOTS} slots)")
    verdict = ""
    if target:
        verdict = "  PASS" if fig["overhead_per_trial_s"] <= TARGET_S else "  MISS"
        verdict += f" (target <= {TARGET_S:g} s)"
    print(f"  per-trial overhead             {fig['overhead_per_trial_s']:.3f} s{verdict}")
    if fig.get("overhead_per_trial_net_of_program_s") is not None:
        print(f"  per-trial overhead, net of the program's own run time "
              f"({fig['program_run_median_s']:.2f} s median): "
              f"{fig['overhead_per_trial_net_of_program_s']:.3f} s")
    if fig.get("overhead_per_trial_steady_s") is not None:
        print(f"  per-trial overhead, steady state (first program start -> last end, "
              f"{fig['programs_span_s']:.2f} s): {fig['overhead_per_trial_steady_s']:.3f} s")
    if fig["slot_gap_median_s"] is not None:
        print(f"  slot gap end->next start       median {fig['slot_gap_median_s']:.3f} s, "
              f"p95 {fig['slot_gap_p95_s']:.3f} s, max {fig['slot_gap_max_s']:.3f} s")
    print(f"  max programs at once           {fig['max_concurrent']} "
          f"(on {fig['slots_used']} GPU slot(s))")
    print(f"  start-up / tail                {fig['startup_s']} s / {fig['tail_s']} s")
    print(f"  failed trials                  {fig['failed_trials']} of {n} "
          f"({fig['programs_timed']} programs timed, {fig['missing_metric']} without metric)")
    for key in ("wandb_import_s_median", "wandb_init_s_median", "wandb_finish_s_median"):
        if key in fig:
            print(f"  {key:<30} {fig[key]:.2f} s")
    if fig.get("first_error"):
        print(f"  first error: {fig['first_error']}")


def compare(ours: dict, peer: dict) -> None:
    """Ours beside plain Tune: the walls' ratio and the slot gaps (target: +10 %)."""
    if not all(isinstance(x.get(k), float) for x in (ours, peer)
               for k in ("wall_s", "slot_gap_median_s")):
        return
    ratio = ours["wall_s"] / peer["wall_s"]
    ours["vs_tune_wall_ratio"] = r(ratio)
    print(f"\n== ours / plain Tune: wall {ours['wall_s']:.2f} / {peer['wall_s']:.2f} s = "
          f"{ratio:.2f}x ({'PASS' if ratio <= 1.10 else 'MISS'}, target <= 1.10); slot gap "
          f"median {ours['slot_gap_median_s']:.3f} / {peer['slot_gap_median_s']:.3f} s; "
          f"first program {ours['startup_s']} / {peer['startup_s']} s after the call")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--wandb-trials", type=int, default=8)
    p.add_argument("--skip-wandb", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--program", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--function", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-", dir="/tmp"))
    print(f"work folder {work}; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}",
          flush=True)
    results: dict = {"cpus": os.cpu_count(), "slots": SLOTS, "sleep_s": SLEEP,
                     "target_overhead_per_trial_s": TARGET_S}
    # the first child of a run pays a cold start (Ray's files and torch's, read from disk:
    # 10-25 s to the first program after a test suite, ~5.5 s warm), and the first
    # measured child is ours: a short untimed run of the peer goes first
    warm = run_variant("warmup", _PLAIN, SLOTS, work, timeout=300, peer=True)
    print(f"warm-up (not counted): {SLOTS} trials of plain Tune in "
          f"{warm.get('wall_s', float('nan')):.1f} s", flush=True)
    results["plain"] = run_variant("plain", _PLAIN, args.trials, work,
                                   timeout=180 + 10 * args.trials)
    report(f"plain program: {args.trials} trials, {SLOTS} at once", results["plain"], True)
    if "overhead_per_trial_s" in results["plain"]:
        results["plain"]["verdict"] = ("PASS" if results["plain"]["overhead_per_trial_s"]
                                       <= TARGET_S else "MISS")
    results["tune"] = run_variant("tune", _PLAIN, args.trials, work,
                                  timeout=180 + 10 * args.trials, peer=True)
    report(f"plain Ray Tune, the same program: {args.trials} trials, {SLOTS} at once",
           results["tune"], False)
    compare(results["plain"], results["tune"])
    if not args.skip_wandb:
        results["wandb"] = run_variant("wandb", _WANDB, args.wandb_trials, work,
                                       timeout=180 + 20 * args.wandb_trials)
        report(f"W&B program (wandb.init offline + wandb.log): {args.wandb_trials} trials, "
               f"{SLOTS} at once", results["wandb"], False)
        results["wandb_function"] = run_variant("wandb_function", _PLAIN, args.wandb_trials,
                                                work, timeout=180 + 20 * args.wandb_trials,
                                                function=True)
        report(f"the same W&B calls as a function trainable on plain Tune (the peer): "
               f"{args.wandb_trials} trials, {SLOTS} at once", results["wandb_function"],
               False)
        ours, peer = results["wandb"], results["wandb_function"]
        if isinstance(ours.get("wall_s"), float) and isinstance(peer.get("wall_s"), float):
            ratio = ours["wall_s"] / peer["wall_s"]
            ours["vs_function_wall_ratio"] = r(ratio)
            print(f"\n== W&B program / function trainable: wall {ours['wall_s']:.2f} / "
                  f"{peer['wall_s']:.2f} s = {ratio:.2f}x "
                  f"({'PASS' if ratio <= 1.5 else 'MISS'}, target <= 1.5)")
    results["load_after"] = os.getloadavg()[0]
    write_results(RESULTS, results)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
