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
    process started Ray itself (then it cannot grow: nothing can join it)."""
    from orchestrator.config import load_config
    from orchestrator.session import connect_ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", HEALTH_CHECK_INTERVAL_S)
    return connect_ray(load_config(None, address=address or None).replace(dashboard=False),
                       runtime_env={"env_vars": job_env()}, log_to_driver=True)
