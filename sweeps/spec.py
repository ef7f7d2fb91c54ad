"""A W&B sweep file, validated once: ``load_sweep(path)`` / ``parse_sweep(dict)`` → ``SweepSpec``.

The semantics follow W&B's own sweep code (wandb/sweeps ``config/schema.json``,
``params.py``, ``grid_search.py``, ``hyperband_stopping.py``), not guesses:

* ``log_uniform``, ``q_log_uniform`` and ``inv_log_uniform`` take natural-log
  *exponents* (values span ``exp(min)..exp(max)``); the ``*_values`` variants
  take the values themselves. W&B warns that the exponent forms are deprecated.
* ``inv_log_uniform`` returns ``X`` with ``log(1/X)`` uniform on ``[min, max]``.
* a distribution is inferred when absent: ``values`` → categorical, ``value`` →
  constant, integer ``min``/``max`` → int_uniform, otherwise uniform.
* a grid runs every combination of ``values``, ``int_uniform`` (min..max) and
  ``q_uniform`` (``np.arange(min, max, q)``: max itself is left out).

Every problem is collected before anything is raised, so one ``SweepError``
lists them all; what W&B would only warn about lands in ``SweepSpec.warnings``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orchestrator.infra.errors import OrchestratorError
from orchestrator.infra.validation import did_you_mean
from sweeps.schema import (
    DISTRIBUTIONS,
    METHODS,
    NUMBERS,
    Categorical,
    EarlyTerminate,
    Metric,
    Top,
    check,
    read_number,
)

__all__ = [
    "SweepSpec", "Param", "Metric", "EarlyTerminate", "Issue", "SweepError",
    "load_sweep", "parse_sweep", "METHODS", "DISTRIBUTIONS", "MACROS", "DEFAULT_COMMAND",
    "ENVVAR_RE",
]

EXPONENT_FORMS = {"log_uniform": "log_uniform_values", "q_log_uniform": "q_log_uniform_values",
                  "inv_log_uniform": "inv_log_uniform_values"}
VALUE_LOG_FORMS = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
PARAM_KEYS = ("distribution", "value", "values", "probabilities", "min", "max", "q", "mu",
              "sigma", "a", "b", "parameters")
IGNORED_TOP_KEYS = ("controller", "apiVersion", "kind", "job", "image_uri")
MACROS = ("env", "interpreter", "program", "args", "args_no_hyphens", "args_no_boolean_flags",
          "args_json", "args_json_file", "args_no_equals")
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")      # W&B's schema pattern
ENVVAR_RE = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")     # W&B's agent regex


@dataclass(frozen=True)
class Issue:
    """One problem (or warning) in a sweep file: where, what, and the fix."""

    source: str
    where: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.source}: {self.where}: {self.problem}"
        return f"{text} — {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "problem": self.problem, "fix": self.fix, "text": str(self)}


class SweepError(OrchestratorError):
    """A sweep file that cannot run; ``issues`` holds every problem found, one per line."""

    def __init__(self, source, issues):
        self.source = str(source)
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    def __reduce__(self):
        return (SweepError, (self.source, self.issues))


@dataclass(frozen=True)
class Param:
    """One swept parameter. ``name`` is dotted (``optimizer.lr``); ``path`` is how it nests."""

    name: str
    path: tuple[str, ...]
    distribution: str
    value: Any = None
    values: tuple | None = None
    probabilities: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    q: float | None = None
    mu: float | None = None
    sigma: float | None = None
    a: float | None = None
    b: float | None = None

    @property
    def quantized(self) -> bool:
        return self.distribution.startswith("q_")

    @property
    def base(self) -> str:
        """The distribution without its ``q_`` prefix (``q_log_normal`` → ``log_normal``)."""
        return self.distribution[2:] if self.quantized else self.distribution

    def grid_values(self) -> tuple:
        """The values a grid runs, duplicates dropped as W&B's grid does."""
        if self.distribution == "constant":
            return (self.value,)
        if self.distribution == "int_uniform":
            return tuple(range(int(self.min), int(self.max) + 1))
        if self.distribution == "q_uniform":
            return tuple(self.cast(v) for v in np.arange(self.min, self.max, self.q).tolist())
        if self.distribution == "categorical":
            seen, out = set(), []
            for v in self.values:
                key = _grid_key(v)
                if key not in seen:
                    seen.add(key)
                    out.append(v)
            return tuple(out)
        raise ValueError(f"{self.name}: a {self.distribution} distribution has no grid")

    def value_range(self) -> tuple[float, float] | None:
        """The interval the values fall in (before any ``q`` rounding), or None."""
        base = self.base
        if base in ("uniform", "int_uniform", "log_uniform_values", "inv_log_uniform_values"):
            return (self.min, self.max)
        if base == "log_uniform":
            return (math.exp(self.min), math.exp(self.max))
        if base == "inv_log_uniform":
            return (math.exp(-self.max), math.exp(-self.min))
        return {"normal": (-math.inf, math.inf), "log_normal": (0.0, math.inf),
                "beta": (0.0, 1.0)}.get(base)

    def cast(self, value: Any) -> Any:
        """A drawn value in W&B's type: ints for int_uniform and for an integer ``q``."""
        if isinstance(value, np.generic):
            value = value.item()
        if self.distribution == "int_uniform":
            return int(value)
        if self.quantized and isinstance(self.q, int):
            return int(round(value))
        if self.distribution not in ("constant", "categorical") and isinstance(value, int | float):
            return float(value)
        return value

    def to_dict(self, grid: bool = False) -> dict[str, Any]:
        """Plain data: the distribution and its numbers; ``grid_count`` when ``grid``."""
        out: dict[str, Any] = {"distribution": self.distribution}
        for key in ("value", "values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"):
            v = getattr(self, key)
            if v is not None or (key == "value" and self.distribution == "constant"):
                out[key] = list(v) if isinstance(v, tuple) else v
        rng = self.value_range()
        if rng is not None and self.base in EXPONENT_FORMS:
            out["value_range"] = list(rng)
        if grid:
            out["grid_count"] = len(self.grid_values())
        return out


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. Parameters are flat, in file order, named by dotted names."""

    source: str
    method: str
    parameters: tuple[Param, ...]
    metric: Metric | None = None
    early_terminate: EarlyTerminate | None = None
    run_cap: int | None = None
    seed: int | None = None           # our key: repeat a random/bayes sweep's draws
    program: str | None = None
    program_argv: tuple[str, ...] | None = None   # a command line given as the program
    command: tuple[str, ...] | None = None
    name: str | None = None
    project: str | None = None
    entity: str | None = None
    description: str | None = None
    warnings: tuple[Issue, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def needs_program(self) -> bool:
        """The command runs ``${program}`` and the file names none: the sweep cannot run
        until one is given (``with_program``)."""
        return not self.program and "${program}" in (self.command or DEFAULT_COMMAND)

    def with_program(self, program: str) -> SweepSpec:
        """This sweep with ``program`` as its ``${program}``: a script (``train.py``, run
        by ``${interpreter}``) or a command line (``python train.py``, ``accelerate launch
        train.py``), which then stands for ``${env} ${interpreter} ${program}`` together."""
        words = tuple(shlex.split(program))
        if not words:
            raise ValueError("the program is empty")
        return dataclasses.replace(self, program=program.strip(),
                                   program_argv=words if len(words) > 1 else None,
                                   warnings=tuple(w for w in self.warnings
                                                  if w.where != "program"))

    def param(self, name: str) -> Param:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def grid_size(self) -> int | None:
        """How many runs a grid sweep makes (before ``run_cap``); None for random/bayes."""
        if self.method != "grid":
            return None
        return math.prod(len(p.grid_values()) for p in self.parameters)

    def flatten(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Flat ``{dotted name: value}`` from a flat or nested run config."""
        out: dict[str, Any] = {}
        paths = {p.path: p.name for p in self.parameters}

        def walk(prefix: tuple[str, ...], d: Mapping):
            for key, value in d.items():
                path = prefix + (key,)
                if path in paths:
                    out[paths[path]] = value
                elif isinstance(value, Mapping) and any(q[:len(path)] == path for q in paths):
                    walk(path, value)
                else:
                    out[".".join(path) if prefix else key] = value
        walk((), config)
        return out

    def run_config(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The nested config a run sees (W&B's shape), each value cast to W&B's type."""
        config: dict[str, Any] = {}
        by_name = {p.name: p for p in self.parameters}
        for key, value in self.flatten(flat).items():
            param = by_name.get(key)
            path = param.path if param else (key,)
            node = config
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = param.cast(value) if param else value
        return config

    def normalized(self) -> dict[str, Any]:
        """Everything a reader needs to check the sweep, as plain data (for ``--json``)."""
        et = self.early_terminate
        return {
            "source": self.source, "method": self.method,
            "metric": None if self.metric is None else self.metric.model_dump(),
            "run_cap": self.run_cap, "seed": self.seed,
            "parameters": {p.name: p.to_dict(self.method == "grid") for p in self.parameters},
            "early_terminate": None if et is None else {**et.model_dump(),
                                                        "brackets": et.brackets()},
            "grid_trials": self.grid_size,
            "program": self.program,
            "command": list(self.command or DEFAULT_COMMAND),
            "name": self.name, "project": self.project, "entity": self.entity,
            "description": self.description,
            "warnings": [str(w) for w in self.warnings],
        }


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep YAML (or JSON) file; raises ``SweepError`` naming every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SweepError(source, [Issue(source, "file", f"cannot read it ({e.strerror})",
                                        "check the path")]) from None
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        problem = getattr(e, "problem", None) or str(e)
        raise SweepError(source, [Issue(source, where, f"not valid YAML: {problem}",
                                        "fix the indentation or quoting there")]) from None
    finally:
        loader.dispose()
    return _Parser(source, loader.duplicates).parse(data)


def parse_sweep(data: Mapping[str, Any], source: str = "sweep.yaml") -> SweepSpec:
    """Validate a sweep configuration given as a dict (what ``yaml.safe_load`` returns)."""
    return _Parser(str(source), []).parse(data)


class _Loader(yaml.SafeLoader):
    """SafeLoader that notes duplicate keys (PyYAML, like W&B, silently keeps the last)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key in seen:
                self.duplicates.append((str(key), key_node.start_mark.line + 1))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _grid_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)        # W&B's grid treats 3e6 and 3000000 as one value
    try:
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=True)
    except yaml.YAMLError:
        return repr(value)


