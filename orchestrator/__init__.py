"""Run a CSV queue of training jobs on Ray.

Jobs call ``orchestrator.report(**metrics)`` to report metrics; everything else
is the command line (``python -m orchestrator.run queue.csv``).
"""

from orchestrator.api import report

__all__ = ["report"]
__version__ = "0.1.0"
