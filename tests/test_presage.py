"""The Presage peer: its SQLite database written from tiny texts, and (when Presage is installed) its suggestions,
its tokenisation compared with ours, online learning and the cached KSR runner."""
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from app.bench.ksr import simulate
from app.bench.presage_db import SCHEMA, write_presage_db
from app.bench.presage_eval import presage_ksr
from app.bench.presage_peer import PresagePeer, presage_available
from app.typing.words import lower_words
from models.build.ngram_counts import count_ngrams

STOCK_DB = Path("/usr/share/presage/database_en.db")
TEXT = ["The zorblax flumped over the moon. The zorblax flumped again!", "The moon, the moon."]
needs_presage = pytest.mark.skipif(not presage_available(),
                                   reason="Presage is not installed (apt-get install libpresage1v5 libpresage-data)")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("presage") / "tiny.db"
    write_presage_db(count_ngrams(TEXT, lower_words), path, min_count=2)
    return path


def _rows(db, table):
    with sqlite3.connect(db) as con:
        return {tuple(row[:-1]): row[-1] for row in con.execute(f"SELECT * FROM {table}")}


def test_schema_is_presages(db):
    with sqlite3.connect(db) as con:
        schema = [sql + ";" for (sql,) in con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    assert schema == list(SCHEMA)


@pytest.mark.skipif(not STOCK_DB.exists(), reason="Presage's stock database (libpresage-data) is not installed")
def test_schema_matches_the_stock_database(db):
    def schema(path):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            return sorted(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    assert schema(db) == schema(STOCK_DB)


def test_counts_with_singleton_bigrams_and_trigrams_left_out(db):
    assert _rows(db, "_1_gram") == {("the",): 5, ("zorblax",): 2, ("flumped",): 2, ("over",): 1, ("moon",): 3,
                                    ("again",): 1}
    assert _rows(db, "_2_gram") == {("the", "zorblax"): 2, ("zorblax", "flumped"): 2, ("the", "moon"): 3,
                                    ("moon", "the"): 2}
    assert _rows(db, "_3_gram") == {("the", "zorblax", "flumped"): 2, ("the", "moon", "the"): 2}


@needs_presage
def test_presage_suggests_a_word_only_the_database_knows(db):
    with PresagePeer(db) as peer:
        assert "flumped" in peer.suggest("Yesterday the zorblax ")
        assert peer.suggest("Yesterday the zor")[:1] == ["zorblax"]
    with PresagePeer(STOCK_DB) as peer:
        assert "zorblax" not in peer.suggest("Yesterday the zor")


@needs_presage
def test_frozen_peer_neither_learns_nor_writes(db):
    before = db.read_bytes()
    with PresagePeer(db) as peer:
        assert peer.user_db is None
        for i in range(1, 40):
            peer.suggest("quokka quokka quokka " * 2 + "quokka"[: i % 7])
        assert "quokka" not in peer.suggest("quo")
    assert db.read_bytes() == before


@needs_presage
def test_presage_tokenises_as_we_do(db):
    """What Presage learns online from a text holds exactly our tokens (its last, possibly partial, one aside).

    (Typed a letter at a time, Presage's byte-wise change detection loses words that end in a non-ASCII letter,
    such as "café"; that is Presage's own behaviour, so the text avoids them.)
    """
    text = "I don't KNOW, line. E-mail me@home.com (it's 5:30pm) under_score \"quoted\" [x] don\u2019t na\u00efve end"
    with PresagePeer(db, online_learning=True) as peer:
        for end in range(1, len(text) + 1):
            peer.suggest(text[:end])
        learned = {word: count for (word,), count in _rows(peer.user_db, "_1_gram").items()}
    assert learned == Counter(lower_words(text)[:-1])


@needs_presage
def test_online_learning_picks_up_new_words(db):
    text = "my quokka is happy and my quokka is sleepy and my quo"
    with PresagePeer(db, online_learning=True) as peer:
        for end in range(1, len(text) + 1):
            last = peer.suggest(text[:end])
        assert "quokka" in peer.suggest("so my qu") + last
    with PresagePeer(db, online_learning=True) as fresh:
        assert "quokka" not in fresh.suggest("so my qu")


@needs_presage
def test_cached_ksr_runner_matches_a_direct_simulation(db, tmp_path):
    texts = ["the zorblax flumped over the moon", "the moon"]
    with PresagePeer(db) as peer:
        direct = simulate(texts[0], peer.suggest)
    first = presage_ksr(texts, db, processes=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert (first[0].cost, first[0].plain, first[0].curve) == (direct.cost, direct.plain, direct.curve)
    again = presage_ksr(texts[:1], db, processes=2, cache_dir=tmp_path)
    assert again[0] == first[0] and again[0].ksr > 0
