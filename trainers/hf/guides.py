"""The summarization trainer's Python API, as the two guides our users come from write it.

One implementation (the ``hf`` kind's: ``trainers.hf.train``) under two faces:

* the experiment-tracker guide: ``create_trainer(path_or_dict, sweep_mode=False)`` →
  ``DialogueSummarizationTrainer`` (``initialize_components``, ``prepare_data``,
  ``train`` → ``TrainingResult`` with ``best_metrics``/``model_path``, ``evaluate``,
  ``generate_predictions``, ``.trainer``), and ``ConfigManager`` (``load_config``,
  ``merge_sweep_params``);
* the trainer guide: ``load_config(path_or_name)``, ``load_model_and_tokenizer(config)``,
  ``DialogueSummarizationDataset(...)``, ``create_trainer(config=, model=, tokenizer=,
  train_dataset=, ...)`` → ``ModelTrainer`` (``train`` → ``{"final_model_path",
  "eval_metrics"}``, ``evaluate``).

A config is a ``ConfigDict``: ``config['training']['learning_rate']`` and
``config.training.learning_rate`` both work, and the guides' key names
(``num_train_epochs``, ``per_device_train_batch_size``, ``meta.experiment_name``) mean
our keys (``trainers.hf.config.ALIASES``). Inside a queue row the metrics of each
evaluation and the saved model reach the row (``orchestrator.report``); outside one that
is a no-op. Hub names resolve offline unless ``HF_HUB_OFFLINE`` is set otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainers.hf.runtime import set_offline

set_offline()   # before transformers is imported: a hub name never waits on the network

from transformers import TrainerCallback, set_seed  # noqa: E402

from orchestrator.api import RUN_DIR_ENV, report  # noqa: E402
from trainers.errors import ConfigError  # noqa: E402
from trainers.hf import config as hfconfig  # noqa: E402
from trainers.hf.config import HFConfig  # noqa: E402
from trainers.hf.data import Pairs, SummaryDataset, read_pairs  # noqa: E402
from trainers.hf.rouge import compute_rouge  # noqa: E402
from trainers.hf.runtime import pick_device, resolve_checkpoint  # noqa: E402
from trainers.hf.train import (  # noqa: E402
    BEST_DIR,
    Job,
    ProgressReport,
    _best_evaluation,
    _write_best_files,
    callbacks_for,
    decode,
    load_model,
    public_metrics,
    safe_name,
    seq2seq_trainer,
    start_wandb,
    training_arguments,
)

__all__ = ["ConfigDict", "load_config", "merge_sweep_params", "ConfigManager",
           "load_model_and_tokenizer", "DialogueSummarizationDataset", "ModelTrainer",
           "DialogueSummarizationTrainer", "TrainingResult", "create_trainer"]

#: The tracker guide's names of the best evaluation's numbers.
_said: set[str] = set()   # unused sections already named
GUIDE_METRICS = {"rouge1": "rouge1_f1", "rouge2": "rouge2_f1", "rougeL": "rougeL_f1",
                 "rouge_combined": "rouge_combined_f1", "eval_loss": "loss"}


# ---- configs ---------------------------------------------------------------------------------


class ConfigDict(dict):
    """A config both ways the guides use it: ``config['training']['epochs']`` and
    ``config.training.epochs`` (reading and writing). At the top, a section not there yet
    is made on first use, so ``config['meta']['experiment_name'] = …`` works; in a
    section, the guides' names (``num_train_epochs``, ``meta.experiment_name``: ``ALIASES``)
    read and write the key they mean."""

    def __init__(self, *args, _top: bool = False, _section: str = "", _root=None,
                 **kwargs):
        super().__init__()
        object.__setattr__(self, "_top", _top)
        object.__setattr__(self, "_section", _section)
        object.__setattr__(self, "_root", _root)
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _alias(self, key) -> tuple[str, str] | None:
        target = hfconfig.ALIASES.get(f"{self._section}.{key}") if self._section else None
        return tuple(target.split(".")) if target else None

    def __setitem__(self, key, value):
        alias = self._alias(key) if self._root is not None else None
        if alias is not None:
            self._root[alias[0]][alias[1]] = value
            return
        if isinstance(value, Mapping) and not isinstance(value, ConfigDict):
            value = ConfigDict(value, _section=str(key) if self._top else "",
                               _root=self if self._top else None)
        super().__setitem__(key, value)

    def __missing__(self, key):
        if self._top:
            self[key] = {}
            return dict.__getitem__(self, key)
        alias = self._alias(key) if self._root is not None else None
        if alias is not None and alias[0] in self._root and alias[1] in self._root[alias[0]]:
            return self._root[alias[0]][alias[1]]
        raise KeyError(key)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:   # at the top only sections there already: ``config.x`` makes none
            return dict.__getitem__(self, name) if self._top else self[name]
        except KeyError:
            raise AttributeError(f"the config has no {name!r}") from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value

    def to_dict(self) -> dict:
        """Plain dicts all the way down (for YAML, W&B, JSON)."""
        return {k: v.to_dict() if isinstance(v, ConfigDict) else v for k, v in self.items()}


def _as_config(cfg: HFConfig) -> ConfigDict:
    out = ConfigDict(cfg.to_dict(), _top=True)
    object.__setattr__(out, "_source", cfg.source)
    return out


def _typed(config: Mapping, environ: Mapping[str, str] | None = None) -> HFConfig:
    """A guide's config (a mapping with any of the guides' key names) checked as ours. A
    top-level section that is not the trainer's (the tracker guide keeps its own
    ``reproducibility`` notes there) stays in the config and is said once, not used; a
    key the trainer does not know inside one of its sections is refused."""
    plain = config.to_dict() if isinstance(config, ConfigDict) else dict(config)
    known = (*hfconfig.SECTIONS, *hfconfig.ALIAS_SECTIONS, "base")
    for name in [k for k in plain if k not in known]:
        plain.pop(name)
        if name not in _said:
            _said.add(name)
            print(f"[hf] config section {name!r} is not one the trainer reads (it reads "
                  f"{', '.join(hfconfig.SECTIONS)}): kept in the config, not used",
                  file=sys.stderr)
    return hfconfig.load(plain, environ={} if environ is None else environ,
                         require_data=False, origin=getattr(config, "_source", None))


def load_config(path_or_name: str | Path, environ: Mapping[str, str] | None = None
                ) -> ConfigDict:
    """A YAML config (with its ``base:`` files and ``LEARNING_RATE``/``BATCH_SIZE``/
    ``NUM_EPOCHS`` from the environment), every key filled in. A bare name
    (``"baseline_kobart"``) is looked for as ``NAME.yaml`` in ``configs/`` and ``config/``
    (and their subfolders) under the working folder."""
    return _as_config(hfconfig.load(_find(path_or_name), environ=environ,
                                    require_data=False))


def _find(path_or_name: str | Path) -> Path:
    path = Path(path_or_name).expanduser()
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    places = [Path("configs"), Path("config"), Path(".")]
    for place in places:
        for suffix in (".yaml", ".yml"):
            found = sorted(place.rglob(f"{path.name}{suffix}")) if place.name else \
                sorted(place.glob(f"{path.name}{suffix}"))
            if found:
                return found[0]
    raise ConfigError(str(path_or_name), problem="no such config file or name", fix=(
        f"give its path, or put {path.name}.yaml under configs/ or config/ "
        f"(looked in {Path.cwd()})"))


def merge_sweep_params(config: Mapping, params: Mapping) -> ConfigDict:
    """``config`` with a sweep's parameters over it: flat names (``learning_rate``,
    ``per_device_train_batch_size``) land in their section, dotted ones
    (``training.epochs``) where they say. A name no section has is refused, naming it."""
    merged = ConfigDict(config.to_dict() if isinstance(config, ConfigDict) else config,
                        _top=True)
    object.__setattr__(merged, "_source", getattr(config, "_source", None))
    for name, value in dict(params).items():
        section, key = hfconfig.resolve_key("the sweep's parameters", str(name))
        merged[section][key] = value
    return merged


class ConfigManager:
    """The tracker guide's ``ConfigManager``: ``load_config`` and ``merge_sweep_params``."""

    def load_config(self, path: str | Path) -> ConfigDict:
        return load_config(path)

    def merge_sweep_params(self, config: Mapping, sweep_config: Mapping) -> ConfigDict:
        return merge_sweep_params(config, sweep_config)


