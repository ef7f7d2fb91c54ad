"""The command line: ``orchestrator run|status|stop|logs|tui|report|registry|sweep``."""

from orchestrator.cli.main import drive, main, run_main

__all__ = ["main", "run_main", "drive"]
