"""A ``SweepSpec`` as a Ray Tune search space, and a seeded numpy sampler for tests and benches.

``to_tune_space`` uses Tune's own domains wherever they draw exactly what W&B
draws, so Tune's search algorithms can read them:

=========================================  ============================================
W&B                                         Tune
=========================================  ============================================
constant                                    the plain value
grid: values / int_uniform / q_uniform      ``tune.grid_search(...)`` (W&B's grid values)
categorical                                 ``tune.choice``
categorical + probabilities                 ``tune.sample_from(Draw)`` (weighted)
int_uniform                                 ``tune.randint(min, max + 1)``
uniform                                     ``tune.uniform``
q_uniform                                   ``tune.quniform`` (bounds multiples of q)
log_uniform_values, inv_log_uniform_values  ``tune.loguniform(min, max)``
log_uniform                                 ``tune.loguniform(exp(min), exp(max))``
inv_log_uniform                             ``tune.loguniform(exp(-max), exp(-min))``
q_log_uniform(_values)                      ``tune.qloguniform`` (bounds multiples of q)
normal / q_normal                           ``tune.randn`` / ``tune.qrandn``
log_normal, q_log_normal, beta, q_beta      ``tune.sample_from(Draw)``
=========================================  ============================================

``inv_log_uniform`` is a log-uniform distribution in disguise: W&B returns
``exp(-U)`` with ``U`` uniform on ``[min, max]`` (``*_values``: on
``[-log max, -log min]``), which is log-uniform on ``[exp(-max), exp(-min)]``.

Where Ray's quantized domains would differ from W&B (they need bounds that are
multiples of ``q`` and snap them to the grid; W&B rounds a draw from the
unsnapped range), a ``Draw`` does W&B's arithmetic instead.

Names stay dotted (``optimizer.lr``) in the Tune space; ``nest`` rebuilds the
nested run config.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sweeps.spec import Param, SweepSpec

__all__ = ["to_tune_space", "sample", "grid", "nest", "draw", "Draw"]


def draw(param: Param, rng, size: int) -> list:
    """``size`` values of ``param`` drawn with ``rng`` (a ``numpy.random.Generator``).

    Follows W&B's ``HyperParameter.ppf``: quantized forms are ``round(X / q) * q``;
    values come back in W&B's types (see ``Param.cast``).
    """
    dist = param.distribution
    if dist == "constant":
        return [param.value] * size
    if dist == "categorical":
        n = len(param.values)
        p = None if param.probabilities is None else np.asarray(param.probabilities) / math.fsum(
            param.probabilities)
        idx = rng.choice(n, size=size, p=p)
        return [param.values[int(i)] for i in idx]
    x = _continuous(param, rng, size)
    if param.quantized:
        x = np.round(x / param.q) * param.q
    return [param.cast(v) for v in x.tolist()]


def _continuous(param: Param, rng, size: int) -> np.ndarray:
    base, lo, hi = param.base, param.min, param.max
    if base == "int_uniform":
        return np.asarray(rng.integers(lo, hi + 1, size=size))
    if base == "uniform":
        return rng.uniform(lo, hi, size=size)
    if base == "log_uniform":
        return np.exp(rng.uniform(lo, hi, size=size))
    if base == "log_uniform_values":
        return np.exp(rng.uniform(math.log(lo), math.log(hi), size=size))
    if base == "inv_log_uniform":
        return np.exp(-rng.uniform(lo, hi, size=size))
    if base == "inv_log_uniform_values":
        return np.exp(-rng.uniform(-math.log(hi), -math.log(lo), size=size))
    if base == "normal":
        return rng.normal(param.mu, param.sigma, size=size)
    if base == "log_normal":
        return np.exp(rng.normal(param.mu, param.sigma, size=size))
    if base == "beta":
        return rng.beta(param.a, param.b, size=size)
    raise ValueError(f"{param.name}: no sampler for {param.distribution}")


class Draw:
    """A picklable ``tune.sample_from`` callable drawing one value of a parameter.

    It owns a seeded numpy Generator, so a space built with ``seed=`` repeats.
    """

    def __init__(self, param: Param, seed: int | np.random.SeedSequence | None = None):
        self.param = param
        self._rng = np.random.default_rng(seed)

    def __call__(self, config: Any = None) -> Any:
        return draw(self.param, self._rng, 1)[0]

    def __repr__(self) -> str:
        return f"Draw({self.param.name}: {self.param.distribution})"


def to_tune_space(spec: SweepSpec, *, seed: int | None = None) -> dict[str, Any]:
    """``{dotted name: Tune domain or constant}`` for ``Tuner(param_space=...)``.

    A grid sweep maps its parameters to ``tune.grid_search`` (run it with
    ``num_samples=1``); random and bayes map to distributions (``num_samples``
    = ``run_cap``). ``seed`` seeds the ``Draw`` samplers; Tune's own domains
    take the seed of Tune's search algorithm.
    """
    from ray import tune

    seeds = iter(np.random.SeedSequence(seed).spawn(len(spec.parameters)))
    space: dict[str, Any] = {}
    for param in spec.parameters:
        child = next(seeds)
        if param.distribution == "constant":
            space[param.name] = param.value
        elif spec.method == "grid":
            space[param.name] = tune.grid_search(list(param.grid_values()))
        else:
            space[param.name] = _domain(tune, param) or tune.sample_from(Draw(param, child))
    return space


def _domain(tune, p: Param):
    """The native Tune domain that draws what W&B draws, or None when there is none."""
    d = p.distribution
    if d == "categorical":
        return tune.choice(list(p.values)) if p.probabilities is None else None
    if d == "int_uniform":
        return tune.randint(p.min, p.max + 1)
    if d == "uniform":
        return tune.uniform(p.min, p.max)
    if d in ("log_uniform", "log_uniform_values", "inv_log_uniform", "inv_log_uniform_values"):
        return tune.loguniform(*p.value_range())
    if d == "q_uniform" and _on_grid(p.min, p.q) and _on_grid(p.max, p.q):
        return tune.quniform(p.min, p.max, p.q)
    if d in ("q_log_uniform", "q_log_uniform_values"):
        lo, hi = p.value_range()
        if _on_grid(lo, p.q) and _on_grid(hi, p.q):
            return tune.qloguniform(lo, hi, p.q)
        return None
    if d == "normal":
        return tune.randn(p.mu, p.sigma)
    if d == "q_normal":
        return tune.qrandn(p.mu, p.sigma, p.q)
    return None


def _on_grid(bound: float, q: float) -> bool:
    """Ray's own test (``Float.quantized``): is ``bound`` a multiple of ``q``?"""
    return math.isclose(bound / q, round(bound / q))