def _config_of(config) -> ConfigDict:
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, ConfigDict):
        return config
    if isinstance(config, Mapping):
        return ConfigDict(config, _top=True)
    raise TypeError("config must be a YAML path, a config name or a mapping, not "
                    f"{type(config).__name__}")


def _active_wandb():
    """The W&B run the user's script started (None without one; wandb is not imported
    here when the script did not import it)."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


def _output_dir(name: str) -> Path:
    """Inside a queue row: the attempt's folder; else ``outputs/<name>`` here."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    safe = safe_name(name) or "model"
    return Path(run_dir) / "outputs" if run_dir else Path("outputs") / safe


# ---- data and model --------------------------------------------------------------------------


class DialogueSummarizationDataset(SummaryDataset):
    """The trainer guide's dataset: dialogues and summaries, tokenized."""

    def __init__(self, dialogues, summaries, tokenizer, encoder_max_len: int = 512,
                 decoder_max_len: int = 100):
        super().__init__(Pairs([str(d) for d in dialogues], [str(s) for s in summaries]),
                         tokenizer, int(encoder_max_len), int(decoder_max_len))


def load_model_and_tokenizer(config) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from ``model.checkpoint`` (a folder, or a hub name in the
    local cache), with ``tokenizer.special_tokens`` added."""
    cfg = _typed(_config_of(config))
    tokenizer, model = load_model(resolve_checkpoint(cfg), cfg)
    return model, tokenizer


class _ToLogger(TrainerCallback):
    """The progress lines to a user's logger (``write`` or ``info``)."""

    def __init__(self, logger):
        self.say = getattr(logger, "write", None) or logger.info

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in logs.items())
            self.say(f"[step {state.global_step}] {shown}")


