"""Storage URIs (trainers/storage.py) against a real local S3 server: what goes up comes
back down whole, a bad URI or an unreachable bucket says what to fix, and credentials
never travel in a URI."""

from __future__ import annotations

import pytest

from orchestrator.infra import storage
from orchestrator.infra.errors import ConfigError
from orchestrator.store.config import load_config
from tests.notify_servers import closed_port


def test_uri_parts():
    uri = "s3://bucket/runs?endpoint_override=http://127.0.0.1:9000"
    assert storage.is_uri(uri) and storage.is_uri("gs://b/p") and storage.is_uri("file:///x")
    assert not storage.is_uri("/shared/runs") and not storage.is_uri("runs/a.pt")
    assert not storage.is_uri("") and not storage.is_uri(None)
    assert storage.join(uri, "r1", "attempt-1") == \
        "s3://bucket/runs/r1/attempt-1?endpoint_override=http://127.0.0.1:9000"
    assert storage.public(storage.join(uri, "r1", "model.pt")) == "s3://bucket/runs/r1/model.pt"
    assert storage.basename("s3://bucket/runs/r1/model.pt?x=1") == "model.pt"
    # a public URI from the CSV gets the queue's endpoint back; another bucket does not
    assert storage.with_options("s3://bucket/runs/r1/model.pt", uri) == \
        "s3://bucket/runs/r1/model.pt?endpoint_override=http://127.0.0.1:9000"
    assert storage.with_options("s3://other/m.pt", uri) == "s3://other/m.pt"


def test_credentials_in_the_uri_are_refused_without_echoing_them(tmp_path):
    with pytest.raises(storage.StorageError, match="secret_key.*environment") as e:
        storage.check("s3://bucket/runs?secret_key=SEKRIT-1&region=eu-west-1")
    assert "SEKRIT-1" not in str(e.value)
    ini = tmp_path / "q.ini"
    ini.write_text("[general]\nstorage = s3://b/r?access_key=AK&secret_key=SEKRIT-2\n")
    with pytest.raises(ConfigError) as e:
        load_config(ini).validate()
    assert "storage" in str(e.value) and "SEKRIT-2" not in str(e.value)


def test_config_says_which_setting_takes_a_uri(tmp_path):
    with pytest.raises(ConfigError, match="give the URI as storage = s3://b/runs"):
        load_config(None, state_dir="s3://b/runs").validate()
    for path in ("/shared/runs", "file:///shared/runs"):
        with pytest.raises(ConfigError, match="shared filesystem path goes in state_dir"):
            load_config(None, storage=path).validate()
    with pytest.raises(ConfigError, match="no bucket"):
        load_config(None, storage="s3:///runs").validate()
    assert load_config(None, storage="s3://b/runs").validate().storage == "s3://b/runs"


def test_files_and_folders_round_trip(tmp_path, s3_server):
    base = s3_server.bucket_uri()
    (tmp_path / "best.pt").write_bytes(b"\x00weights\xff" * 1000)
    model = tmp_path / "best_model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "tokenizer.json").write_text("tok")

    file_uri = storage.upload(tmp_path / "best.pt", storage.join(base, "r1", "best.pt"))
    dir_uri = storage.upload(model, storage.join(base, "r1", "best_model"))
    assert "?" not in file_uri and file_uri.endswith("/runs/r1/best.pt")
    assert sorted(s3_server.files(base)) == ["r1/best.pt", "r1/best_model/config.json",
                                             "r1/best_model/sub/tokenizer.json"]

    got = storage.fetch(storage.with_options(file_uri, base), tmp_path / "down")
    assert got == tmp_path / "down" / "best.pt"
    assert got.read_bytes() == (tmp_path / "best.pt").read_bytes()
    folder = storage.fetch(storage.with_options(dir_uri, base), tmp_path / "down")
    assert (folder / "sub" / "tokenizer.json").read_text() == "tok"
    flat = storage.upload(model / "sub", storage.join(base, "r2", "flat"))  # no sub-folders
    assert (storage.fetch(storage.with_options(flat, base), tmp_path / "new" / "dir")
            / "tokenizer.json").read_text() == "tok"
    assert not list((tmp_path / "down").glob(".*part")), "no partial copies left"


def test_local_copy_uses_the_queue_storage_options(tmp_path, s3_server, monkeypatch):
    base = s3_server.bucket_uri()
    (tmp_path / "w.pt").write_text("v1")
    public = storage.upload(tmp_path / "w.pt", storage.join(base, "p", "w.pt"))
    assert storage.local_copy(str(tmp_path / "w.pt")) == str(tmp_path / "w.pt")  # a path: as is
    monkeypatch.setenv(storage.STORAGE_ENV, base)
    local = storage.local_copy(public, tmp_path / "cache")
    assert open(local).read() == "v1"
    # fetched once: a second call (a retried attempt) reuses the copy
    assert storage.local_copy(public, tmp_path / "cache") == local


