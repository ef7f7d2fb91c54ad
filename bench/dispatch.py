"""Dispatch benchmark: how soon a freed slot starts its next job.

Runs N tiny jobs (each records its own start and end with ``date``, around
``sleep S``) on K slots twice:

1. through the orchestrator CLI as a subprocess (``python -m orchestrator.run``,
   K logical GPUs, GPUs=1 per row, dashboard off), polling the driver's RSS;
2. through a small reimplementation of the seed tool's loop (re-read the CSV
   every ``--interval`` s, ``Popen.poll()`` the running jobs, start pending rows
   with ``shell=True`` up to ``max_training_process``, rewrite the CSV).

Figures, from the jobs' own timestamps:

* dispatch delay: sort all starts and all ends; the k-th start (k >= K, 0-based)
  can only happen once k-K+1 jobs have ended, so its delay is
  ``start[k] - end[k-K]`` — the time from the end that freed the slot to the
  start that used it. Median, p95 and max over the N-K starts after the first wave.
* makespan: last end - first start (driver start-up excluded);
  ideal = ceil(N/K) * S.
* start-up (orchestrator): driver process start to the first job start.

Beside it, from the same run: task-spooler (``tsp -S K``, its own socket), GNU
``parallel -j K`` and a plain Ray script with K warm actors (what Ray itself costs); a
peer that is not installed is skipped with a message (``make bench`` installs them).

Targets (issue 24): median delay <= 0.02 s, makespan <= 1.05 x ideal. This prints figures; it
asserts nothing about time. JSON goes to bench/results/dispatch.json.

    .venv/bin/python bench/dispatch.py [--jobs 100] [--slots 8] [--sleep 1] [--skip-old]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "dispatch.json"
TARGET_DELAY_S, TARGET_RATIO = 0.02, 1.05
# "12:00:01 j007 Pending → Queued attempt 1" (the driver's --no_ui progress lines)
_PROGRESS = re.compile(r"^\d\d:\d\d:\d\d (\S+) (\w+) → (\w+)")


# ------------------------------------------------------------------ the jobs
def job_ids(n: int) -> list[str]:
    return [f"j{i:03d}" for i in range(n)]


def job_command(out: Path, job_id: str, sleep: float) -> str:
    """Cheap to start: the shell, two ``date`` calls and ``sleep``."""
    o = shlex.quote(str(out))
    return (f"echo $(date +%s.%N) > {o}/{job_id}.start; sleep {sleep:g}; "
            f"echo $(date +%s.%N) > {o}/{job_id}.end")


def write_queue(path: Path, out: Path, ids: list[str], sleep: float) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs"])
        w.writerows([i, "", job_command(out, i, sleep), "", "1"] for i in ids)
    return path


def read_times(out: Path, ids: list[str]) -> dict[str, tuple[float, float | None]]:
    """``{id: (start, end)}`` for the jobs that started (end None if it never ended)."""
    times = {}
    for i in ids:
        try:
            start = float((out / f"{i}.start").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            end = float((out / f"{i}.end").read_text().strip())
        except (OSError, ValueError):
            end = None
        times[i] = (start, end)
    return times


def statuses(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            key = (row.get("TrainingCheck") or "").strip() or "Pending"
            counts[key] = counts.get(key, 0) + 1
    return counts


# ------------------------------------------------------------------- figures
def pct(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def max_concurrent(times: dict[str, tuple[float, float | None]]) -> int:
    events = sorted([(s, 1) for s, _ in times.values()] +
                    [(e, -1) for _, e in times.values() if e is not None])
    most = now = 0
    for _, step in events:   # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def figures(times: dict, n: int, slots: int, sleep: float) -> dict:
    starts = sorted(s for s, _ in times.values())
    ends = sorted(e for _, e in times.values() if e is not None)
    delays = [starts[k] - ends[k - slots] for k in range(slots, len(starts))
              if k - slots < len(ends)]
    ideal = math.ceil(n / slots) * sleep
    makespan = (max(ends) - starts[0]) if starts and ends else None
    return {
        "jobs_started": len(starts), "jobs_ended": len(ends),
        "max_concurrent": max_concurrent(times),
        "first_start": starts[0] if starts else None,
        "first_wave_spread_s": starts[min(slots, len(starts)) - 1] - starts[0] if starts else None,
        "makespan_s": makespan, "ideal_s": ideal,
        "ratio": makespan / ideal if makespan and ideal else None,
        "jobs_per_s": len(ends) / makespan if makespan else None,
        "delay_median_s": pct(delays, 50), "delay_p95_s": pct(delays, 95),
        "delay_max_s": max(delays) if delays else None,
        "delay_min_s": min(delays) if delays else None,
        "job_run_median_s": pct([e - s for s, e in times.values() if e is not None], 50),
    }


def stage_figures(times: dict, noticed: dict[str, float], launched: dict[str, float],
                  slots: int) -> dict:
    """Where a dispatch delay goes: job end → the tool notices it (``notice``);
    notice → the tool launches the next job (``plan``, order statistics as for the
    delay); launch → the job's first line runs (``launch``, later waves only)."""
    first_wave = set(sorted(times, key=lambda i: times[i][0])[:slots])
    notice = [noticed[i] - e for i, (_, e) in times.items() if i in noticed and e is not None]
    launch = [s - launched[i] for i, (s, _) in times.items()
              if i in launched and i not in first_wave]
    seen, went = sorted(noticed.values()), sorted(launched.values())
    plan = [went[k] - seen[k - slots] for k in range(slots, len(went)) if k - slots < len(seen)]
    return {f"{name}_{q}_s": pct(values, p) for name, values in
            (("notice", notice), ("plan", plan), ("launch", launch))
            for q, p in (("median", 50), ("p95", 95))}


