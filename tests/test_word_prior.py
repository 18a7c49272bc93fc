"""The count-based prior: Kneser-Ney statistics, normalised probabilities, the 4-gram context, prefix candidates,
npz round trip."""
import pytest

from models.build.ngram_counts import count_in_vocabulary
from app.typing.words import lower_words
from models.build.prior import PriorConfig, kneser_ney_counts, tables_from_documents
from models.word_prior import WordPrior

DOCS = ["The cat sat on the mat. The cat ate the rat!", "Thank you very much; thank you very well.",
        "See you very soon.", "I don't know, you know?"]
EVERYTHING = PriorConfig(max_words=1000, order=4, min_counts=(1, 1, 1))


def _prior(tmp_path, docs, config=EVERYTHING):
    path = tmp_path / "prior.npz"
    tables_from_documents(lambda: iter(docs), lower_words, config).save(path)
    return WordPrior.load(path)


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return _prior(tmp_path_factory.mktemp("prior"), DOCS)


def test_counts_in_a_vocabulary_mark_other_words():
    (uni, uni_n), (bi, bi_n) = count_in_vocabulary(["a b zz", "b a"], lower_words, ["a", "b"], 2)
    assert dict(zip(uni[:, 0].tolist(), uni_n.tolist())) == {0: 2, 1: 2, 2: 1}   # 2: a word outside the list
    assert {tuple(r): int(c) for r, c in zip(bi.tolist(), bi_n.tolist())} == {(0, 1): 1, (1, 2): 1, (1, 0): 1}


def test_continuation_counts_below_the_top_order():
    words = ["a", "cat", "francisco", "my", "san", "the"]
    docs = ["san francisco", "san francisco", "san francisco", "the cat", "a cat", "my cat"]
    grams = count_in_vocabulary(docs, lower_words, words, 2)
    unigram = dict(zip((words[i] for i in grams[0][0][:, 0]), kneser_ney_counts(grams, len(words) + 1)[0].tolist()))
    assert unigram["francisco"] == 1 and unigram["cat"] == 3   # both seen 3 times, but "cat" after 3 words
    assert kneser_ney_counts(grams, len(words) + 1)[1].tolist() == grams[1][1].tolist()  # top order: raw


def test_a_word_seen_after_many_words_is_likelier_in_a_new_context(tmp_path):
    prior = _prior(tmp_path, ["san francisco", "san francisco", "san francisco", "the cat", "a cat", "my cat"])
    assert prior.probability(("nobody",), "cat") > 2 * prior.probability(("nobody",), "francisco")
    assert prior.probability(("san",), "francisco") > prior.probability(("san",), "cat")


@pytest.mark.parametrize("history", [("you", "very"), ("the",), ("nobody", "here"), (), ("thank", "you", "very"),
                                     ("x", "i", "don", "t")])
def test_probabilities_sum_to_one(prior, history):
    assert sum(prior.probability(history, w) for w in prior.t.words) == pytest.approx(1.0)


def test_the_longest_context_decides(prior):
    assert prior.order == 4
    assert prior.probability(("thank", "you", "very"), "much") > prior.probability(("thank", "you", "very"), "soon")
    assert prior.probability(("see", "you", "very"), "soon") > prior.probability(("see", "you", "very"), "much")
    assert prior.candidates(("see", "you", "very"), "", 1)[0] == "soon"
    assert prior.candidates(("thank", "you", "very"), "", 1)[0] in ("much", "well")


def test_candidates_follow_the_prefix(prior):
    assert prior.candidates(("the",), "r", 3) == ["rat"]
    assert prior.candidates(("i", "don"), "", 1)[0] == "t"
    assert prior.candidates((), "zz", 3) == []


def test_pruned_continuations_keep_their_share(tmp_path):
    full = _prior(tmp_path, DOCS)
    pruned = _prior(tmp_path, DOCS, PriorConfig(max_words=1000, order=4, min_counts=(2, 2, 2)))
    assert len(pruned.t.levels[0].next) < len(full.t.levels[0].next)
    (_, pos_full, _), = full._contexts(("the",))
    (_, pos_pruned, _), = pruned._contexts(("the",))
    assert pruned.t.levels[0].total[pos_pruned] == full.t.levels[0].total[pos_full]
    assert sum(pruned.probability(("the",), w) for w in pruned.t.words) < 1.0


def test_unknown_word_gets_a_small_probability(prior):
    assert 0 < prior.probability(("the",), "zebra") < prior.probability(("the",), "rat")


def test_a_config_without_a_minimum_count_per_order_is_refused():
    with pytest.raises(ValueError, match="minimum counts"):
        PriorConfig(order=4, min_counts=(1, 2))
