"""Reading a built-in kind's YAML (one mapping, or a ``ConfigError`` that says why), and
importing the ``module:name`` targets it names (entry points, callbacks)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import yaml

from trainers.errors import ConfigError

__all__ = ["read_mapping", "import_target", "TargetError"]


def read_mapping(path: Path, *, example: str, named_by: Path | None = None) -> dict:
    """The YAML mapping in ``path`` ({} for an empty file). ``example``: the file to point
    at when the shape is wrong; ``named_by``: the file whose ``base:`` named this one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(named_by or path, problem=f"cannot read {path}: {e.strerror or e}",
                          key="base" if named_by else "",
                          fix="check the path (relative paths start at the folder of the file "
                          "that names them)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path, problem=f"not valid YAML{line}: {getattr(e, 'problem', None) or e}",
                          fix="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, problem="the file must be a mapping of key: value",
                          value=type(data).__name__, fix=f"see {example}")
    return data


class TargetError(ImportError):
    """A config's ``module:name`` cannot be imported; says which, and the sys.path used."""


def import_target(target: str, python_path=()):
    """``"module:name"`` → the object, with the folders of ``python_path`` first on
    ``sys.path`` (they stay there: the workers that import it keep running it)."""
    for folder in reversed([str(f) for f in python_path]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module itself failing (SyntaxError...)
        raise TargetError(f"cannot import {module_name!r} for {target!r} "
                          f"({type(e).__name__}: {e}); sys.path used: {sys.path}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TargetError(f"{module.__file__} has no {attr!r} (for {target!r})") from None
