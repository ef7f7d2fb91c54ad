"""Kind ``command``: the row's TrainingCommand, run by bash in the queue's folder.

``job_script`` wraps every kind's command (setup script, conda, the parent's weights);
the script is written to the attempt's folder as ``job.sh`` so a person can see, and
rerun, exactly what ran.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from orchestrator.core import JobSpec
from orchestrator.core.failure import CONDA_FAILED, SETUP_FAILED
from orchestrator.kinds.base import Kind, KindError

__all__ = ["CommandKind", "job_script", "with_argument", "SETUP_FAILED", "CONDA_FAILED"]


class CommandKind(Kind):
    """The row's own shell command."""

    name = "command"

    def check(self, spec: JobSpec, *, check_paths: bool = True) -> None:
        if not spec.command.strip():
            raise KindError("TrainingCommand", spec.command, "the command is empty",
                            "write the shell command that trains this row")


def job_script(command: str, *, cwd: Path, setup_script: str = "", conda_env: str = "",
               pretrained_path: str = "", header: str = "", prepare: str = "") -> str:
    """The bash script for one attempt. Only ``command`` is the user's own shell text;
    every value we add is quoted. ``prepare``: a line run first (it makes a frozen copy
    of the row's code, under ``[snapshot] mode = run``)."""
    q = shlex.quote
    lines = ["#!/usr/bin/env bash", f"# {header}" if header else "", prepare,
             f"cd -- {q(str(cwd))} || {{ echo "
             + q(f"[orchestrator] the queue's folder {cwd} is not there on this node: share "
                 "it with the nodes, or run the queue where it is")
             + f" >&2; exit {SETUP_FAILED}; }}"]
    if setup_script:
        path = Path(setup_script).expanduser()
        path = path if path.is_absolute() else cwd / path
        lines.append(
            f"source {q(str(path))} || {{ echo {q(f'[orchestrator] setup_script {path} failed')}"
            f"\" (exit $?): \"{q('fix it or remove setup_script from the config')} >&2; "
            f"exit {SETUP_FAILED}; }}")
    if conda_env:
        lines += [
            "if ! command -v conda >/dev/null 2>&1; then",
            "  echo \"[orchestrator] use_conda = true but conda is not on this node's PATH: "
            "install conda, add it to PATH in setup_script, or set use_conda = false\" >&2",
            f"  exit {CONDA_FAILED}",
            "fi",
            f"eval \"$(conda shell.bash hook)\" && conda activate {q(conda_env)} || {{ echo "
            + q(f"[orchestrator] conda activate {conda_env} failed: create the env or fix "
                "conda_env") + f" >&2; exit {CONDA_FAILED}; }}",
        ]
    command = command.strip()
    if pretrained_path:
        command = with_argument(command, f"--pretrained_path {q(pretrained_path)}")
    lines.append(command)
    return "\n".join(line for line in lines if line) + "\n"


def with_argument(command: str, argument: str) -> str:
    """``command`` with ``argument`` added to its last command line: before a trailing
    ``# comment`` (which would swallow it), after a trailing ``\\`` (joined)."""
    head, _, last = command.rpartition("\n")
    while last.rstrip().endswith("\\"):   # a continuation with nothing after it
        last = last.rstrip()[:-1]
    cut = _comment_start(last)
    body, comment = (last[:cut], last[cut:]) if cut is not None else (last, "")
    last = f"{body.rstrip()} {argument}" + (f"  {comment}" if comment else "")
    return f"{head}\n{last}" if head else last


def _comment_start(line: str) -> int | None:
    """Where bash's ``#`` comment begins on ``line`` (a ``#`` starting a word outside
    quotes), or None."""
    for i, char in enumerate(line):
        if char != "#" or (i and not line[i - 1].isspace()):
            continue
        try:
            shlex.split(line[:i])   # an unclosed quote: this # is inside a string
        except ValueError:
            continue
        return i
    return None
