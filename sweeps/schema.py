"""The shapes of a W&B sweep file as pydantic models: each key once, with its type, its
default and the words for a bad value (``say``). ``sweeps.spec`` checks a file section by
section with ``check`` (so one error lists every problem of every section) and checks
what relates several keys (min < max, the grid rules, hyperband's brackets) as code.

A number may be written as text (``'1e-6'``, as the summarization guide's sweep does):
it is read, with a warning that W&B would reject it. No ``from __future__ import
annotations`` here: pydantic reads these annotations as written.
"""

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
)

from orchestrator.infra.validation import (
    RANGE_ERRORS,
    choices_of,
    did_you_mean,
    number_text,
    problem_for,
    say,
)

__all__ = ["Top", "Metric", "EarlyTerminate", "Categorical", "NUMBERS", "check", "read_number",
           "yaml_number", "METHODS", "GOALS", "DISTRIBUTIONS", "DEFAULTS"]

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
#: distribution → the numbers it reads (besides ``distribution``).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": (), "categorical": (), "categorical_w_probabilities": (),
    "int_uniform": ("min", "max"), "uniform": ("min", "max"), "q_uniform": ("min", "max", "q"),
    "log_uniform": ("min", "max"), "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max", "q"), "q_log_uniform_values": ("min", "max", "q"),
    "inv_log_uniform": ("min", "max"), "inv_log_uniform_values": ("min", "max"),
    "normal": ("mu", "sigma"), "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"), "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"), "q_beta": ("a", "b", "q"),
}
#: what W&B assumes for a number a distribution reads and the file leaves out.
DEFAULTS = {"q": 1.0, "mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0}


def read_number(raw: Any) -> int | float:
    """A number as a sweep file may write it: an int or float, or text (``'1e-6'``,
    ``'1_000'``); ``ValueError`` saying why for anything else (a boolean, inf/nan)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"{raw!r} is not a number")
    value = raw
    if isinstance(raw, str):
        try:
            value = number_text(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{raw!r} is not finite")
    return value


def _number(raw: Any, info: ValidationInfo) -> Any:
    """``read_number``, with numeric text warned of through the context's ``warn`` (W&B
    would reject it)."""
    if raw is None:
        return None
    value = read_number(raw)
    if isinstance(raw, str) and info.context:
        info.context["warn"](info.field_name,
                             f"{raw!r} is text in YAML (W&B would reject it); read as {value!r}",
                             f"write {yaml_number(value)} so every tool reads a number")
    return value


def _text(raw: Any) -> Any:
    return raw if raw is None or isinstance(raw, str) else str(raw)


Number = Annotated[int | float, BeforeValidator(_number)]
OptNumber = Annotated[int | float | None, BeforeValidator(_number)]
Commands = Annotated[list[Annotated[str, BeforeValidator(str)]], Field(min_length=1)]
Text = Annotated[str | None, BeforeValidator(_text)]


def _whole(low: int):
    return Annotated[Annotated[int, Field(ge=low)] | None, BeforeValidator(_number)]


class Top(BaseModel):
    """The file's own keys, in W&B's order; its sections have their own models."""

    model_config = ConfigDict(extra="forbid")
    program: Text = None
    method: Literal[METHODS] = Field(json_schema_extra=say(
        "unknown method {value!r}", "use grid, random or bayes",
        missing="add method: grid, random or bayes"))
    metric: Any = None
    parameters: Any = None
    early_terminate: Any = None
    command: Commands | None = Field(None, json_schema_extra=say(
        "expected a non-empty list, got {value!r}",
        "write it as a YAML list, e.g. command: [${env}, python, ${program}, ${args}]"))
    run_cap: _whole(1) = Field(None, json_schema_extra=say(
        fix="use a whole number >= 1, e.g. run_cap: 20"))
    name: Text = None
    project: Text = None
    entity: Text = None
    description: Text = None
    seed: _whole(0) = Field(None, json_schema_extra=say(
        fix="use a whole number >= 0, or delete it for a fresh seed"))


class Metric(BaseModel):
    """What a sweep optimizes: the logged metric's name and its goal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, BeforeValidator(lambda v: _text(v).strip() if v is not None else v),
                    Field(min_length=1)] = Field(json_schema_extra=say(
                        "missing", "name the logged metric, e.g. name: val_loss"))
    goal: Literal[GOALS] = Field("minimize", json_schema_extra=say(
        "{value!r} is not a goal", "use minimize or maximize"))
    target: OptNumber = Field(None, json_schema_extra=say(fix="use a number, e.g. target: 0.95"))
    impute: Any = Field(None, exclude=True)                 # W&B's; accepted, unused here
    impute_while_running: Any = Field(None, exclude=True)

    @property
    def mode(self) -> str:
        """``max`` or ``min``: the goal as Ray Tune, Optuna and our registry say it."""
        return "max" if self.goal == "maximize" else "min"


