"""Streaming readers for the text corpora: plain or xz-compressed text, and the users JSONL format.

Every reader yields documents as single-line strings with whitespace folded to single spaces.
"""
from __future__ import annotations

import json
import lzma
import re
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Iterator, TextIO

_SPACES = re.compile(r"\s+")
HELD_OUT_EVERY = 200  # document i of a corpus file is held out for evaluation when i % 200 == 199


def is_held_out(index: int) -> bool:
    return index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


def fold_spaces(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends: the form the model sees."""
    return _SPACES.sub(" ", text).strip()


def open_text(path: str | Path) -> TextIO:
    path = Path(path)
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "rt", encoding="utf-8", errors="replace")


def is_users_file(path: str | Path) -> bool:
    return Path(path).name.split(".")[-2 if str(path).endswith(".xz") else -1] == "jsonl"


@dataclass
class UserPosts:
    user: str
    posts: list[str]  # oldest first


def read_users(path: str | Path, limit: int | None = None) -> Iterator[UserPosts]:
    """Users in the JSONL format: {"user", "posts": [{"date", "text"}]}, posts sorted by date."""
    with open_text(path) as handle:
        for count, line in enumerate(handle):
            if limit is not None and count >= limit:
                return
            record = json.loads(line)
            posts = sorted(record["posts"], key=lambda post: post["date"])
            yield UserPosts(str(record["user"]), [fold_spaces(p["text"]) for p in posts])


def read_documents(path: str | Path) -> Iterator[str]:
    """Documents of a corpus file.

    A `.txt` file holds one document per line; if it has blank lines (dialogues, one turn per
    line), each blank-line-separated block is one document. A users file yields each post.
    """
    if is_users_file(path):
        for user in read_users(path):
            yield from user.posts
        return
    with open_text(path) as handle:
        head = list(islice(handle, 200))
        blocks = any(not line.strip() for line in head)
        lines = chain(head, handle)
        if not blocks:
            for line in lines:
                if line.strip():
                    yield fold_spaces(line)
            return
        block: list[str] = []
        for line in chain(lines, [""]):
            if line.strip():
                block.append(line)
            elif block:
                yield fold_spaces(" ".join(block))
                block = []


def training_documents(paths: list[str | Path]) -> Iterator[str]:
    """The documents pretraining sees: every document of every file except the held-out ones."""
    for path in paths:
        for index, doc in enumerate(read_documents(path)):
            if not is_held_out(index):
                yield doc
