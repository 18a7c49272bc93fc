"""Presage's tokenisation of n-gram tables on hand-written examples, and exact 1-3-gram counts of tiny corpora."""
import pytest

from models.build.corpus import HELD_OUT_EVERY
from app.typing.words import lower_words
from models.build.ngrams import corpus_counts
from models.build.ngram_counts import count_ngrams


@pytest.mark.parametrize("text, words", [
    ("I don't KNOW, line.", ["i", "don", "t", "know", "line"]),
    ("e-mail me@home.com\tnow\n", ["e", "mail", "me", "home", "com", "now"]),
    ("it's 5:30pm (maybe)...", ["it", "s", "5", "30pm", "maybe"]),
    ("under_score #tag \"quoted\" [x]{y}|z~", ["under", "score", "tag", "quoted", "x", "y", "z"]),
    ("C'est l'été", ["c", "est", "l", "été"]),
    ("don\u2019t", ["don\u2019t"]),  # a curly apostrophe is a letter to Presage, as to our KSR
    ("", []),
    (" .,;! ", []),
])
def test_presage_tokenisation(text, words):
    assert lower_words(text) == words


def _table(counts, ids, values):
    return {tuple(counts.words[i] for i in row): int(c) for row, c in zip(ids.tolist(), values.tolist())}


def test_counts_of_a_tiny_text():
    counts = count_ngrams(["Thank you very much. Thank you!", "you very"], lower_words)
    assert dict(zip(counts.words, counts.unigrams.tolist())) == {"thank": 2, "you": 3, "very": 2, "much": 1}
    assert _table(counts, counts.bigrams, counts.bigram_counts) == {
        ("thank", "you"): 2, ("you", "very"): 2, ("very", "much"): 1, ("much", "thank"): 1}
    assert _table(counts, counts.trigrams, counts.trigram_counts) == {
        ("thank", "you", "very"): 1, ("you", "very", "much"): 1, ("very", "much", "thank"): 1,
        ("much", "thank", "you"): 1}


def test_corpus_counts_leave_out_held_out_documents(tmp_path):
    lines = [f"doc{i} common" for i in range(2 * HELD_OUT_EVERY)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    counts = corpus_counts([corpus], lower_words)
    words = set(counts.words)
    assert f"doc{HELD_OUT_EVERY - 1}" not in words and f"doc{2 * HELD_OUT_EVERY - 1}" not in words
    assert {"doc0", f"doc{HELD_OUT_EVERY}"} <= words
    assert dict(zip(counts.words, counts.unigrams.tolist()))["common"] == 2 * HELD_OUT_EVERY - 2