def _guide_names(metrics: Mapping) -> dict:
    return {GUIDE_METRICS[k]: v for k, v in metrics.items() if k in GUIDE_METRICS}


# ---- the trainer guide's face ----------------------------------------------------------------


class ModelTrainer:
    """The trainer guide's ``ModelTrainer``: a ``Seq2SeqTrainer`` made from the config
    (``metric_for_best_model='eval_rouge_sum'`` unless the config names another,
    ``load_best_model_at_end``, ``predict_with_generate``, fp16 only on CUDA)."""

    def __init__(self, config, model, tokenizer, train_dataset, eval_dataset=None,
                 use_wandb: bool = True, logger=None):
        self.config = _config_of(config)
        cfg = _typed(self.config)
        if cfg.training.metric_for_best_model == hfconfig.Training.metric_for_best_model:
            cfg = dataclasses.replace(cfg, training=dataclasses.replace(
                cfg.training, metric_for_best_model="rouge_sum"))
        self.cfg = cfg
        self.model, self.tokenizer, self.logger = model, tokenizer, logger
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.use_wandb = bool(use_wandb and (cfg.wandb.enabled or _active_wandb()))
        self.output_dir = _output_dir(cfg.run_name)
        self._own_wandb = False
        self.training_args = self._create_training_args()
        self.trainer = self._create_trainer()

    def _create_training_args(self):
        return training_arguments(self.cfg, str(self.output_dir), pick_device(),
                                  wandb=self.use_wandb, evaluate=self.eval_dataset is not None)

    def compute_metrics(self, eval_preds) -> dict[str, float]:
        """ROUGE-1/2/L F1, their sum and the weighted combination, of generated summaries."""
        return compute_rouge(decode(self.tokenizer, eval_preds.predictions),
                             decode(self.tokenizer, eval_preds.label_ids))

    def _create_trainer(self):
        callbacks = callbacks_for(self.cfg, evaluates=self.eval_dataset is not None,
                                  extra=[_ToLogger(self.logger)] if self.logger else [])
        set_seed(self.cfg.training.seed)
        return seq2seq_trainer(self.training_args, self.model, self.tokenizer,
                               self.train_dataset, self.eval_dataset, callbacks)

    def _say(self, text: str) -> None:
        print(text, flush=True)
        if self.logger is not None:
            (getattr(self.logger, "write", None) or self.logger.info)(text)

    def train(self) -> dict[str, Any]:
        """Train; the final (best) model is saved to ``<output>/final_model``. Returns
        ``final_model_path``, ``eval_metrics`` (``eval_rouge1`` … ``eval_rouge_sum``,
        ``eval_loss``) and ``train_metrics``."""
        if self.use_wandb and _active_wandb() is None:   # so wandb.enabled: ours to open
            start_wandb(self.cfg, self.config.to_dict())   # the user's whole config
            self._own_wandb = True
        self._say(f"[hf] training {self.cfg.run_name}: {len(self.train_dataset)} pairs, "
                  f"output {self.output_dir}")
        result = self.trainer.train()
        final = self.output_dir / "final_model"
        self.trainer.save_model(str(final))
        eval_metrics = self.evaluate() if self.eval_dataset is not None else {}
        report(weight_file=str(final), **public_metrics(eval_metrics))
        self._say(f"[hf] final model saved to {final}")
        if self._own_wandb:
            import wandb

            wandb.finish()
        return {"final_model_path": str(final), "eval_metrics": eval_metrics,
                "train_metrics": dict(result.metrics)}

    def evaluate(self) -> dict[str, float]:
        """The dev set's metrics now (``eval_rouge1`` … ``eval_rouge_sum``, ``eval_loss``)."""
        return self.trainer.evaluate()


