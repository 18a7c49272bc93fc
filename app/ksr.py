"""Keystroke savings rate (KSR), counted as Presage's simulator counts it, and next-word accuracy.

Text is split at whitespace and ASCII punctuation; a word costs 1 if suggested before any letter, i+1 after i letters, len+1 if never.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Callable, Iterator

# Whitespace and ASCII punctuation separate words (as in Presage); so do control characters.
SEPARATORS = string.whitespace + string.punctuation + "".join(map(chr, [*range(32), *range(127, 160)]))
WORD_CHAR = r"[^\s" + re.escape(SEPARATORS) + r"]"  # any Unicode whitespace separates words too
_TOKEN = re.compile(WORD_CHAR + "+")
CONTINUATION_MARKS = "'-"

Suggest = Callable[[str], list[str]]


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str

    def continues_word(self, full_text: str) -> bool:
        """True for a token right after an apostrophe or hyphen ("t" in "don't")."""
        return self.start > 0 and full_text[self.start - 1] in CONTINUATION_MARKS


def tokens(text: str) -> Iterator[Token]:
    for match in _TOKEN.finditer(text):
        yield Token(match.start(), match.end(), match.group())


@dataclass
class KsrResult:
    cost: int = 0          # keystrokes spent with suggestions
    plain: int = 0         # keystrokes without: len(word) + 1 each
    words: int = 0
    next_word_total: int = 0
    next_word_top1: int = 0
    next_word_top3: int = 0
    curve: list[tuple[int, int]] = field(default_factory=list)  # (cost, plain) per word, for plots

    @property
    def ksr(self) -> float:
        return 100.0 * (1 - self.cost / self.plain) if self.plain else 0.0

    @property
    def top1(self) -> float:
        return 100.0 * self.next_word_top1 / self.next_word_total if self.next_word_total else 0.0

    @property
    def top3(self) -> float:
        return 100.0 * self.next_word_top3 / self.next_word_total if self.next_word_total else 0.0

    def add(self, other: "KsrResult") -> None:
        for name in ("cost", "plain", "words", "next_word_total", "next_word_top1", "next_word_top3"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.curve.extend(other.curve)

    def tail(self, fraction: float) -> "KsrResult":
        """KSR over the last `fraction` of the words (next-word counts are not kept per word)."""
        part = self.curve[len(self.curve) - int(round(len(self.curve) * fraction)):]
        return KsrResult(cost=sum(c for c, _ in part), plain=sum(p for _, p in part), words=len(part),
                         curve=list(part))

    def to_dict(self) -> dict:
        return {"ksr": round(self.ksr, 2), "top1": round(self.top1, 2), "top3": round(self.top3, 2),
                "words": self.words, "cost": self.cost, "plain": self.plain}


def word_cost(word: str, context: str, suggest: Suggest, max_suggestions: int = 3) -> tuple[int, list[str]]:
    """Keystrokes to enter `word` after `context`; also the suggestions shown before its first letter."""
    target = word.lower()
    first: list[str] = []
    for typed in range(len(word)):
        shown = suggest(context + word[:typed])[:max_suggestions]
        if typed == 0:
            first = shown
        if any(s.lower() == target for s in shown):
            return typed + 1, first
    return len(word) + 1, first


def score_word(result: KsrResult, text: str, token: Token, suggest: Suggest) -> None:
    """Add one word of `text` to `result`, its context being all of `text` before it."""
    cost, first = word_cost(token.text, text[:token.start], suggest)
    result.cost += cost
    result.plain += len(token.text) + 1
    result.words += 1
    result.curve.append((cost, len(token.text) + 1))
    if not token.continues_word(text):
        lowered = [s.lower() for s in first]
        result.next_word_total += 1
        result.next_word_top1 += int(bool(lowered) and lowered[0] == token.text.lower())
        result.next_word_top3 += int(token.text.lower() in lowered)


def simulate(text: str, suggest: Suggest, span: tuple[int, int] | None = None) -> KsrResult:
    """Type `text` word by word with a frozen predictor and count keystrokes.

    With `span`, only words starting inside that character range are scored (their context is
    still all the text before them), so a long text can be split across processes.
    """
    start, end = span or (0, len(text))
    result = KsrResult()
    for token in tokens(text):
        if start <= token.start < end:
            score_word(result, text, token, suggest)
    return result
