"""Sampling and the Ray Tune space: every distribution draws what W&B draws (no Ray started)."""

import math
import pickle
from collections import Counter

import numpy as np
import pytest
from ray import tune
from ray.tune.search import sample as ts

from sweeps.space import Draw, grid, nest, sample, to_tune_space
from sweeps.spec import parse_sweep

N = 2000


def spec_of(method="random", **params):
    return parse_sweep({"program": "t.py", "method": method, "run_cap": 5,
                        "metric": {"name": "loss"}, "parameters": params})


def draws(body, n=N, seed=0) -> np.ndarray:
    return np.array([c["x"] for c in sample(spec_of(x=body), n, seed)])


def assert_multiples(x, q):
    k = np.round(x / q)
    assert np.allclose(x, k * q, rtol=0, atol=1e-9 * max(1.0, q))


# -- sample(): each distribution -------------------------------------------------------

def test_sample_is_seeded_and_flat():
    spec = spec_of(a={"values": [1, 2, 3]}, b={"min": 0.0, "max": 1.0},
                   opt={"parameters": {"lr": {"value": 0.1}}})
    first = sample(spec, 5, seed=7)
    assert first == sample(spec, 5, seed=7) and first != sample(spec, 5, seed=8)
    assert set(first[0]) == {"a", "b", "opt.lr"} and first[0]["opt.lr"] == 0.1


def test_constant():
    assert set(draws({"value": "adam"}, n=50)) == {"adam"}


def test_categorical_is_uniform():
    counts = Counter(draws({"values": ["a", "b", "c", "d"]}))
    assert set(counts) == {"a", "b", "c", "d"}
    assert all(abs(c / N - 0.25) < 0.04 for c in counts.values())


def test_categorical_probabilities_are_respected():
    counts = Counter(draws({"values": ["a", "b", "c"], "probabilities": [0.7, 0.2, 0.1]}))
    assert abs(counts["a"] / N - 0.7) < 0.04
    assert abs(counts["b"] / N - 0.2) < 0.03
    assert abs(counts["c"] / N - 0.1) < 0.025


def test_zero_probability_value_never_drawn():
    assert "b" not in set(draws({"values": ["a", "b"], "probabilities": [1.0, 0.0]}, n=500))


def test_int_uniform_is_inclusive_and_integer():
    x = [c["x"] for c in sample(spec_of(x={"min": 2, "max": 5}), N)]
    assert all(type(v) is int for v in x)
    assert set(x) == {2, 3, 4, 5}


def test_uniform_bounds_and_mean():
    x = draws({"distribution": "uniform", "min": -1.0, "max": 3.0})
    assert x.min() >= -1.0 and x.max() <= 3.0
    assert abs(x.mean() - 1.0) < 0.1


def test_q_uniform_is_quantized_within_rounded_bounds():
    x = draws({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1})
    assert_multiples(x, 0.1)
    assert x.min() >= 0 and x.max() <= 1.0 + 1e-9
    assert len(set(np.round(x, 6))) == 11


def test_q_uniform_with_integer_q_gives_ints_as_wandb_does():
    x = [c["x"] for c in sample(spec_of(x={"distribution": "q_uniform", "min": 0, "max": 20,
                                            "q": 5}), 200)]
    assert all(type(v) is int and v % 5 == 0 for v in x)


def test_q_uniform_default_q_gives_whole_floats():
    x = [c["x"] for c in sample(spec_of(x={"distribution": "q_uniform", "min": 0, "max": 3}), 50)]
    assert all(type(v) is float and v.is_integer() for v in x)      # W&B's default q is 1.0


