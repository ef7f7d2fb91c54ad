"""A user callback for ``Kind=hf`` configs: ``training.callbacks: [hf_callbacks:Perplexity]``.

It runs at each evaluation and adds a metric of its own; whatever a callback puts
into ``metrics`` (as ``eval_<name>``) is reported with the evaluation as ``<name>``.
"""

import math

from transformers import TrainerCallback


class Perplexity(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
