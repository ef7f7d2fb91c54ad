"""Reading a built-in kind's YAML: one mapping, or a ``ConfigError`` that says why."""

from __future__ import annotations

from pathlib import Path

import yaml

from trainers.errors import ConfigError

__all__ = ["read_mapping"]


def read_mapping(path: Path, *, example: str, named_by: Path | None = None) -> dict:
    """The YAML mapping in ``path`` ({} for an empty file). ``example``: the file to point
    at when the shape is wrong; ``named_by``: the file whose ``base:`` named this one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(named_by or path, f"cannot read {path}: {e.strerror or e}",
                          key="base" if named_by else "",
                          fix="check the path (relative paths start at the folder of the file "
                          "that names them)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path, f"not valid YAML{line}: {getattr(e, 'problem', None) or e}",
                          fix="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must be a mapping of key: value",
                          value=type(data).__name__, fix=f"see {example}")
    return data
