"""Finding the sentences a user has finished in the text they are typing: they end at . ! ? and a space, or a line.

Only finished sentences are recorded and learned from; the one still being typed is not.
"""
from __future__ import annotations

import re

_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n")


def finished_sentences(text: str, start: int) -> tuple[list[str], int]:
    """Sentences completed in `text` after offset `start`, and the offset just past the last one."""
    start = min(start, len(text))
    found, position = [], start
    for match in _END.finditer(text, start):
        sentence = " ".join(text[position:match.end()].split())
        if sentence:
            found.append(sentence)
        position = match.end()
    return found, position
