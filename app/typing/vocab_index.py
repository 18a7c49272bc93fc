"""The known words as the model spells them: each vocabulary word's first piece in lower case, capitalised and in
capitals, and its share of the words that start with that piece, so one look at the next-piece distribution ranks
every word.

Built once per tokenizer and vocabulary; also knows which pieces end a word.
"""
from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np
import torch

from app.typing.words import is_word_char
from models.tokenizer import Tokenizer

FORMS = (str.lower, str.capitalize, str.upper)  # how a vocabulary word (stored in lower case) may be spelled


class VocabIndex:
    def __init__(self, tokenizer: Tokenizer, words: Sequence[str] = (), frequency: np.ndarray | None = None):
        """`words`: the vocabulary, sorted and in lower case; `frequency`: how common each is (any scale)."""
        pieces = tokenizer.pieces
        starts_word = [bool(p) and is_word_char(p[0]) for p in pieces]
        # After a word, any piece that does not continue it ends it: spaces, punctuation, bytes, controls.
        self.boundary_ids = torch.tensor([i for i, s in enumerate(starts_word) if not s], dtype=torch.long)
        self.words = list(words)
        weight = np.asarray(frequency if frequency is not None else np.ones(len(self.words)), np.float64) + 0.5
        self.first: list[np.ndarray] = []      # per form: each word's first piece in that spelling
        self.log_share: list[np.ndarray] = []  # per form: log of the word's share of its first piece's words
        earlier: list[list[str]] = []
        for form in FORMS:
            spelled = [form(w) for w in self.words]
            first = np.array([ids[0] if ids else 0 for ids in tokenizer.encode_many(spelled)], np.int64)
            # a spelling of its own, that still reads as the word ("STRASSE" is no spelling of "straße")
            own = np.array([s.lower() == self.words[i] and all(s != e[i] for e in earlier)
                            for i, s in enumerate(spelled)])
            earlier.append(spelled)
            mass = np.where(own, weight, 0.0)
            group = np.bincount(first, weights=mass, minlength=len(pieces))
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(own, np.log(mass) - np.log(group[first]), -np.inf)
            self.log_share.append(share.astype(np.float32))
            self.first.append(first)

    def __contains__(self, word: str) -> bool:
        """Whether `word` (any case) is in the vocabulary."""
        return self._position(word) is not None

    def _position(self, word: str) -> int | None:
        """The index of `word` (any case) in the vocabulary, None if it is not there."""
        key = word.lower()
        i = bisect.bisect_left(self.words, key)
        return i if i < len(self.words) and self.words[i] == key else None

    def _estimates(self, i: int, first_logp: torch.Tensor) -> list[float]:
        """`propose`'s estimate for word `i` in each spelling of `FORMS`."""
        return [first_logp[int(first[i])].item() + float(share[i]) for first, share in zip(self.first, self.log_share)]

    def _range(self, prefix: str) -> tuple[int, int]:
        key = prefix.lower()
        return bisect.bisect_left(self.words, key), bisect.bisect_left(self.words, key + "\U0010ffff")

    def propose(self, first_logp: torch.Tensor, prefix: str, k: int) -> list[str]:
        """The `k` spellings of vocabulary words that go on from `prefix` (case ignored) likeliest by estimate: the
        model's probability of the spelling's first piece times the word's share of that piece's words."""
        lo, hi = self._range(prefix)
        if lo < hi and len(self.words[lo]) == len(prefix):
            lo += 1  # the prefix itself is typed already: only longer words complete it
        if lo >= hi or k <= 0:
            return []
        logp = first_logp.numpy()
        estimate = np.concatenate([logp[first[lo:hi]] + share[lo:hi] for first, share in zip(self.first, self.log_share)])
        k = min(k, len(estimate))
        top = np.argpartition(-estimate, k - 1)[:k]
        top = top[np.argsort(-estimate[top], kind="stable")]
        n = hi - lo
        return [FORMS[i // n](self.words[lo + i % n]) for i in top.tolist() if np.isfinite(estimate[i])]

    def estimate(self, form: str, first_logp: torch.Tensor) -> float | None:
        """`propose`'s estimate of a vocabulary word's log-probability in this spelling (None for other words)."""
        i = self._position(form)
        if i is None:
            return None
        spellings = [spell(self.words[i]) for spell in FORMS]
        return self._estimates(i, first_logp)[spellings.index(form)] if form in spellings else None

    def likelier_form(self, word: str, first_logp: torch.Tensor) -> str:
        """`word` in whichever of its spellings (`FORMS`) the model finds likeliest by first piece."""
        i = self._position(word)
        if i is None:
            return word
        return FORMS[int(np.argmax(self._estimates(i, first_logp)))](self.words[i])
