"""A row's definition (``kinds.parse_row`` → ``JobSpec``): valid rows parse; bad cells give
messages a user can act on."""

import pickle

import pytest

from orchestrator.core import parse_duration, parse_gpu_ids, parse_resources
from orchestrator.infra.errors import ConfigError, JobError, QueueFileError
from orchestrator.kinds import parse_row


def spec(tmp_path, **cells):
    row = {"ID": "m7", "Name": "run", "TrainingCommand": "python t.py"}
    row.update(cells)
    return parse_row(row, line=7, path=tmp_path / "queue.csv", base_dir=tmp_path)


def row_error(tmp_path, **cells) -> QueueFileError:
    with pytest.raises(QueueFileError) as info:
        spec(tmp_path, **cells)
    return info.value


@pytest.mark.parametrize("value,problem,fix", [
    ("abc", "not a number", "use a fraction <= 1 (0.25, 0.5) or a whole number"),
    ("-1", "must be a finite number >= 0", "use a fraction <= 1"),
    ("1.5", "more than one GPU must be a whole number", "or a whole number (1, 2, 4)"),
    ("nan", "finite", "use a fraction"),
])
def test_bad_gpus(tmp_path, value, problem, fix):
    err = row_error(tmp_path, GPUs=value)
    text = str(err)
    assert text.startswith(f"{tmp_path / 'queue.csv'} line 7 (ID=m7): GPUs={value!r}: ")
    assert problem in text and fix in text
    assert (err.line, err.job_id, err.column, err.value) == (7, "m7", "GPUs", value)
    assert err.reason.startswith(f"GPUs={value!r}: ") and str(tmp_path) not in err.reason


def test_unknown_kind_suggests_the_near_one(tmp_path):
    err = row_error(tmp_path, Kind="comand")
    assert "Kind='comand'" in str(err) and "unknown kind" in str(err)
    assert "did you mean 'command'?" in str(err)
    assert "valid kinds: command, ddp" in str(err)


@pytest.mark.parametrize("kind", ["ddp", "DDP", " hf ", "yolo", "yolo_label"])
def test_a_builtin_kind_needs_its_config_file(tmp_path, kind):
    err = row_error(tmp_path, Kind=kind, TrainingCommand="")
    assert err.column == "Config" and "line 7 (ID=m7)" in str(err)
    assert f"a {kind.strip().lower()} row needs its config file" in str(err)
    assert "YAML's path in Config" in str(err)


@pytest.mark.parametrize("command", ["", "   ", None])
def test_empty_command(tmp_path, command):
    err = row_error(tmp_path, TrainingCommand=command)
    assert err.column == "TrainingCommand"
    assert "the command is empty" in str(err) and "write the shell command" in str(err)


def test_config_path_that_does_not_exist(tmp_path):
    err = row_error(tmp_path, Config="configs/nope.yaml")
    assert "Config='configs/nope.yaml'" in str(err)
    assert str(tmp_path / "configs" / "nope.yaml") in str(err), "names the resolved path"
    assert "relative paths start at the queue file's folder" in str(err)


