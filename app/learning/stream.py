"""The sentences the learner reads and where it stands in them: those waiting, those learned, those settled (handed
to the word statistics, or turned down), and the window of tokens in front of the next one; each sentence is cut into
training segments after its window (engine/segments.py).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from app.learning.settings import LearnerConfig
from engine.segments import Windowing, rows_after
from models.tokenizer import BOS_ID, Tokenizer

Absorb = Callable[[list[str]], None]


class SentenceStream:
    """Finished sentences in the order typed, at most `max_sentences` (the oldest go, as in the history)."""

    def __init__(self, tokenizer: Tokenizer, config: LearnerConfig, absorb: Absorb, reject: Absorb):
        self.tokenizer, self.config, self.absorb, self.reject = tokenizer, config, absorb, reject
        self.windowing = Windowing(config.segment, config.context, config.context_keep)
        self.sentences: list[str] = []
        self.max_sentences = 20_000
        self.learned_upto = 0
        self.window: list[int] = []  # the tokens before the sentence at `window_upto`, as the last round left them
        self.window_upto = -1
        self.absorbed_upto = 0  # sentences before this one have been handed to `absorb` or turned down
        self.rejected: set[str] = set()  # sentences of rolled-back rounds
        self.incoming: deque[str] = deque()  # finished sentences not yet taken in by a round

    def add(self, sentence: str) -> None:
        """A finished sentence. Never waits for a running round: it joins at the next one."""
        if len(self.incoming) >= self.max_sentences:  # learning off for long: keep what the history keeps
            self.incoming.popleft()
        self.incoming.append(sentence)

    def take_incoming(self) -> None:
        """Under the learner's lock: take in the sentences that arrived meanwhile."""
        while self.incoming:
            self.sentences.append(self.incoming.popleft())
        drop = len(self.sentences) - self.max_sentences
        if drop > 0:
            del self.sentences[:drop]
            self.window_upto -= drop
            self.learned_upto = max(0, self.learned_upto - drop)
            self.absorbed_upto = max(0, self.absorbed_upto - drop)
            self.rejected &= set(self.sentences)  # bounded with the sentences it refers to

    def unlearned(self) -> int:
        return len(self.incoming) + len(self.sentences) - self.learned_upto

    def window_before(self, first: int) -> list[int]:
        """The tokens in front of sentence `first`: as the last round left them, else read afresh from the text
        before it (a start-of-text token in front of the very first)."""
        if self.window_upto == first:
            return self.window
        start = max(0, first - self.config.context_sentences)
        ids = ([BOS_ID] if start == 0 else []) + self.tokenizer.encode(" ".join(self.sentences[start:first]))
        return ids[-self.config.context:]

    def segments(self, window: list[int], sentence: str) -> list[tuple[list[int], int]]:
        """The sentence's training rows after the window, each with how many newest tokens it learns."""
        return rows_after(window, self.tokenizer.encode(sentence), self.windowing)

    def settle(self, accept: bool) -> None:
        """Every sentence taken in up to `learned_upto` is decided: handed to `absorb` if `accept`, else `reject`."""
        upto = max(self.learned_upto, self.absorbed_upto)
        if self.absorbed_upto < upto:
            (self.absorb if accept else self.reject)(self.sentences[self.absorbed_upto:upto])
        self.absorbed_upto = upto

    def skip_all(self) -> None:
        """Learning off: what waits goes to the word statistics unlearned."""
        self.learned_upto = len(self.sentences)
        self.settle(accept=True)

    def replace(self, sentences: list[str], rejected: set[str] | None = None) -> None:
        """The history as it now is (loaded, or after a forget): all of it counts as settled; with `rejected`
        given, all of it as learned too (a loaded model), else learning goes on from what is left."""
        self.incoming.clear()
        self.sentences = list(sentences)
        if rejected is None:
            self.learned_upto = min(self.learned_upto, len(self.sentences))
            self.rejected &= set(self.sentences)
        else:
            self.learned_upto = len(self.sentences)
            self.rejected = set(rejected) & set(self.sentences)
        self.absorbed_upto = len(self.sentences)  # the caller counts these afresh
        self.window_upto = -1
