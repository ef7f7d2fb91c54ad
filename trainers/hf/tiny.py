"""A tiny seq2seq model and synthetic dialogue data: tests and demos with no downloads.

``make_data`` writes dialogue/summary pairs (half Korean, like the competition's
data) whose summary copies a name, an item and a count out of the dialogue, so a
model can learn it in a few epochs and ROUGE rises. ``make_tiny`` trains a
byte-level BPE tokenizer on the data's text and saves it with a randomly
initialised BART (or T5) of d_model 64 and 2 layers, so ``model.checkpoint:
<that folder>`` works offline like any hub model.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from trainers.errors import ConfigError

__all__ = ["make_data", "make_tiny", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>"}
_NAMES = ["민수", "지영", "철수", "영희", "Tom", "Anna", "서연", "Mike"]
_ITEMS = [("사과", "apples"), ("책", "books"), ("커피", "coffee"), ("우유", "milk"),
          ("연필", "pencils"), ("빵", "bread")]
_PLACES = [("시장", "the market"), ("학교", "school"), ("카페", "the cafe"),
           ("도서관", "the library")]


def _pair(rng: random.Random, i: int) -> tuple[str, str]:
    name, (item_ko, item_en), (place_ko, place_en) = (
        rng.choice(_NAMES), rng.choice(_ITEMS), rng.choice(_PLACES))
    count = rng.randint(2, 9)
    if i % 2 == 0:
        dialogue = (f"#Person1#: {name}, 어디 갔었어? #Person2#: {place_ko}에 가서 {item_ko} "
                    f"{count}개를 샀어. #Person1#: 좋네.")
        return dialogue, f"{name}는 {place_ko}에서 {item_ko} {count}개를 샀다."
    dialogue = (f"#Person1#: Where were you, {name}? #Person2#: I went to {place_en} and "
                f"bought {count} {item_en}. #Person1#: Nice.")
    return dialogue, f"{name} bought {count} {item_en} at {place_en}."


def make_data(folder: str | Path, n: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """Write ``train.csv`` (``n`` pairs) and ``dev.csv`` (``max(n // 4, 4)``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for name, count in (("train", n), ("dev", max(n // 4, 4))):
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["fname", "dialogue", "summary"])
            for i in range(count):
                writer.writerow([f"{name}_{i}", *_pair(rng, i)])
        paths.append(path)
    return paths[0], paths[1]


def _texts(data: Path) -> list[str]:
    try:
        with open(data, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(data, problem=f"cannot read the data: {e.strerror or e}",
                          fix="pass --data train.csv (make one with make-data)") from None
    return [row.get(col) or "" for row in rows for col in ("dialogue", "summary")]


def _train_tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIAL_TOKENS.values())
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _model_config(arch: str, tokenizer, size: int):
    ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
               vocab_size=len(tokenizer))
    if arch == "t5":
        from transformers import T5Config
        return T5Config(d_model=size, d_kv=size // 4, d_ff=size * 2, num_layers=2,
                        num_decoder_layers=2, num_heads=4, decoder_start_token_id=ids[
                            "pad_token_id"], **ids)
    from transformers import BartConfig
    return BartConfig(d_model=size, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                      decoder_attention_heads=4, encoder_ffn_dim=size * 2,
                      decoder_ffn_dim=size * 2, max_position_embeddings=256,
                      bos_token_id=tokenizer.bos_token_id, forced_eos_token_id=ids["eos_token_id"],
                      decoder_start_token_id=ids["eos_token_id"], **ids)


def make_tiny(out_dir: str | Path, data: str | Path, arch: str = "bart", vocab: int = 400,
              size: int = 64, seed: int = 0) -> Path:
    """Save a tokenizer trained on ``data`` and a random tiny ``arch`` model into ``out_dir``."""
    from transformers import AutoModelForSeq2SeqLM, set_seed

    if arch not in ("bart", "t5"):
        raise ConfigError("command line", problem="unknown architecture", key="--arch", value=arch,
                          fix="use --arch bart or --arch t5")
    set_seed(seed)
    tokenizer = _train_tokenizer(_texts(Path(data)), vocab)
    model = AutoModelForSeq2SeqLM.from_config(_model_config(arch, tokenizer, size))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out