def test_relative_config_path_is_resolved_against_the_queue_folder(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1\n")
    assert spec(tmp_path, Config="c.yaml").config_path == tmp_path / "c.yaml"
    assert spec(tmp_path, Config=" ").config_path is None


@pytest.mark.parametrize("bad_id", ["../x", "", "-m1", "a b", "x/y", ".hidden"])
def test_bad_id(tmp_path, bad_id):
    err = row_error(tmp_path, ID=bad_id)
    assert err.column == "ID" and f"ID={bad_id!r}" in str(err)
    assert "rename the row" in str(err) and "line 7" in str(err)


@pytest.mark.parametrize("column,value,problem", [
    ("Retries", "1.5", "must be a whole number"),
    ("Retries", "-1", ">= 0"),
    ("Retries", "1000000", "more than 100"),
    ("Retries", "1e9", "more than 100"),
    ("Workers", "0", ">= 1"),
    ("Workers", "two", "not a number"),
    ("CPUs", "-2", ">= 0"),
    ("Priority", "high", "not a number"),
    ("GpuID", "0+x", "'x' is not a GPU number"),
    ("GpuID", "1+1", "listed twice"),
    ("Resources", "bigmem=0", "must be > 0"),
    ("Resources", "a100=lots", "is not an amount"),
])
def test_bad_numbers(tmp_path, column, value, problem):
    err = row_error(tmp_path, **{column: value})
    assert f"{column}={value!r}" in str(err) and problem in str(err)
    assert err.fix, "every error says how to fix it"
    assert str(err).startswith(f"{tmp_path / 'queue.csv'} line 7 (ID=m7): ")


@pytest.mark.parametrize("text,expected", [
    ("0.25", 0.25), ("2", 2.0), ("1", 1.0), ("0", 0.0), ("", None), (" ", None), (None, None),
])
def test_gpus_values(tmp_path, text, expected):
    assert spec(tmp_path, GPUs=text).gpus == expected


def test_valid_row_parses_every_column(tmp_path):
    s = spec(tmp_path, Name=" 모델 ", Kind="Command", GPUs="0.5", CPUs="2", Workers="3",
             Priority="-1.5", Retries="2", GpuID="0+1", Resources="bigmem=0.5, a100=1",
             PretrainedModelId=" base ")
    assert (s.id, s.line, s.name, s.kind) == ("m7", 7, "모델", "command")
    assert (s.gpus, s.cpus, s.workers, s.priority, s.retries) == (0.5, 2.0, 3, -1.5, 2)
    assert s.gpu_ids == (0, 1)
    assert s.resources == (("a100", 1.0), ("bigmem", 0.5))
    assert s.parent_id == "base"


def test_defaults_for_empty_cells(tmp_path):
    s = spec(tmp_path)
    assert (s.kind, s.gpus, s.cpus, s.workers, s.priority, s.retries) == (
        "command", None, None, 1, 0.0, 0)
    assert s.gpu_ids == () and s.resources == () and s.parent_id == ""


def test_command_text_is_kept_verbatim(tmp_path):
    cmd = '  python t.py --msg "a, b" \\\n  --x 1  '
    assert spec(tmp_path, TrainingCommand=cmd).command == cmd


@pytest.mark.parametrize("pretrained,parent", [("m1", "m1"), ("-m1", ""), ("", ""), (" ", "")])
def test_parent_id(tmp_path, pretrained, parent):
    assert spec(tmp_path, PretrainedModelId=pretrained).parent_id == parent


def test_gpu_id_and_resource_parsers():
    assert parse_gpu_ids("0+1") == (0, 1)
    assert parse_gpu_ids("0, 1") == (0, 1) and parse_gpu_ids(" 2 ") == (2,)
    assert parse_gpu_ids("") == ()
    assert parse_resources("a100=1,bigmem=0.5") == (("a100", 1.0), ("bigmem", 0.5))
    assert parse_resources("ssd") == (("ssd", 1.0),)


@pytest.mark.parametrize("cell,value", [
    ("OnOOM", "more_gpu"), ("OnOOM", " Fail "), ("TimeLimit", "90m"), ("TimeLimit", "3600"),
])
def test_failure_handling_columns(tmp_path, cell, value):
    s = spec(tmp_path, **{cell: value})
    assert s.on_oom in ("more_gpu", "fail") if cell == "OnOOM" else s.time_limit in (5400, 3600)


@pytest.mark.parametrize("cells,problem", [
    ({"OnOOM": "more_gpus"}, "did you mean 'more_gpu'?"),
    ({"OnOOM": "halve_batch"}, "use more_gpu or fail"),   # a command row's batch is its own
    ({"TimeLimit": "soon"}, "not a duration"),
    ({"TimeLimit": "0"}, "more than 0 seconds"),
])
def test_bad_failure_handling_columns(tmp_path, cells, problem):
    err = row_error(tmp_path, **cells)
    assert problem in str(err) and err.column == next(iter(cells))


@pytest.mark.parametrize("text,seconds", [
    ("3600", 3600), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), (" 1.5h ", 5400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_errors_pickle_with_their_fields(tmp_path):
    err = row_error(tmp_path, GPUs="1.5")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is QueueFileError and str(back) == str(err)
    assert (back.line, back.job_id, back.column, back.value, back.fix) == (
        err.line, err.job_id, err.column, err.value, err.fix)
    for e in (ConfigError("c.ini", "metric_goal", "avg", "use max or min"), JobError("m1", "x")):
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is type(e) and str(again) == str(e)


def test_one_error_hierarchy_whose_errors_pickle_with_their_fields():
    """The trainers' config errors are the orchestrator's ConfigError (one class, two
    message forms); kind, storage and transition errors are OrchestratorErrors, so one
    ``except OrchestratorError`` keeps every deliberate error from reaching a user as a
    traceback."""
    from orchestrator.core.lifecycle import IllegalTransition
    from orchestrator.infra.errors import OrchestratorError
    from orchestrator.infra.storage import StorageError
    from orchestrator.kinds.base import KindError
    from trainers.errors import ConfigError as TrainerConfigError

    assert TrainerConfigError is ConfigError
    problem = ConfigError("hf.yaml", problem="must be > 0", key="training.learning_rate",
                          value=-1, fix="e.g. learning_rate: 3e-5")
    assert str(problem) == ("hf.yaml: training.learning_rate = -1: must be > 0 — "
                            "e.g. learning_rate: 3e-5")
    assert str(ConfigError(None, problem="no such file")) == "config: no such file"
    kind = KindError("Config", "x.yaml", "cannot run", "fix x.yaml")
    for e in (problem, kind, StorageError("s3://b: no such bucket")):
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is type(e) and str(again) == str(e)
        assert isinstance(again, OrchestratorError) and isinstance(again, ValueError)
    assert issubclass(IllegalTransition, OrchestratorError)
    back = pickle.loads(pickle.dumps(problem))
    assert (back.problem, back.key, back.value, back.fix) == (
        "must be > 0", "training.learning_rate", -1, "e.g. learning_rate: 3e-5")