# ---- the tracker guide's face ----------------------------------------------------------------


@dataclass
class TrainingResult:
    """What ``DialogueSummarizationTrainer.train`` returns."""

    best_metrics: dict          # rouge1_f1, rouge2_f1, rougeL_f1, rouge_combined_f1, loss
    model_path: str             # the best model (model, tokenizer, metrics.json, config.yaml)
    metrics: dict = field(default_factory=dict)   # the best evaluation, our names
    output_dir: str = ""


class DialogueSummarizationTrainer:
    """The tracker guide's trainer: components, data, training, evaluation, predictions.
    ``sweep_mode``: the running W&B sweep's parameters (``wandb.config``) go over the
    config first."""

    def __init__(self, config, experiment_name: str | None = None, sweep_mode: bool = False):
        self.config = _config_of(config)
        run = _active_wandb()
        if sweep_mode and run is not None and dict(run.config):
            self.config = merge_sweep_params(self.config, dict(run.config))
        self.cfg = _typed(self.config)
        self.experiment_name = experiment_name or self.cfg.run_name
        self.output_dir = _output_dir(self.experiment_name)
        self.model_save_dir = self.output_dir / BEST_DIR
        self.model = self.tokenizer = self.trainer = None
        self.checkpoint = ""
        self.best_metrics: dict = {}

    def initialize_components(self) -> None:
        """Load the tokenizer and the model and make the HF trainer (``.trainer``)."""
        if self.trainer is not None:
            return
        set_seed(self.cfg.training.seed)
        self.checkpoint = resolve_checkpoint(self.cfg)
        self.tokenizer, self.model = load_model(self.checkpoint, self.cfg)
        wandb = self.cfg.wandb.enabled or _active_wandb() is not None
        args = training_arguments(self.cfg, str(self.output_dir / "checkpoints"),
                                  pick_device(), wandb=wandb)
        callbacks = callbacks_for(self.cfg, progress=ProgressReport(also=_guide_names))
        # made now so a script can add callbacks before training (the guide's
        # ``trainer.trainer.add_callback``); ``train`` hands it the datasets
        self.trainer = seq2seq_trainer(args, self.model, self.tokenizer, train_dataset=[],
                                       eval_dataset=[], callbacks=callbacks)

    def prepare_data(self, train_path: str | None = None, val_path: str | None = None,
                     test_path: str | None = None) -> dict[str, SummaryDataset]:
        """``{"train", "validation"[, "test"]}`` from the CSVs given, else the config's
        ``data.train`` / ``data.dev`` / ``data.test``."""
        self.initialize_components()
        data, cfg = self.cfg.data, self.cfg
        paths = {"train": train_path or data.train, "validation": val_path or data.dev,
                 "test": test_path or data.test}
        for split, key in (("train", "data.train"), ("validation", "data.dev")):
            if not paths[split]:
                raise ConfigError(cfg.source, problem="missing: the CSV of dialogue/summary pairs",
                                  key=key, fix=f"set {key} or pass prepare_data("
                                  f"{'train_path' if split == 'train' else 'val_path'}=...)")
        return {split: SummaryDataset(read_pairs(path, data.dialogue_column,
                                                 data.summary_column, key=split),
                                      self.tokenizer, cfg.tokenizer.encoder_max_len,
                                      cfg.tokenizer.decoder_max_len)
                for split, path in paths.items() if path}

    def train(self, datasets: Mapping[str, SummaryDataset],
              resume_from_checkpoint: str | None = None) -> TrainingResult:
        """Train on ``datasets['train']``, evaluating ``datasets['validation']`` each epoch;
        the best model is saved to ``model_save_dir``."""
        self.initialize_components()
        self.trainer.train_dataset = datasets["train"]
        self.trainer.eval_dataset = datasets["validation"]
        print(f"[hf] {self.experiment_name}: {len(datasets['train'])} train / "
              f"{len(datasets['validation'])} dev pairs, output {self.output_dir}", flush=True)
        self.trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        best = _best_evaluation(self.trainer.state)
        if self.model_save_dir.exists():
            shutil.rmtree(self.model_save_dir)
        self.trainer.save_model(str(self.model_save_dir))
        job = Job(self.cfg, str(self.output_dir), self.checkpoint)
        _write_best_files(job, self.trainer.state, best, [])
        self.best_metrics = _guide_names(best)
        report(weight_file=str(self.model_save_dir), **best, **self.best_metrics)
        print(f"[hf] best model ({json.dumps(self.best_metrics)}) saved to "
              f"{self.model_save_dir}", flush=True)
        return TrainingResult(best_metrics=dict(self.best_metrics),
                              model_path=str(self.model_save_dir), metrics=best,
                              output_dir=str(self.output_dir))

    def evaluate(self, dataset: SummaryDataset, metric_key_prefix: str = "eval") -> dict:
        """``dataset``'s metrics (``<prefix>_rouge1`` …, ``<prefix>_loss``)."""
        self.initialize_components()
        return self.trainer.evaluate(eval_dataset=dataset, metric_key_prefix=metric_key_prefix)

    def generate_predictions(self, dataset: SummaryDataset, max_samples: int | None = None
                             ) -> list[dict[str, str]]:
        """Summaries of the first ``max_samples`` pairs: ``input``, ``prediction``,
        ``reference`` each."""
        self.initialize_components()
        pairs = dataset.pairs.head(max_samples) if max_samples else dataset.pairs
        sample = SummaryDataset(pairs, self.tokenizer, self.cfg.tokenizer.encoder_max_len,
                                self.cfg.tokenizer.decoder_max_len)
        texts = decode(self.tokenizer, self.trainer.predict(sample).predictions)
        return [{"input": d, "prediction": p, "reference": r}
                for d, r, p in zip(pairs.dialogues, pairs.summaries, texts, strict=True)]


