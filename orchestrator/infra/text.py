"""Text from a user's file, made safe to show in a terminal."""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab, DEL, and C1 controls: ESC sequences that clear the screen, set the
# window title or move the cursor, a bell, a carriage return that overwrites the line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN`` (literally, never run)."""
    text = "" if text is None else str(text)
    if text.isprintable():   # most cells: no control character (each one is unprintable)
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
