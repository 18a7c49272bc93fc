"""The adaptive mixture weights: a distribution over the sources that apply, moved toward the sources that predicted
the words typed, bounded so a source that turned bad wins its weight back; the combiner learns from committed words."""
import math
import random

import pytest

from app.typing.combiner import Combiner, MixConfig
from app.typing.mixture import SOURCES, AdaptConfig, MixtureWeights
from app.typing.sources import Query, UserSource
from app.typing.user_vocab import CacheWeights
from app.typing.words import split_typing

START = {"model": 0.7, "prior": 0.2, "text_words": 0.05, "text_pairs": 0.05}


def test_weights_are_a_distribution_over_the_sources_that_apply():
    mix = MixtureWeights(START, AdaptConfig(rate=0.5))
    assert sum(mix.weights().values()) == pytest.approx(1.0)
    some = mix.weights({"model", "prior"})
    assert set(some) == {"model", "prior"} and some["model"] == pytest.approx(0.7 / 0.9)
    assert mix.weights()["user_bigram"] == 0.0  # no start weight: never used
    rng = random.Random(0)
    for _ in range(500):
        mix.learn({name: rng.random() ** 4 for name in rng.sample(list(START), rng.randint(1, 4))})
        weights = mix.weights()
        assert sum(weights.values()) == pytest.approx(1.0)
        assert all(w >= 0 and math.isfinite(w) for w in weights.values())


def test_a_source_that_turns_bad_loses_weight_and_wins_it_back():
    mix = MixtureWeights(START, AdaptConfig(rate=0.2, bound=3.0))
    # half the words are the model's, half the text's: the text deserves far more than its 5%
    model_words = {"model": 0.3, "prior": 0.1, "text_words": 0.0, "text_pairs": 0.0}
    text_words = {"model": 0.001, "prior": 0.001, "text_words": 0.5, "text_pairs": 0.0}

    def good():
        for i in range(300):
            mix.learn(model_words if i % 2 else text_words)

    good()
    high = mix.weights()["text_words"]
    assert high > START["text_words"]  # it predicted the words better than its weight said
    assert mix.weights()["text_pairs"] < START["text_pairs"]  # it never predicted any
    for _ in range(300):
        mix.learn(model_words)  # the text goes bad
    low = mix.weights()["text_words"]
    assert low < START["text_words"] and low >= START["text_words"] * math.exp(-3.0) * 0.5  # bounded below
    good()
    assert mix.weights()["text_words"] > 0.9 * high  # it recovered


def test_nothing_moves_without_a_rate_or_when_no_source_predicted_the_word():
    fixed = MixtureWeights(START, AdaptConfig(rate=0.0))
    fixed.learn({"model": 0.5, "prior": 0.0})
    adaptive = MixtureWeights(START, AdaptConfig(rate=0.5))
    adaptive.learn({"model": 0.0, "prior": 0.0})
    for mix in (fixed, adaptive):
        assert mix.weights() == MixtureWeights(START).weights() and mix.words == 0


def test_saved_weights_load_within_their_bounds_and_unknown_ones_are_refused():
    mix = MixtureWeights(START, AdaptConfig(rate=0.3))
    for _ in range(50):
        mix.learn({"model": 0.01, "prior": 0.2})
    again = MixtureWeights(START, AdaptConfig(rate=0.3))
    again.load(mix.to_dict())
    assert again.weights() == pytest.approx(mix.weights()) and again.words == 50
    again.load({"log": {"model": 1e9, "prior": float("nan"), "nonsense": 1.0}, "words": -3})
    assert again.log["model"] == pytest.approx(math.log(0.7) + again.config.bound)
    assert again.log["prior"] == pytest.approx(math.log(0.2)) and again.words == 0
    again.load({"log": "not a mapping", "words": 7})
    assert again.weights() == MixtureWeights(START).weights() and again.words == 7
    with pytest.raises(ValueError):
        MixtureWeights({"oracle": 1.0})
    assert set(MixtureWeights(START).weights()) == set(SOURCES)


def test_the_combiner_learns_from_each_committed_word_at_its_position():
    config = MixConfig(prior_weight=0.0, adapt=AdaptConfig(rate=0.5))
    combiner = Combiner(config, None, UserSource())
    text = "the cat sat on the mat and the cat sat on the mat again "

    def keystroke(typed: str, model: dict[str, float]) -> None:
        state = split_typing(typed)
        combiner.observe(state)
        combiner.values(model, Query(state, ()), remember=True)

    start = combiner.weights.weights()["text_words"]
    for i in range(len(text)):
        word = text[:i + 1].split()[-1] if text[i] != " " else ""
        keystroke(text[:i + 1], {"cat": 0.001, "mat": 0.001, "sat": 0.001, word: 0.001})
    # every word repeated the text before it, which the model gave 0.1%: the text's words gained weight
    assert combiner.weights.words > 5
    assert combiner.weights.weights()["text_words"] > start
    words = combiner.weights.words
    keystroke(text + "zzz qq", {})  # a jump of two words (a paste): no single committed word to learn from
    assert combiner.weights.words == words


def test_the_new_word_factor_scales_only_words_the_user_never_typed():
    user = UserSource()
    user.words.add_sentence("The cat sat.")
    combiner = Combiner(MixConfig(prior_weight=0.0, cache=CacheWeights.none(), text_words=0.0, text_pairs=0.0),
                        None, user)
    query = Query(split_typing("a "), ())
    before = combiner.values({"cat": 0.01, "dog": 0.01}, query)
    combiner.new_word_factor = 3.0
    after = combiner.values({"cat": 0.01, "dog": 0.01}, Query(split_typing("a "), ()))
    assert after["cat"] == pytest.approx(before["cat"]) and after["dog"] == pytest.approx(3 * before["dog"])