def test_missing_object_and_unwritable_storage_say_what_to_fix(tmp_path, s3_server):
    base = s3_server.bucket_uri()
    with pytest.raises(storage.StorageError, match=r"/runs/r1/gone.pt: no such file or folder"):
        storage.fetch(storage.join(base, "r1", "gone.pt"), tmp_path)
    storage.probe(base)   # writable: passes and leaves nothing behind
    assert s3_server.files(base) == {}
    missing_bucket = base.replace("s3://orch-", "s3://nobucket-", 1)
    with pytest.raises(storage.StorageError, match="cannot write there.*bucket exists"):
        storage.probe(missing_bucket)
    with closed_port() as port:
        with pytest.raises(storage.StorageError, match="cannot write there"):
            storage.probe(f"s3://b/runs?endpoint_override=http://127.0.0.1:{port}")


def test_an_attempts_outputs_are_uploaded_and_its_weightfile_becomes_a_uri(tmp_path, s3_server):
    from orchestrator.core import AttemptReport
    from orchestrator.execution.outputs import upload_outputs

    base = s3_server.bucket_uri()
    run_dir = tmp_path / "runs" / "r1" / "attempt-2"
    (run_dir / "ckpt").mkdir(parents=True)
    (run_dir / "ckpt" / "best.pt").write_bytes(b"w")
    (run_dir / "run.log").write_text("epoch 1\n")
    elsewhere = tmp_path / "yolo" / "weights" / "last.pt"   # reported from outside the run dir
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"y")

    ok = AttemptReport("r1", 2, exit_code=0, weight_file=str(run_dir / "ckpt" / "best.pt"))
    ok = upload_outputs(ok, run_dir, storage.join(base, "r1", "attempt-2"))
    assert ok.weight_file == f"{storage.public(base)}/r1/attempt-2/ckpt/best.pt" and ok.ok
    other = AttemptReport("r1", 2, exit_code=0, weight_file=str(elsewhere))
    other = upload_outputs(other, run_dir, storage.join(base, "r1", "attempt-2"))
    assert other.weight_file.endswith("/r1/attempt-2/weights/last.pt")
    failed = AttemptReport("r2", 1, exit_code=3, weight_file="")
    upload_outputs(failed, run_dir, storage.join(base, "r2", "attempt-1"))
    assert sorted(s3_server.files(base)) == ["r1/attempt-2/ckpt/best.pt", "r1/attempt-2/run.log",
                                             "r1/attempt-2/weights/last.pt",
                                             "r2/attempt-1/run.log"]

    with closed_port() as port:   # the storage is unreachable: the attempt fails, says why
        lost = AttemptReport("r3", 1, exit_code=0, node="n1", weight_file=str(elsewhere))
        lost = upload_outputs(lost, run_dir,
                              f"s3://b/runs/r3?endpoint_override=127.0.0.1:{port}")
    assert not lost.ok and lost.weight_file == ""
    assert f"they stay on n1 at {elsewhere}" in lost.output_error
    assert lost.output_error in (run_dir / "run.log").read_text()
    assert lost.failure().kind == "exit", "retried as the row's Retries say"


def test_a_trial_folder_goes_up_with_weight_paths_relative_to_it(tmp_path, s3_server):
    import json

    from sweeps.tune_runner import _upload_trial

    base = s3_server.bucket_uri()
    trial = tmp_path / "trial_00000"
    (trial / "ckpt").mkdir(parents=True)
    (trial / "ckpt" / "best.pt").write_text("in")
    outside = tmp_path / "elsewhere.pt"
    outside.write_text("out")
    (trial / "metrics.jsonl").write_text(
        json.dumps({"loss": 2, "weight_file": str(trial / "ckpt" / "best.pt")}) + "\n"
        + json.dumps({"loss": 1, "weight_file": str(outside)}) + "\nnot json\n")
    _upload_trial(trial, storage.join(base, "sw", "trial_00000"))
    files = s3_server.files(base)
    lines = files["sw/trial_00000/metrics.jsonl"].decode().splitlines()
    assert [json.loads(x)["weight_file"] for x in lines[:2]] == ["ckpt/best.pt",
                                                                 "weights/elsewhere.pt"]
    assert lines[2] == "not json"
    assert files["sw/trial_00000/ckpt/best.pt"] == b"in"
    assert files["sw/trial_00000/weights/elsewhere.pt"] == b"out"
