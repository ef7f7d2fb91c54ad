"""The dialogue/summary CSVs: read, checked before any worker starts, tokenized.

``read_pairs`` needs only the standard library, so the driver checks the files
(present, the two columns there, not empty) before Ray starts: a wrong column
name then fails in a second instead of after the worker group is up.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from trainers.errors import ConfigError

__all__ = ["Pairs", "read_pairs", "check_data", "SummaryDataset"]


@dataclass(frozen=True)
class Pairs:
    dialogues: list[str]
    summaries: list[str]

    def __len__(self) -> int:
        return len(self.dialogues)

    def head(self, n: int) -> Pairs:
        return Pairs(self.dialogues[:n], self.summaries[:n])


def read_pairs(path: str | Path, dialogue_column: str = "dialogue",
               summary_column: str = "summary", key: str = "data") -> Pairs:
    """The two columns of a CSV; ``ConfigError`` naming the file when it cannot serve."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in (dialogue_column, summary_column) if c not in columns]
            if missing:
                raise ConfigError(path, problem=f"no column {', '.join(missing)} (columns: "
                                  f"{', '.join(columns) or 'none'})", key=key,
                                  fix="rename the columns or set data.dialogue_column / "
                                      "data.summary_column")
            rows = [(r[dialogue_column] or "", r[summary_column] or "") for r in reader]
    except OSError as e:
        raise ConfigError(path, problem=f"cannot read: {e.strerror or e}", key=key,
                          fix="check the path (relative to the YAML's folder)") from None
    if not rows:
        raise ConfigError(path, problem="no rows", key=key,
                          fix="the CSV needs dialogue/summary pairs")
    return Pairs([d for d, _ in rows], [s for _, s in rows])


def check_data(cfg) -> tuple[Pairs, Pairs]:
    """Both of a config's CSVs, read and checked."""
    data = cfg.data
    return tuple(read_pairs(getattr(data, k), data.dialogue_column, data.summary_column,
                            key=f"data.{k}") for k in ("train", "dev"))


class SummaryDataset:
    """Tokenized pairs as the dicts a ``DataCollatorForSeq2Seq`` pads."""

    def __init__(self, pairs: Pairs, tokenizer, encoder_max_len: int, decoder_max_len: int):
        self.pairs = pairs   # the texts, for predictions beside their inputs and references
        inputs = tokenizer(pairs.dialogues, max_length=encoder_max_len, truncation=True)
        labels = tokenizer(text_target=pairs.summaries, max_length=decoder_max_len,
                           truncation=True)
        self.items = [{"input_ids": ids, "attention_mask": mask, "labels": target}
                      for ids, mask, target in zip(inputs["input_ids"], inputs["attention_mask"],
                                                   labels["input_ids"], strict=True)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]
