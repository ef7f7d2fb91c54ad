"""Kind ``hf``: fine-tune a HuggingFace seq2seq summarizer from a YAML config.

``python -m trainers.hf CONFIG`` runs it on Ray Train (or ``--in-process``); this
package face stays light (the queue imports it to check a row's config).
"""

from trainers.hf.config import HFConfig, load, metric

__all__ = ["HFConfig", "load", "metric"]
