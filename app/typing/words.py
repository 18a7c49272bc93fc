"""What counts as a word, and how the text before the cursor splits into context, anchor and typed prefix.

Words are runs of characters that are neither whitespace nor ASCII punctuation, as the KSR protocol counts them.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Container, Iterator

# Whitespace and ASCII punctuation separate words (as in Presage); so do control characters.
SEPARATORS = string.whitespace + string.punctuation + "".join(map(chr, [*range(32), *range(127, 160)]))
WORD_CHAR = r"[^\s" + re.escape(SEPARATORS) + r"]"  # any Unicode whitespace separates words too
_TOKEN = re.compile(WORD_CHAR + "+")
CONTINUATION_MARKS = "'-"


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


def words_of(text: str) -> list[str]:
    """The words of `text` as spelled (what `tokens` finds, without positions)."""
    return _TOKEN.findall(text)


def lower_words(text: str) -> list[str]:
    """The words of `text` in lower case, as Presage tokenises: what the count prior and Presage's database count."""
    return _TOKEN.findall(text.lower())


APOSTROPHE = "’"  # the typographic apostrophe is a word character: "I’m" is one word
CONTRACTIONS = ("s", "t", "m", "d", "ll", "re", "ve")  # what follows an apostrophe in "it's", "can't", "I'm" ...

_TRAILING_WORD = re.compile(WORD_CHAR + r"*\Z")
_TRAILING_CHUNK = re.compile(r"\S*\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_CLOSERS = "'\")]"
_TAIL = 256  # characters searched first for a trailing match: a keystroke costs the same in a long text


def is_word_char(ch: str) -> bool:
    return not ch.isspace() and ch not in SEPARATORS


@dataclass(frozen=True)
class TypingState:
    """The text before the cursor, split for prediction.

    `context` ends at the last whitespace before the current chunk; `anchor` is the part of the
    current whitespace-delimited chunk before the word being typed (e.g. "don'" in "don't");
    `prefix` is what has been typed of the word.
    """

    context: str
    anchor: str
    prefix: str

    @property
    def sentence_start(self) -> bool:
        """The context is empty or ends with . ! or ? (then perhaps closing quotes or brackets) and whitespace."""
        if self.anchor:
            return False
        context = self.context.rstrip()
        return not context or context.rstrip(_CLOSERS)[-1:] in (".", "!", "?")


class KnownWords:
    """The words a suggestion may be: those of a vocabulary (in lower case), and a word of it contracted with the
    typographic apostrophe ("I’m" and "Johnson’s" are known when "i" and "johnson" are, as "I'm" is two known words)."""

    def __init__(self, vocabulary: Container[str]):
        self.vocabulary = vocabulary

    def __contains__(self, word: str) -> bool:
        key = word.lower()
        if key in self.vocabulary:
            return True
        head, _, ending = key.rpartition(APOSTROPHE)
        return ending in CONTRACTIONS and head in self


def _trailing(pattern: re.Pattern, text: str) -> str:
    """The match of `pattern` (a run anchored at the end) searched in the tail first, the whole text only if needed."""
    start = max(0, len(text) - _TAIL)
    match = pattern.search(text, start)
    if match.start() == start > 0:
        match = pattern.search(text)
    return match.group()


def split_typing(text: str) -> TypingState:
    text = _CONTROL.sub(" ", text)
    prefix = _trailing(_TRAILING_WORD, text)
    before = text[: len(text) - len(prefix)]
    anchor = _trailing(_TRAILING_CHUNK, before)
    return TypingState(before[: len(before) - len(anchor)], anchor, prefix)


def match_case(form: str, prefix: str, sentence_start: bool) -> str:
    """Follow the user's capitalisation: all caps, a capital first letter, or a sentence start (even where the
    first letter was typed small)."""
    if sum(ch.isalpha() for ch in prefix) >= 2 and prefix.isupper():
        return form.upper()
    if (prefix and prefix[0].isupper()) or sentence_start:
        return form[:1].upper() + form[1:]
    return form