# --------------------------------------------------------- the orchestrator
def child_env(ray_tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(RAY_TMPDIR=ray_tmp, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0", ORCH_RAY_KEEP_ALIVE="0")   # a Ray per run
    return env


class RssPoller(threading.Thread):
    """Peak RSS of one process every 0.1 s, and of its whole tree (Ray's processes,
    workers and jobs included) every 1 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = self.tree_peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.halt.wait(0.1):
            try:
                rss = self.proc.memory_info().rss
                self.peak = max(self.peak, rss)
                if tick % 10 == 0:
                    for child in self.proc.children(recursive=True):
                        try:
                            rss += child.memory_info().rss
                        except psutil.Error:
                            pass
                    self.tree_peak = max(self.tree_peak, rss)
            except psutil.Error:
                return
            tick += 1


def stop_driver(proc: subprocess.Popen) -> None:
    """SIGTERM (the driver stops its jobs and shuts Ray down), again, then SIGKILL; then
    kill by pid whatever the driver had started and left behind."""
    if proc.poll() is not None:
        return
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    for wait in (30, 15):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            pass
    else:
        proc.kill()
        proc.wait()
    for child in tree:
        try:
            child.kill()
        except psutil.Error:
            pass


def run_orchestrator(args, work: Path) -> dict:
    qdir = work / "orch"
    qdir.mkdir(exist_ok=True)
    out, ids = qdir / "out", job_ids(args.jobs)
    queue = write_queue(qdir / "queue.csv", out, ids, args.sleep)
    ini = qdir / "bench.ini"
    ini.write_text("[ray]\ndashboard = false\nnum_cpus = 2\n", encoding="utf-8")
    ray_tmp = tempfile.mkdtemp(prefix="bench-rt-", dir="/tmp")
    cmd = [sys.executable, "-m", "orchestrator.run", str(queue), "--config", str(ini),
           "--num-gpus", str(args.slots), "--no_ui"]
    lines: list[tuple[float, str]] = []
    log = open(work / "driver.log", "w", encoding="utf-8")
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(ray_tmp), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            bufsize=1, start_new_session=True)

    def read():
        for line in proc.stdout:
            lines.append((time.time(), line.rstrip("\n")))
            log.write(f"{lines[-1][0]:.3f} {line}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rss = RssPoller(proc.pid)
    rss.start()
    timeout = 120 + 4 * math.ceil(args.jobs / args.slots) * args.sleep + 0.2 * args.jobs
    timed_out = False
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        code = None
    finally:
        if proc.poll() is None:
            stop_driver(proc)
        rss.halt.set()
        rss.join()
        reader.join(10)
        log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    t_exit = time.time()

    times = read_times(out, ids)
    res = figures(times, args.jobs, args.slots, args.sleep)
    noticed, launched, ray_ready = {}, {}, None
    for ts, line in lines:
        m = _PROGRESS.match(line)
        if m and m.group(3) == "Queued":
            launched.setdefault(m.group(1), ts)
        elif m and m.group(3) == "Done":
            noticed.setdefault(m.group(1), ts)
        elif ray_ready is None and re.search(r"Ray (started here|cluster) with", line):
            ray_ready = ts
    res.update(stage_figures(times, noticed, launched, args.slots))
    last_end = max((e for _, e in times.values() if e is not None), default=None)
    res.update({
        "exit_code": code, "timed_out": timed_out, "statuses": statuses(queue),
        "startup_s": res["first_start"] - t0 if res["first_start"] else None,
        "ray_ready_s": ray_ready - t0 if ray_ready else None,
        "shutdown_s": t_exit - last_end if last_end else None,
        "driver_wall_s": t_exit - t0,
        "peak_rss_mib": rss.peak / 2**20, "peak_tree_rss_mib": rss.tree_peak / 2**20,
        "driver_log_tail": [line for _, line in lines[-5:]] if code else [],
    })
    return res


# ------------------------------------------------------ the seed tool's loop
def run_old_loop(args, work: Path) -> dict:
    """The seed's loop, scaled down: every ``interval`` s re-read the CSV, reap finished
    processes (noticed only at a poll), start pending rows up to max_training_process
    with ``shell=True`` and CUDA_VISIBLE_DEVICES from processN = len(running), rewrite
    the CSV, sleep."""
    qdir = work / "old"
    qdir.mkdir()
    out, ids = qdir / "out", job_ids(args.jobs)
    queue = write_queue(qdir / "queue.csv", out, ids, args.sleep)
    gpu_map = {f"process{i}": str(i) for i in range(args.slots)}
    procs: dict[str, subprocess.Popen] = {}
    noticed, launched = {}, {}
    t0 = time.time()
    try:
        while True:
            with open(queue, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header, rows = reader.fieldnames, list(reader)
            by_id = {r["ID"]: r for r in rows}
            for job_id, p in list(procs.items()):
                if p.poll() is not None:
                    by_id[job_id]["TrainingCheck"] = "Done" if p.returncode == 0 else "Crash"
                    noticed[job_id] = time.time()
                    del procs[job_id]
            for row in rows:
                if len(procs) >= args.slots:
                    break
                if row["TrainingCheck"].strip():
                    continue
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu_map[f"process{len(procs)}"])
                procs[row["ID"]] = subprocess.Popen(row["TrainingCommand"], shell=True, env=env,
                                                    start_new_session=True)
                launched[row["ID"]] = time.time()
                row["TrainingCheck"] = "Training"
            with open(queue, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(rows)
            if not procs and not any(not r["TrainingCheck"].strip() for r in rows):
                break
            time.sleep(args.interval)
    finally:
        for p in procs.values():   # only on an error: kill what we started
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    times = read_times(out, ids)
    res = figures(times, args.jobs, args.slots, args.sleep)
    res.update(stage_figures(times, noticed, launched, args.slots))
    res.update({"statuses": statuses(queue), "interval_s": args.interval,
                "startup_s": res["first_start"] - t0 if res["first_start"] else None,
                "peak_rss_mib": None})
    return res


# ---------------------------------------------------------------- the peers
def _installed(program: str, label: str) -> str | None:
    path = shutil.which(program)
    if path is None:
        print(f"  {label} is not installed: skipped (make bench installs it)")
    return path


def _peer_dirs(args, work: Path, name: str) -> tuple[Path, Path, list[str]]:
    """A peer's folder, the folder its jobs stamp their times in, and the job ids."""
    qdir = work / name
    (qdir / "out").mkdir(parents=True)
    return qdir, qdir / "out", job_ids(args.jobs)


def run_task_spooler(args, work: Path) -> dict | None:
    """task-spooler with its own socket and ``-S slots``: each job queued with ``tsp``."""
    tsp = _installed("tsp", "task-spooler (tsp)")
    if tsp is None:
        return None
    qdir, out, ids = _peer_dirs(args, work, "tsp")
    env = dict(os.environ, TS_SOCKET=str(qdir / "socket"), TS_SAVELIST="",
               TS_MAXFINISHED="100000", TS_ONFINISH="", TMPDIR=str(qdir))
    try:
        subprocess.run([tsp, "-S", str(args.slots)], env=env, check=True)
        t0 = time.time()
        for job_id in ids:
            subprocess.run([tsp, "bash", "-c", job_command(out, job_id, args.sleep)], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        subprocess.run([tsp, "-w"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len([t for t in read_times(out, ids).values() if t[1] is not None]) < len(ids) \
                and time.time() - t0 < 60 + 4 * args.jobs * args.sleep:
            time.sleep(0.1)   # tsp -w waits for the last job queued, not every one
    finally:
        subprocess.run([tsp, "-K"], env=env, stderr=subprocess.DEVNULL)
    return _peer_figures(args, out, ids, t0)


def run_gnu_parallel(args, work: Path) -> dict | None:
    """GNU parallel ``-j slots`` over the job commands (no queue file, no retries)."""
    parallel = _installed("parallel", "GNU parallel")
    if parallel is None:
        return None
    qdir, out, ids = _peer_dirs(args, work, "parallel")
    commands = "\n".join(job_command(out, i, args.sleep) for i in ids) + "\n"
    t0 = time.time()
    subprocess.run([parallel, "--will-cite", "-j", str(args.slots)], input=commands, text=True,
                   check=True, env=dict(os.environ, HOME=str(qdir)))
    return _peer_figures(args, out, ids, t0)


_RAY_PEER = """
import subprocess, sys, time, ray
slots, commands = int(sys.argv[1]), open(sys.argv[2]).read().splitlines()
ray.init(address="local", num_cpus=2, num_gpus=slots, include_dashboard=False,
         log_to_driver=False)

@ray.remote(num_gpus=1, num_cpus=0)   # as our runners: a slot is a GPU, not a CPU
class Worker:
    def run(self, command):
        return subprocess.run(command, shell=True).returncode

workers = [Worker.remote() for _ in range(slots)]
ray.get([w.run.remote("true") for w in workers])   # warm: started before the clock
print("ready", time.time(), flush=True)
free, pending, todo = list(workers), {}, list(commands)
while todo or pending:
    while free and todo:
        w = free.pop()
        pending[w.run.remote(todo.pop(0))] = w
    done, _ = ray.wait(list(pending), num_returns=1)
    for ref in done:
        free.append(pending.pop(ref))
ray.shutdown()
"""


def run_plain_ray(args, work: Path) -> dict:
    """A plain Ray script: one warm actor per slot, each job a subprocess, ``ray.wait``
    for the next free actor — what Ray itself costs, with no queue file or record."""
    qdir, out, ids = _peer_dirs(args, work, "ray")
    (qdir / "commands").write_text("\n".join(job_command(out, i, args.sleep) for i in ids))
    (qdir / "peer.py").write_text(_RAY_PEER)
    ray_tmp = tempfile.mkdtemp(prefix="bench-rt-", dir="/tmp")
    t0 = time.time()
    try:
        subprocess.run([sys.executable, str(qdir / "peer.py"), str(args.slots),
                        str(qdir / "commands")], env=child_env(ray_tmp), check=True,
                       stdout=subprocess.DEVNULL, timeout=60 + 2 * args.jobs * args.sleep)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return _peer_figures(args, out, ids, t0)


def _peer_figures(args, out: Path, ids: list[str], t0: float) -> dict:
    times = read_times(out, ids)
    res = figures(times, args.jobs, args.slots, args.sleep)
    res.update(stage_figures(times, {}, {}, args.slots))
    res.update({"statuses": {"ended": res["jobs_ended"]},
                "startup_s": res["first_start"] - t0 if res["first_start"] else None,
                "peak_rss_mib": None})
    return res


# ------------------------------------------------------------------- report
def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(results: dict[str, dict], args) -> None:
    cols = [("tool", "<12", None), ("jobs", ">5", "d"), ("startup_s", ">9", ".2f"),
            ("makespan_s", ">10", ".2f"), ("ideal_s", ">7", ".2f"), ("ratio", ">6", ".3f"),
            ("delay_med_s", ">11", ".3f"), ("delay_p95_s", ">11", ".3f"),
            ("delay_max_s", ">11", ".3f"), ("jobs/s", ">7", ".1f"), ("peak_rss_MiB", ">12", ".1f")]
    keys = ["jobs_ended", "startup_s", "makespan_s", "ideal_s", "ratio", "delay_median_s",
            "delay_p95_s", "delay_max_s", "jobs_per_s", "peak_rss_mib"]
    print("  ".join(format(name, align) for name, align, _ in cols))
    for tool, res in results.items():
        cells = [format(tool, cols[0][1])]
        cells += [format(fmt(res.get(k), spec), align)
                  for k, (_, align, spec) in zip(keys, cols[1:], strict=True)]
        print("  ".join(cells))
    ours = results.get("orchestrator", {})
    for tool, res in results.items():
        if tool == "orchestrator":
            continue
        ratios = [f"{label} {ours[k] / res[k]:.1f}x" for label, k in
                  (("delay median", "delay_median_s"), ("makespan", "makespan_s"),
                   ("jobs/s", "jobs_per_s"))
                  if ours.get(k) and res.get(k)]
        print(f"  orchestrator / {tool}: {', '.join(ratios) or '-'}")
    print(f"targets: median delay <= {TARGET_DELAY_S} s, makespan <= {TARGET_RATIO} x ideal "
          f"(ideal = ceil({args.jobs}/{args.slots}) x {args.sleep:g} s)")
    for tool, res in results.items():
        med, ratio = res.get("delay_median_s"), res.get("ratio")
        ok_d = med is not None and med <= TARGET_DELAY_S
        ok_r = ratio is not None and ratio <= TARGET_RATIO
        verdict = "n/a" if ratio is None else "PASS" if ok_r else "MISS"
        print(f"  {tool:<12} median delay {fmt(med, '.3f')} s {'PASS' if ok_d else 'MISS'}; "
              f"makespan {fmt(ratio, '.3f')} x ideal {verdict}")
    print("detail (seconds; notice = job end -> tool sees it, plan = seen -> next launch, "
          "launch = launch -> job runs):")
    for tool, res in results.items():
        extra = (f" ray_ready {fmt(res.get('ray_ready_s'), '.2f')}"
                 f" shutdown {fmt(res.get('shutdown_s'), '.2f')}"
                 f" tree_rss_MiB {fmt(res.get('peak_tree_rss_mib'), '.0f')}"
                 f" exit {res.get('exit_code')}" if "exit_code" in res else "")
        print(f"  {tool:<12} first_wave_spread {fmt(res['first_wave_spread_s'], '.2f')}"
              f" notice {fmt(res['notice_median_s'], '.3f')}/{fmt(res['notice_p95_s'], '.3f')}"
              f" plan {fmt(res['plan_median_s'], '.3f')}/{fmt(res['plan_p95_s'], '.3f')}"
              f" launch {fmt(res['launch_median_s'], '.3f')}/{fmt(res['launch_p95_s'], '.3f')}"
              f" (median/p95) max_concurrent {res['max_concurrent']}{extra}")
        print(f"  {'':<12} statuses {res['statuses']}")
        for line in res.get("driver_log_tail", []):
            print(f"  {'':<12} driver: {line}")


def make_repo(folder: Path, files: int) -> None:
    """``folder`` as a git work tree of ``files`` committed modules, one of them edited."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    for i in range(files):
        path = folder / f"pkg{i % 30}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * 40)
    (folder / ".gitignore").write_text("runs/\nout/\n*.log\n")
    for git_args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-C", str(folder), *git_args], check=True, env=env)
    (folder / "pkg0" / "mod0.py").write_text("edited\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--sleep", type=float, default=1.0, help="seconds each job sleeps")
    p.add_argument("--interval", type=float, default=1.0,
                   help="the old loop's check_interval (the seed's 30 s, scaled down)")
    p.add_argument("--skip-old", action="store_true", help="skip the old loop")
    p.add_argument("--skip-peers", action="store_true",
                   help="skip task-spooler, GNU parallel and the plain Ray script")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (queues, logs)")
    p.add_argument("--repo-files", type=int, default=0, metavar="N",
                   help="make the queue's folder a git repository of N committed .py files "
                   "(as a user's usually is: each start's code is then scanned, mode = record)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    if args.repo_files:
        make_repo(work / "orch", args.repo_files)
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    try:
        print(f"orchestrator: {args.jobs} jobs x {args.sleep:g} s on {args.slots} slots ...",
              flush=True)
        results["orchestrator"] = run_orchestrator(args, work)
        if not args.skip_peers:
            for name, run in (("task-spooler", run_task_spooler),
                              ("GNU parallel", run_gnu_parallel), ("plain Ray", run_plain_ray)):
                print(f"{name} ...", flush=True)
                res = run(args, work)
                if res is not None:
                    results[name] = res
        if not args.skip_old:
            print(f"old loop (check_interval {args.interval:g} s) ...", flush=True)
            results["old loop"] = run_old_loop(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = {"args": vars(args), "cpus": os.cpu_count(), "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "targets": {"delay_median_s": TARGET_DELAY_S, "ratio": TARGET_RATIO},
            "results": results}
    RESULTS.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
