"""Finding the sentences a user has finished in the text they are typing: they end at . ! ? and a space, or a line.

Only finished sentences are recorded and learned from; the one still being typed is not.
"""
from __future__ import annotations

import os
import re
from collections import Counter

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


class NewSentences:
    """The sentences newly finished as a text changes. Sentences deleted by an edit are remembered: typed again in
    their place, they do not count a second time. The memory ends with the edit: at the first other sentence, or when
    the text is cleared (a new document, where the same words are new text)."""

    def __init__(self):
        self._done_upto = 0
        self._done_text = ""  # the text up to the end of its last finished sentence, as last seen
        self._deleted: Counter[str] = Counter()  # sentences finished before, which the user deleted since

    def update(self, text: str) -> list[str]:
        """The sentences of `text` (the whole text as it now stands) finished since the last call."""
        if not text:
            self._deleted.clear()
        elif not text.startswith(self._done_text):  # the user deleted or edited earlier text
            kept = len(os.path.commonprefix([text, self._done_text]))
            _, self._done_upto = finished_sentences(self._done_text[:kept], 0)
            self._deleted += Counter(finished_sentences(self._done_text, self._done_upto)[0])
        found, self._done_upto = finished_sentences(text, self._done_upto)
        self._done_text = text[:self._done_upto]
        sentences = []
        for sentence in found:
            if self._deleted[sentence] > 0:
                self._deleted[sentence] -= 1
            else:
                self._deleted.clear()
                sentences.append(sentence)
        return sentences
