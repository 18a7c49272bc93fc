"""The shipped predictor: up to three distinct known words completing the typed prefix, the typed word itself on the
strip, sane on odd input, KV-cache reuse, few model calls."""
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.typing.search import PRIOR_CANDIDATES
from app.typing.sources import Query
from app.typing.words import split_typing

WORDS = ["the", "I", "you", "thank", "very", "going", "to", "what", "don't", "Hello,", "we", "are"]


def test_thank_you_very_much(shipped_predictor):
    assert "much" in [w.lower() for w in shipped_predictor.suggest("Thank you very ")]


def test_next_words_after_dont_know_what_to(shipped_predictor):
    assert "do" in shipped_predictor.suggest("I don't know what to ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(WORDS), max_size=8),
       partial=st.text(alphabet="abcdefghilmnoprstuwyABT", max_size=4))
def test_up_to_three_distinct_known_completions_of_the_prefix(shipped_predictor, words, partial):
    text = " ".join(words) + (" " if words else "") + partial
    suggestions = shipped_predictor.suggest(text)
    state = split_typing(text)
    vocabulary = shipped_predictor.prior.t.words
    completing = [w for w in vocabulary if w.startswith(state.prefix.lower()) and w != state.prefix.lower()]
    if not state.anchor:  # three whenever three known words complete the prefix
        assert len(suggestions) == min(3, len(completing))
    assert len({s.lower() for s in suggestions}) == len(suggestions) <= 3
    for s in suggestions:
        assert s.lower().startswith(state.prefix.lower()) and s.lower() != state.prefix.lower()
        assert s.lower() in shipped_predictor.prior


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "😀", "I love 😀", "\x00\x01\x1b[2J", "مرحبا بك",
                                  "e\u0301\u0301", "a" * 500, "Hello!!!???...", "\u202eevil"])
def test_odd_input_does_not_crash_and_is_quick(shipped_predictor, text):
    t0 = time.perf_counter()
    suggestions = shipped_predictor.suggest(text)
    assert time.perf_counter() - t0 < 2.0
    assert all(isinstance(s, str) and s for s in suggestions)


def test_long_context_is_truncated_to_the_window(shipped_predictor):
    text = "I went to the shop and bought some bread. " * 2500 + "Thank you very "
    assert len(text) > 100_000
    t0 = time.perf_counter()
    suggestions = shipped_predictor.suggest(text)
    assert time.perf_counter() - t0 < 2.0
    assert "much" in [s.lower() for s in suggestions]
    t0 = time.perf_counter()
    shipped_predictor.suggest(text + "m")
    assert time.perf_counter() - t0 < 1.0


def test_sentence_start_is_capitalised(shipped_predictor):
    assert all(s[0].isupper() for s in shipped_predictor.suggest("It rained. "))
    assert all(s[0].isupper() for s in shipped_predictor.suggest("It rained. Th"))
    assert all(s[0].isupper() for s in shipped_predictor.suggest("It rained. th"))


def test_cache_reuse_gives_the_same_suggestions(shipped_predictor):
    text = "Yesterday I went to the market with my friends and we bought"
    shipped_predictor.invalidate()
    with_reuse = [shipped_predictor.suggest(text[:i]) for i in range(20, len(text))]
    shipped_predictor.config.reuse_cache = False
    shipped_predictor.load_mixture({})  # the first pass adapted the mixture weights: both passes start alike
    try:
        without = [shipped_predictor.suggest(text[:i]) for i in range(20, len(text))]
    finally:
        shipped_predictor.config.reuse_cache = True
    assert with_reuse == without


def test_blocked_word_is_never_suggested(shipped_predictor):
    first = shipped_predictor.suggest("Thank you very ")
    shipped_predictor.blocked.add(first[0].lower())
    try:
        again = shipped_predictor.suggest("Thank you very ")
    finally:
        shipped_predictor.blocked.clear()
    assert first[0] not in again and len(again) == 3


def test_invented_spellings_give_way_to_known_words(shipped_predictor):
    for text in ["Thank you ve", "I went to the st", "Have a nice da"]:
        for word in shipped_predictor.suggest(text):
            assert word.lower() in shipped_predictor.prior, (text, word)


