"""Queue metrics exported through ``ray.util.metrics``, beside Ray's own.

They reach Prometheus/Grafana the way Ray's metrics do (the metrics agent on each
node): ``orchestrator_rows{queue, status}`` (a gauge per status: Queued, Training,
Done, Crash…) and ``orchestrator_gpu_seconds_total{queue}`` (GPU-seconds used by
finished attempts). An observer: it never decides state.
"""

from __future__ import annotations

from collections import Counter

from orchestrator.jobs import JobStatus

__all__ = ["QueueMetrics"]


class QueueMetrics:
    """Scheduler observer keeping the row counts per status and the GPU-seconds used."""

    def __init__(self, queue: str, statuses: dict[str, JobStatus] | None = None):
        from ray.util import metrics

        self.queue = queue
        self._rows = metrics.Gauge("orchestrator_rows", "queue rows per status",
                                   tag_keys=("queue", "status"))
        self._gpu_seconds = metrics.Counter("orchestrator_gpu_seconds_total",
                                            "GPU-seconds used by finished attempts",
                                            tag_keys=("queue",))
        self.counts: Counter = Counter()
        self.gpu_seconds = 0.0
        self._status: dict[str, JobStatus] = dict(statuses or {})

    def __call__(self, job, old: JobStatus, new: JobStatus, cells: dict) -> None:
        self._status[job.id] = new
        self.counts = Counter((s.value or "Pending") for s in self._status.values())
        for status in JobStatus:
            label = status.value or "Pending"
            self._rows.set(self.counts.get(label, 0), tags={"queue": self.queue,
                                                            "status": label})
        result = getattr(job, "result", None)
        if old == JobStatus.TRAINING and result is not None and result.started and result.ended:
            gpus = job.spec.gpus if job.spec is not None and job.spec.gpus else 0.0
            used = gpus * max(0.0, result.ended - result.started)
            if used:
                self.gpu_seconds += used
                self._gpu_seconds.inc(used, tags={"queue": self.queue})
