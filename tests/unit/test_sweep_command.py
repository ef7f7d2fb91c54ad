"""build_command: W&B's macros expand as W&B's agent expands them, into an argv list."""

import json
import subprocess
import sys

import pytest

from sweeps.command import build_command, command_args
from sweeps.spec import parse_sweep

PY = "/opt/py/bin/python3"


def spec_with(command=None, **params):
    data = {"program": "train.py", "method": "random", "run_cap": 3,
            "parameters": params or {"lr": {"values": [0.1]}}}
    if command is not None:
        data["command"] = command
    return parse_sweep(data)


def argv(spec, params, **kw):
    kw.setdefault("interpreter", PY)
    return build_command(spec, params, **kw)


def test_default_command_is_env_interpreter_program_args():
    spec = spec_with(lr={"values": [0.1]}, batch={"values": [8]})
    assert argv(spec, {"lr": 0.1, "batch": 8}) == \
        ["/usr/bin/env", PY, "train.py", "--batch=8", "--lr=0.1"]


def test_a_program_given_as_a_command_line_replaces_env_and_interpreter():
    spec = spec_with(lr={"values": [0.1]}).with_program("accelerate launch train.py")
    assert argv(spec, {"lr": 0.1}) == ["accelerate", "launch", "train.py", "--lr=0.1"]
    spec = spec_with(lr={"values": [0.1]}).with_program("other.py")
    assert argv(spec, {"lr": 0.1}) == ["/usr/bin/env", PY, "other.py", "--lr=0.1"]


def test_a_sweep_without_program_cannot_build_a_command():
    data = {"method": "grid", "parameters": {"lr": {"values": [0.1]}}}
    with pytest.raises(ValueError, match="no program: .* --program"):
        build_command(parse_sweep(data), {"lr": 0.1})


def test_interpreter_defaults_to_this_python():
    assert build_command(spec_with(), {"lr": 0.1})[1] == sys.executable


def test_env_cmd_none_drops_the_env_word():
    assert argv(spec_with(), {"lr": 0.1}, env_cmd=None) == [PY, "train.py", "--lr=0.1"]


def test_values_are_written_as_python_str():
    spec = spec_with(a={"values": [True]}, b={"value": None}, c={"values": [[1, 2]]},
                     d={"min": 1e-6, "max": 1e-5})
    out = argv(spec, {"a": True, "b": None, "c": [1, 2], "d": 1e-06})
    assert out[3:] == ["--a=True", "--b=None", "--c=[1, 2]", "--d=1e-06"]


def test_every_args_macro():
    spec = spec_with(["${args}", "|", "${args_no_hyphens}", "|", "${args_no_boolean_flags}", "|",
                      "${args_json}", "|", "${args_no_equals}"],
                     flag={"values": [True, False]}, off={"values": [False]},
                     n={"min": 1, "max": 4})
    out = argv(spec, {"flag": True, "off": False, "n": 3})
    groups = " ".join(out).split(" | ")
    assert groups[0] == "--flag=True --n=3 --off=False"
    assert groups[1] == "flag=True n=3 off=False"
    assert groups[2] == "--flag --n=3"                      # True → bare flag, False → nothing
    assert json.loads(groups[3]) == {"flag": True, "n": 3, "off": False}
    assert '{"flag": true, "n": 3, "off": false}' in out          # one argv item
    last_bar = len(out) - 1 - out[::-1].index("|")
    assert out[last_bar + 1:] == ["--flag", "True", "--n", "3", "--off", "False"]