@pytest.mark.parametrize("context, word, invented", [("Thank you ", "very", "veryng"), ("That is ", "also", "alsoity"),
                                                     ("It is my ", "favourite", "favouritess")])
def test_no_spelling_no_one_uses_for_any_prefix(shipped_predictor, context, word, invented):
    """The issue's examples: the old free piece search offered these; no prefix of the word may now."""
    for typed in range(len(word) + 1):
        strip = shipped_predictor.strip(context + word[:typed])
        assert invented not in [w.lower() for w in strip.shown]
        assert all(shipped_predictor.knows(w) for w in strip.shown), strip


def test_the_typed_word_is_on_the_strip_when_known(shipped_predictor):
    strip = shipped_predictor.strip("Thank you very")
    assert strip.typed == "very" and strip.shown[0] == "very" and "very" not in strip.words
    assert shipped_predictor.strip("how are").typed == "are"
    assert shipped_predictor.strip("Thank you qzxw").typed is None  # no word
    assert shipped_predictor.strip("Thank you ").typed is None  # nothing typed of the next word


def test_the_typed_word_follows_expected_case(shipped_predictor):
    assert shipped_predictor.strip("Yesterday i").typed == "I"
    assert shipped_predictor.strip("It rained. the").typed == "The"
    assert shipped_predictor.strip("It rained and the").typed == "the"
    assert "I" in shipped_predictor.suggest("Yesterday ") + shipped_predictor.suggest("Yesterday, ")


def test_a_name_the_user_typed_twice_is_offered(shipped_predictor):
    from app.typing.user_vocab import UserVocabulary

    assert "brightwater" not in shipped_predictor.prior
    saved = shipped_predictor.user_words
    try:
        shipped_predictor.user_words = UserVocabulary(["We walked to Brightwater.", "Brightwater is lovely."])
        shipped_predictor.invalidate()
        assert "Brightwater" in shipped_predictor.suggest("Tomorrow we start the walk to Bri")
        assert shipped_predictor.strip("Tomorrow we start the walk to Brightwater").typed == "Brightwater"
    finally:
        shipped_predictor.user_words = saved
        shipped_predictor.invalidate()


def test_a_keystroke_needs_at_most_two_model_calls(shipped_predictor):
    """The context once per word, then one batch scoring the candidate words not yet scored for that context."""
    shipped_predictor.invalidate()
    text = "Yesterday I went to the market with my friends and we bought some bread"
    calls = []
    for i in range(1, len(text) + 1):
        before = shipped_predictor.model_calls
        shipped_predictor.suggest(text[:i])
        calls.append(shipped_predictor.model_calls - before)
    assert max(calls) <= 2 and sum(calls) <= 1.5 * len(text)

def test_neural_alone_still_suggests(shipped_predictor):
    saved, shipped_predictor.config.mix.prior_weight = shipped_predictor.config.mix.prior_weight, 0.0
    try:
        assert "much" in [w.lower() for w in shipped_predictor.suggest("Thank you very ")]
    finally:
        shipped_predictor.config.mix.prior_weight = saved


def test_the_priors_completions_get_the_models_probability(shipped_predictor):
    """Words of the count prior are scored by the model even when its own estimate would not pick them: with no
    vocabulary proposals at all, the strip holds the prior's words, each spelled by the model."""
    saved, shipped_predictor.config.candidates = shipped_predictor.config.candidates, 0
    try:
        shipped_predictor.invalidate()
        words = shipped_predictor.suggest("I went to the st")
        prior_words = shipped_predictor.prior.candidates(("i", "went", "to", "the"), "st", PRIOR_CANDIDATES)
        tree, first = shipped_predictor.model_source._tree, shipped_predictor.model_source._last_logp
        assert words and {w.lower() for w in words} <= set(prior_words)
        for word in words:  # in the spelling the model found likelier
            rows = [row for row in shipped_predictor.model_source.spell([word, word.capitalize()]) if tree.spells(row)]
            assert rows and all(-50 < tree.pieces_logp(first, row) < 0 for row in rows), word
    finally:
        shipped_predictor.config.candidates = saved
        shipped_predictor.invalidate()