class EarlyTerminate(BaseModel):
    """W&B's hyperband stopping; ``strict`` is None when the file does not say. A key W&B
    does not know is ignored (as W&B does; ``sweeps.spec`` warns of it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    type: Literal["hyperband"] = Field(json_schema_extra=say(
        "unknown type {value!r}", "W&B supports type: hyperband", missing="add type: hyperband"))
    min_iter: _whole(1) = Field(None, json_schema_extra=say(
        fix="use a whole number >= 1, e.g. min_iter: 3"))
    max_iter: _whole(1) = Field(None, json_schema_extra=say(
        fix="use a whole number >= 1, e.g. max_iter: 27"))
    s: _whole(1) = Field(None, json_schema_extra=say(fix="use a whole number >= 1, e.g. s: 2"))
    eta: Annotated[Annotated[float, Field(gt=1)], BeforeValidator(_number)] = Field(
        3.0, json_schema_extra=say(fix="use a number > 1, e.g. eta: 3",
                                   range="eta={value} must be > 1"))
    strict: bool | None = Field(None, strict=True, json_schema_extra=say(
        "{value!r} is not true/false", "write strict: true or strict: false"))

    def brackets(self, limit: int = 5) -> list[int]:
        """Iterations at which runs are judged, as W&B's ``hyperband_stop_runs`` computes them."""
        if self.max_iter is not None:
            out, band = [], float(self.max_iter)
            for _ in range(self.s or 0):
                band /= self.eta
                if band < 1:
                    break
                out.append(int(band))
            return sorted(out)
        return [int(self.min_iter * self.eta ** i) for i in range(limit)]


class Categorical(BaseModel):
    """A parameter drawn from ``values``, optionally with ``probabilities``."""

    model_config = ConfigDict(extra="ignore")
    values: Annotated[list[Any], Field(min_length=1)] = Field(json_schema_extra=say(
        "expected a non-empty list, got {value!r}", "write values: [a, b, c]"))
    probabilities: list[Annotated[float, Field(ge=0), BeforeValidator(_number)]] | None = \
        Field(None, json_schema_extra=say(
            "expected a list, got {value!r}",
            "give one number >= 0 per value, e.g. probabilities: [0.5, 0.3, 0.2]"))


def _numbers(keys: tuple[str, ...]) -> type[BaseModel]:
    """The model of a distribution's numbers (W&B's default where it has one)."""
    fields = {key: (Number, Field(DEFAULTS.get(key, ...), json_schema_extra=say(
        fix=f"{key} must be a number", missing=f"add {key}: <number>"))) for key in keys}
    return create_model("Numbers_" + "_".join(keys), __config__=ConfigDict(extra="ignore"),
                        **fields)


#: the numbers each distribution reads → their model (shared by the distributions alike).
NUMBERS = {keys: _numbers(keys) for keys in dict.fromkeys(DISTRIBUTIONS.values()) if keys}

Report = Callable[[str, str, str], None]     # (where, problem, fix)


def check(model: type[BaseModel], data: dict, where: str, error: Report, warn: Report,
          missing: str = "missing") -> Any:
    """``data`` as ``model``, or None after saying each problem through ``error``
    (``where`` prefixes each key; ``missing`` is the problem of a key left out, with
    ``{key}`` for its name). Numbers written as text are said through ``warn``."""
    def at(key: str) -> str:
        return ".".join(k for k in (where, key) if k)

    context = {"warn": lambda key, problem, fix: warn(at(key), problem, fix)}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"] if isinstance(p, str))
            error(at(key), *_said(model, err, missing))
        return None


def _said(model: type[BaseModel], err: dict, missing: str) -> tuple[str, str]:
    """One of pydantic's errors as (problem, fix) in the field's own words."""
    kind, value = err["type"], err.get("input")
    name = next((p for p in err["loc"] if isinstance(p, str)), "")
    info = model.model_fields.get(name)
    words = (info.json_schema_extra if info is not None else None) or {}
    fix = words.get("fix", "")
    if kind == "extra_forbidden":
        valid = list(model.model_fields)
        return "unknown key", did_you_mean(name, valid, "'{}'") + f"valid keys: {', '.join(valid)}"
    if kind == "missing":
        return missing.replace("{key}", name), words.get("missing", fix)
    if kind in RANGE_ERRORS:
        bound = next(iter((err.get("ctx") or {}).values()), "")
        shown = f"{bound:g}" if isinstance(bound, int | float) else bound
        problem = words.get("range") or (f"{value!r} is below {shown}" if kind ==
                                         "greater_than_equal" else
                                         f"{value!r} must be {RANGE_ERRORS[kind]} {shown}")
    elif kind.startswith("int_"):
        problem = f"{value!r} is not a whole number"
    elif kind == "value_error":
        problem = problem_for(err)
    else:
        problem = words.get("problem") or problem_for(err)
    if kind == "literal_error" and info is not None:
        fix = did_you_mean(value, choices_of(info.annotation), "'{}'") + fix
    return _filled(problem, value), _filled(fix, value)


def _filled(text: str, value: Any) -> str:
    return text.replace("{value!r}", repr(value)).replace("{value}", str(value))


def yaml_number(value: int | float) -> str:
    """How to write a number so YAML 1.1 (PyYAML) reads a float: ``1e-06`` → ``1.0e-06``."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent
