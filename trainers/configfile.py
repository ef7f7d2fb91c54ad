"""Reading a built-in kind's YAML (one mapping, or a ``ConfigError`` that says why), and
importing the ``module:name`` targets it names (entry points, callbacks)."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from orchestrator.infra.validation import choices_of, did_you_mean, problem_for, say
from trainers.errors import ConfigError

__all__ = ["read_mapping", "import_target", "TargetError", "key_lines", "located", "say",
           "validated"]

_TEXTS: dict[str, str] = {}   # file -> its text as read_mapping read it (lines on an error)


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
    _TEXTS[str(Path(path).expanduser().resolve())] = text
    return data


def validated(model, raw: dict, path: Path, shown: str = "{}"):
    """``raw`` (a YAML mapping) as ``model`` (a pydantic model); a bad key or value is a
    ``ConfigError`` in the model's own words (``say``): the key dotted, the value, the fix,
    and for an unknown key or word the nearest valid one (written as ``shown`` formats it)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise schema_error(path, model, e.errors()[0], shown) from None


def schema_error(path: Path, model, error: dict, shown: str = "{}") -> ConfigError:
    loc = [str(p) for p in error.get("loc", ()) if isinstance(p, str)]
    owner, info = model, None
    for i, name in enumerate(loc):
        fields = owner.model_fields
        if name not in fields:
            break
        info = fields[name]
        sub = _model_of(info.annotation)
        if sub is not None and i < len(loc) - 1:
            owner = sub
    dotted = ".".join(loc)
    if error.get("type") == "extra_forbidden":
        valid = list(owner.model_fields)
        prefix = ".".join(loc[:-1]) + "." if len(loc) > 1 else ""
        return ConfigError(path, problem="unknown key", key=dotted,
                           fix=did_you_mean(loc[-1], valid, shown.format(prefix + "{}"))
                           + f"valid keys: {', '.join(valid)}")
    words = (info.json_schema_extra if info is not None else None) or {}
    if error.get("type") == "missing":
        return ConfigError(path, problem="is missing", key=dotted, fix=words.get("fix", ""))
    fix = words.get("fix", "")
    if error.get("type") == "literal_error" and info is not None:
        fix = did_you_mean(error.get("input"), choices_of(info.annotation), shown) + fix
    return ConfigError(path, problem=words.get("problem") or problem_for(error),
                       key=dotted, value=error.get("input"), fix=fix)


def _model_of(annotation):
    """The pydantic model a field holds (also inside ``X | None``), or None."""
    from pydantic import BaseModel

    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def key_lines(text: str) -> dict[str, int]:
    """Each key of a YAML mapping, dotted (``training.learning_rate``), and the line it
    is written on (from 1)."""
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                dotted = prefix + str(key.value)
                lines.setdefault(dotted, key.start_mark.line + 1)
                walk(value, dotted + ".")

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    except yaml.YAMLError:
        pass
    return lines


def located(load: Callable) -> Callable:
    """``load`` whose ``ConfigError``s say the line of their key in the file they name
    (``hf.yaml line 12: training.learning_rate = -1: must be > 0``)."""
    @functools.wraps(load)
    def wrapper(*args, **kwargs):
        try:
            return load(*args, **kwargs)
        except ConfigError as e:
            if e.line is not None or not e.key or e.path is None:
                raise
            text = _TEXTS.get(str(Path(e.path).expanduser().resolve()))
            line = key_lines(text).get(e.key) if text is not None else None
            if line is None:
                raise
            raise e.at(line) from None
    return wrapper


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
