"""Kind yolo / yolo_label: config checks, the folder split, label files and metric names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainers.errors import ConfigError
from trainers.yolo import config as yc
from trainers.yolo.data import find_samples, read_classes, split_samples, write_split
from trainers.yolo.label import label_lines, write_classes, write_label
from trainers.yolo.progress import final_metrics, read_results, simple_name
from trainers.yolo.synthetic import make_data


def write(folder: Path, text: str, name: str = "row.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def data_yaml(tmp_path) -> Path:
    path = tmp_path / "ds" / "data.yaml"
    path.parent.mkdir()
    path.write_text("train: images/train\nval: images/val\nnames: {0: a}\n")
    return path


def train_cfg(tmp_path, data_yaml, extra: str = ""):
    return yc.load(write(tmp_path, f"data: ds/data.yaml\n{extra}"), "yolo")


# ----------------------------------------------------------------- train config
def test_minimal_config_has_the_documented_defaults(tmp_path, data_yaml):
    cfg = train_cfg(tmp_path, data_yaml)
    assert cfg.data == (data_yaml,) and cfg.data_is_yaml
    assert (cfg.model, cfg.epochs, cfg.imgsz, cfg.device, cfg.on_oom) == \
        ("yolov8n.yaml", 100, 640, "auto", "fail")
    assert (cfg.amp, cfg.plots, cfg.integrations, cfg.train_args) == ("auto", False, (), {})
    assert yc.metric(cfg) == ("mAP50-95", "max")


def test_paths_are_relative_to_the_yaml_not_the_working_dir(tmp_path, data_yaml, monkeypatch):
    monkeypatch.chdir("/")
    cfg = yc.load(write(tmp_path, "data: ds/data.yaml\nmodel: m.yaml\n"), check_paths=False)
    assert cfg.data == (data_yaml,) and cfg.model == str(tmp_path / "m.yaml")


@pytest.mark.parametrize("extra, model", [
    ("model: s", "yolov8s.yaml"), ("model: x\nfamily: yolo11", "yolo11x.yaml"),
    ("model: n\nfamily: yolo26", "yolo26n.yaml"), ("model: yolov8m.yaml", "yolov8m.yaml"),
    ("model: yolo11l.yaml", "yolo11l.yaml"),
])
def test_model_sizes_and_builtin_yamls(tmp_path, data_yaml, extra, model):
    assert train_cfg(tmp_path, data_yaml, extra).model == model


def test_local_model_files(tmp_path, data_yaml):
    (tmp_path / "mine.yaml").write_text("nc: 1\n")
    (tmp_path / "w.pt").write_bytes(b"x")
    assert train_cfg(tmp_path, data_yaml, "model: mine.yaml").model == str(tmp_path / "mine.yaml")
    assert train_cfg(tmp_path, data_yaml, "model: w.pt").model == str(tmp_path / "w.pt")


@pytest.mark.parametrize("extra, key, words", [
    ("model: yolov8n.pt", "model", "nothing is downloaded"),
    ("model: q", "model", "not a model"),
    ("model: nope.yaml", "model", "ultralytics has no nope.yaml"),
    ("model: n\nfamily: yolov5", "family", "unknown model family"),
    ("model: yolov8n.yaml\nfamily: yolo11", "family", "size letter"),
])
def test_bad_models_are_explained(tmp_path, data_yaml, extra, key, words):
    with pytest.raises(ConfigError, match=words) as e:
        train_cfg(tmp_path, data_yaml, extra)
    assert e.value.key == key


def test_unknown_train_arg_lists_the_valid_ones_and_suggests(tmp_path, data_yaml):
    with pytest.raises(ConfigError) as e:
        train_cfg(tmp_path, data_yaml, "train_args:\n  lr00: 0.1\n")
    assert e.value.key == "lr00" and "did you mean 'lr0'?" in e.value.fix
    valid = e.value.fix.split("valid train_args: ")[1].split(", ")
    assert {"lr0", "mosaic", "patience", "optimizer", "seed"} <= set(valid)
    assert "epochs" not in valid and "project" not in valid   # set by the kind itself


def test_train_args_come_from_ultralytics_default_yaml(tmp_path, data_yaml):
    cfg = train_cfg(tmp_path, data_yaml, "train_args: {lr0: 0.02, mosaic: 0.5, optimizer: SGD, "
                                         "cache: ram, freeze: 3, cos_lr: true}")
    assert cfg.train_args == {"lr0": 0.02, "mosaic": 0.5, "optimizer": "SGD", "cache": "ram",
                              "freeze": 3, "cos_lr": True}
    assert "lr0" in yc.ultralytics_args() and yc.ultralytics_args()["epochs"] == 100


@pytest.mark.parametrize("extra, words", [
    ("train_args: {epochs: 3}", "use the top-level key epochs"),
    ("train_args: {project: x}", "managed"),
    ("train_args: {mosaic: yes}", "must be a number"),
    ("train_args: {cos_lr: 1}", "true or false"),
    ("train_args: [lr0]", "mapping"),
])
def test_train_args_misuse(tmp_path, data_yaml, extra, words):
    with pytest.raises(ConfigError) as e:
        train_cfg(tmp_path, data_yaml, extra)
    assert words in str(e.value)


def test_unknown_top_level_keys(tmp_path, data_yaml):
    with pytest.raises(ConfigError) as e:
        train_cfg(tmp_path, data_yaml, "epoch: 3")
    assert "did you mean 'epochs'?" in e.value.fix and "batch_per_gpu" in e.value.fix
    with pytest.raises(ConfigError, match="put it under train_args"):
        train_cfg(tmp_path, data_yaml, "lr0: 0.1")


def test_batch_keys(tmp_path, data_yaml):
    cfg = train_cfg(tmp_path, data_yaml, "batch_per_gpu: 8\non_oom: halve_batch\nmin_batch: 2")
    assert (cfg.batch_per_gpu, cfg.batch, cfg.on_oom, cfg.min_batch) == (8, None, "halve_batch", 2)
    assert train_cfg(tmp_path, data_yaml, "batch: 64").batch == 64
    with pytest.raises(ConfigError, match="both set"):
        train_cfg(tmp_path, data_yaml, "batch: 64\nbatch_per_gpu: 8")
    with pytest.raises(ConfigError, match="min_batch is per GPU"):
        train_cfg(tmp_path, data_yaml, "batch_per_gpu: 4\nmin_batch: 8")
    with pytest.raises(ConfigError, match=">= 1"):
        train_cfg(tmp_path, data_yaml, "batch_per_gpu: 0")
    with pytest.raises(ConfigError, match="fail, halve_batch"):
        train_cfg(tmp_path, data_yaml, "on_oom: retry")


@pytest.mark.parametrize("value, expected", [
    ("ReLU", "nn.ReLU()"), ("silu", "nn.SiLU()"), ("nn.LeakyReLU(0.1)", "nn.LeakyReLU(0.1)"),
    ("torch.nn.Hardswish()", "nn.Hardswish()"), ("Swish", "nn.SiLU()"),
])
def test_activation_override_becomes_a_model_yaml_value(tmp_path, data_yaml, value, expected):
    assert train_cfg(tmp_path, data_yaml, f"activation: {value}").activation == expected


def test_bad_activation(tmp_path, data_yaml):
    with pytest.raises(ConfigError) as e:
        train_cfg(tmp_path, data_yaml, "activation: Relu7")
    assert "ReLU" in e.value.fix and e.value.key == "activation"
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="fixes its activation"):
        train_cfg(tmp_path, data_yaml, "model: w.pt\nactivation: ReLU")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("bf16", "bf16"), ("false", False),
                                             ("fp32", False)])
def test_amp_choices(tmp_path, data_yaml, value, expected):
    assert train_cfg(tmp_path, data_yaml, f"amp: {value}").amp == expected


def test_fp16_amp_is_refused_because_its_check_downloads(tmp_path, data_yaml):
    with pytest.raises(ConfigError, match="downloads") as e:
        train_cfg(tmp_path, data_yaml, "amp: true")
    assert "bf16" in e.value.fix


def test_device_is_checked_when_the_queue_loads(tmp_path, data_yaml):
    assert train_cfg(tmp_path, data_yaml, "device: 0,2").device == (0, 2)
    with pytest.raises(ConfigError, match="listed twice"):
        train_cfg(tmp_path, data_yaml, "device: [1, 1]")


def test_data_forms(tmp_path, data_yaml):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = train_cfg(tmp_path, data_yaml, "data: [a, b]\nval_fraction: 0.25\nsplit_seed: 3")
    assert cfg.data == (tmp_path / "a", tmp_path / "b") and not cfg.data_is_yaml
    assert (cfg.val_fraction, cfg.split_seed) == (0.25, 3)
    for extra, words in (("data: missing", "does not exist"), ("data: []", "empty"),
                         ("data: [ds/data.yaml, a]", "folders"),
                         ("data: a\nval_fraction: 1.5", "(0, 0.9]")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            yc.load(write(tmp_path, extra))
    with pytest.raises(ConfigError, match="missing"):
        yc.load(write(tmp_path, "model: n"))


def test_unreadable_configs(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        yc.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        yc.load(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        yc.load(write(tmp_path, "data: [a\n"))
    with pytest.raises(ConfigError, match="unknown kind"):
        yc.load(write(tmp_path, "data: a"), "yolo9")


def test_config_module_is_light():
    code = ("import sys, trainers.yolo, trainers.yolo.config; "
            "print(sorted(m for m in ('torch', 'ultralytics', 'numpy', 'PIL', 'ray') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------- label config
def test_label_config(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "w.pt").write_bytes(b"x")
    cfg = yc.load(write(tmp_path, "source: imgs\nweights: w.pt\nconf: 0.5\n"), "yolo_label")
    assert (cfg.source, cfg.weights, cfg.output) == (tmp_path / "imgs", tmp_path / "w.pt", None)
    assert (cfg.conf, cfg.imgsz, cfg.device, cfg.batch, cfg.overwrite) == (0.5, None, "auto", 16,
                                                                          False)
    assert yc.metric(cfg) == ("labelled", "max")
    cfg = yc.load(write(tmp_path, "source: imgs\noutput: out\ndevice: cpu\n"), "yolo_label")
    assert cfg.weights is None and cfg.output == tmp_path / "out" and cfg.device == "cpu"
    for text, words in (("conf: 0.5", "source"), ("source: imgs\nconfs: 0.3", "did you mean"),
                        ("source: imgs\nconf: 2", "(0, 1]"), ("source: nope", "does not exist"),
                        ("source: imgs\nweights: none.pt", "does not exist")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            yc.load(write(tmp_path, text), "yolo_label")


# ----------------------------------------------------------------- folder split
def flat_folder(tmp_path: Path, n: int = 10, classes: str = "cat\ndog\n") -> Path:
    folder = tmp_path / "flat"
    make_data(folder, train=n, val=0, flat=True)
    (folder / "classes.txt").write_text(classes)
    return folder


def test_split_is_seeded_and_keeps_one_image_on_each_side():
    items = [f"img{i:03d}" for i in range(50)]
    train, val = split_samples(items, 0.2, seed=0)
    assert len(val) == 10 and len(train) == 40 and set(train) | set(val) == set(items)
    assert split_samples(list(reversed(items)), 0.2, seed=0) == (train, val)   # order-free
    assert split_samples(items, 0.2, seed=1)[1] != val
    assert [len(s) for s in split_samples(["a", "b"], 0.01, 0)] == [1, 1]
    assert [len(s) for s in split_samples(["a", "b", "c"], 0.9, 0)] == [1, 2]


def test_write_split_links_images_and_labels_into_the_project(tmp_path):
    folder = flat_folder(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    data_yaml, counts = write_split((folder,), tmp_path / "p1" / "data", 0.2, 0)
    assert counts == {"train_images": 8, "val_images": 2, "labelled_images": 10}
    spec = yaml.safe_load(data_yaml.read_text())
    assert spec["names"] == {0: "cat", 1: "dog"} and spec["path"] == str(data_yaml.parent)
    for split in ("train", "val"):
        for image in (data_yaml.parent / "images" / split).iterdir():
            label = data_yaml.parent / "labels" / split / f"{image.stem}.txt"
            assert image.resolve().parent == folder
            assert label.read_text() == image.resolve().with_suffix(".txt").read_text()
    again, _ = write_split((folder,), tmp_path / "p2" / "data", 0.2, 0)   # another run: same split
    assert sorted(p.name for p in (again.parent / "images" / "val").iterdir()) == \
        sorted(p.name for p in (data_yaml.parent / "images" / "val").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == before   # nothing written beside the data


def test_images_and_labels_layout_and_unlabelled_images(tmp_path):
    make_data(tmp_path / "std", train=3, val=2)
    (tmp_path / "std" / "labels" / "train" / "train0001.txt").unlink()
    samples = find_samples(tmp_path / "std")
    assert len(samples) == 5
    assert [s.key for s in samples if s.label is None] == ["train__train0001"]
    (tmp_path / "std" / "classes.txt").rename(tmp_path / "std" / "labels" / "classes.txt")
    assert read_classes(tmp_path / "std") == ["red", "green"]   # yolo_label output: <dir>/labels


def test_merged_folders_need_the_same_classes(tmp_path):
    a = flat_folder(tmp_path)
    b = tmp_path / "b"
    make_data(b, train=0, val=0, unlabelled=3)
    (b / "unlabelled" / "classes.txt").write_text("cat\ndog\n")
    _, counts = write_split((a, b / "unlabelled"), tmp_path / "p" / "data", 0.2, 0)
    assert counts["train_images"] + counts["val_images"] == 13 and counts["labelled_images"] == 10
    (b / "unlabelled" / "classes.txt").write_text("cat\nbird\n")
    with pytest.raises(ConfigError, match="same classes.txt"):
        write_split((a, b / "unlabelled"), tmp_path / "p" / "data", 0.2, 0)


def test_folder_without_classes_or_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no classes.txt") as e:
        write_split((tmp_path / "empty",), tmp_path / "p", 0.2, 0)
    assert "one class name a line" in e.value.fix
    (tmp_path / "empty" / "classes.txt").write_text("a\n")
    with pytest.raises(ConfigError, match="holds no images"):
        write_split((tmp_path / "empty",), tmp_path / "p", 0.2, 0)


def test_synthetic_data_is_deterministic(tmp_path):
    a = make_data(tmp_path / "a", train=3, val=2, unlabelled=2, seed=5).parent
    b = make_data(tmp_path / "b", train=3, val=2, unlabelled=2, seed=5).parent
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 3 + 3 + 2 + 2 + 2 + 2   # images+labels, unlabelled, classes, data.yaml
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


# ----------------------------------------------------------------- label files
def test_label_lines_are_yolo_format():
    text = label_lines([(1.0, 0.5, 0.25, 0.1, 0.2), (0, 1.2, -0.01, 0.3333333, 1.0)])
    assert text == "1 0.500000 0.250000 0.100000 0.200000\n0 1.000000 0.000000 0.333333 1.000000\n"
    assert label_lines([]) == ""


def test_write_label_and_classes(tmp_path):
    assert write_label(tmp_path / "a.txt", [(0, 0.5, 0.5, 0.2, 0.2)] * 3) == 3
    assert write_label(tmp_path / "b.txt", []) == 0 and (tmp_path / "b.txt").read_text() == ""
    write_classes(tmp_path / "out", {1: "dog", 0: "cat"}, overwrite=False)
    assert (tmp_path / "out" / "classes.txt").read_text() == "cat\ndog\n"
    write_classes(tmp_path / "out", {0: "cat", 1: "dog"}, overwrite=False)   # same: fine
    with pytest.raises(ConfigError, match="the weights know"):
        write_classes(tmp_path / "out", {0: "car"}, overwrite=False)
    write_classes(tmp_path / "out", {0: "car"}, overwrite=True)
    assert (tmp_path / "out" / "classes.txt").read_text() == "car\n"


# ----------------------------------------------------------------- metric names
@pytest.mark.parametrize("key, name", [
    ("metrics/mAP50-95(B)", "mAP50-95"), ("metrics/mAP50(B)", "mAP50"),
    ("metrics/precision(B)", "precision"), ("metrics/recall(B)", "recall"),
    ("train/box_loss", "box_loss"), ("val/dfl_loss", "val_dfl_loss"), ("lr/pg0", "lr_pg0"),
    ("metrics/mAP50-95(M)", "mAP50-95_mask"), ("fitness", "fitness"),
])
def test_simple_metric_names(key, name):
    assert simple_name(key) == name


def test_final_metrics_are_the_best_epochs(tmp_path):
    csv_file = tmp_path / "results.csv"
    csv_file.write_text(
        "epoch,time,train/box_loss,metrics/precision(B),metrics/mAP50(B),metrics/mAP50-95(B)\n"
        "1,1.0,3.0,0.1,0.20,0.10\n2,2.0,2.5,0.2,0.40,0.30\n3,3.0,2.0,0.3,0.45,0.30\n")
    final = final_metrics(read_results(csv_file))
    assert final == {"box_loss": 2.5, "precision": 0.2, "mAP50": 0.4, "mAP50-95": 0.3,
                     "best_epoch": 2, "epochs_done": 3}
    assert final_metrics(read_results(tmp_path / "none.csv")) == {}


def test_example_configs_load():
    root = Path(__file__).resolve().parents[2] / "examples"
    assert yc.load(root / "yolo_tiny.yaml", check_paths=False).model == "yolov8n.yaml"
    assert yc.load(root / "yolo_label.yaml", "yolo_label", check_paths=False).conf > 0