# ---- one entry for both ----------------------------------------------------------------------


def create_trainer(config=None, model=None, tokenizer=None, train_dataset=None,
                   eval_dataset=None, use_wandb: bool = True, logger=None, *,
                   sweep_mode: bool = False, experiment_name: str | None = None):
    """Both guides' ``create_trainer``. With a model, a tokenizer and a train dataset
    (the trainer guide): a ``ModelTrainer``. With only a config path or mapping (the
    tracker guide): a ``DialogueSummarizationTrainer`` with its components loaded."""
    if model is None and tokenizer is None and train_dataset is None:
        if config is None:
            raise TypeError("create_trainer needs a config (a YAML path or a mapping)")
        trainer = DialogueSummarizationTrainer(config, experiment_name=experiment_name,
                                               sweep_mode=sweep_mode)
        trainer.initialize_components()
        return trainer
    missing = [n for n, v in (("model", model), ("tokenizer", tokenizer),
                              ("train_dataset", train_dataset)) if v is None]
    if missing or config is None:
        raise TypeError("create_trainer(config=, model=, tokenizer=, train_dataset=) needs "
                        f"{', '.join(missing or ['config'])} as well")
    return ModelTrainer(config, model, tokenizer, train_dataset, eval_dataset,
                        use_wandb=use_wandb, logger=logger)
