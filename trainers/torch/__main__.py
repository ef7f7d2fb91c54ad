"""``python -m trainers.torch CONFIG ...``: what a ``Kind=ddp`` row runs.

    python -m trainers.torch examples/ddp_dummy.yaml --storage DIR --name NAME \\
        --workers 2 --gpus-per-worker 1 --cpus-per-worker 1 --address "" --max-failures 1 \\
        [--pretrained_path PARENT_WEIGHTS]

Joins the cluster at ``--address`` (``""``: a local Ray), runs the config on Ray Train,
then writes the best checkpoint's weights into ``$ORCH_RUN_DIR`` (else
``<storage>/<name>``) and reports them with their metrics. The same ``--storage`` and
``--name`` resume an interrupted run. Exit 0 on success; otherwise one
``error: ...`` line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from orchestrator.api import batch_divisor
from orchestrator.infra.storage import is_uri, join, public
from trainers.errors import ConfigError
from trainers.forked import WorkersFailed, add_launcher_option, fits
from trainers.torch.config import DDPConfig, load

__all__ = ["main", "build_parser"]

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainers.torch",
                                description="Run a Kind=ddp config on Ray Train.")
    p.add_argument("config", help="the row's YAML (see examples/ddp_dummy.yaml)")
    p.add_argument("--storage", default="", help="Ray Train storage: a folder or a URI such "
                   "as s3://bucket/runs (default: runs/ddp next to the YAML)")
    p.add_argument("--name", default="", help="run name; the same name resumes "
                   "(default: the YAML's stem)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--address", default="", help='Ray address to join; "" starts a local Ray')
    p.add_argument("--max-failures", type=int, default=None,
                   help="worker-group restarts (default: the config's max_failures)")
    p.add_argument("--pretrained_path", default=None,
                   help="weights loaded into the model before training (a parent row's)")
    add_launcher_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = None
    try:
        cfg = _check(args)
        return _run(cfg, args)
    except (ConfigError, _Usage) as e:
        _error(str(e))
    except Exception as e:  # the one line the row's log and the orchestrator show
        _error(_explain(e, cfg, args))
    return 1


def _explain(error: Exception, cfg: DDPConfig | None, args) -> str:
    from trainers.torch.ray_run import EntryError, describe_failure

    if isinstance(error, (EntryError, WorkersFailed)):
        return str(error)
    if cfg is not None and "ray.train" in sys.modules:
        from ray.train import TrainingFailedError

        if isinstance(error, TrainingFailedError):
            return describe_failure(error, cfg, _run_location(cfg, args))
    traceback.print_exc()
    return f"{type(error).__name__}: {error} (while running {args.config})"


class _Usage(ValueError):
    pass


def _check(args) -> DDPConfig:
    cfg = load(args.config)
    if batch_divisor() > 1 and "batch_size" in cfg.params:
        print(f"[ddp] an earlier attempt ran out of memory: params.batch_size is now "
              f"{cfg.params['batch_size']} (divided by {batch_divisor()})", flush=True)
    if args.workers < 1:
        raise _Usage(f"--workers {args.workers}: run at least 1 worker")
    if args.gpus_per_worker < 0 or args.cpus_per_worker < 0:
        raise _Usage("--gpus-per-worker and --cpus-per-worker must be >= 0")
    if args.pretrained_path and not is_uri(args.pretrained_path) \
            and not Path(args.pretrained_path).exists():
        raise _Usage(f"--pretrained_path {args.pretrained_path}: no such file or folder — "
                     "give the parent row's WeightFile")
    from trainers.torch.ray_run import entry_kind

    entry_kind(cfg)  # a bad entry fails here, before Ray starts
    return cfg


def _storage(cfg: DDPConfig, args) -> Path | str:
    """Ray Train's storage: a folder, or a URI (``s3://…``) that Ray Train writes through
    pyarrow."""
    if is_uri(args.storage):
        return args.storage
    return Path(args.storage).expanduser().resolve() if args.storage else \
        cfg.folder / "runs" / "ddp"


def _run_location(cfg: DDPConfig, args) -> str:
    storage, name = _storage(cfg, args), _name(cfg, args)
    return public(join(storage, name)) if isinstance(storage, str) else str(storage / name)


def _name(cfg: DDPConfig, args) -> str:
    return args.name or cfg.path.stem


def _run(cfg: DDPConfig, args) -> int:
    from orchestrator.api import report
    from trainers.torch.ray_run import export_weights

    storage, name = _storage(cfg, args), _name(cfg, args)
    local = cfg.folder / "runs" / "ddp" if is_uri(storage) else storage
    run_dir = Path(os.environ.get("ORCH_RUN_DIR") or local / name).resolve()
    metrics = os.environ.get("ORCH_METRICS_FILE")   # the workers work in the YAML's folder
    metrics = str(Path(metrics).resolve()) if metrics else None
    pretrained = args.pretrained_path if is_uri(args.pretrained_path) else \
        str(Path(args.pretrained_path).resolve()) if args.pretrained_path else None
    run = _on_torch if args.launcher == "torch" else _on_ray_train
    result = run(cfg, args, storage, name, pretrained, metrics)
    weights, metrics = export_weights(result, cfg, run_dir)
    final = {k: v for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
    if "epoch" in metrics:
        final["best_epoch"] = metrics["epoch"]
    report(**final, **({"weight_file": str(weights)} if weights else {}))
    print(f"done: {name} best {cfg.metric}={final.get(cfg.metric)} weights={weights}", flush=True)
    return 0


def _on_ray_train(cfg: DDPConfig, args, storage, name: str, pretrained, metrics):
    import ray

    from trainers.ray_job import join_ray
    from trainers.torch.ray_run import fit

    started = join_ray(args.address)   # the workers' output comes back into our log
    try:
        _check_resources(cfg, args, started)
        return fit(cfg, storage=storage, name=name, workers=args.workers,
                   gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                   max_failures=args.max_failures, pretrained_path=pretrained,
                   metrics_file=metrics)
    finally:
        ray.shutdown()


def _on_torch(cfg: DDPConfig, args, storage, name: str, pretrained, metrics):
    from trainers.torch.local_run import fit_local

    if not fits(args.gpus_per_worker, storage):
        raise _Usage("--launcher torch runs whole GPUs per worker (--gpus-per-worker 0, 1, "
                     "2 …) with a storage folder on this machine; use --launcher ray")
    return fit_local(cfg, storage=storage, name=name, workers=args.workers,
                     gpus_per_worker=args.gpus_per_worker, max_failures=args.max_failures,
                     pretrained_path=pretrained, metrics_file=metrics)


def _check_resources(cfg: DDPConfig, args, local: bool) -> None:
    """A Ray this process started cannot grow: fail now rather than after Ray Train's
    start-up retries. A cluster may autoscale: only warn."""
    import ray

    total = ray.cluster_resources()
    want = {"CPU": args.workers * args.cpus_per_worker, "GPU": args.workers * args.gpus_per_worker}
    short = [f"{v:g} {k} (the cluster has {total.get(k, 0):g})" for k, v in want.items()
             if v > total.get(k, 0)]
    if not short:
        return
    asked = f"{args.workers} worker(s) need {', '.join(short)}"
    if local:
        raise _Usage(f"{asked} on the local Ray this job started — join a cluster "
                     "(--address) or ask for fewer (--workers, --gpus-per-worker)")
    limit = cfg.controller_failure_limit
    wait = "without end" if limit < 0 else f"about {(limit + 1) * 60} s"
    print(f"warning: {asked}; Ray Train waits for them ({wait}: controller_failure_limit) "
          "before it fails", file=sys.stderr, flush=True)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