def test_log_uniform_values_is_log_scaled():
    x = draws({"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2})
    assert x.min() >= 1e-6 and x.max() <= 1e-2
    assert abs(math.log10(np.median(x)) - (-4.0)) < 0.15            # geometric mean 1e-4
    logs = np.log10(x)
    assert all(abs(np.mean((logs >= k) & (logs < k + 1)) - 0.25) < 0.04 for k in range(-6, -2))


def test_log_uniform_bounds_are_natural_log_exponents():
    x = draws({"distribution": "log_uniform", "min": -10, "max": -2})
    assert x.min() >= math.exp(-10) and x.max() <= math.exp(-2)
    assert abs(math.log(np.median(x)) - (-6)) < 0.2


def test_q_log_uniform_values():
    x = draws({"distribution": "q_log_uniform_values", "min": 1, "max": 1024, "q": 1})
    assert all(type(v) is int for v in x.tolist())
    assert x.min() >= 1 and x.max() <= 1024
    assert 16 <= np.median(x) <= 48                                 # geometric mean 32


def test_q_log_uniform_exponents():
    x = draws({"distribution": "q_log_uniform", "min": 0, "max": math.log(1000), "q": 10})
    assert_multiples(x, 10)
    assert x.min() >= 0 and x.max() <= 1000


def test_inv_log_uniform_is_exp_of_minus_uniform():
    x = draws({"distribution": "inv_log_uniform", "min": 1, "max": 5})
    assert x.min() >= math.exp(-5) and x.max() <= math.exp(-1)
    assert abs(-math.log(np.median(x)) - 3) < 0.15                  # log(1/X) ~ U(1, 5)


def test_inv_log_uniform_values_spans_min_to_max_log_uniformly():
    x = draws({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1.0})
    assert x.min() >= 1e-4 and x.max() <= 1.0
    assert abs(math.log10(np.median(x)) - (-2)) < 0.15


def test_normal_mean_and_std():
    x = draws({"distribution": "normal", "mu": 5.0, "sigma": 2.0})
    assert abs(x.mean() - 5.0) < 0.15 and abs(x.std() - 2.0) < 0.15


def test_q_normal_is_quantized_normal():
    x = draws({"distribution": "q_normal", "mu": 0, "sigma": 3, "q": 0.5})
    assert_multiples(x, 0.5)
    assert abs(x.mean()) < 0.2 and abs(x.std() - 3) < 0.2


def test_log_normal_median_is_exp_mu():
    x = draws({"distribution": "log_normal", "mu": -2.0, "sigma": 0.5})
    assert x.min() > 0
    assert abs(np.log(x).mean() + 2.0) < 0.05 and abs(np.log(x).std() - 0.5) < 0.05


def test_q_log_normal():
    x = draws({"distribution": "q_log_normal", "mu": 3.0, "sigma": 0.5, "q": 2})
    assert all(type(v) is int and v % 2 == 0 for v in x.tolist())
    assert abs(np.median(x) - math.exp(3.0)) < 2.0


def test_beta_mean():
    x = draws({"distribution": "beta", "a": 2, "b": 6})
    assert x.min() >= 0 and x.max() <= 1
    assert abs(x.mean() - 0.25) < 0.02


def test_q_beta():
    x = draws({"distribution": "q_beta", "a": 5, "b": 5, "q": 0.1})
    assert_multiples(x, 0.1)
    assert x.min() >= 0 and x.max() <= 1 and abs(x.mean() - 0.5) < 0.02


# -- grid() and nest() -----------------------------------------------------------------

def test_grid_enumerates_every_combination_in_wandb_order():
    spec = spec_of("grid", b={"values": ["x", "y"]}, a={"min": 1, "max": 3}, c={"value": 0})
    configs = grid(spec)
    assert len(configs) == spec.grid_size == 6
    assert configs[:2] == [{"a": 1, "b": "x", "c": 0}, {"a": 1, "b": "y", "c": 0}]
    assert len({tuple(sorted(c.items())) for c in configs}) == 6


def test_nest_without_spec_splits_every_dot():
    assert nest({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}


def test_nest_conflict_is_an_error():
    with pytest.raises(ValueError, match="already holds a value"):
        nest({"a": 1, "a.b": 2})


def test_nest_with_spec_follows_the_file_and_casts():
    spec = spec_of(opt={"parameters": {"lr": {"values": [0.1]},
                                       "k": {"distribution": "q_uniform", "min": 0, "max": 9,
                                             "q": 3}}},
                   **{"top.level": {"value": 1}})
    assert nest({"opt.lr": 0.1, "opt.k": 6.0, "top.level": 1}, spec) == \
        {"opt": {"lr": 0.1, "k": 6}, "top.level": 1}


# -- to_tune_space(): the right Tune domains ---------------------------------------------

def domain(body, method="random"):
    return to_tune_space(spec_of(method, x=body))["x"]


def test_constant_stays_a_plain_value():
    assert domain({"value": 3}) == 3
    assert domain({"value": 3}, "grid") == 3


@pytest.mark.parametrize("body,values", [
    ({"values": [1, 2, 3]}, [1, 2, 3]),
    ({"values": [1, 1, 2]}, [1, 2]),
    ({"min": 2, "max": 4}, [2, 3, 4]),
    ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}, [0.0, 0.25, 0.5, 0.75]),
])
def test_grid_maps_to_grid_search(body, values):
    assert domain(body, "grid") == tune.grid_search(values)


def test_categorical_is_tune_choice():
    d = domain({"values": ["a", "b"]})
    assert isinstance(d, ts.Categorical) and d.categories == ["a", "b"]
    assert isinstance(d.get_sampler(), ts.Categorical._Uniform)


def test_weighted_categorical_is_a_seeded_draw():
    d = domain({"values": ["a", "b"], "probabilities": [0.9, 0.1]})
    assert isinstance(d, ts.Function) and isinstance(d.func, Draw)
    values = [d.sample() for _ in range(500)]
    assert 0.85 < values.count("a") / 500 < 0.95


def test_int_uniform_is_randint_with_exclusive_upper():
    d = domain({"min": 1, "max": 8})
    assert isinstance(d, ts.Integer) and (d.lower, d.upper) == (1, 9)
    assert set(d.sample(size=500, random_state=0)) == set(range(1, 9))


def test_uniform_is_float_uniform():
    d = domain({"min": 0.5, "max": 2.0})
    assert isinstance(d, ts.Float) and (d.lower, d.upper) == (0.5, 2.0)
    assert isinstance(d.get_sampler(), ts.Float._Uniform)


@pytest.mark.parametrize("body,bounds", [
    ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, (1e-5, 1e-1)),
    ({"distribution": "log_uniform", "min": -5, "max": 0}, (math.exp(-5), 1.0)),
    ({"distribution": "inv_log_uniform", "min": 1, "max": 4}, (math.exp(-4), math.exp(-1))),
    ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 2}, (0.01, 2.0)),
])
def test_log_distributions_are_tune_loguniform_over_the_value_range(body, bounds):
    d = domain(body)
    assert isinstance(d, ts.Float) and isinstance(d.get_sampler(), ts.Float._LogUniform)
    assert (d.lower, d.upper) == pytest.approx(bounds)
    x = np.array(d.sample(size=N, random_state=1))
    assert x.min() >= bounds[0] and x.max() <= bounds[1]
    assert math.log(np.median(x)) == pytest.approx(math.log(math.sqrt(bounds[0] * bounds[1])),
                                                   abs=0.15 * math.log(bounds[1] / bounds[0]))