def test_a_long_odd_user_word_does_not_overrun_the_window(shipped_predictor):
    from app.typing.user_vocab import UserVocabulary

    saved = shipped_predictor.user_words
    shipped_predictor.user_words = UserVocabulary(["ࠀࠀࠀࠀࠀࠀࠀࠀࠀࠀ𐀀𐀀𐀀𐀀 is odd."])
    try:
        context = "0000000000ࠀ " * 60
        assert len(shipped_predictor.suggest(context + "ࠀ")) <= 3
    finally:
        shipped_predictor.user_words = saved
        shipped_predictor.invalidate()


def test_ties_rank_the_same_whatever_order_the_candidates_came_in(shipped_predictor):
    """Words of equal score rank by the word, not by set or hash order."""
    from app.typing.search import _Candidates

    state = split_typing("I saw the conn")
    words = ["connq", "connz", "conna", "connx", "connb"]
    ranked = []
    for weight in (0.0, shipped_predictor.config.mix.prior_weight):  # with and without the prior's words beside them
        for order in (words, words[::-1]):
            found = _Candidates()
            for word in order:
                found.add(word, -60.0)
            saved, shipped_predictor.config.mix.prior_weight = shipped_predictor.config.mix.prior_weight, weight
            try:
                ranked.append(shipped_predictor.search._rank(found, Query(state, ("saw", "the"))))
            finally:
                shipped_predictor.config.mix.prior_weight = saved
    assert ranked[0] == ranked[1] == ["conna", "connb", "connq"]
    assert ranked[2] == ranked[3]


def test_the_users_own_word_pairs_are_suggested_in_their_spelling(shipped_predictor):
    from app.typing.user_vocab import UserVocabulary

    text = "On Sundays we eat pierogi with "
    saved = shipped_predictor.user_words
    assert "Babcia" not in shipped_predictor.suggest(text)
    try:
        shipped_predictor.user_words = UserVocabulary(["On Sundays we eat pierogi with Babcia."] * 3)
        shipped_predictor.invalidate()
        assert "Babcia" in shipped_predictor.suggest(text)  # beside "a" and "the", which stay likelier
        assert "pierogi" in shipped_predictor.suggest("On Sundays we eat ")
        assert shipped_predictor.suggest("Pie")[0] == "Pierogi"  # a rare word the user types often
    finally:
        shipped_predictor.user_words = saved
        shipped_predictor.invalidate()


@pytest.mark.parametrize("name, exact", [("blocks.3.mlp.c_fc.weight", True), ("ln_f.bias", True),
                                         ("blocks.3.attn.c_attn.weight", False), ("wte.weight", False)])
def test_a_weight_change_keeps_the_kv_cache_as_a_memory(name, exact):
    """The context's keys and values stay as computed; the newest token runs with the new weights. Where no key or
    value depends on the changed weight, that is exactly a fresh start."""
    from app.typing.loading import load_predictor

    predictor = load_predictor()
    text = "I told my sister that we would go to the lake tomorrow, and she "
    predictor.suggest(text)
    context, before = predictor.model_source._tokens, predictor.model_source._last_logp.clone()
    remembered = [k[:, :, :-1].clone() for k, _ in predictor.model_source._cache]
    param = dict(predictor.model.named_parameters())[name]
    with torch.no_grad():
        param.add_(0.05 * torch.randn_like(param))
    predictor.weights_changed()
    assert predictor.model_source._tokens == context[:-1] and predictor.model_source._cache is not None
    changed = predictor.suggest(text), predictor.model_source._last_logp.clone()
    assert all(torch.equal(k[:, :, :-1], old) for (k, _), old in zip(predictor.model_source._cache, remembered))
    assert not torch.allclose(changed[1], before, atol=1e-4)  # the newest token saw the new weights
    predictor.invalidate()
    fresh = predictor.suggest(text), predictor.model_source._last_logp.clone()
    assert torch.allclose(changed[1], fresh[1], atol=1e-4) == exact


