"""Sweep files: W&B's whole configuration parses; bad files list every problem with its fix."""

import json
import math
import pickle
from pathlib import Path

import pytest

from orchestrator.infra.errors import OrchestratorError
from sweeps.spec import SweepError, SweepSpec, load_sweep, parse_sweep

EXAMPLES = sorted((Path(__file__).parents[2] / "configs" / "sweeps").glob("*.yaml"))


def sweep(method="random", **params) -> dict:
    return {"program": "train.py", "method": method, "run_cap": 10,
            "metric": {"name": "loss"}, "parameters": params}


def problems(data, source="sweep.yaml") -> str:
    with pytest.raises(SweepError) as info:
        parse_sweep(data, source)
    return str(info.value)


def warnings_of(spec: SweepSpec) -> str:
    return "\n".join(str(w) for w in spec.warnings)


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


# -- what parses -------------------------------------------------------------------------

@pytest.mark.parametrize("body,dist", [
    ({"values": [1, 2]}, "categorical"),
    ({"value": "adam"}, "constant"),
    ({"min": 1, "max": 10}, "int_uniform"),
    ({"min": 0.1, "max": 1}, "uniform"),
    ({"min": 0, "max": 1.0}, "uniform"),
    ({"values": ["a", "b"], "probabilities": [0.3, 0.7]}, "categorical"),
])
def test_distribution_is_inferred_as_wandb_does(body, dist):
    spec = parse_sweep(sweep(x=body))
    assert spec.param("x").distribution == dist