def _hint(word: Any, choices) -> str:
    return did_you_mean(word, choices, "'{}'")


#: the order a file's problems are listed in, by the key they are under.
_SECTIONS = ("method", "metric", "parameters", "early_terminate", "run_cap", "seed", "command",
             "program")


class _Parser:
    def __init__(self, source: str, duplicates):
        self.source = source
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = [
            Issue(source, f"line {line}", f"the key {key!r} appears twice; the last one wins",
                  "delete one of them") for key, line in duplicates]

    def error(self, where, problem, fix=""):
        self.errors.append(Issue(self.source, where, problem, fix))

    def warn(self, where, problem, fix=""):
        self.warnings.append(Issue(self.source, where, problem, fix))

    def check(self, model, data, where="", missing="missing"):
        """``data`` as ``model`` (``sweeps.schema``), or None with its problems noted."""
        return check(model, data, where, self.error, self.warn, missing)

    def parse(self, data) -> SweepSpec:
        if data is None:
            raise SweepError(self.source, [Issue(self.source, "file", "the file is empty",
                                                 "write method:, parameters: and program:")])
        if not isinstance(data, Mapping):
            raise SweepError(self.source, [Issue(
                self.source, "file", f"expected a mapping of keys, got {type(data).__name__}",
                "start with keys like 'method: random' and 'parameters:'")])
        top = self.check(Top, self._own_keys(data))
        method = top.method if top else data.get("method")
        metric = self._metric(data.get("metric"))
        params = self._params(data.get("parameters"))
        has_metric = data.get("metric") is not None   # (a bad one is said once, above)
        early = self._early_terminate(data.get("early_terminate"), has_metric)
        self._method_rules(method, has_metric, params, data.get("run_cap"))
        if top is not None:
            self._program(top)
        if self.errors:
            order = {key: i for i, key in enumerate(_SECTIONS)}
            self.errors.sort(key=lambda i: order.get(i.where.split(".")[0].split("[")[0], -1))
            raise SweepError(self.source, self.errors)
        return SweepSpec(source=self.source, method=method, parameters=tuple(params),
                         metric=metric, early_terminate=early, run_cap=top.run_cap,
                         program=top.program, seed=top.seed, warnings=tuple(self.warnings),
                         command=None if top.command is None else tuple(top.command),
                         name=top.name, project=top.project, entity=top.entity,
                         description=top.description)

    # -- top level -------------------------------------------------------------------------

    def _own_keys(self, data: Mapping) -> dict:
        """The file's keys the sweep reads; W&B-only keys are warned of and left out."""
        own = {}
        for key, value in data.items():
            if key in IGNORED_TOP_KEYS:
                self.warn(key, "W&B-only key, ignored here", "delete it, or keep it for W&B")
            elif key in ("metrics", "scheduler"):
                self.error(key, "W&B's custom-scheduler keys are not supported",
                           "use method: grid, random or bayes with a single metric:")
            else:
                own[str(key)] = value
        return own

    def _metric(self, metric) -> Metric | None:
        if metric is None:
            return None
        if not isinstance(metric, Mapping):
            self.error("metric", f"expected a mapping, got {metric!r}",
                       f"write metric: {{name: {metric}, goal: minimize}}")
            return None
        return self.check(Metric, metric, "metric")

    def _method_rules(self, method, has_metric, params, run_cap):
        if method == "grid":
            for p in params:
                if p.distribution not in GRID_DISTRIBUTIONS:
                    self.error(f"parameters.{p.name}",
                               f"grid cannot enumerate a {p.distribution} distribution",
                               "give values: [...], or use int_uniform or q_uniform; "
                               "or use method: random")
                elif p.probabilities is not None:
                    self.error(f"parameters.{p.name}", "grid runs every value, so probabilities "
                               "cannot apply", "remove probabilities, or use method: random")
                elif p.distribution == "categorical" and len(p.grid_values()) < len(p.values):
                    self.warn(f"parameters.{p.name}", "values has duplicates",
                              "the grid runs each value once; delete the repeats")
                elif p.distribution == "q_uniform":
                    steps = (p.max - p.min) / p.q
                    if math.isclose(steps, round(steps)):
                        self.warn(f"parameters.{p.name}", f"the grid stops before max={p.max} "
                                  "(W&B uses np.arange(min, max, q))",
                                  f"raise max to {p.max + p.q / 2:g} to include it")
        elif method in ("random", "bayes") and run_cap is None:
            self.warn("run_cap", f"a {method} sweep runs until stopped",
                      "set run_cap: N to bound it")
        if method == "bayes":
            if not has_metric:
                self.error("metric", "bayes search needs a metric",
                           "add metric: {name: val_loss, goal: minimize}")
            if params and all(p.distribution == "constant" for p in params):
                self.error("parameters", "bayes search needs at least one parameter to search",
                           "give a parameter values: [...] or a distribution")

    # -- parameters ------------------------------------------------------------------------

    def _params(self, params) -> list[Param]:
        if not isinstance(params, Mapping) or not params:
            self.error("parameters", "missing or empty",
                       "add parameters:, e.g. lr: {distribution: log_uniform_values, "
                       "min: 1.0e-5, max: 1.0e-2}")
            return []
        out: list[Param] = []
        self._walk(params, (), out)
        seen: dict[str, int] = {}
        for p in out:
            seen[p.name] = seen.get(p.name, 0) + 1
        for name, count in seen.items():
            if count > 1:
                self.error(f"parameters.{name}", f"{count} parameters are named {name!r} "
                           "(a dotted name and a nested one)", "rename one of them")
        return out

    def _walk(self, params: Mapping, prefix: tuple[str, ...], out: list[Param]):
        for key, body in params.items():
            path = prefix + (str(key),)
            where = "parameters." + ".".join(path)
            if not _NAME_RE.match(str(key)):
                self.warn(where, "W&B only accepts names of letters, digits, '_', '.' and '-'",
                          "rename it, e.g. with '_' for other characters")
            if not isinstance(body, Mapping):
                self.error(where, f"expected a mapping, got {body!r}",
                           f"write {key}: {{value: {body}}} or {key}: {{values: [...]}}")
            elif "parameters" in body:
                extra = [k for k in body if k != "parameters"]
                if extra:
                    self.error(where, f"a nested group cannot also have {', '.join(extra)}",
                               "move those keys into one of its parameters")
                elif not isinstance(body["parameters"], Mapping) or not body["parameters"]:
                    self.error(where + ".parameters", "empty", "nest at least one parameter")
                else:
                    self._walk(body["parameters"], path, out)
            else:
                param = self._param(where, path, body)
                if param is not None:
                    out.append(param)

    def _param(self, where, path, body: Mapping) -> Param | None:
        dist = self._distribution(where, body)
        if dist is None:
            return None
        used = set(DISTRIBUTIONS[dist]) | {"distribution"}
        used |= {"constant": {"value"}}.get(dist, set())
        used |= {"values", "probabilities"} if dist.startswith("categorical") else set()
        for key in body:
            if key not in PARAM_KEYS:
                self.error(f"{where}.{key}", "unknown key",
                           f"{_hint(key, PARAM_KEYS)}valid keys: {', '.join(PARAM_KEYS[:-1])}")
            elif key not in used:
                self.warn(f"{where}.{key}", f"{dist} does not use {key}; it is ignored",
                          "delete it, or pick the distribution that uses it")
        name = ".".join(path)
        if dist == "constant":
            return Param(name, path, dist, value=body["value"])
        if dist.startswith("categorical"):
            return self._categorical(where, name, path, dist, body)
        numbers = self.check(NUMBERS[DISTRIBUTIONS[dist]],
                             {k: v for k, v in body.items() if v is not None}, where,
                             missing=f"missing ({dist} needs {{key}})")
        if numbers is None:
            return None
        nums = numbers.model_dump()
        if not self._check_numbers(where, dist, nums):
            return None
        return Param(name, path, dist, **nums)

    def _distribution(self, where, body) -> str | None:
        dist = body.get("distribution")
        if dist is None:
            if "values" in body and "value" in body:
                self.error(where, "has both value and values", "keep one of them")
                return None
            if "values" in body:
                return "categorical"
            if "value" in body:
                return "constant"
            if "min" in body and "max" in body:
                both_int = all(_is_int(body[k]) for k in ("min", "max"))
                return "int_uniform" if both_int else "uniform"
            unknown = [k for k in body if k not in PARAM_KEYS]
            for key in unknown:   # `valuess:` is a typo, not a missing distribution
                self.error(f"{where}.{key}", "unknown key",
                           f"{_hint(key, PARAM_KEYS)}valid keys: {', '.join(PARAM_KEYS[:-1])}")
            if not unknown:
                self.error(where, "cannot tell the distribution",
                           "add values: [...], value: x, min/max, or distribution: <name>")
            return None
        if dist not in DISTRIBUTIONS:
            self.error(where + ".distribution", f"unknown distribution {dist!r}",
                       f"{_hint(dist, DISTRIBUTIONS)}valid: {', '.join(DISTRIBUTIONS)}")
            return None
        if dist == "constant" and "value" not in body:
            self.error(where, "constant needs value", "add value: x")
            return None
        if dist.startswith("categorical") and "values" not in body:
            self.error(where, f"{dist} needs values", "add values: [a, b, c]")
            return None
        return dist

    def _categorical(self, where, name, path, dist, body) -> Param | None:
        drawn = self.check(Categorical, body, where)
        if drawn is None:
            return None
        values, probs = tuple(drawn.values), drawn.probabilities
        if probs is None:
            if dist == "categorical_w_probabilities":
                self.error(where, "categorical_w_probabilities needs probabilities",
                           "add probabilities: [...] (one per value, summing to 1)")
                return None
            return Param(name, path, "categorical", values=values)
        if dist == "categorical" and "distribution" in body:
            self.warn(where + ".distribution", "W&B rejects probabilities with "
                      "distribution: categorical", "delete the distribution line")
        if len(probs) != len(values):
            self.error(where + ".probabilities", f"{len(probs)} probabilities for "
                       f"{len(values)} values", "give exactly one probability per value")
            return None
        total = math.fsum(probs)
        if abs(total - 1.0) > 1e-6:
            self.error(where + ".probabilities", f"they sum to {total:g}, not 1",
                       f"scale them, e.g. {[round(n / total, 4) for n in probs]}"
                       if total > 0 else "give at least one positive probability")
            return None
        return Param(name, path, "categorical", values=values, probabilities=tuple(probs))

    def _check_numbers(self, where, dist, n) -> bool:
        ok = True
        if "min" in n and n["min"] >= n["max"]:
            self.error(where, f"min={n['min']} is not less than max={n['max']}",
                       "swap them, or make max larger")
            ok = False
        if dist == "int_uniform":
            for key in ("min", "max"):
                if not float(n[key]).is_integer():
                    self.error(f"{where}.{key}", f"{key}={n[key]} is not a whole number",
                               "use whole numbers, or distribution: uniform for real numbers")
                    ok = False
                n[key] = int(n[key])
        if dist in VALUE_LOG_FORMS and n["min"] <= 0:
            self.error(where + ".min", f"min={n['min']}: a log scale needs min > 0",
                       "use a positive lower value, e.g. min: 1.0e-6")
            ok = False
        for key, floor in (("q", 0), ("sigma", 0), ("a", 0), ("b", 0)):
            if key in n and n[key] <= floor:
                self.error(f"{where}.{key}", f"{key}={n[key]} must be > 0",
                           {"q": "use a positive step, e.g. q: 0.1"}.get(
                               key, f"use a positive {key}, e.g. {key}: 1.0"))
                ok = False
        if ok and dist in EXPONENT_FORMS:
            ok = self._exponent_note(where, dist, n)
        if ok and dist == "q_beta" and n["q"] >= 1:
            self.warn(where + ".q", f"q={n['q']} rounds every beta draw (0..1) to 0 or 1",
                      "set q below 1, e.g. q: 0.05")
        return ok

    def _exponent_note(self, where, dist, n) -> bool:
        if max(abs(n["min"]), abs(n["max"])) > 700:
            self.error(where, f"{dist} takes natural-log exponents; exp({n['max']}) overflows",
                       f"use {EXPONENT_FORMS[dist]} to give the values themselves")
            return False
        lo, hi = math.exp(n["min"]), math.exp(n["max"])
        if dist == "inv_log_uniform":
            lo, hi = math.exp(-n["max"]), math.exp(-n["min"])
        if 0 < n["min"] < n["max"] <= 1:   # 0.0001..0.1 as exponents: values were meant
            self.warn(where, f"{dist} takes natural-log exponents, so min: {n['min']:g}, "
                      f"max: {n['max']:g} draw values {lo:.6g}..{hi:.6g}",
                      f"did you mean {EXPONENT_FORMS[dist]} with min: {n['min']:g}, max: "
                      f"{n['max']:g} (the values themselves)?")
            return True
        self.warn(where, f"{dist} takes natural-log exponents: values span {lo:.6g}..{hi:.6g} "
                  "(W&B deprecates it)",
                  f"use {EXPONENT_FORMS[dist]} with min: {lo:.6g}, max: {hi:.6g} "
                  "to write the values themselves")
        return True

    # -- early_terminate, command, numbers -------------------------------------------------

    def _early_terminate(self, et, has_metric) -> EarlyTerminate | None:
        if et is None:
            return None
        if not isinstance(et, Mapping):
            self.error("early_terminate", f"expected a mapping, got {et!r}",
                       "write early_terminate: {type: hyperband, min_iter: 3}")
            return None
        known = tuple(EarlyTerminate.model_fields)
        for key in et:
            if key not in known:
                self.warn(f"early_terminate.{key}", "unknown key, ignored (as W&B does)",
                          f"{_hint(key, known)}valid: {', '.join(known)}")
        if not has_metric:
            self.error("early_terminate", "hyperband needs a metric to compare runs",
                       "add metric: {name: val_loss, goal: minimize}")
        result = self.check(EarlyTerminate, et, "early_terminate")
        if result is None:
            return None
        if result.max_iter is None and result.min_iter is None:
            self.error("early_terminate", "hyperband needs min_iter, or max_iter with s",
                       "add min_iter: 3 (first bracket), or max_iter: 27 and s: 2")
            return None
        if result.max_iter is not None and result.s is None:
            self.error("early_terminate.s", "missing (max_iter needs s, the number of brackets)",
                       "add s: 2")
            return None
        if result.max_iter is not None and result.min_iter is not None:
            self.warn("early_terminate.min_iter", "ignored: W&B uses max_iter when both are set",
                      "delete one of min_iter / max_iter")
        if not result.brackets():
            self.error("early_terminate", f"max_iter={result.max_iter} with eta={result.eta:g} "
                       "leaves no bracket", "raise max_iter or s, or lower eta")
        return result

    def _program(self, top: Top) -> None:
        if top.command is not None:
            self._check_macros(top.command)
        if not top.program and "${program}" in (top.command or DEFAULT_COMMAND):
            self.warn("program", "missing: W&B runs such a file with `wandb.agent(id, "
                      "function=train)` or names the program elsewhere; here it must come "
                      "from `sweep run --program` or a Kind=sweep row's TrainingCommand",
                      "add program: train.py, or give it when you run the sweep")

    def _check_macros(self, command):
        for i, item in enumerate(command):
            rest = ENVVAR_RE.sub("", item)
            if item.startswith("${") and item.endswith("}") and rest == item:
                if item[2:-1] not in MACROS:
                    self.warn(f"command[{i}]", f"{item} is not a W&B macro; it expands to nothing",
                              f"{_hint(item[2:-1], MACROS)}macros: "
                              + ", ".join(f"${{{m}}}" for m in MACROS))
            elif "${" in rest:
                self.warn(f"command[{i}]", f"{item!r} stays literal: W&B expands a macro only "
                          "when it is the whole item", "put the macro in its own list item")
        if not any(item in ("${args}", "${args_no_hyphens}", "${args_no_boolean_flags}",
                            "${args_json}", "${args_json_file}", "${args_no_equals}")
                   for item in command):
            self.warn("command", "no ${args...} macro: the program gets no parameters on its "
                      "command line", "add ${args} (or ${args_json_file}) to the list")


def _is_int(raw: Any) -> bool:
    """Whether a sweep file's ``min``/``max`` is a whole number as written (``2``, ``'2'``):
    W&B's int_uniform is inferred from it."""
    try:
        return isinstance(read_number(raw), int)
    except ValueError:
        return False
