"""The user's vocabulary: counts, spellings that ignore sentence-start capitals, lookup by prefix, word pairs."""
import pytest

from app.typing.user_vocab import CacheWeights, UserVocabulary


def test_most_frequent_completions_in_the_users_spelling():
    vocab = UserVocabulary(["Kowalczyk came.", "I met Kowalczyk and kowtow.", "Kowalczyk again. Kow"])
    assert vocab.with_prefix("kow", 5) == ["Kowalczyk", "kowtow"]
    assert vocab.with_prefix("KOWT", 5) == ["kowtow"]
    assert vocab.with_prefix("kowtow", 5) == []  # nothing longer to complete
    assert vocab.with_prefix("kow", 1) == ["Kowalczyk"]
    assert "met" in vocab and "Met" not in vocab and len(vocab) == 8


def test_a_sentence_start_capital_is_not_the_words_spelling():
    vocab = UserVocabulary(["Tomorrow is fine.", "See you tomorrow."])
    assert vocab.with_prefix("tom", 3) == ["tomorrow"]
    vocab.add_sentence("Gdansk is far.")
    assert vocab.with_prefix("gd", 3) == ["Gdansk"]


def test_followers_of_the_last_word_and_the_last_two_most_frequent_first():
    vocab = UserVocabulary(["We ate pierogi at Babcia's.", "We ate pierogi again.", "They ate pancakes.",
                            "We ate pizza"])
    assert vocab.followers(("we", "ate"), "", 5) == ["pierogi", "pizza", "pancakes"]
    assert vocab.followers(("they", "ate"), "", 5) == ["pancakes", "pierogi", "pizza"]
    assert vocab.followers(("ate",), "pi", 5) == ["pierogi", "pizza"]
    assert vocab.followers(("ate",), "pierogi", 5) == []  # nothing longer to complete
    assert vocab.followers(("we", "ate"), "", 1) == ["pierogi"]
    assert vocab.followers(("pierogi",), "", 5) == ["again", "at"]  # ties by the word
    assert vocab.followers(("pizza",), "", 5) == []  # the last sentence ended here


def test_the_next_sentence_follows_the_last_words_of_the_one_before():
    vocab = UserVocabulary(["It rained.", "Anyway we left."])
    assert vocab.followers(("rained",), "", 5) == ["anyway"]


def test_parts_give_rare_words_own_frequency_and_the_pairs_seen():
    vocab = UserVocabulary(["Kowalczyk came and Kowalczyk left."])  # 5 words; "kowalczyk" twice
    rare = {"kowalczyk": 0.0, "and": 0.02, "left": 2e-4}.get
    unigram, recent, bigram, trigram = vocab.parts((), "kowalczyk", 1e-3, rare)
    assert (unigram, bigram, trigram) == (pytest.approx(2 / 5), 0.0, 0.0) and recent > 0
    assert vocab.parts((), "and", 1e-3, rare)[:2] == (0.0, 0.0)  # common in general text: no unigram share
    assert vocab.parts(("came",), "and", 1e-3, rare)[2] == pytest.approx(1.0)
    assert vocab.parts(("came", "and"), "kowalczyk", 1e-3, rare)[2:] == (pytest.approx(1.0), pytest.approx(1.0))
    assert vocab.parts(("and",), "left", 1e-3, rare)[2] == 0.0  # "and" was followed by "kowalczyk" alone
    assert vocab.parts(("came",), "left", 1e-4, rare)[:2] == (0.0, 0.0)  # not rare below a lower threshold
    assert vocab.contexts_seen(("came", "and")) == (True, True)
    assert vocab.contexts_seen(("left", "came")) == (True, False)
    assert UserVocabulary().parts(("came",), "and", 1e-3, rare) == (0.0, 0.0, 0.0, 0.0)
    weights = CacheWeights(unigram=0.5, recent=0.0, rare_below=1e-3, bigram=0.2, trigram=0.1)
    half = weights.scaled(0.5)
    assert (half.unigram, half.bigram, half.trigram) == (0.25, 0.1, 0.05)
    assert half.rare_below == weights.rare_below  # what counts as a rare word does not change


def test_recency_share_fades_with_the_words_typed_since_and_sums_to_one():
    vocab = UserVocabulary(["Kowalczyk came."] + ["We walked on and on for hours."] * 20 + ["Nowak came."])
    assert sum(vocab.recency_share(w) for w in vocab.counts) == pytest.approx(1.0)
    assert vocab.counts["kowalczyk"] == vocab.counts["nowak"] == 1
    assert vocab.recency_share("nowak") > 3 * vocab.recency_share("kowalczyk")  # 140 words later it has faded
    assert vocab.recency_share("unseen") == 0.0 and UserVocabulary().recency_share("nowak") == 0.0
    rare = {"nowak": 0.0, "came": 0.01}.get
    assert vocab.parts((), "nowak", 1e-3, rare)[1] == pytest.approx(vocab.recency_share("nowak"))
    assert vocab.parts((), "came", 1e-3, rare)[1] == 0.0  # common in general text