def test_backspacing_over_a_space_after_a_kept_cache_suggests():
    from app.typing.loading import load_predictor

    predictor = load_predictor()
    predictor.suggest("I went to the ")
    predictor.weights_changed()
    assert len(predictor.suggest("I went to th")) == 3  # the context is the kept tokens exactly: no stale logits


def test_published_weights_wait_for_the_next_word_and_then_match_a_fresh_start():
    from app.typing.loading import load_predictor

    predictor, fresh = load_predictor(), load_predictor()
    name = "blocks.3.mlp.c_fc.weight"
    value = dict(predictor.model.named_parameters())[name].detach() + 0.2
    with torch.no_grad():
        dict(fresh.model.named_parameters())[name].copy_(value)
    text = "I told my sister that we would go to the lake tomorrow, and she s"
    predictor.suggest(text)
    predictor.update_weights({name: value.clone()})
    predictor.suggest(text + "a")
    assert predictor.model_source._pending  # mid-word: the old weights still
    text += "aid "
    assert predictor.suggest(text) == fresh.suggest(text)  # the next word uses the new weights ...
    assert not predictor.model_source._pending and torch.equal(dict(predictor.model.named_parameters())[name], value)
    predictor.update_weights({name: value - 0.2})
    predictor.invalidate()  # ... and so does an explicit reload, at once
    assert not predictor.model_source._pending


def test_words_typed_lately_are_whole_words(shipped_predictor):
    from app.typing.sources import RECENT_CHARS

    context = "Zyxwvut" + " abc" * ((RECENT_CHARS - 4) // 4) + " "  # the window's cut falls inside "Zyxwvut"
    assert len(context) == RECENT_CHARS + 4
    recent = shipped_predictor.user.recent(context)
    assert "abc" in recent and not any(word.endswith("vut") for word in recent)
    assert shipped_predictor.knows("Zyxwvut", "Zyxwvut went home. ")


def test_the_text_typed_lately_counts_its_words_and_what_followed_them():
    from app.typing.sources import Query, UserSource

    user = UserSource()
    state = split_typing("The cat sat on the mat and the Cat ran to the c")
    query = Query(state, ("to", "the"))
    assert user.text_followers(query, 5) == ["cat"]  # "mat" came after "the" too, but does not start with "c"
    shares, pairs = user.text_probabilities(query, ["cat", "mat", "dog"])
    assert shares == {"cat": 2 / 12, "mat": 1 / 12, "dog": 0.0} and pairs == {"cat": 2 / 3, "mat": 1 / 3, "dog": 0.0}
    assert user.recent(state.context)["cat"] == "Cat"  # the latest spelling
    assert user.text_probabilities(Query(split_typing("Hello wor"), ("hello",)), ["world"]) == ({"world": 0.0}, None)


def test_a_name_that_followed_the_last_word_beyond_the_model_window_is_offered(shipped_predictor):
    """The model sees the last 128 pieces; the words of the text typed lately reach further back."""
    filler = "We walked along the river and talked about the weather for a while. " * 11
    text = "Our neighbours have a cat called Marmalade. " + filler + "My aunt has a cat called M"
    assert "Marmalade" in shipped_predictor.suggest(text)
    mix = shipped_predictor.combiner.config
    saved = mix.text_words, mix.text_pairs
    try:
        mix.text_words = mix.text_pairs = 0.0
        assert "Marmalade" not in shipped_predictor.suggest(text)
    finally:
        mix.text_words, mix.text_pairs = saved


def test_remembered_spellings_are_bounded(shipped_predictor, monkeypatch):
    import app.typing.model_source

    monkeypatch.setattr(app.typing.model_source, "SPELLINGS_KEPT", 5)
    for i in range(4):
        words = [f"w{i}{j}" for j in range(4)] + ["the"]
        assert shipped_predictor.model_source.spell(words) == [shipped_predictor.tokenizer.encode(w) for w in words]
        assert len(shipped_predictor.model_source._spellings) <= 5 + len(words)
