"""History: committed sentences, bounded, incognito, forget and block, persistent across restarts."""
import random

from app.storage.history import History


def test_add_bounded_and_persistent(tmp_path):
    h = History(tmp_path / "h.db", max_sentences=5)
    for i in range(8):
        assert h.add(f"sentence number {i}.")
    assert len(h) == 5 and h.sentences()[0] == "sentence number 3."
    assert h.recent(2) == ["sentence number 6.", "sentence number 7."]
    h.close()
    again = History(tmp_path / "h.db", max_sentences=5)
    assert again.sentences()[-1] == "sentence number 7."


def test_incognito_records_nothing(tmp_path):
    h = History(tmp_path / "h.db")
    h.incognito = True
    assert not h.add("my secret password is swordfish")
    assert len(h) == 0


def test_forget_deletes_and_blocks(tmp_path):
    h = History(tmp_path / "h.db")
    for s in ["I met Zelda today.", "zelda's cat is cute", "Nothing here, Zeldas."]:
        h.add(s)
    assert h.forget("Zelda") == 2
    assert h.sentences() == ["Nothing here, Zeldas."]
    assert "zelda" in h.blocked()
    assert not h.add("Zelda again")
    h.unblock("Zelda")
    assert "zelda" not in h.blocked()


def test_forget_phrase_does_not_block_its_words(tmp_path):
    h = History(tmp_path / "h.db")
    h.add("see you at the old mill")
    h.add("the old house")
    assert h.forget("old mill") == 1
    assert h.blocked() == set()


def test_sample_older_skips_recent(tmp_path):
    h = History(tmp_path / "h.db")
    for i in range(10):
        h.add(f"s{i}")
    older = h.sample_older(20, skip_recent=4, rng=random.Random(0))
    assert sorted(older) == [f"s{i}" for i in range(6)]


def test_word_counts(tmp_path):
    h = History(tmp_path / "h.db")
    h.add("Hello hello world")
    assert h.word_counts()[0] == ("hello", 2)
    assert h.word_counts("wor") == [("world", 1)]


def test_turned_down_sentences_are_kept_apart_across_restarts_and_old_files_gain_the_flag(tmp_path):
    import sqlite3
    old = sqlite3.connect(tmp_path / "old.db")  # as histories were written before verdicts were kept
    old.executescript("CREATE TABLE sentences (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
                      "text TEXT NOT NULL); INSERT INTO sentences (at, text) VALUES (0, 'Old one.'), (0, 'Qxz vkw.');")
    old.close()
    h = History(tmp_path / "old.db")
    assert h.sentences() == h.kept_sentences() == ["Old one.", "Qxz vkw."] and h.rejected() == set()
    h.mark_rejected(["Qxz vkw."])
    h.add("New one.")
    h.close()
    again = History(tmp_path / "old.db")
    assert again.rejected() == {"Qxz vkw."} and again.kept_sentences() == ["Old one.", "New one."]
    again.replace_all(["A.", "Qxz."], set(), rejected={"Qxz."})
    assert again.rejected() == {"Qxz."} and again.kept_sentences() == ["A."]
