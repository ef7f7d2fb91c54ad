"""Built-in kinds as queue rows: their config is checked when the queue is read, and the
command a row runs quotes every value."""

import shlex
import sys
from pathlib import Path

import pytest

from orchestrator.core import JobSpec
from orchestrator.infra.errors import QueueFileError
from orchestrator.kinds import KINDS, Holds, LaunchContext, parse_row

ROOT = Path(__file__).resolve().parents[2]


def row_spec(tmp_path, **cells) -> JobSpec:
    row = {"ID": "r1", "TrainingCommand": ""}
    row.update(cells)
    return parse_row(row, line=3, path=tmp_path / "q.csv", base_dir=tmp_path)


def kind_command(kind, config, *, storage, name, workers, gpus, cpus, address) -> str:
    spec = JobSpec(id=name, line=3, kind=kind, config_path=config)
    return KINDS[kind].command(spec, LaunchContext(storage=storage, address=address, gpus=gpus,
                                                   cpus=cpus, workers=workers))


def kind_metric(kind, config) -> tuple[str, str]:
    return KINDS[kind].metric(JobSpec(id="r1", line=3, kind=kind, config_path=config), "", "max")


def test_a_bad_ddp_config_is_refused_with_file_line_and_key(tmp_path):
    (tmp_path / "d.yaml").write_text("entry: m:T\nbuild: m:b\nepochz: 3\n")
    with pytest.raises(QueueFileError) as info:
        row_spec(tmp_path, Kind="ddp", Config="d.yaml")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'q.csv'} line 3 (ID=r1): Config='d.yaml'")
    assert "epochz" in text and "epochs" in text, "names the key and the near one"


def test_a_yolo_row_with_a_parent_may_name_data_the_parent_writes(tmp_path):
    (tmp_path / "y.yaml").write_text("data: [grown]\nmodel: n\nepochs: 1\nimgsz: 64\n")
    with pytest.raises(QueueFileError, match="grown"):
        row_spec(tmp_path, Kind="yolo", Config="y.yaml")
    spec = row_spec(tmp_path, Kind="yolo", Config="y.yaml", PretrainedModelId="labeller")
    assert spec.kind == "yolo" and spec.parent_id == "labeller"


def test_ray_train_kinds_pass_their_workers_and_quote_paths(tmp_path):
    config = tmp_path / "my configs" / "d d.yaml"
    argv = shlex.split(kind_command("ddp", config, storage=tmp_path / "st ore", name="r1",
                                    workers=2, gpus=0.5, cpus=1, address="10.0.0.1:6379"))
    assert argv[:4] == [sys.executable, "-m", "trainers.torch", str(config)]
    options = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert options == {"--storage": str(tmp_path / "st ore"), "--name": "r1", "--workers": "2",
                       "--gpus-per-worker": "0.5", "--cpus-per-worker": "1",
                       "--address": "10.0.0.1:6379"}


@pytest.mark.parametrize("kind,verb", [("yolo", "train"), ("yolo_label", "label")])
def test_yolo_kinds_run_their_verb_in_the_rows_folder(tmp_path, kind, verb):
    argv = shlex.split(kind_command(kind, tmp_path / "y.yaml", storage=tmp_path / "st",
                                    name="r1", workers=1, gpus=1, cpus=0, address=""))
    assert argv[2:] == ["trainers.yolo", verb, str(tmp_path / "y.yaml"),
                        "--project", str(tmp_path / "st")]
    assert KINDS[kind].holds is Holds.RUNNER, "ultralytics runs its own DDP on the row's GPUs"


def test_each_kind_has_its_own_metric():
    examples = ROOT / "examples"
    assert kind_metric("ddp", examples / "ddp_dummy.yaml") == ("valid_loss", "min")
    assert kind_metric("yolo", examples / "yolo_tiny.yaml")[1] == "max"


def test_a_config_edited_after_it_passed_is_checked_again(tmp_path):
    config = tmp_path / "d.yaml"
    config.write_text("entry: m:T\nbuild: m:b\nepochs: 3\n")
    assert row_spec(tmp_path, Kind="ddp", Config="d.yaml").kind == "ddp"
    config.write_text("entry: m:T\nbuild: m:b\nepochs: 3\nepochz: 4\n")
    with pytest.raises(QueueFileError, match="epochz"):
        row_spec(tmp_path, Kind="ddp", Config="d.yaml")


def test_halve_batch_on_a_ddp_row_needs_a_batch_size_in_its_params(tmp_path):
    (tmp_path / "d.yaml").write_text("entry: m:T\nbuild: m:b\nparams: {lr: 0.1}\n")
    with pytest.raises(QueueFileError, match="params.batch_size") as err:
        row_spec(tmp_path, Kind="ddp", Config="d.yaml", OnOOM="halve_batch")
    assert err.value.column == "OnOOM" and "more_gpu" in str(err.value)
    (tmp_path / "d.yaml").write_text("entry: m:T\nbuild: m:b\nparams: {batch_size: 32}\n")
    assert row_spec(tmp_path, Kind="ddp", Config="d.yaml", OnOOM="halve_batch").on_oom == \
        "halve_batch"


def test_a_sweep_row_names_the_program_its_file_lacks_in_training_command(tmp_path):
    (tmp_path / "s.yaml").write_text("method: grid\nparameters:\n  lr: {values: [0.1]}\n")
    with pytest.raises(QueueFileError) as info:
        row_spec(tmp_path, Kind="sweep", Config="s.yaml")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'q.csv'} line 3 (ID=r1): TrainingCommand=''")
    assert "has no program:" in text and "python train.py" in text
    spec = row_spec(tmp_path, Kind="sweep", Config="s.yaml", TrainingCommand="python t.py")
    argv = shlex.split(KINDS["sweep"].command(spec, LaunchContext(storage=tmp_path,
                                                                   address="a:1")))
    assert argv[argv.index("--program") + 1] == "python t.py"
    assert argv[argv.index("--workdir") + 1] == ".", "run from the queue's folder, as rows are"
    (tmp_path / "p.yaml").write_text("program: t.py\nmethod: grid\n"
                                     "parameters:\n  lr: {values: [0.1]}\n")
    spec = row_spec(tmp_path, Kind="sweep", Config="p.yaml")
    assert "--program" not in KINDS["sweep"].command(spec, LaunchContext(storage=tmp_path,
                                                                          address="a:1"))
