"""Queue metrics exported through ``ray.util.metrics``, beside Ray's own.

They reach Prometheus/Grafana the way Ray's metrics do (the metrics agent on each
node): ``orchestrator_rows{queue, status}`` (a gauge per status: Pending, Hold,
Queued, Training, Done, Crash…) and ``orchestrator_gpu_seconds_total{queue}``
(GPU-seconds used by finished attempts). An observer: it never decides state. Rows
first seen count too (a driver starting on a queue with rows Done already).
"""

from __future__ import annotations

from collections import Counter

from orchestrator.core import RowStatus, StatusChanged

__all__ = ["QueueMetrics"]


class QueueMetrics:
    """Observer keeping the row counts per status and the GPU-seconds used."""

    def __init__(self, queue: str):
        from ray.util import metrics

        self.queue = queue
        self._rows = metrics.Gauge("orchestrator_rows", "queue rows per status",
                                   tag_keys=("queue", "status"))
        self._gpu_seconds = metrics.Counter("orchestrator_gpu_seconds_total",
                                            "GPU-seconds used by finished attempts",
                                            tag_keys=("queue",))
        self.counts: Counter = Counter()
        self.gpu_seconds = 0.0
        self._status: dict[str, RowStatus] = {}
        self._told = False   # every gauge set once (a status no row has reads 0)

    def __call__(self, change: StatusChanged) -> None:
        """Counted as it changes (not recounted over the queue: a change costs the
        same at 10,000 rows as at 10); only the two gauges that moved are set."""
        before = self._status.get(change.job_id)
        self._status[change.job_id] = change.new
        moved = [change.new] if before is None else [before, change.new]
        if before is not None:
            self.counts[before.label] -= 1
            if not self.counts[before.label]:
                del self.counts[before.label]
        self.counts[change.new.label] += 1
        for status in moved if self._told else RowStatus:
            self._rows.set(self.counts.get(status.label, 0), tags={"queue": self.queue,
                                                                   "status": status.label})
        self._told = True
        report = change.report
        if change.old is RowStatus.TRAINING and report is not None and report.started \
                and report.ended:
            used = (change.gpus_asked or 0.0) * max(0.0, report.ended - report.started)
            if used:
                self.gpu_seconds += used
                self._gpu_seconds.inc(used, tags={"queue": self.queue})
