"""SentencePiece tokenizer: a thin wrapper the model and predictor use (`models.build.tokenizer` trains it).

Unigram model with byte fallback, identity normalisation and whitespace kept, so every string round-trips.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sentencepiece as spm

BOS_ID, EOS_ID, UNK_ID, PAD_ID = 1, 2, 0, 3


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
