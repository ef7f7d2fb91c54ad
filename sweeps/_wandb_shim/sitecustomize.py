"""Copies every ``wandb.log`` of a sweep trial into ``$ORCH_METRICS_FILE`` as a JSON line,
and makes ``wandb.sweep`` / ``wandb.agent(id, function=train)`` run ``train`` once: a
program written for W&B's agent runs as one trial unchanged.

Put this folder first on ``PYTHONPATH``: Python imports ``sitecustomize`` at
start-up. When ``ORCH_METRICS_FILE`` is set it installs a ``sys.meta_path``
finder that waits for ``wandb`` to be imported and then wraps
``wandb.sdk.wandb_run.Run.log`` (``wandb.log`` becomes a bound ``Run.log`` at
``wandb.init``). A program that never imports wandb pays only for the finder.
A ``sitecustomize`` found further along ``sys.path`` still runs afterwards.
"""

import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _numbers(data, step):
    line = {}
    for key, value in (data or {}).items():
        if hasattr(value, "item") and not isinstance(value, (int, float)):
            try:
                value = value.item()
            except Exception:
                continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        line[str(key)] = value
    if step is not None and "step" not in line:
        line["step"] = step
    return line


def _agent(sweep_id=None, function=None, entity=None, project=None, count=None, **_):
    """``wandb.agent`` inside a trial: the trial *is* the agent's one run, so it calls
    ``function`` once (its ``wandb.init`` reads the trial's parameters)."""
    if function is None:
        print("[orchestrator] wandb.agent without function= inside a sweep trial: nothing "
              "to run (the trial already runs the sweep's program)", file=sys.stderr)
        return None
    return function()


def _sweep(sweep=None, entity=None, project=None, prior_runs=None, **_):
    """``wandb.sweep`` inside a trial: the sweep exists already (it is on Ray Tune)."""
    return os.environ.get("ORCH_SWEEP_ID") or "orchestrator-sweep"


def _patch(path):
    wandb = sys.modules.get("wandb")
    if wandb is not None and not getattr(getattr(wandb, "agent", None), "_orch", False):
        _agent._orch = _sweep._orch = True
        wandb.agent, wandb.sweep = _agent, _sweep
    try:
        from wandb.sdk.wandb_run import Run
    except Exception:
        return
    original = Run.log
    if getattr(original, "_orch_wrapped", False):
        return

    def log(self, data, step=None, commit=None, *args, **kwargs):
        try:
            line = _numbers(data, step)
            if line:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")
        except Exception:
            pass
        return original(self, data, step, commit, *args, **kwargs)

    log._orch_wrapped = True
    log.__doc__ = original.__doc__
    Run.log = log


class _WandbFinder:
    """Finds ``wandb`` with the other finders, and patches it once it has run."""

    def __init__(self, path):
        self.path = path

    def find_spec(self, name, path=None, target=None):
        if name != "wandb":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module
        metrics = self.path

        def exec_and_patch(module):
            exec_module(module)
            _patch(metrics)

        try:
            loader.exec_module = exec_and_patch
        except Exception:
            return spec
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        return spec


def _chain():
    """Run the next ``sitecustomize`` on ``sys.path``, the one this file shadows."""
    import importlib.machinery
    import importlib.util

    others = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if os.environ.get("ORCH_METRICS_FILE") and not any(
        isinstance(f, _WandbFinder) for f in sys.meta_path):
    if "wandb" in sys.modules:
        _patch(os.environ["ORCH_METRICS_FILE"])
    else:
        sys.meta_path.insert(0, _WandbFinder(os.environ["ORCH_METRICS_FILE"]))

try:
    _chain()
except Exception as e:  # a broken sitecustomize elsewhere must not stop the program
    print(f"[orchestrator] sitecustomize chain failed: {e}", file=sys.stderr)
