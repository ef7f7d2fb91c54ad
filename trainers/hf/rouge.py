"""ROUGE-1/2/L F1 with the ``rouge-score`` package, on whitespace tokens.

``evaluate.load('rouge')`` reaches the hub, so the package is used directly. Its
default tokenizer keeps only ``[a-z0-9]`` and would drop Korean dialogue
entirely (every score 0), so text is lower-cased and split on whitespace
instead. ``rouge_sum`` is the three F1s added; ``rouge_combined`` weighs them
0.33/0.33/0.34 (the competition's single number).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WhitespaceTokenizer", "compute_rouge", "ROUGE_KEYS", "COMBINED_WEIGHTS"]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
COMBINED_WEIGHTS = {"rouge1": 0.33, "rouge2": 0.33, "rougeL": 0.34}


class WhitespaceTokenizer:
    """The ``tokenizer=`` rouge-score accepts: any script survives (Korean, accents...)."""

    def tokenize(self, text: str) -> list[str]:
        return text.lower().split()


def compute_rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean F1 of each ROUGE over the pairs, plus ``rouge_sum`` and ``rouge_combined``."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=WhitespaceTokenizer())
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # (target, prediction)
        for key in ROUGE_KEYS:
            totals[key] += scores[key].fmeasure
    n = max(len(predictions), 1)
    result = {key: totals[key] / n for key in ROUGE_KEYS}
    result["rouge_sum"] = sum(result[key] for key in ROUGE_KEYS)
    result["rouge_combined"] = sum(COMBINED_WEIGHTS[k] * result[k] for k in ROUGE_KEYS)
    return result
