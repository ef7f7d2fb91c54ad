"""How a Ray Train kind's job (``ddp``, ``hf``) joins the cluster.

The job runs in the row's runner, which holds no resources; it connects to the queue's
Ray (``--address``; ``""`` starts a local one), and its ``TorchTrainer`` asks for the
workers. Ray Train's controller and workers are new Ray processes: they get the job's
own settings (threads, W&B, HF offline, the orchestrator's metrics file) through the
job's ``runtime_env`` — never its secrets (API keys, tokens: the dashboard shows a
runtime_env) — and their output comes back into the job's log.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping

__all__ = ["job_env", "join_ray", "ENV_PREFIXES", "ENV_NAMES", "HEALTH_CHECK_INTERVAL_S"]

#: Variables the trainer's controller and workers should see (the job's values).
ENV_PREFIXES = ("RAY_TRAIN_", "WANDB_", "ORCH_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
ENV_NAMES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH")
#: A worker's ``ray.train.report`` waits until the controller has collected the previous
#: one (a queue of 1), and the controller collects every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S
#: (Ray's default 2 s): shorter epochs would wait (measured: 0.23× the plain speed). Ours
#: unless the job sets it.
HEALTH_CHECK_INTERVAL_S = "0.5"


#: Never passed on: a job's ``runtime_env`` is stored by Ray and shown in its dashboard and
#: ``ray list jobs --detail``. Workers get such values from their node's environment (or
#: ``wandb login``/``huggingface-cli login`` there), as a process Ray starts always does.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.IGNORECASE)


def job_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables passed on to Ray Train's controller and workers (no secrets)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if (k.startswith(ENV_PREFIXES) or k in ENV_NAMES) and not SECRET_NAME.search(k)}


def join_ray(address: str) -> bool:
    """Connect to ``address`` (``""``: RAY_ADDRESS, else start a local Ray); True when this
    process started Ray itself (then it cannot grow: nothing can join it).

    When the job has a metrics file, its workers report through a metrics sink on this
    node (``orchestrator.api.report`` sees ``$ORCH_METRICS_SINK``): a worker on
    another node has no such file, and its lines would be lost (or its write would fail)."""
    from orchestrator.api import METRICS_FILE_ENV, METRICS_SINK_ENV
    from orchestrator.infra.raycluster import connect

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", HEALTH_CHECK_INTERVAL_S)
    metrics = os.environ.get(METRICS_FILE_ENV)
    sink = f"orch-metrics-{uuid.uuid4().hex[:12]}" if metrics else None
    env = job_env()
    if sink:   # the workers' environment only: this process writes its own lines itself
        env[METRICS_SINK_ENV] = sink
    started = connect(address or None, runtime_env={"env_vars": env}, log_to_driver=True)
    if sink:
        _start_sink(sink, metrics)
    return started


_sink = None   # the handle keeps the actor alive as long as this job is connected


def _start_sink(name: str, path: str) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    global _sink

    @ray.remote(num_cpus=0, max_restarts=0)
    class MetricsSink:
        """Appends the workers' metric lines to the job's file, on the job's node."""

        def __init__(self, file: str):
            self._file = file

        def append(self, text: str) -> None:
            with open(self._file, "a", encoding="utf-8") as out:
                out.write(text)

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    _sink = MetricsSink.options(name=name, scheduling_strategy=here).remote(path)
    ray.get(_sink.__ray_ready__.remote())
