"""SentencePiece tokenizer: training on the pretraining text, and a thin wrapper the model and predictor use.

Unigram model with byte fallback, identity normalisation and whitespace kept, so every string round-trips.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

BOS_ID, EOS_ID, UNK_ID, PAD_ID = 1, 2, 0, 3
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


@dataclass(frozen=True)
class Tokenizer:
    """Encode and decode text; knows which pieces start a word and which end one."""

    path: Path

    @cached_property
    def sp(self) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_file=str(self.path))

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @cached_property
    def pieces(self) -> list[str]:
        """Surface text of each piece, with the word-start marker turned into a space.

        Byte, control and unknown pieces get the empty string: the search never spells with them.
        """
        out = []
        for i in range(self.vocab_size):
            if self.sp.is_byte(i) or self.sp.is_control(i) or self.sp.is_unknown(i):
                out.append("")
            else:
                out.append(self.sp.id_to_piece(i).replace("\u2581", " "))
        return out
