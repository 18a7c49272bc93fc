"""Keystroke savings rate (KSR), counted as Presage's simulator counts it, next-word accuracy, and what a person sees.

Text is split at whitespace and ASCII punctuation; a word costs 1 if suggested before any letter, i+1 after i letters,
len+1 if never. With a set of known words, also the share of suggestions that are no known word, and how often a whole
typed known word is itself on the strip (a word typed earlier in the text counts as known from then on).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Container

from app.typing.words import Token, tokens

PROTOCOL = 2  # bumped when what a result holds changes (cached results of an older protocol are recomputed)
Suggest = Callable[[str], list[str]]


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


@dataclass
class KsrResult:
    cost: int = 0          # keystrokes spent with suggestions
    plain: int = 0         # keystrokes without: len(word) + 1 each
    words: int = 0
    next_word_total: int = 0
    next_word_top1: int = 0
    next_word_top3: int = 0
    curve: list[tuple[int, int]] = field(default_factory=list)  # (cost, plain) per word, for plots
    shown: int = 0         # suggestions shown (with known words given)
    unknown: int = 0       # of them, not a known word
    whole: int = 0         # known words typed whole (before the space)
    offered: int = 0       # of them, with the word itself on the strip

    # percentages: keystrokes saved, next word first / in the top three, suggestions shown that are no known word,
    # known words typed whole whose literal form the strip then held
    ksr = property(lambda self: 100.0 * (1 - self.cost / self.plain) if self.plain else 0.0)
    top1 = property(lambda self: _percent(self.next_word_top1, self.next_word_total))
    top3 = property(lambda self: _percent(self.next_word_top3, self.next_word_total))
    non_words = property(lambda self: _percent(self.unknown, self.shown))
    typed_offered = property(lambda self: _percent(self.offered, self.whole))

    def add(self, other: "KsrResult") -> None:
        for name in ("cost", "plain", "words", "next_word_total", "next_word_top1", "next_word_top3", "shown",
                     "unknown", "whole", "offered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.curve.extend(other.curve)

    def tail(self, fraction: float) -> "KsrResult":
        """KSR over the last `fraction` of the words (next-word counts are not kept per word)."""
        part = self.curve[len(self.curve) - int(round(len(self.curve) * fraction)):]
        return KsrResult(cost=sum(c for c, _ in part), plain=sum(p for _, p in part), words=len(part),
                         curve=list(part))

    def to_dict(self) -> dict:
        return {"ksr": round(self.ksr, 2), "top1": round(self.top1, 2), "top3": round(self.top3, 2),
                "words": self.words, "cost": self.cost, "plain": self.plain,
                "non_words": round(self.non_words, 3), "typed_offered": round(self.typed_offered, 2),
                "shown": self.shown, "unknown": self.unknown, "whole": self.whole, "offered": self.offered}


def _count_shown(result: KsrResult, shown: list[str], known: Container[str] | None) -> None:
    if known is not None:
        result.shown += len(shown)
        result.unknown += sum(1 for s in shown if s.lower() not in known)


def word_cost(result: KsrResult, word: str, context: str, suggest: Suggest, known: Container[str] | None = None,
              max_suggestions: int = 3) -> tuple[int, list[str]]:
    """Keystrokes to enter `word` after `context`; also the suggestions shown before its first letter.

    The strip's first `max_suggestions` words count, the typed letters themselves left aside: a strip that also
    shows the word typed so far offers nothing a keystroke could save (the word is not yet whole)."""
    target = word.lower()
    first: list[str] = []
    for typed in range(len(word)):
        shown = suggest(context + word[:typed])
        _count_shown(result, shown, known)
        shown = [s for s in shown if typed == 0 or s.lower() != word[:typed].lower()][:max_suggestions]
        if typed == 0:
            first = shown
        if any(s.lower() == target for s in shown):
            return typed + 1, first
    return len(word) + 1, first


def offer_typed_word(result: KsrResult, word: str, context: str, suggest: Suggest, known: Container[str]) -> None:
    """With a known `word` typed whole (no space yet): count whether the strip holds the word itself."""
    if word.lower() not in known:
        return
    shown = suggest(context + word)
    _count_shown(result, shown, known)
    result.whole += 1
    result.offered += int(any(s.lower() == word.lower() for s in shown))


def score_word(result: KsrResult, text: str, token: Token, suggest: Suggest,
               known: Container[str] | None = None) -> None:
    """Add one word of `text` to `result`, its context being all of `text` before it (with `known`, the words a
    suggestion may be, also what a person sees: see `KsrResult.non_words` and `typed_offered`)."""
    cost, first = word_cost(result, token.text, text[:token.start], suggest, known)
    if known is not None:
        offer_typed_word(result, token.text, text[:token.start], suggest, known)
    result.cost += cost
    result.plain += len(token.text) + 1
    result.words += 1
    result.curve.append((cost, len(token.text) + 1))
    if not token.continues_word(text):
        lowered = [s.lower() for s in first]
        result.next_word_total += 1
        result.next_word_top1 += int(bool(lowered) and lowered[0] == token.text.lower())
        result.next_word_top3 += int(token.text.lower() in lowered)


class _TypedBefore:
    """Known words (lower case) and the words of the text typed so far."""

    def __init__(self, known: Container[str]):
        self.known = known
        self.typed: set[str] = set()

    def __contains__(self, word: str) -> bool:
        return word in self.typed or word in self.known


def simulate(text: str, suggest: Suggest, span: tuple[int, int] | None = None,
             known: Container[str] | None = None) -> KsrResult:
    """Type `text` word by word with a frozen predictor and count keystrokes.

    With `span`, only words starting inside that character range are scored (their context is
    still all the text before them), so a long text can be split across processes.
    """
    start, end = span or (0, len(text))
    result = KsrResult()
    known = _TypedBefore(known) if known is not None else None
    for token in tokens(text):
        if start <= token.start < end:
            score_word(result, text, token, suggest, known)
        if known is not None:
            known.typed.add(token.text.lower())
    return result