def sample(spec: SweepSpec, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` flat configs drawn with ``np.random.default_rng(seed)``.

    Every parameter is drawn from its distribution, whatever the method (a grid
    parameter's values are drawn uniformly); use ``grid`` to enumerate a grid.
    """
    rng = np.random.default_rng(seed)
    columns = {p.name: draw(p, rng, n) for p in spec.parameters}
    return [{name: col[i] for name, col in columns.items()} for i in range(n)]


def grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every flat config of a grid sweep, in W&B's order (parameters sorted by name)."""
    params = sorted(spec.parameters, key=lambda p: p.name)
    combos = itertools.product(*(p.grid_values() for p in params))
    return [dict(zip((p.name for p in params), combo, strict=True)) for combo in combos]


def nest(config: Mapping[str, Any], spec: SweepSpec | None = None) -> dict[str, Any]:
    """Nested dicts from dotted names: ``{"opt.lr": 1}`` → ``{"opt": {"lr": 1}}``.

    With ``spec``, nesting follows the sweep file exactly (a top-level name that
    contains a dot stays flat, as in W&B) and values are cast to W&B's types.
    """
    if spec is not None:
        return spec.run_config(config)
    out: dict[str, Any] = {}
    for key, value in config.items():
        *parents, leaf = str(key).split(".")
        node = out
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key!r} nests under {'.'.join(parents[:i + 1])!r}, "
                                 "which already holds a value")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"{key!r} holds a value and also nested names")
        node[leaf] = value
    return out
