"""Writes a Presage n-gram database (SQLite, with the schema of Presage's own databases) from word n-gram counts.

`build_presage_db` counts the pretraining corpora and writes the database the Presage peer predicts from.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from app.typing.words import lower_words
from models.build.ngrams import NgramCounts, corpus_counts

# As in /usr/share/presage/database_en.db (and Presage's DatabaseConnector::createNgramTable); no other index.
SCHEMA = (
    "CREATE TABLE _1_gram (word TEXT, count INTEGER, UNIQUE(word) );",
    "CREATE TABLE _2_gram (word_1 TEXT, word TEXT, count INTEGER, UNIQUE(word_1, word) );",
    "CREATE TABLE _3_gram (word_2 TEXT, word_1 TEXT, word TEXT, count INTEGER, UNIQUE(word_2, word_1, word) );",
)
MIN_COUNT = 2  # 2- and 3-grams seen once are left out; every 1-gram is kept


def _word_ranks(words: list[str]) -> np.ndarray:
    """Position of each word id in sorted order (code-point order is SQLite's BINARY order of UTF-8 text)."""
    rank = np.empty(len(words), np.int64)
    rank[np.argsort(np.array(words, dtype=object), kind="stable")] = np.arange(len(words))
    return rank


def _sorted_rows(words: list[str], rank: np.ndarray, ids: np.ndarray, counts: np.ndarray, min_count: int):
    """Rows (word..., count) with count >= min_count, in the order of the table's UNIQUE index (fast inserts)."""
    keep = counts >= min_count
    ids, counts = ids[keep], counts[keep]
    order = np.lexsort([rank[ids[:, k]] for k in reversed(range(ids.shape[1]))])
    for row, count in zip(ids[order].tolist(), counts[order].tolist()):
        yield (*(words[i] for i in row), count)


def write_presage_db(counts: NgramCounts, out_path: str | Path, min_count: int = MIN_COUNT) -> dict[str, int]:
    """Write the three n-gram tables to `out_path` (replaced all at once); returns the rows per table."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    rank = _word_ranks(counts.words)
    tables = [(np.arange(len(counts.words)).reshape(-1, 1), counts.unigrams, 1),
              (counts.bigrams, counts.bigram_counts, min_count),
              (counts.trigrams, counts.trigram_counts, min_count)]
    rows = {}
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        for n, (statement, (ids, table_counts, least)) in enumerate(zip(SCHEMA, tables), start=1):
            db.execute(statement)
            db.executemany(f"INSERT INTO _{n}_gram VALUES ({', '.join('?' * (n + 1))})",
                           _sorted_rows(counts.words, rank, ids, table_counts, least))
            rows[f"_{n}_gram"] = db.execute(f"SELECT COUNT(*) FROM _{n}_gram").fetchone()[0]
        db.commit()
    finally:
        db.close()
    os.replace(tmp, out_path)
    return rows


def build_presage_db(corpus_paths: list[str | Path], out_path: str | Path, min_count: int = MIN_COUNT) -> dict:
    """Count the corpora (held-out documents excluded) and write the Presage database, with a JSON note beside it."""
    start = time.monotonic()
    print(f"counting 1-3-grams of {', '.join(Path(p).name for p in corpus_paths)}", file=sys.stderr, flush=True)
    counts = corpus_counts(corpus_paths, lower_words)
    counted = time.monotonic()
    print(f"{len(counts.words):,} words, {int(counts.unigrams.sum()):,} tokens in {counted - start:.0f} s; "
          f"writing {out_path}", file=sys.stderr, flush=True)
    rows = write_presage_db(counts, out_path, min_count)
    info = {"corpora": [str(p) for p in corpus_paths], "held_out_excluded": True, "tokens": int(counts.unigrams.sum()),
            "rows": rows, "pruning": f"2- and 3-grams with count < {min_count} left out; all 1-grams kept",
            "distinct": {"_1_gram": len(counts.words), "_2_gram": len(counts.bigram_counts),
                         "_3_gram": len(counts.trigram_counts)},
            "count_seconds": round(counted - start, 1), "total_seconds": round(time.monotonic() - start, 1),
            "bytes": Path(out_path).stat().st_size}
    Path(out_path).with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info), file=sys.stderr, flush=True)
    return info
