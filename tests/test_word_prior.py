"""The count-based prior: Presage-style tokens, exact counts, normalised probabilities, prefix candidates, npz round trip."""
import pytest

from models.ngram_counts import count_ngrams, presage_words
from models.word_prior import WordPrior, build_tables

DOCS = ["The cat sat on the mat. The cat ate the rat!", "Thank you very much; thank you very well.",
        "I don't know, you know?"]


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    path = tmp_path_factory.mktemp("prior") / "prior.npz"
    build_tables(count_ngrams(DOCS), min_bigram=1, min_trigram=1).save(path)
    return WordPrior.load(path)


def test_presage_tokenisation():
    assert presage_words("I don't KNOW, line.") == ["i", "don", "t", "know", "line"]


def test_counts_stay_within_documents():
    counts = count_ngrams(["a b", "c d"])
    pairs = {(counts.words[x], counts.words[y]) for x, y in counts.bigrams}
    assert pairs == {("a", "b"), ("c", "d")}
    assert dict(zip(counts.words, counts.unigrams)) == {"a": 1, "b": 1, "c": 1, "d": 1}


@pytest.mark.parametrize("history", [("you", "very"), ("", "the"), ("nobody", "here"), ("", "")])
def test_probabilities_sum_to_one(prior, history):
    assert sum(prior.probability(history, w) for w in prior.t.words) == pytest.approx(1.0)


def test_trigram_beats_unigram(prior):
    assert prior.probability(("you", "very"), "much") > prior.probability(("you", "very"), "cat")
    assert prior.candidates(("you", "very"), "", 2)[:2] == ["much", "well"]


def test_candidates_follow_the_prefix(prior):
    assert prior.candidates(("", "the"), "r", 3) == ["rat"]
    assert prior.candidates(("i", "don"), "", 1)[0] == "t"
    assert prior.candidates(("", ""), "zz", 3) == []


def test_unknown_word_gets_a_small_probability(prior):
    assert 0 < prior.probability(("", "the"), "zebra") < prior.probability(("", "the"), "rat")
