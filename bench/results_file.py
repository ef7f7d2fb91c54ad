"""Where each benchmark keeps its figures: ``bench/results/<name>.json`` (git ignores it)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_results(path: Path, data: dict) -> None:
    """Write ``data`` as JSON at ``path`` and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {path.relative_to(ROOT)}")
