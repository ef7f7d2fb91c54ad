"""Write docs/settings.md: every setting of the config file, read off ``Config``'s fields
(section, key, type, default, meaning), so the reference cannot drift from the code.

    python tools/settings_reference.py          # rewrite docs/settings.md
    python tools/settings_reference.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.core.spec import cell_columns
from orchestrator.kinds import KINDS
from orchestrator.store.config import SETTINGS

TARGET = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
TYPES = {str: "text", int: "whole number", float: "number", bool: "true/false"}


def render() -> str:
    lines = ["# Settings", "",
             "Every key of the config file (`--config manager.ini`, or the same sections in "
             "YAML), generated from the code by `python tools/settings_reference.py`. "
             "`orchestrator run --create_config FILE` writes them all at their defaults. "
             "Booleans take true/false, yes/no, on/off, 1/0; numbers may be written `1e-3` "
             "or `2.0`.", ""]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"## [{section}]", "", "| key | type | default | meaning |",
                      "|---|---|---|---|"]
        default = str(s.default).lower() if isinstance(s.default, bool) else s.default
        shown = f"`{default}`" if default != "" else "(empty)"
        meaning = s.help.replace("|", "\\|").replace("<", "&lt;")
        lines.append(f"| `{s.key}` | {TYPES[s.type]} | {shown} | {meaning} |")
    lines += ["", "## Queue columns", "",
              "The cells of a row the orchestrator reads, generated from the model that "
              "parses them; an empty cell is the default. `TrainingCommand` is kept byte "
              "for byte; the columns it writes (`TrainingCheck`, `WeightFile`, `Error`, …) "
              "are in the README.", "", "| column | written as | default | meaning |",
              "|---|---|---|---|"]
    for column, written, default, meaning in cell_columns():
        if column == "Kind":   # the kinds are plugins: the ones installed here
            written = ", ".join(KINDS)
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{column}` | {_escape(written)} | {shown} | {_escape(meaning)} |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python tools/settings_reference.py")
            sys.exit(1)
        sys.exit(0)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} ({len(SETTINGS)} settings)")
