"""Kind ``hf``: fine-tune a HuggingFace seq2seq summarizer from a YAML config.

``python -m trainers.hf CONFIG`` runs it on Ray Train (or ``--in-process``); this
package face stays light (the queue imports it to check a row's config). The Python API
of the summarization guides (``create_trainer``, ``DialogueSummarizationTrainer``,
``load_config``, ``ModelTrainer`` …, see ``trainers.hf.guides``) is imported on first use.
"""

from trainers.hf.config import HFConfig, load, metric

_GUIDES = ("ConfigDict", "load_config", "merge_sweep_params", "ConfigManager",
           "load_model_and_tokenizer", "DialogueSummarizationDataset", "ModelTrainer",
           "DialogueSummarizationTrainer", "TrainingResult", "create_trainer")

__all__ = ["HFConfig", "load", "metric", *_GUIDES]


def __getattr__(name: str):
    if name in _GUIDES:   # transformers and torch load only when a script asks for these
        from trainers.hf import guides

        return getattr(guides, name)
    raise AttributeError(f"module 'trainers.hf' has no attribute {name!r}")
