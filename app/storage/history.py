"""What the user typed: committed sentences (never raw keystrokes), bounded, forgettable, in SQLite.

Incognito records nothing; forgetting a word deletes every sentence that holds it and blocks it from suggestions.
"""
from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from app.typing.words import tokens

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sentences (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, text TEXT NOT NULL,
                                      rejected INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS blocked (word TEXT PRIMARY KEY);
"""
MAX_SENTENCE_CHARS = 2000
SCHEMA_VERSION = 2  # PRAGMA user_version: 1 had no `rejected` column (0: a file from before the version was kept)


class HistoryError(Exception):
    """A history that cannot be read or written; the message says why, for the user."""


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def normalize_sentence(sentence: str) -> str:
    """As a sentence is stored: control characters and runs of whitespace become one space, at most 2,000 chars."""
    return " ".join(_CONTROL.sub(" ", sentence).split())[:MAX_SENTENCE_CHARS]


def _phrase_pattern(phrase: str) -> re.Pattern:
    words = [re.escape(t.text) for t in tokens(phrase)]
    return re.compile(r"(?<!\w)" + r"\W+".join(words) + r"(?!\w)", re.IGNORECASE)


class History:
    def __init__(self, path: str | Path, max_sentences: int = 20_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_sentences = max_sentences
        self.incognito = False
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(f"{self.path} was written by a newer Pocket Keyboard (history version {version}, "
                                   f"this one reads up to {SCHEMA_VERSION})")
            with self._transaction(locked=False) as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                columns = {row[1] for row in db.execute("PRAGMA table_info(sentences)")}
                if "rejected" not in columns:  # a history written before the learner's verdicts were kept
                    db.execute("ALTER TABLE sentences ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as err:
            raise HistoryError(f"cannot open the history {self.path}: {err}") from None

    @contextmanager
    def _transaction(self, locked: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole, or rolled back whole on any error (a full disk, say), so the
        connection is never left inside a transaction and the next write can succeed. Errors become HistoryError."""
        if locked:
            self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            with self._db:  # commit, or roll back and re-raise
                yield self._db
        except sqlite3.Error as err:
            raise HistoryError(f"could not write the history ({err}); what was recorded before is intact") from None
        finally:
            if locked:
                self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]

    def add(self, sentence: str) -> bool:
        """Record a finished sentence; False when incognito, empty, or it holds a blocked word."""
        return bool(self.add_many([sentence]))

    def add_many(self, sentences: list[str]) -> list[str]:
        """Record finished sentences in one transaction (a paste); returns those recorded, as stored."""
        if self.incognito:
            return []
        blocked = self.blocked()
        kept = []
        for sentence in map(normalize_sentence, sentences):
            words = [t.text.lower() for t in tokens(sentence)]
            if words and not any(w in blocked for w in words):
                kept.append(sentence)
        if kept:
            now = time.time()
            with self._transaction() as db:
                db.executemany("INSERT INTO sentences (at, text) VALUES (?, ?)", [(now, s) for s in kept])
                db.execute("DELETE FROM sentences WHERE id <= (SELECT MAX(id) FROM sentences) - ?",
                           (self.max_sentences,))
        return kept

    def sentences(self) -> list[str]:
        """All recorded sentences, oldest first."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT text FROM sentences ORDER BY id")]

    def rejected(self) -> set[str]:
        """Sentences the learner turned down (a round they were in rolled back): never learned, nor counted."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT text FROM sentences WHERE rejected = 1")}

    def kept_sentences(self) -> list[str]:
        """The recorded sentences the learner did not turn down, oldest first."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT text FROM sentences WHERE rejected = 0 ORDER BY id")]

    def mark_rejected(self, sentences: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE sentences SET rejected = 1 WHERE text = ?", [(s,) for s in sentences])

    def recent(self, n: int) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT text FROM sentences ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [r[0] for r in reversed(rows)]

    def sample_older(self, n: int, skip_recent: int, rng: random.Random) -> list[str]:
        """Up to `n` sentences drawn at random from all but the newest `skip_recent`."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM sentences ORDER BY id DESC LIMIT -1 OFFSET ?",
                                                  (skip_recent,))]
            chosen = rng.sample(ids, min(n, len(ids)))
            return [self._db.execute("SELECT text FROM sentences WHERE id = ?", (i,)).fetchone()[0] for i in chosen]

    def forget(self, phrase: str) -> int:
        """Delete every sentence holding `phrase` (case ignored, whole words); a single word is also blocked."""
        words = [t.text.lower() for t in tokens(phrase)]
        if not words:
            return 0
        pattern = _phrase_pattern(phrase)
        with self._transaction() as db:
            doomed = [i for i, text in db.execute("SELECT id, text FROM sentences") if pattern.search(text)]
            db.executemany("DELETE FROM sentences WHERE id = ?", [(i,) for i in doomed])
            if len(words) == 1:
                db.execute("INSERT OR IGNORE INTO blocked (word) VALUES (?)", (words[0],))
        return len(doomed)

    def blocked(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT word FROM blocked")}

    def block(self, word: str) -> None:
        """Never suggest `word` again; the sentences that hold it stay."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO blocked (word) VALUES (?)", (word.lower(),))

    def unblock(self, word: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM blocked WHERE word = ?", (word.lower(),))

    def word_counts(self, query: str = "", limit: int = 200) -> list[tuple[str, int]]:
        """Words the user typed, most frequent first, optionally only those containing `query`."""
        counts = Counter(t.text.lower() for s in self.sentences() for t in tokens(s))
        query = query.lower()
        return [(w, c) for w, c in counts.most_common() if query in w][:limit]

    def replace_all(self, sentences: list[str], blocked: set[str], rejected: set[str] = frozenset()) -> None:
        """Swap in another history at once (import, reset); `rejected`: its sentences the learner turned down."""
        with self._transaction() as db:
            db.execute("DELETE FROM sentences")
            db.execute("DELETE FROM blocked")
            now = time.time()
            db.executemany("INSERT INTO sentences (at, text, rejected) VALUES (?, ?, ?)",
                           [(now, s, int(s in rejected)) for s in sentences[-self.max_sentences:]])
            db.executemany("INSERT INTO blocked (word) VALUES (?)", [(w,) for w in sorted(blocked)])
