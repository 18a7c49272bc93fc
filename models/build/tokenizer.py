"""Training the SentencePiece tokenizer on the pretraining text: unigram, byte fallback, identity normalisation and
whitespace kept, so every string round-trips (`models.tokenizer.Tokenizer` reads the model it writes).
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from models.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def train_tokenizer(documents: Iterable[str], out_prefix: str | Path, vocab_size: int,
                    max_chars: int = 20_000_000) -> Path:
    """Train a unigram SentencePiece model on up to `max_chars` characters of documents."""
    buffer, total = io.StringIO(), 0
    for doc in documents:
        for chunk in _chunks(doc):
            buffer.write(chunk + "\n")
            total += len(chunk)
        if total >= max_chars:
            break
    corpus = Path(str(out_prefix) + ".train.txt")
    corpus.write_text(buffer.getvalue(), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out_prefix), model_type="unigram",
        vocab_size=vocab_size, byte_fallback=True, character_coverage=0.9995,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        split_digits=True, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=2,
        max_sentence_length=4096, minloglevel=2,
    )
    corpus.unlink()
    return Path(str(out_prefix) + ".model")


def _chunks(doc: str, limit: int = 2000) -> Iterable[str]:
    """Split a document at sentence ends into pieces SentencePiece accepts (it skips long lines)."""
    piece = ""
    for sentence in _SENTENCE_END.split(doc):
        if piece and len(piece) + len(sentence) + 1 > limit:
            yield piece
            piece = ""
        piece = f"{piece} {sentence}" if piece else sentence[:limit]
    if piece:
        yield piece