def test_hostile_value_stays_one_argv_item(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"x; touch {marker} && echo $(id)"
    spec = spec_with(["${interpreter}", "-c", "import sys; print(sys.argv[1:])", "${args}",
                      "${args_no_equals}"], name={"values": [evil]})
    out = build_command(spec, {"name": evil})
    assert out[3] == f"--name={evil}" and out[4:] == ["--name", evil]
    done = subprocess.run(out, capture_output=True, text=True, check=True)
    assert repr(evil) in done.stdout
    assert not marker.exists()


def test_nested_params_render_like_wandb():
    spec = spec_with(["${args}", "${args_json}"],
                     opt={"parameters": {"name": {"values": ["adam"]},
                                         "lr": {"values": [0.01]}}},
                     batch={"values": [32]})
    out = argv(spec, {"opt.name": "adam", "opt.lr": 0.01, "batch": 32})
    assert out[:2] == ["--batch=32", "--opt={'lr': 0.01, 'name': 'adam'}"]
    assert json.loads(out[2]) == {"batch": 32, "opt": {"lr": 0.01, "name": "adam"}}


def test_nested_params_may_be_given_nested():
    spec = spec_with(["${args_json}"], opt={"parameters": {"lr": {"values": [0.01]}}})
    assert json.loads(argv(spec, {"opt": {"lr": 0.01}})[0]) == {"opt": {"lr": 0.01}}


def test_quantized_values_with_an_integer_q_become_ints():
    spec = spec_with(k={"distribution": "q_uniform", "min": 0, "max": 64, "q": 8})
    assert argv(spec, {"k": 16.0})[-1] == "--k=16"


def test_args_json_file_writes_the_config(tmp_path):
    spec = spec_with(["${program}", "--cfg", "${args_json_file}"],
                     opt={"parameters": {"lr": {"values": [0.01]}}}, seed={"value": 1})
    out = argv(spec, {"opt.lr": 0.01}, workdir=tmp_path / "run1")
    assert out[:2] == ["train.py", "--cfg"]
    path = tmp_path / "run1" / "sweep-args.json"
    assert out[2] == str(path.resolve())
    assert json.loads(path.read_text()) == {"opt": {"lr": 0.01}, "seed": 1}


def test_args_json_file_needs_a_workdir():
    with pytest.raises(ValueError, match="pass workdir="):
        argv(spec_with(["${args_json_file}"]), {"lr": 0.1})


def test_no_json_file_unless_the_macro_is_used(tmp_path):
    argv(spec_with(), {"lr": 0.1}, workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_envvar_macro_is_replaced_inside_items():
    spec = spec_with(["--data=${envvar:DATA_DIR}/train", "${envvar:MISSING_VAR}", "${args}"])
    out = argv(spec, {"lr": 0.1}, environ={"DATA_DIR": "/data"})
    assert out == ["--data=/data/train", "MISSING_VAR", "--lr=0.1"]   # unset → its name (W&B)


def test_unknown_macro_expands_to_nothing_and_embedded_macro_stays_literal():
    spec = spec_with(["${program}", "${nope}", "--cfg=${args_json}", "${args}"])
    assert argv(spec, {"lr": 0.1}) == ["train.py", "--cfg=${args_json}", "--lr=0.1"]


def test_fixed_words_and_numbers_in_the_command_are_kept():
    spec = spec_with(["${env}", "python3", "${program}", "-b", "cfg.yaml", "--epochs", 3,
                      "${args}"])
    assert argv(spec, {"lr": 0.1}) == ["/usr/bin/env", "python3", "train.py", "-b", "cfg.yaml",
                                       "--epochs", "3", "--lr=0.1"]


def test_constants_are_filled_in_and_missing_params_are_an_error():
    spec = spec_with(lr={"values": [0.1, 0.2]}, seed={"value": 42})
    assert argv(spec, {"lr": 0.2})[3:] == ["--lr=0.2", "--seed=42"]
    with pytest.raises(ValueError, match="no value for sweep parameter"):
        argv(spec, {"seed": 42})


def test_command_args_sorts_keys_at_every_level():
    words = command_args({"b": {"z": 1, "a": 2}, "a": 0})
    assert words["args"] == ["--a=0", "--b={'a': 2, 'z': 1}"]
    assert words["args_json"] == ['{"a": 0, "b": {"a": 2, "z": 1}}']
