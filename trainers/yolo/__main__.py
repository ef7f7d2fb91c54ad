"""The job entry point: ``python -m trainers.yolo {train,label,make-data} ...``.

Exit 0 on success. On failure: the traceback (when there is one) for the log, then one
line ``error: <what, where, the fix>`` on stderr, exit 1. A CUDA out-of-memory with
``on_oom: halve_batch`` restarts this same process (``os.execv``, same pid, so the
orchestrator's stop still reaches it) with half the per-GPU batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from trainers.errors import ConfigError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainers.yolo",
                                description="YOLO training and auto-labelling (ultralytics).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a YOLO model from a config YAML")
    t.add_argument("config")
    t.add_argument("--project", required=True, help="this row's run folder (resumes from it)")
    t.add_argument("--pretrained_path", default=None, help="fine-tune from these weights")
    t.add_argument("--batch_per_gpu", type=int, default=None,
                   help="override the config's batch (set by the job itself after an OOM)")
    lab = sub.add_parser("label", help="auto-label a folder of images")
    lab.add_argument("config")
    lab.add_argument("--pretrained_path", default=None, help="weights, when the config has none")
    lab.add_argument("--project", default=None, help="a folder for ultralytics' settings")
    m = sub.add_parser("make-data", help="write a tiny synthetic detection data set")
    m.add_argument("dir")
    m.add_argument("--train", type=int, default=16)
    m.add_argument("--val", type=int, default=8)
    m.add_argument("--imgsz", type=int, default=64)
    m.add_argument("--classes", type=int, default=2)
    m.add_argument("--unlabelled", type=int, default=0, help="also write N unlabelled images")
    m.add_argument("--flat", action="store_true", help="images and labels side by side, no split")
    m.add_argument("--seed", type=int, default=0)
    return p


def _fail(message: str) -> int:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def _train(args) -> int:
    from trainers.yolo import train
    from trainers.yolo.config import load_train
    from trainers.yolo.oom import halved, oom_advice

    cfg = load_train(args.config)
    try:
        train.run(cfg, args.project, args.pretrained_path, args.batch_per_gpu)
    except train.OutOfMemory as e:
        smaller = halved(e.batch, cfg.min_batch) if cfg.on_oom == "halve_batch" else None
        if smaller is None:
            advice = oom_advice(e.batch, e.gpus, min_batch=cfg.min_batch,
                                halving=cfg.on_oom == "halve_batch")
            return _fail(f"CUDA out of memory training {cfg.path} at batch_per_gpu {e.batch} on "
                         f"{e.gpus} GPU(s) — {advice}")
        train.note(f"out of GPU memory at batch_per_gpu {e.batch}: restarting with {smaller}")
        sys.stdout.flush()
        sys.stderr.flush()
        argv = train.retry_argv(args.config, args.project, args.pretrained_path, smaller)
        os.execv(argv[0], argv)
    return 0


def _label(args) -> int:
    from trainers.yolo import label
    from trainers.yolo.config import load_label

    label.run(load_label(args.config), args.pretrained_path, args.project)
    return 0


def _make_data(args) -> int:
    from trainers.yolo.synthetic import make_data

    out = make_data(args.dir, train=args.train, val=args.val, imgsz=args.imgsz,
                    classes=args.classes, unlabelled=args.unlabelled, flat=args.flat,
                    seed=args.seed)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"train": _train, "label": _label, "make-data": _make_data}[args.command]
    try:
        return handler(args)
    except ConfigError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail(f"yolo {args.command} interrupted")
    except Exception as e:
        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        return _fail(f"yolo {args.command} of {getattr(args, 'config', args.command)} failed: "
                     f"{type(e).__name__}: {first} — see the traceback above")


if __name__ == "__main__":
    sys.exit(main())
