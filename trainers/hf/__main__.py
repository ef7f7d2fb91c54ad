"""``python -m trainers.hf``: the job a ``Kind=hf`` row runs, and two helpers.

    python -m trainers.hf CONFIG [--storage DIR] [--name NAME] [--workers N]
        [--gpus-per-worker G] [--cpus-per-worker C] [--address ADDR] [--max-failures N]
        [--pretrained_path P] [--in-process] [--key=value ...]
    python -m trainers.hf make-tiny OUT_DIR --data train.csv [--arch bart|t5] [--vocab 400]
    python -m trainers.hf make-data DIR [--n 32]

Offline mode is turned on before transformers is imported (unless the user set
``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``), so a job never waits on the network.
A failure ends with one ``error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import traceback
from pathlib import Path

from orchestrator.infra.storage import is_uri, local_copy
from trainers.errors import ConfigError
from trainers.forked import add_launcher_option, fits
from trainers.hf.runtime import set_offline

__all__ = ["main"]


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainers.hf", allow_abbrev=False,
        description="Fine-tune a seq2seq summarizer from a YAML config (on Ray Train by default)."
                    " Any other --section.key=value (or --key=value) overrides the config.")
    p.add_argument("config", help="the experiment YAML")
    p.add_argument("--storage", help="runs folder (default: $ORCH_RUN_DIR or runs/ beside the "
                   "YAML); checkpoints go to STORAGE/NAME/hf. A URI (s3://…) keeps Ray Train's "
                   "run there and the best model comes back into $ORCH_RUN_DIR/best_model")
    p.add_argument("--name", help="run name (default: experiment.name or the YAML's name, "
                   "plus a digest of the --key=value overrides when there are any)")
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--address", default="", help="Ray cluster to join (default: RAY_ADDRESS "
                   "or a local Ray)")
    p.add_argument("--max-failures", type=int, help="worker-group restarts within this run "
                   "(default: training.max_failures)")
    p.add_argument("--pretrained_path", help="start from this saved model (a parent row's "
                   "best_model) instead of model.checkpoint")
    p.add_argument("--in-process", action="store_true",
                   help="no Ray: train in this process (sweep trials, debugging)")
    add_launcher_option(p)
    return p


def _train(argv: list[str]) -> int:
    from trainers.hf.config import load
    from trainers.hf.data import check_data
    from trainers.hf.runtime import resolve_checkpoint

    args, overrides = _train_parser().parse_known_args(argv)
    cfg = load(args.config, overrides)
    pretrained = args.pretrained_path
    checkpoint = resolve_checkpoint(cfg, local_copy(pretrained) if pretrained else None)
    if is_uri(pretrained):
        checkpoint = pretrained   # checked here; every worker fetches it on its own node
    check_data(cfg)  # a wrong path or column fails before any worker starts
    local_root = Path(os.environ.get("ORCH_RUN_DIR") or Path(cfg.folder) / "runs")
    remote = is_uri(args.storage)   # Ray Train's run in object storage, the Trainer's on disk
    storage = args.storage if remote else Path(args.storage or local_root).expanduser().resolve()
    name = args.name or _default_name(cfg, overrides)
    from trainers.hf.runtime import load_callbacks
    from trainers.hf.train import BEST_DIR, Job, train

    load_callbacks(cfg)  # importable here, before Ray starts
    job = Job(cfg, str((local_root.expanduser().resolve() if remote else storage) / name / "hf"),
              checkpoint, report_weights=not remote or args.in_process)
    if args.in_process:
        train(job)
        return 0
    if args.workers < 1 or args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
        raise ConfigError("command line", problem="need --workers >= 1, --gpus-per-worker >= 0 and "
                          "--cpus-per-worker > 0", fix="fix the row's Workers/GPUs/CPUs")
    if args.launcher == "torch":
        from trainers.hf.forked import run_forked

        if remote or not fits(args.gpus_per_worker, storage):
            raise ConfigError("command line", problem="--launcher torch runs whole GPUs per "
                              "worker with a storage folder on this machine",
                              fix="use --launcher ray")
        metrics, best = run_forked(job, folder=storage / name, workers=args.workers,
                                   gpus=args.gpus_per_worker,
                                   max_failures=cfg.training.max_failures
                                   if args.max_failures is None else args.max_failures)
        print(f"[hf] done ({args.workers} forked workers); best model in {best}; "
              f"last metrics {metrics}", flush=True)
        return 0
    from trainers.hf.driver import run_on_ray

    metrics, best = run_on_ray(job, storage=storage, name=name, workers=args.workers,
                               gpus=args.gpus_per_worker, cpus=args.cpus_per_worker,
                               address=args.address,
                               max_failures=cfg.training.max_failures if args.max_failures is None
                               else args.max_failures,
                               best_to=local_root / BEST_DIR if remote else None)
    print(f"[hf] done on Ray Train ({args.workers} workers); best model in {best}; "
          f"last metrics {metrics}", flush=True)
    return 0


def _default_name(cfg, overrides: list[str]) -> str:
    """``experiment.name``, plus a digest of the overrides: W&B sweep runs started in one
    folder get one output dir per parameter set (a rerun of the same set resumes it)."""
    if not overrides:
        return cfg.run_name
    return f"{cfg.run_name}-{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:8]}"


def _make_tiny(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m trainers.hf make-tiny",
                                description="Save a tiny random seq2seq model and a tokenizer "
                                            "trained on DATA's text (no downloads).")
    p.add_argument("out_dir")
    p.add_argument("--data", required=True, help="a CSV with dialogue and summary columns")
    p.add_argument("--arch", choices=("bart", "t5"), default="bart")
    p.add_argument("--vocab", type=int, default=400)
    args = p.parse_args(argv)
    from trainers.hf.tiny import make_tiny

    print(make_tiny(args.out_dir, args.data, args.arch, args.vocab))
    return 0


def _make_data(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m trainers.hf make-data",
                                description="Write synthetic train.csv/dev.csv dialogue pairs.")
    p.add_argument("dir")
    p.add_argument("--n", type=int, default=32, help="training pairs (dev gets n/4)")
    args = p.parse_args(argv)
    from trainers.hf.tiny import make_data

    for path in make_data(args.dir, args.n):
        print(path)
    return 0


TOOLS = {"make-tiny": _make_tiny, "make-data": _make_data}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    set_offline()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv and argv[0] in TOOLS:
            return TOOLS[argv[0]](argv[1:])
        return _train(argv)
    except ConfigError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the job's contract: one error line, exit 1
        traceback.print_exc()
        print(f"error: training failed: {_root_cause(e)} (the traceback is above)",
              file=sys.stderr)
    return 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _root_cause(e: BaseException) -> str:
    """A Ray Train failure wraps the worker's traceback: its last line is the cause."""
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else type(e).__name__
    return last if ":" in last else f"{type(e).__name__}: {last}"


if __name__ == "__main__":
    sys.exit(main())
