"""orchestrator.kinds.command.job_script, run for real by bash."""

import ast
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from orchestrator.kinds.command import CONDA_FAILED, SETUP_FAILED, job_script

BASH = shutil.which("bash") or "/bin/bash"
PRINT_ARGV = f'{shlex.quote(sys.executable)} -c "import sys; print(sys.argv[1:])"'


def run(script: str, tmp_path, env=None):
    path = tmp_path / "job.sh"
    path.write_text(script)
    return subprocess.run([BASH, str(path)], capture_output=True, text=True, timeout=30,
                          env=env if env is not None else dict(os.environ), cwd=tmp_path)


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "queue dir"
    d.mkdir()
    return d


def test_command_is_kept_verbatim(work, tmp_path):
    command = 'echo "a  b,c" | tr a A; X=$((1+2)); echo "$X" \'$X\''
    script = job_script(command, cwd=work)
    assert command in script.splitlines()
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "A  b,c\n3 $X\n"


def test_runs_in_the_queue_folder(work, tmp_path):
    done = run(job_script("pwd", cwd=work), tmp_path)
    assert done.stdout.strip() == str(work)


def test_exit_code_is_the_commands(work, tmp_path):
    assert run(job_script("exit 7", cwd=work), tmp_path).returncode == 7


def test_pretrained_path_is_one_quoted_argument(work, tmp_path):
    weights = tmp_path / "my weights; touch PWNED" / "it's $HOME `id` best.pt"
    script = job_script(PRINT_ARGV, cwd=work, pretrained_path=str(weights))
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout.strip()) == ["--pretrained_path", str(weights)]
    assert not (work / "PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_pretrained_path_follows_the_users_arguments(work, tmp_path):
    script = job_script(PRINT_ARGV + " --lr 0.1 'a b'  \n", cwd=work, pretrained_path="/w/p.pt")
    done = run(script, tmp_path)
    assert ast.literal_eval(done.stdout.strip()) == [
        "--lr", "0.1", "a b", "--pretrained_path", "/w/p.pt"]


def test_no_pretrained_path_no_flag(work, tmp_path):
    script = job_script(PRINT_ARGV, cwd=work)
    assert "--pretrained_path" not in script
    assert ast.literal_eval(run(script, tmp_path).stdout.strip()) == []


def test_setup_script_is_sourced(work, tmp_path):
    (work / "env").mkdir()
    (work / "env" / "setup.sh").write_text('export FROM_SETUP="hello world"\nPLAIN=set\n')
    script = job_script('echo "$FROM_SETUP|$PLAIN"', cwd=work, setup_script="env/setup.sh")
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello world|set\n", "sourced (relative to cwd), not run"


@pytest.mark.parametrize("body", ["return 3\n", None], ids=["fails", "missing"])
def test_failing_setup_script_stops_the_job(work, tmp_path, body):
    setup = work / "setup.sh"
    if body is not None:
        setup.write_text(body)
    script = job_script("echo SHOULD-NOT-RUN", cwd=work, setup_script=str(setup))
    done = run(script, tmp_path)
    assert done.returncode == SETUP_FAILED == 97
    assert "SHOULD-NOT-RUN" not in done.stdout
    assert f"setup_script {setup} failed" in done.stderr


def test_conda_missing_from_path_exits_98(work, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    script = job_script("echo SHOULD-NOT-RUN", cwd=work, conda_env="my env")
    done = run(script, tmp_path, env={"PATH": str(empty), "HOME": str(tmp_path)})
    assert done.returncode == CONDA_FAILED == 98
    assert "conda is not on this node's PATH" in done.stderr
    assert "SHOULD-NOT-RUN" not in done.stdout
    assert "conda activate 'my env'" in script, "the env name is quoted"


def test_conda_activate_failure_exits_98(work, tmp_path):
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    conda = fake / "conda"
    conda.write_text("#!/bin/sh\necho 'conda() { return 1; }'\n")
    conda.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ.get('PATH', '')}")
    done = run(job_script("echo SHOULD-NOT-RUN", cwd=work, conda_env="nope"), tmp_path, env)
    assert done.returncode == 98 and "SHOULD-NOT-RUN" not in done.stdout
    assert "conda activate nope failed" in done.stderr


def test_header_is_a_comment(work, tmp_path):
    script = job_script("echo ok", cwd=work, header="q/m1 attempt 2")
    assert script.startswith("#!/usr/bin/env bash\n# q/m1 attempt 2\n")
    assert run(script, tmp_path).stdout == "ok\n"


@pytest.mark.parametrize("ending", [
    "  # the user's note",
    " --tag '#not-a-comment' # note with 'quotes",
    " \\",
    " \\\n",
    " --tag \"a # b\"",
])
def test_pretrained_path_survives_a_trailing_comment_or_continuation(work, tmp_path, ending):
    script = job_script(PRINT_ARGV + ending, cwd=work, pretrained_path="/w/p.pt")
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    argv = ast.literal_eval(done.stdout.strip())
    assert argv[-2:] == ["--pretrained_path", "/w/p.pt"], argv
    if "#not-a-comment" in ending:
        assert argv[:2] == ["--tag", "#not-a-comment"]
    if '"a # b"' in ending:
        assert argv[:2] == ["--tag", "a # b"]


def test_pretrained_path_goes_to_the_last_line_of_a_multiline_command(work, tmp_path):
    script = job_script(f"echo preparing\n{PRINT_ARGV} --x 1 # go", cwd=work,
                        pretrained_path="/w/p.pt")
    done = run(script, tmp_path)
    assert done.stdout.splitlines() == ["preparing", str(["--x", "1", "--pretrained_path",
                                                          "/w/p.pt"])]
