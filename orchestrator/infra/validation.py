"""What every file a user writes is checked with: the value types they expect (``1e-6``
as a float, ``yes``/``on`` as true, numbers for whole numbers written ``2.0``), the
nearest valid word for a typo, and pydantic's errors said as our messages (the key,
the value, the fix) instead of pydantic's own.

A model (a pydantic dataclass) declares each field with one of the types below; the
loader turns a ``ValidationError`` into the file's own error with ``fix_for``. The word
helpers are light: pydantic loads only when a model takes one of the types.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any

#: and Bool, Int, Float, Str (made on first use)
__all__ = ["TRUE_WORDS", "FALSE_WORDS", "parse_bool", "number_text", "nearest", "did_you_mean",
           "say", "choices_of", "fix_for", "problem_for", "RANGE_ERRORS"]

#: pydantic's error types for a value of the right type outside its bounds.
RANGE_ERRORS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
                "less_than": "<"}

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def parse_bool(raw: Any) -> bool | None:
    """``raw`` as a boolean (the words INI files use, or a bool), None when it is none."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _bool(raw: Any) -> Any:
    value = parse_bool(raw) if raw is not None else None
    return raw if value is None else value


def number_text(text: str) -> int | float:
    """A number written as text: `` 3 `` and ``1_000`` → int, ``1e-6`` and ``2.0`` → float
    (``ValueError`` when it is none)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _number(raw: Any) -> Any:
    """A number written as text (``1e-6``, ``2.0``, `` 3 ``) as a number; pydantic then
    takes it as the field's type (a whole number for an int) or says why not. A boolean
    is not a number (``epochs: yes`` is a mistake, not 1)."""
    if isinstance(raw, bool):
        raise ValueError("not a number")
    if isinstance(raw, str):
        try:
            return number_text(raw)
        except ValueError:
            return raw
    return raw


def _text(raw: Any) -> Any:
    if raw is None:
        return ""
    return raw.strip() if isinstance(raw, str) else str(raw) if isinstance(
        raw, (int, float)) else raw


_TYPES = {"Bool": (bool, _bool), "Int": (int, _number), "Float": (float, _number),
          "Str": (str, _text)}


def __getattr__(name: str) -> Any:
    """``Bool``, ``Int``, ``Float``, ``Str``: the field types, made on first use."""
    if name not in _TYPES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pydantic import BeforeValidator

    base, before = _TYPES[name]
    globals()[name] = made = Annotated[base, BeforeValidator(before)]
    return made


def nearest(word: Any, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice closest to ``word`` (difflib's ratio ≥ ``cutoff``), or None."""
    found = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: Any, choices: Iterable[str], shown: str = "{}",
                 cutoff: float = 0.6) -> str:
    """``"did you mean X? "`` for the nearest choice (``shown`` formats it, e.g. "'{}'"
    or "[{}]"), or ``""`` when none is near."""
    near = nearest(word, choices, cutoff)
    return f"did you mean {shown.format(near)}? " if near else ""


def say(problem: str = "", fix: str = "", **more: str) -> dict:
    """A schema field's own words for a bad value (``Field(json_schema_extra=say(...))``):
    what is wrong, the fix, and any words a loader reads besides (``missing=`` …)."""
    return {"problem": problem, "fix": fix, **more}


def choices_of(annotation: Any) -> list[str]:
    """The words a ``Literal`` allows, also inside ``X | None``, ``list[...]`` and
    ``Annotated[...]``."""
    from typing import Literal, get_args, get_origin

    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    return [c for arg in get_args(annotation) for c in choices_of(arg)]


def problem_for(error: dict) -> str:
    """What is wrong, in our words, for one of pydantic's errors: ``must be a whole
    number``, ``must be >= 1`` … (a validator's own ``ValueError`` text as it wrote it)."""
    kind = error.get("type", "")
    if kind in RANGE_ERRORS:
        bound = next(iter((error.get("ctx") or {}).values()), "")
        return f"must be {RANGE_ERRORS[kind]} {bound}"
    if kind.startswith("int_"):
        return "must be a whole number"
    if kind.startswith("float_"):
        return "must be a number"
    if kind.startswith("bool_"):
        return "must be true or false"
    if kind.startswith("string_"):
        return "must be text"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind == "literal_error":
        return "not a valid choice"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def fix_for(error: dict, meaning: str = "") -> str:
    """The fix for one of pydantic's errors (``ValidationError.errors()``), in our words;
    ``meaning`` says what the value is for (shown when a number was expected)."""
    kind = error.get("type", "")
    if kind == "bool_parsing" or kind == "bool_type":
        return "use true or false"
    if kind == "int_from_float":
        return "use a whole number"
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type"):
        return f"use a number ({meaning})" if meaning else "use a number"
    if kind == "string_type":
        return "use text"
    limit = (error.get("ctx") or {})
    if kind == "greater_than_equal":
        return f"use a number >= {limit.get('ge')}"
    if kind == "greater_than":
        return f"use a number > {limit.get('gt')}"
    if kind == "less_than_equal":
        return f"use a number <= {limit.get('le')}"
    return str(error.get("msg", "invalid value"))