def test_q_uniform_on_grid_bounds_is_tune_quniform():
    d = domain({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1})
    assert isinstance(d, ts.Float) and (d.lower, d.upper) == (0.0, 1.0)
    s = d.get_sampler()
    assert isinstance(s, ts.Quantized) and s.q == 0.1 and isinstance(s.get_sampler(), ts.Uniform)
    assert_multiples(np.array(d.sample(size=500, random_state=0)), 0.1)


def test_q_uniform_off_grid_bounds_uses_wandb_rounding():
    d = domain({"distribution": "q_uniform", "min": 0.05, "max": 0.95, "q": 0.1})
    assert isinstance(d, ts.Function) and d.func.param.distribution == "q_uniform"
    assert_multiples(np.array([d.sample() for _ in range(200)]), 0.1)


def test_q_log_uniform_values_on_grid_is_tune_qloguniform():
    d = domain({"distribution": "q_log_uniform_values", "min": 1e-4, "max": 1e-1, "q": 5e-5})
    assert isinstance(d, ts.Float) and (d.lower, d.upper) == (1e-4, 1e-1)
    s = d.get_sampler()
    assert isinstance(s, ts.Quantized) and s.q == 5e-5
    assert isinstance(s.get_sampler(), ts.LogUniform)


def test_q_log_uniform_exponents_off_grid_use_a_draw():
    d = domain({"distribution": "q_log_uniform", "min": 0, "max": 3, "q": 1})
    assert isinstance(d, ts.Function)
    x = [d.sample() for _ in range(200)]
    assert all(type(v) is int and 1 <= v <= round(math.exp(3)) for v in x)