@pytest.mark.parametrize("body", [
    {"distribution": "constant", "value": 3},
    {"distribution": "categorical", "values": [1, 2, 3]},
    {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [.5, .5]},
    {"distribution": "int_uniform", "min": -3, "max": 3},
    {"distribution": "uniform", "min": -1, "max": 1},
    {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
    {"distribution": "log_uniform", "min": -10, "max": -2},
    {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
    {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2},
    {"distribution": "q_log_uniform_values", "min": 1, "max": 256, "q": 1},
    {"distribution": "inv_log_uniform", "min": 2, "max": 9},
    {"distribution": "inv_log_uniform_values", "min": 0.001, "max": 0.1},
    {"distribution": "normal", "mu": 1, "sigma": 2},
    {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
    {"distribution": "log_normal", "mu": -3, "sigma": 0.5},
    {"distribution": "q_log_normal", "mu": 2, "sigma": 1, "q": 1},
    {"distribution": "beta", "a": 2, "b": 5},
    {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1},
])
def test_every_wandb_distribution_parses(body):
    p = parse_sweep(sweep(x=body)).param("x")
    expected = "categorical" if body["distribution"].startswith("categorical") else \
        body["distribution"]
    assert p.distribution == expected
    for key in ("min", "max", "q", "mu", "sigma", "a", "b"):
        if key in body:
            assert getattr(p, key) == body[key]


def test_wandb_defaults_fill_missing_numbers():
    spec = parse_sweep(sweep(n={"distribution": "normal"}, b={"distribution": "q_beta", "q": 0.1},
                             u={"distribution": "q_uniform", "min": 0, "max": 4}))
    assert (spec.param("n").mu, spec.param("n").sigma) == (0.0, 1.0)
    assert (spec.param("b").a, spec.param("b").b) == (1.0, 1.0)
    assert spec.param("u").q == 1.0


def test_whole_file_fields_and_normalized_view():
    data = sweep("bayes", lr={"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2})
    data.update(name="s1", project="p", entity="e", description="d",
                metric={"name": "acc", "goal": "maximize", "target": 0.9},
                early_terminate={"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3},
                command=["${env}", "python", "${program}", "${args}"])
    spec = parse_sweep(data)
    norm = spec.normalized()
    json.dumps(norm)
    assert (norm["method"], norm["run_cap"], norm["name"], norm["project"]) == \
        ("bayes", 10, "s1", "p")
    assert norm["metric"] == {"name": "acc", "goal": "maximize", "target": 0.9}
    assert norm["parameters"]["lr"] == {"distribution": "log_uniform_values",
                                        "min": 1e-5, "max": 1e-2}
    assert norm["early_terminate"]["brackets"] == [3, 9]      # 27/3, 27/9, as W&B computes
    assert norm["command"] == ["${env}", "python", "${program}", "${args}"]
    assert norm["grid_trials"] is None


def test_exponent_forms_show_their_value_range_and_warn():
    lo, hi = math.log(1e-4), math.log(1e-2)
    spec = parse_sweep(sweep(lr={"distribution": "log_uniform", "min": lo, "max": hi},
                             w={"distribution": "inv_log_uniform", "min": 1, "max": 3}))
    assert spec.param("lr").value_range() == pytest.approx((1.0e-4, 0.01))
    assert spec.param("w").value_range() == pytest.approx((math.exp(-3), math.exp(-1)))
    assert spec.normalized()["parameters"]["lr"]["value_range"] == pytest.approx([1.0e-4, 0.01])
    text = warnings_of(spec)
    assert "parameters.lr: log_uniform takes natural-log exponents" in text
    assert "use log_uniform_values with min: 0.0001" in text
    assert "use inv_log_uniform_values" in text


def test_log_uniform_with_the_values_written_asks_if_the_values_were_meant():
    spec = parse_sweep(sweep(lr={"distribution": "log_uniform", "min": 0.0001, "max": 0.1}))
    text = warnings_of(spec)
    assert "min: 0.0001, max: 0.1 draw values 1.0001..1.10517" in text
    assert "did you mean log_uniform_values with min: 0.0001, max: 0.1 (the values " \
           "themselves)?" in text


def test_log_uniform_with_value_sized_bounds_warns_with_the_real_range():
    spec = parse_sweep(sweep(lr={"distribution": "log_uniform", "min": 1e-6, "max": 1e-3}))
    assert "draw values 1..1.001" in warnings_of(spec)   # and asks if values were meant


# -- sloppy real files are accepted ------------------------------------------------------

def test_seed_guide_sweep_with_numeric_strings_loads(tmp_path):
    path = write(tmp_path, """\
program: trainer.py
method: bayes
metric: {name: rouge_combined_f1, goal: maximize}
parameters:
  learning_rate: {distribution: log_uniform_values, min: 1e-6, max: 1e-3}
  per_device_train_batch_size: {values: [8, 16, 32]}
  weight_decay: {distribution: uniform, min: 0.01, max: 0.1}
""")
    spec = load_sweep(path)
    lr = spec.param("learning_rate")
    assert (lr.min, lr.max) == (1e-6, 1e-3)
    text = warnings_of(spec)
    assert "parameters.learning_rate.min: '1e-6' is text in YAML" in text
    assert "write 1.0e-06 so every tool reads a number" in text
    assert "run_cap: a bayes sweep runs until stopped" in text


def test_float_tags_and_underscores_are_numbers(tmp_path):
    path = write(tmp_path, """\
program: t.py
method: random
run_cap: "20"
parameters:
  lr: {distribution: log_uniform_values, min: !!float 1e-6, max: !!float 1e-2}
  steps: {min: 1_000, max: 5_000}
""")
    spec = load_sweep(path)
    assert spec.param("lr").min == 1e-6 and isinstance(spec.param("lr").min, float)
    assert spec.param("steps").distribution == "int_uniform"
    assert (spec.param("steps").min, spec.param("steps").max) == (1000, 5000)
    assert spec.run_cap == 20
    assert "lr" not in warnings_of(spec)          # tagged floats are real floats


def test_numeric_text_bounds_infer_int_uniform():
    spec = parse_sweep(sweep(n={"min": "2", "max": "8"}))
    assert spec.param("n").distribution == "int_uniform" and spec.param("n").max == 8


def test_duplicate_yaml_keys_warn_with_the_line(tmp_path):
    path = write(tmp_path, "program: t.py\nmethod: grid\nparameters:\n"
                 "  a: {values: [1]}\n  a: {values: [2, 3]}\n")
    spec = load_sweep(path)
    assert spec.param("a").values == (2, 3)
    assert "line 5: the key 'a' appears twice; the last one wins" in warnings_of(spec)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_sweeps_load_cleanly(path):
    spec = load_sweep(path)
    # a file without program: (toy_function.yaml) is said once: the program comes later
    assert [w.where for w in spec.warnings] == (["program"] if spec.needs_program else [])
    json.dumps(spec.normalized())


def test_there_are_example_sweeps():
    assert {p.name for p in EXAMPLES} >= {"kobart_grid.yaml", "kobart_random.yaml",
                                         "kobart_bayes_hyperband.yaml", "kobart_nested_json.yaml"}


# -- grid ------------------------------------------------------------------------------

def test_grid_trial_count_is_the_product_of_value_counts():
    spec = parse_sweep(sweep(
        "grid", a={"values": [1, 2, 3]}, n={"min": 2, "max": 5}, c={"value": "x"},
        q={"distribution": "q_uniform", "min": 0, "max": 1.05, "q": 0.25}))
    assert spec.param("n").grid_values() == (2, 3, 4, 5)
    assert spec.param("q").grid_values() == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert spec.grid_size == 3 * 4 * 1 * 5
    norm = spec.normalized()
    assert norm["grid_trials"] == 60
    assert norm["parameters"]["n"]["grid_count"] == 4


def test_grid_q_uniform_stops_before_max_like_wandb_and_says_so():
    spec = parse_sweep(sweep("grid", q={"distribution": "q_uniform", "min": 0, "max": 1,
                                        "q": 0.25}))
    assert spec.param("q").grid_values() == (0.0, 0.25, 0.5, 0.75)
    assert spec.grid_size == 4
    assert "the grid stops before max=1 (W&B uses np.arange(min, max, q))" in warnings_of(spec)
    assert "raise max to 1.125 to include it" in warnings_of(spec)


def test_grid_q_uniform_with_an_integer_step_gives_ints():
    spec = parse_sweep(sweep("grid", n={"distribution": "q_uniform", "min": 0, "max": 10,
                                        "q": 5}))
    assert spec.param("n").grid_values() == (0, 5)


def test_grid_runs_duplicate_values_once():
    spec = parse_sweep(sweep("grid", a={"values": [1, 1.0, 2, "x", "x"]}))
    assert spec.grid_size == 3
    assert "values has duplicates" in warnings_of(spec)


def test_random_sweep_has_no_grid_size():
    assert parse_sweep(sweep(a={"values": [1, 2]})).grid_size is None


# -- nesting ---------------------------------------------------------------------------

def nested_spec() -> SweepSpec:
    return parse_sweep(sweep(
        batch={"values": [32, 64]},
        optimizer={"parameters": {
            "lr": {"values": [0.1, 0.01]},
            "nadam": {"parameters": {"beta": {"values": [0.9, 0.95]}}}}},
        **{"sched.warmup": {"value": 3}}))


def test_nested_parameters_flatten_to_dotted_names():
    spec = nested_spec()
    assert spec.names == ("batch", "optimizer.lr", "optimizer.nadam.beta", "sched.warmup")
    assert spec.param("optimizer.nadam.beta").path == ("optimizer", "nadam", "beta")
    assert spec.param("sched.warmup").path == ("sched.warmup",)


def test_run_config_rebuilds_nesting_and_round_trips():
    spec = nested_spec()
    flat = {"batch": 64, "optimizer.lr": 0.01, "optimizer.nadam.beta": 0.9, "sched.warmup": 3}
    nested = spec.run_config(flat)
    assert nested == {"batch": 64, "optimizer": {"lr": 0.01, "nadam": {"beta": 0.9}},
                      "sched.warmup": 3}                  # a dotted name stays flat, as in W&B
    assert spec.flatten(nested) == flat
    assert spec.run_config(nested) == nested


def test_dotted_and_nested_name_clash_is_an_error():
    text = problems(sweep(**{"opt.lr": {"value": 1}},
                          opt={"parameters": {"lr": {"values": [1, 2]}}}))
    assert "sweep.yaml: parameters.opt.lr: 2 parameters are named 'opt.lr'" in text
    assert "rename one of them" in text


def test_nested_errors_name_the_full_path():
    text = problems(sweep(opt={"parameters": {"lr": {"distribution": "uniform", "min": 1,
                                                     "max": 0.1}}}))
    assert "sweep.yaml: parameters.opt.lr: min=1 is not less than max=0.1 — swap them" in text


# -- rejections: every problem, with the parameter and the fix -----------------------------

@pytest.mark.parametrize("body,expected", [
    ({"distribution": "loguniform", "min": 1e-5, "max": 1e-2},
     "parameters.x.distribution: unknown distribution 'loguniform' — did you mean "
     "'log_uniform'?"),
    ({"distribution": "uniform", "min": 1.0, "max": 1.0},
     "parameters.x: min=1.0 is not less than max=1.0 — swap them, or make max larger"),
    ({"distribution": "log_uniform_values", "min": 0, "max": 1},
     "parameters.x.min: min=0: a log scale needs min > 0 — use a positive lower value"),
    ({"distribution": "q_log_uniform_values", "min": -1, "max": 1, "q": 1},
     "parameters.x.min: min=-1: a log scale needs min > 0"),
    ({"distribution": "inv_log_uniform_values", "min": 0.0, "max": 1},
     "parameters.x.min: min=0.0: a log scale needs min > 0"),
    ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0},
     "parameters.x.q: q=0 must be > 0 — use a positive step, e.g. q: 0.1"),
    ({"distribution": "q_normal", "q": -0.5},
     "parameters.x.q: q=-0.5 must be > 0"),
    ({"distribution": "normal", "sigma": 0},
     "parameters.x.sigma: sigma=0 must be > 0 — use a positive sigma, e.g. sigma: 1.0"),
    ({"distribution": "log_normal", "sigma": -1},
     "parameters.x.sigma: sigma=-1 must be > 0"),
    ({"distribution": "beta", "a": 0, "b": 2},
     "parameters.x.a: a=0 must be > 0 — use a positive a"),
    ({"distribution": "q_beta", "a": 1, "b": -2, "q": 0.1},
     "parameters.x.b: b=-2 must be > 0"),
    ({"values": [1, 2, 3], "probabilities": [0.5, 0.5]},
     "parameters.x.probabilities: 2 probabilities for 3 values — give exactly one probability "
     "per value"),
    ({"values": [1, 2], "probabilities": [0.5, 0.6]},
     "parameters.x.probabilities: they sum to 1.1, not 1 — scale them, e.g. [0.4545, 0.5455]"),
    ({"values": [1, 2], "probabilities": [0.5, -0.5]},
     "parameters.x.probabilities: -0.5 is below 0"),
    ({"distribution": "int_uniform", "min": 1, "max": 2.5},
     "parameters.x.max: max=2.5 is not a whole number — use whole numbers, or distribution: "
     "uniform"),
    ({"distribution": "uniform", "min": 0},
     "parameters.x.max: missing (uniform needs max) — add max: <number>"),
    ({"distribution": "uniform", "min": "abc", "max": 1},
     "parameters.x.min: 'abc' is not a number — min must be a number"),
    ({"distribution": "uniform", "min": 0, "max": 1, "mx": 2},
     "parameters.x.mx: unknown key — did you mean 'max'?"),
    ({"min": 0},
     "parameters.x: cannot tell the distribution — add values: [...], value: x, min/max"),
    ({"valuess": [1, 2]}, "parameters.x.valuess: unknown key — did you mean 'values'?"),
    ({"value": 1, "values": [1, 2]}, "parameters.x: has both value and values — keep one"),
    ({"values": []}, "parameters.x.values: expected a non-empty list, got []"),
    ({"distribution": "log_uniform", "min": 0, "max": 800},
     "parameters.x: log_uniform takes natural-log exponents; exp(800) overflows — use "
     "log_uniform_values"),
])
def test_rejections_name_the_parameter_and_the_fix(body, expected):
    assert f"sweep.yaml: {expected}" in problems(sweep(x=body))


def test_a_bare_value_as_a_parameter_says_how_to_write_it():
    text = problems(sweep(lr=0.01))
    assert "parameters.lr: expected a mapping, got 0.01 — write lr: {value: 0.01}" in text


def test_probabilities_within_tolerance_are_accepted():
    spec = parse_sweep(sweep(x={"values": [1, 2, 3], "probabilities": [0.2, 0.3, 0.5000004]}))
    assert spec.param("x").probabilities == (0.2, 0.3, 0.5000004)
    problems(sweep(x={"values": [1, 2, 3], "probabilities": [0.2, 0.3, 0.500002]}))


@pytest.mark.parametrize("body", [
    {"distribution": "uniform", "min": 0, "max": 1},
    {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
    {"distribution": "normal"},
    {"distribution": "beta"},
])
def test_grid_over_a_continuous_distribution_is_rejected(body):
    text = problems(sweep("grid", x=body))
    assert f"parameters.x: grid cannot enumerate a {body['distribution']} distribution" in text
    assert "give values: [...], or use int_uniform or q_uniform" in text


def test_grid_rejects_probabilities():
    text = problems(sweep("grid", x={"values": [1, 2], "probabilities": [0.5, 0.5]}))
    assert "parameters.x: grid runs every value, so probabilities cannot apply" in text


@pytest.mark.parametrize("method,hint", [("bayesian", "did you mean 'bayes'?"),
                                          ("gird", "did you mean 'grid'?"),
                                          ("custom", "use grid, random or bayes")])
def test_unknown_method_suggests(method, hint):
    text = problems(sweep(method, x={"values": [1]}))
    assert f"sweep.yaml: method: unknown method {method!r} — {hint}" in text


@pytest.mark.parametrize("goal,hint", [("maximise", "did you mean 'maximize'?"),
                                        ("max", "use minimize or maximize")])
def test_bad_goal(goal, hint):
    data = sweep(x={"values": [1]})
    data["metric"] = {"name": "acc", "goal": goal}
    assert f"metric.goal: {goal!r} is not a goal — {hint}" in problems(data)


@pytest.mark.parametrize("run_cap", [0, -3, 2.5, "many", True])
def test_run_cap_must_be_a_positive_int(run_cap):
    data = sweep(x={"values": [1]})
    data["run_cap"] = run_cap
    text = problems(data)
    assert "sweep.yaml: run_cap: " in text and "use a whole number >= 1" in text


def test_unknown_top_level_key_suggests_and_lists_valid_keys():
    data = sweep(x={"values": [1]})
    data["paramters"] = {}
    text = problems(data)
    assert "sweep.yaml: paramters: unknown key — did you mean 'parameters'?" in text
    assert "valid keys: program, method" in text


def test_wandb_only_top_level_keys_are_ignored_with_a_warning():
    data = sweep(x={"values": [1]})
    data["controller"] = {"type": "local"}
    assert "controller: W&B-only key, ignored here" in warnings_of(parse_sweep(data))


def test_all_problems_are_collected_not_just_the_first():
    data = {"method": "grdi", "run_cap": 0, "metric": {"name": "l", "goal": "up"}, "foo": 1,
            "parameters": {"a": {"distribution": "uniform", "min": 2, "max": 1},
                           "b": {"values": [1, 2], "probabilities": [1, 1]}}}
    with pytest.raises(SweepError) as info:
        parse_sweep(data, "s.yaml")
    err = info.value
    wheres = [i.where for i in err.issues]
    # a missing program: is a warning now (W&B accepts such files), not among the errors
    assert wheres == ["foo", "method", "metric.goal", "parameters.a", "parameters.b.probabilities",
                      "run_cap"]
    assert str(err).splitlines() == [str(i) for i in err.issues]
    assert all(line.startswith("s.yaml: ") and " — " in line for line in str(err).splitlines())


def test_sweep_error_pickles_with_its_issues():
    with pytest.raises(SweepError) as info:
        parse_sweep(sweep(x={"distribution": "uniform", "min": 1, "max": 0}))
    err = pickle.loads(pickle.dumps(info.value))
    assert isinstance(err, OrchestratorError)
    assert err.source == "sweep.yaml" and err.issues == info.value.issues
    assert str(err) == str(info.value)


def test_missing_method_and_parameters():
    text = problems({})
    assert "method: missing — add method: grid, random or bayes" in text
    assert "parameters: missing or empty" in text
    assert "program" not in text, "a file without program: is valid (W&B accepts it)"


def test_a_file_without_program_is_accepted_with_a_warning_until_one_is_given():
    data = sweep(x={"values": [1]})
    del data["program"]
    spec = parse_sweep(data)
    assert spec.program is None and spec.needs_program
    assert "program: missing" in warnings_of(spec) and "--program" in warnings_of(spec)
    assert "TrainingCommand" in warnings_of(spec)
    given = spec.with_program("train.py")
    assert not given.needs_program and given.warnings == ()
    assert given.program == "train.py" and given.program_argv is None
    line = spec.with_program("accelerate launch 'my train.py'")
    assert line.program_argv == ("accelerate", "launch", "my train.py")
    with pytest.raises(ValueError):
        spec.with_program("  ")


def test_command_without_program_macro_needs_no_program():
    data = sweep(x={"values": [1]})
    del data["program"]
    data["command"] = ["bash", "run.sh", "${args}"]
    assert parse_sweep(data).program is None


def test_command_as_a_string_is_rejected_with_the_list_form():
    data = sweep(x={"values": [1]})
    data["command"] = "python train.py ${args}"
    assert "command: expected a non-empty list" in problems(data)


def test_command_macro_mistakes_warn():
    data = sweep(x={"values": [1]})
    data["command"] = ["${env}", "${interpreter}", "${program}", "--cfg=${args_json_file}",
                       "${arg}"]
    text = warnings_of(parse_sweep(data))
    assert "command[3]: '--cfg=${args_json_file}' stays literal" in text
    assert "command[4]: ${arg} is not a W&B macro; it expands to nothing — did you mean " \
        "'args'?" in text
    assert "command: no ${args...} macro" in text


def test_bayes_needs_a_metric_and_something_to_search():
    data = sweep("bayes", x={"value": 1})
    del data["metric"]
    text = problems(data)
    assert "metric: bayes search needs a metric" in text
    assert "parameters: bayes search needs at least one parameter to search" in text


# -- early_terminate -------------------------------------------------------------------

def with_et(et, metric=True):
    data = sweep(x={"values": [1, 2]})
    data["early_terminate"] = et
    if not metric:
        del data["metric"]
    return data


def test_hyperband_min_iter_brackets():
    et = parse_sweep(with_et({"type": "hyperband", "min_iter": 3})).early_terminate
    assert (et.min_iter, et.eta, et.strict) == (3, 3.0, None)
    assert et.brackets() == [3, 9, 27, 81, 243]


def test_hyperband_max_iter_with_s_and_eta():
    et = parse_sweep(with_et({"type": "hyperband", "max_iter": 81, "s": 3, "eta": 3,
                              "strict": True})).early_terminate
    assert et.brackets() == [3, 9, 27] and et.strict is True


def test_null_early_terminate_is_none():
    assert parse_sweep(with_et(None)).early_terminate is None


@pytest.mark.parametrize("et,expected", [
    ({"type": "hyperbnd", "min_iter": 3},
     "early_terminate.type: unknown type 'hyperbnd' — did you mean 'hyperband'?"),
    ({"type": "envelope"}, "early_terminate.type: unknown type 'envelope'"),
    ({"type": "hyperband"}, "early_terminate: hyperband needs min_iter, or max_iter with s"),
    ({"type": "hyperband", "max_iter": 27},
     "early_terminate.s: missing (max_iter needs s, the number of brackets) — add s: 2"),
    ({"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter: 0 is below 1"),
    ({"type": "hyperband", "min_iter": 2, "eta": 1}, "early_terminate.eta: eta=1 must be > 1"),
    ({"type": "hyperband", "max_iter": 2, "s": 2, "eta": 3},
     "early_terminate: max_iter=2 with eta=3 leaves no bracket"),
])
def test_bad_early_terminate(et, expected):
    assert f"sweep.yaml: {expected}" in problems(with_et(et))


def test_hyperband_needs_a_metric():
    text = problems(with_et({"type": "hyperband", "min_iter": 3}, metric=False))
    assert "early_terminate: hyperband needs a metric to compare runs" in text


def test_hyperband_extra_keys_and_both_iters_warn():
    spec = parse_sweep(with_et({"type": "hyperband", "min_iter": 2, "max_iter": 27, "s": 2,
                                "stict": True}))
    text = warnings_of(spec)
    assert "early_terminate.stict: unknown key, ignored (as W&B does) — did you mean 'strict'?" \
        in text
    assert "early_terminate.min_iter: ignored: W&B uses max_iter when both are set" in text
    assert spec.early_terminate.brackets() == [3, 9]


# -- load_sweep ------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(SweepError, match="cannot read it"):
        load_sweep(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(SweepError) as info:
        load_sweep(write(tmp_path, "method: grid\nparameters:\n  a: [1, 2\n"))
    assert "not valid YAML" in str(info.value) and "line " in str(info.value)


def test_empty_file(tmp_path):
    with pytest.raises(SweepError, match="the file is empty"):
        load_sweep(write(tmp_path, "# nothing\n"))


def test_a_bad_metric_is_said_once_not_again_as_a_missing_one():
    data = with_et({"type": "hyperband", "min_iter": 3})
    data["metric"] = {"name": "acc", "goal": "up"}
    data["method"] = "bayes"
    text = problems(data)
    assert "metric.goal: 'up' is not a goal" in text
    assert "needs a metric" not in text


def test_a_bad_top_level_value_does_not_hide_the_grid_rules():
    data = sweep("grid", x={"distribution": "uniform", "min": 0, "max": 1})
    data["run_cap"] = 0
    wheres = [i.where for i in pytest.raises(SweepError, parse_sweep, data).value.issues]
    assert wheres == ["parameters.x", "run_cap"]
