"""The error a built-in kind's config file raises when it cannot run."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A kind's YAML config is wrong: says the file, the key, the value and the fix."""

    def __init__(self, path: str | Path | None, problem: str, *, key: str = "",
                 value: object = None, fix: str = ""):
        self.path, self.problem, self.key, self.value, self.fix = path, problem, key, value, fix
        where = str(path) if path else "config"
        if key:
            where += f": {key}"
        shown = f" = {value!r}" if value is not None else ""
        super().__init__(f"{where}{shown}: {problem}" + (f" — {fix}" if fix else ""))
