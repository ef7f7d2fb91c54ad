"""The summarization guides' configs: both access styles, their key names, a sweep's
parameters merged over the file, configs found by name, and bad names refused."""

from pathlib import Path

import pytest

from trainers.errors import ConfigError
from trainers.hf import ConfigDict, ConfigManager, load_config, merge_sweep_params
from trainers.hf.guides import _typed

TRACKER = """
model: {architecture: kobart, checkpoint: ../model}
training:
  num_train_epochs: 3
  per_device_train_batch_size: 16
  learning_rate: 5e-5
data: {train: ../data/train.csv, dev: ../data/dev.csv}
meta: {experiment_name: kobart_v1}
general: {seed: 7}
"""


@pytest.fixture
def tracker_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("LEARNING_RATE", "BATCH_SIZE", "NUM_EPOCHS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "base_config.yaml"
    path.write_text(TRACKER, encoding="utf-8")
    return path


def test_the_tracker_guides_names_mean_our_keys_and_both_access_styles_work(tracker_yaml):
    config = ConfigManager().load_config(tracker_yaml)
    assert config["training"]["epochs"] == 3 and config.training.batch_size == 16
    assert config.training.learning_rate == 5e-5 and config.training.seed == 7
    assert config.experiment.name == "kobart_v1" and config.model.architecture == "kobart"
    # relative paths are the file's folder's
    assert config.data.train == str(tracker_yaml.parent.parent / "data" / "train.csv")
    assert config.tokenizer.encoder_max_len == 512   # every key filled in


def test_edits_in_either_style_reach_the_trainer_including_a_section_not_there_yet(
        tracker_yaml):
    config = load_config(tracker_yaml)
    config["training"]["learning_rate"] = 3e-5
    config["training"]["num_train_epochs"] = 5          # the guide's name, set after ours
    config["meta"]["experiment_name"] = "kobart_optimized_v1"
    config.training.gradient_accumulation_steps = 4
    cfg = _typed(config)
    assert (cfg.training.learning_rate, cfg.training.epochs) == (3e-5, 5)
    assert cfg.training.gradient_accumulation_steps == 4
    assert cfg.experiment.name == "kobart_optimized_v1"
    with pytest.raises(KeyError):
        _ = config["training"]["no_such_key"]            # only the top makes sections
    with pytest.raises(AttributeError):
        getattr(config.training, "no_such_key")  # noqa: B009 - the attribute access itself


def test_environment_overrides_apply_when_the_file_is_read(tracker_yaml, monkeypatch):
    monkeypatch.setenv("LEARNING_RATE", "3e-5")
    monkeypatch.setenv("BATCH_SIZE", "32")
    monkeypatch.setenv("NUM_EPOCHS", "5")
    config = load_config(tracker_yaml)
    assert (config.training.learning_rate, config.training.batch_size,
            config.training.epochs) == (3e-5, 32, 5)


def test_a_sweeps_flat_parameters_land_in_their_sections(tracker_yaml):
    config = load_config(tracker_yaml)
    merged = merge_sweep_params(config, {
        "learning_rate": 1e-4, "per_device_train_batch_size": 8, "num_train_epochs": 2,
        "weight_decay": 0.05, "tokenizer.encoder_max_len": 128})
    cfg = _typed(merged)
    assert (cfg.training.learning_rate, cfg.training.batch_size, cfg.training.epochs,
            cfg.training.weight_decay) == (1e-4, 8, 2, 0.05)
    assert cfg.tokenizer.encoder_max_len == 128
    assert config.training.learning_rate == 5e-5, "the merge changed the caller's config"
    assert Path(cfg.data.train).is_absolute()


def test_a_sweep_parameter_no_section_has_is_refused_by_name(tracker_yaml):
    with pytest.raises(ConfigError) as e:
        merge_sweep_params(load_config(tracker_yaml), {"learning_rat": 1e-4})
    assert "learning_rat" in str(e.value) and "training.learning_rate" in str(e.value)


def test_a_config_is_found_by_name_under_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "configs" / "experiments"
    folder.mkdir(parents=True)
    (folder / "baseline_kobart.yaml").write_text(
        "training: {epochs: 20, batch_size: 50}\ntokenizer: {encoder_max_len: 256}\n"
        "wandb: {enabled: true, project: nlp-competition, entity: ieyeppo}\n"
        "experiment: {name: baseline_kobart, tags: [baseline, kobart]}\n", encoding="utf-8")
    config = load_config("baseline_kobart")
    assert config.tokenizer.encoder_max_len == 256 and config.wandb.project == "nlp-competition"
    assert isinstance(config, ConfigDict) and dict(config)["experiment"]["tags"] == [
        "baseline", "kobart"]
    with pytest.raises(ConfigError) as e:
        load_config("baseline_kobrat")
    assert "baseline_kobrat" in str(e.value) and "configs/" in str(e.value)


def test_an_unknown_key_in_a_guides_file_is_refused_with_the_near_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training: {num_train_epoch: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "num_train_epoch" in str(e.value)


def test_the_guides_names_read_and_write_the_keys_they_mean(tracker_yaml):
    """The tracker guide's save_experiment_summary reads num_train_epochs and
    per_device_train_batch_size back; example 3 writes meta.experiment_name."""
    config = load_config(tracker_yaml)
    assert config["training"]["num_train_epochs"] == 3
    assert config["training"]["per_device_train_batch_size"] == 16
    config["training"]["num_train_epochs"] = 5
    assert config.training.epochs == 5 and config["training"]["num_train_epochs"] == 5
    config["meta"]["experiment_name"] = "kobart_optimized_v1"
    assert config.experiment.name == "kobart_optimized_v1"
    assert config["meta"]["experiment_name"] == "kobart_optimized_v1"
    assert _typed(config).experiment.name == "kobart_optimized_v1"


def test_a_section_of_the_users_own_is_kept_and_said_not_refused(tracker_yaml, capsys):
    config = load_config(tracker_yaml)
    config["reproducibility"] = {"seed": 42, "torch_version": "2.x"}
    assert _typed(config).training.seed == 7
    assert config["reproducibility"]["seed"] == 42
    assert "'reproducibility' is not one the trainer reads" in capsys.readouterr().err
