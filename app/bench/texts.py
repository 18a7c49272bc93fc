"""Evaluation texts: a corpus file's first characters, or each user's posts of a users file, cut at a word boundary.

What `pocketkb eval`, `simulate` and the benches type.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.build.corpus import is_users_file, read_documents, read_users


@dataclass(frozen=True)
class EvalText:
    name: str
    text: str


def _cut(text: str, chars: int) -> str:
    """The first `chars` characters, ending at a word boundary."""
    if len(text) <= chars:
        return text
    space = text.rfind(" ", 0, chars)
    return text[: space if space > 0 else chars]


def read_eval_texts(path: str | Path, chars: int, users: int | None = None) -> list[EvalText]:
    """A text file's first `chars` characters (documents one per line), or the first `users`
    users of a users file, each cut to `chars` characters of their posts in date order."""
    if is_users_file(path):
        return [EvalText(u.user, _cut("\n".join(u.posts), chars)) for u in read_users(path, limit=users)]
    parts, size = [], 0
    for doc in read_documents(path):
        parts.append(doc)
        size += len(doc) + 1
        if size >= chars:
            break
    return [EvalText(Path(path).name.split(".")[0], _cut("\n".join(parts), chars))]