def test_normal_is_randn_and_q_normal_is_qrandn():
    n = domain({"distribution": "normal", "mu": 1.0, "sigma": 2.0})
    assert isinstance(n, ts.Float) and isinstance(n.get_sampler(), ts.Normal)
    assert (n.get_sampler().mean, n.get_sampler().sd) == (1.0, 2.0)
    q = domain({"distribution": "q_normal", "mu": 0.0, "sigma": 1.0, "q": 0.5})
    s = q.get_sampler()
    assert isinstance(s, ts.Quantized) and s.q == 0.5
    assert (s.get_sampler().mean, s.get_sampler().sd) == (0.0, 1.0)
    assert_multiples(np.array(q.sample(size=300, random_state=2)), 0.5)


@pytest.mark.parametrize("body", [
    {"distribution": "log_normal", "mu": 0, "sigma": 1},
    {"distribution": "q_log_normal", "mu": 0, "sigma": 1, "q": 0.5},
    {"distribution": "beta", "a": 2, "b": 3},
    {"distribution": "q_beta", "a": 2, "b": 3, "q": 0.1},
])
def test_distributions_tune_lacks_are_seeded_draws(body):
    d = domain(body)
    assert isinstance(d, ts.Function) and isinstance(d.func, Draw)
    assert d.func.param.distribution == body["distribution"]


def test_draw_spaces_repeat_with_a_seed_and_pickle():
    spec = spec_of(x={"distribution": "beta", "a": 2, "b": 3})
    a = to_tune_space(spec, seed=3)["x"]
    b = to_tune_space(spec, seed=3)["x"]
    assert [a.sample() for _ in range(5)] == [b.sample() for _ in range(5)]
    again = pickle.loads(pickle.dumps(a))
    assert isinstance(again.func, Draw) and 0 <= again.sample() <= 1


def test_nested_names_stay_dotted_in_the_tune_space():
    spec = spec_of(opt={"parameters": {"lr": {"distribution": "log_uniform_values",
                                              "min": 1e-4, "max": 1e-2},
                                       "name": {"value": "adam"}}})
    space = to_tune_space(spec)
    assert set(space) == {"opt.lr", "opt.name"} and space["opt.name"] == "adam"


def test_tunes_variant_generator_resolves_the_space_without_ray():
    from ray.tune.search.variant_generator import generate_variants

    g = spec_of("grid", a={"values": [1, 2, 3]}, b={"min": 0, "max": 1}, c={"value": "k"})
    configs = [cfg for _, cfg in generate_variants(to_tune_space(g), random_state=0)]
    assert len(configs) == g.grid_size == 6
    assert {(c["a"], c["b"], c["c"]) for c in configs} == {(a, b, "k") for a in (1, 2, 3)
                                                           for b in (0, 1)}
    r = spec_of(w={"values": ["x", "y"], "probabilities": [0.5, 0.5]},
                k={"distribution": "q_log_uniform_values", "min": 1, "max": 64, "q": 1})
    (_, config), = generate_variants(to_tune_space(r, seed=0), random_state=0)
    assert config["w"] in ("x", "y") and 1 <= config["k"] <= 64
    assert type(r.run_config(config)["k"]) is int       # Tune's float 6.0 → W&B's int 6


def test_each_sweep_draws_fresh_points_unless_a_seed_repeats_them(tmp_path):
    """A rerun of a random sweep under a new name adds new samples; `--seed` / `seed:`
    repeat a sweep's draws; a resumed sweep keeps the seed it started with."""
    from ray.tune.search.variant_generator import generate_variants

    from sweeps.tune_runner import _search, _seed

    spec = spec_of(lr={"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0})

    def points(seed):
        space, _, _, _ = _search(spec, seed)
        return [cfg["lr"] for _, cfg in generate_variants(space, random_state=seed)]

    a, b = _seed(str(tmp_path / "a"), spec, None, False), _seed(str(tmp_path / "b"), spec,
                                                               None, False)
    assert a != b and points(a) != points(b), "two sweeps, two sets of points"
    assert points(a) == points(a), "the same seed draws the same points"
    assert _seed(str(tmp_path / "a"), spec, None, True) == a, "a resumed sweep keeps its seed"
    assert _seed(str(tmp_path / "c"), spec, 7, False) == 7
    seeded = parse_sweep({"method": "random", "run_cap": 2, "seed": 11,
                          "parameters": {"lr": {"values": [1, 2]}}})
    assert seeded.seed == 11 and _seed(str(tmp_path / "d"), seeded, None, False) == 11
    assert _seed(str(tmp_path / "e"), seeded, 3, False) == 3, "--seed wins over seed:"
