"""``python -m orchestrator.run queue.csv [--config manager.ini]``: run a queue."""

import sys

from orchestrator.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main())
