"""One run's argv from a sweep's ``command``, expanding W&B's macros the way W&B's agent does.

The rules come from W&B's agent (``wandb_agent.py``, ``_command_run``) and
``sweep_utils.create_sweep_command(_args)``:

* ``${envvar:NAME}`` is replaced anywhere inside an item by the variable's value
  (by ``NAME`` itself when it is unset); names are ``[A-Z0-9_]*``.
* then an item that *is* a macro (starts with ``${`` and ends with ``}``) is
  replaced by its list of words; an unknown macro expands to nothing; a macro
  inside a longer item stays literal.
* ``${args}`` → ``--name=value`` per parameter, the value as Python's ``str()``
  writes it (``True``, ``None``, ``[1, 2]``, ``{'lr': 0.1}`` for a nested group);
  ``${args_no_hyphens}`` → ``name=value``; ``${args_no_boolean_flags}`` →
  ``--flag`` for True, nothing for False, ``--name=value`` otherwise;
  ``${args_json}`` → one JSON word; ``${args_json_file}`` → the path of a JSON
  file; ``${args_no_equals}`` (undocumented) → ``--name value`` as two words.
* parameters are the run's nested config, top-level keys sorted (W&B's
  ``HyperParameterSet`` sorts them).

The result is an argv list for ``subprocess`` without a shell: a value such as
``; touch /tmp/x`` stays one argument.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeps.spec import DEFAULT_COMMAND, ENVVAR_RE, SweepSpec

__all__ = ["build_command", "command_args", "ARGS_JSON_FILE"]

#: The file ``${args_json_file}`` writes in ``workdir``.
ARGS_JSON_FILE = "sweep-args.json"


def command_args(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each args macro's words for a run config (nested, as the run sees it)."""
    config = _sorted(config)
    args, no_hyphens, no_bool, no_equals = [], [], [], []
    for name, value in config.items():
        flag = f"{name}={value}"
        args.append("--" + flag)
        no_hyphens.append(flag)
        no_equals += [f"--{name}", str(value)]
        if isinstance(value, bool):
            if value:
                no_bool.append("--" + name)
        else:
            no_bool.append("--" + flag)
    return {"args": args, "args_no_hyphens": no_hyphens, "args_no_boolean_flags": no_bool,
            "args_no_equals": no_equals, "args_json": [json.dumps(config, default=str)]}


def _sorted(value: Any) -> Any:
    """Dicts with their keys sorted, at every level (W&B renests in sorted order)."""
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    return value


def build_command(spec: SweepSpec, params: Mapping[str, Any], *,
                  interpreter: str = sys.executable, env_cmd: str | None = "/usr/bin/env",
                  workdir: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv of one run of ``spec`` with ``params`` (flat dotted names, or nested).

    Constants missing from ``params`` are filled in from the spec. ``env_cmd=None``
    drops ``${env}`` (W&B does so on Windows). ``${args_json_file}`` writes
    ``workdir/sweep-args.json`` and needs ``workdir``. ``environ`` (default
    ``os.environ``) feeds ``${envvar:NAME}``.
    """
    flat = spec.flatten(params)
    missing = [p.name for p in spec.parameters if p.name not in flat]
    unfilled = [n for n in missing if spec.param(n).distribution != "constant"]
    if unfilled:
        raise ValueError(f"no value for sweep parameter(s) {', '.join(unfilled)}")
    for name in missing:
        flat[name] = spec.param(name).value
    config = spec.run_config(flat)
    environ = os.environ if environ is None else environ
    items = [ENVVAR_RE.sub(lambda m: environ.get(m.group(1), m.group(1)), item)
             for item in (spec.command or DEFAULT_COMMAND)]
    if spec.needs_program:
        raise ValueError(f"{spec.source}: the sweep has no program: — add program: train.py, "
                         "or pass --program (a Kind=sweep row: write it in TrainingCommand)")
    words = command_args(config)
    if spec.program_argv:   # a command line: the interpreter and the program together
        words.update(interpreter=[], program=list(spec.program_argv), env=[])
    else:
        words.update(interpreter=[interpreter], program=[spec.program or ""],
                     env=[env_cmd] if env_cmd else [])
    if "${args_json_file}" in items:
        words["args_json_file"] = [_write_json(workdir, words["args_json"][0])]
    argv: list[str] = []
    for item in items:
        if item.startswith("${") and item.endswith("}"):
            argv += words.get(item[2:-1], [])
        else:
            argv.append(item)
    return argv


def _write_json(workdir: str | Path | None, text: str) -> str:
    if workdir is None:
        raise ValueError("the command uses ${args_json_file}: pass workdir=<the run's folder> "
                         "for the JSON file")
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ARGS_JSON_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return str(path.resolve())
