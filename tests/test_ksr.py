"""KSR counted by hand on a small example, and the word splitting it rests on."""
import pytest

from app.bench.ksr import KsrResult, simulate
from app.typing.words import tokens

TABLE = {
    "": ["I", "you", "the"],
    "I ": ["do", "am", "was"],
    "I d": ["do", "did", "DON"],
    "I don'": ["t", "ll", "s"],
    "I don't ": ["think", "want", "like"],
    "I don't k": ["keep", "know", "kill"],
}


def suggest(context):
    return TABLE.get(context, ["x", "y", "z"])


def test_tokens_split_at_whitespace_and_punctuation():
    assert [t.text for t in tokens("I don't know, line.  Done-ish")] == \
        ["I", "don", "t", "know", "line", "Done", "ish"]


def test_ksr_hand_worked_example():
    result = simulate("I don't know.", suggest)
    # I: 1, don: 1 letter + 1, t: 1 (continuation after the apostrophe), know: 1 letter + 1.
    assert result.cost == 1 + 2 + 1 + 2
    assert result.plain == 2 + 4 + 2 + 5
    assert result.ksr == pytest.approx(100 * (1 - 6 / 13))
    assert result.words == 4
    # Next-word accuracy counts words that start after a space, not continuations ("t").
    assert result.next_word_total == 3
    assert result.next_word_top1 == 1 and result.next_word_top3 == 1


def test_word_never_suggested_costs_its_length_plus_one():
    result = simulate("zebra", lambda context: ["a", "b", "c"])
    assert result.cost == 6 and result.ksr == 0.0


def test_only_three_suggestions_count():
    result = simulate("w", lambda context: ["a", "b", "c", "w"])
    assert result.cost == 2


def test_tail_keeps_last_words():
    result = simulate("I don't know.", suggest)
    tail = result.tail(0.5)
    assert tail.words == 2 and tail.cost == 3 and tail.plain == 7


def test_new_and_seen_word_ksr_count_only_words_not_typed_before_and_typed_before():
    from app.bench.simulate_report import tail_ksr_by_novelty

    text = "the cat saw the dog and the cat ran"  # 9 words; the last half: "dog and the cat ran" minus repeats
    result = KsrResult(curve=[(0, 4)] * 4 + [(1, 4), (2, 4), (99, 4), (99, 4), (3, 4)])
    # last 5 words: dog (new), and (new), the (seen), cat (seen), ran (new): costs 1, 2, 3 of 12 plain
    assert tail_ksr_by_novelty(result, text, new=True, share=5 / 9) == pytest.approx(100 * (1 - 6 / 12))
    assert tail_ksr_by_novelty(result, text, new=False, share=5 / 9) == pytest.approx(100 * (1 - 198 / 8))


def test_the_typed_letters_on_the_strip_take_no_suggestions_place():
    """A strip may show the word typed so far beside three predictions: the three still count."""
    strips = {"": ["x", "y", "z"], "c": ["c", "a", "b", "cat"]}
    result = simulate("cat", lambda context: strips.get(context, ["x", "y", "z"]))
    assert result.cost == 2  # "c", then "cat" taken as the third prediction


def test_non_words_and_the_typed_word_on_the_strip_are_counted():
    known = {"i", "do", "did", "don", "t", "ll", "s", "know", "keep", "kill", "think", "want", "like", "am", "was",
             "you", "the"}
    table = dict(TABLE)
    table["I"] = ["I", "in", "it"]          # the typed word offered, "in" and "it" are not known here
    table["I do"] = ["don", "dog", "done"]  # "do" whole: not offered; "dog" and "done" are no known words
    result = simulate("I do.", lambda context: table.get(context, ["x", "y", "z"]), known=known)
    assert result.whole == 2 and result.offered == 1 and result.typed_offered == 50.0
    # Both words are suggested before their first letter; the strips shown: "" (3 known), "I" whole (1 known of 3),
    # "I " (3 known), "I do" whole (1 known of 3).
    assert result.shown == 12 and result.unknown == 4 and result.non_words == 100 * 4 / 12


def test_without_known_words_no_figures_are_counted():
    result = simulate("I don't know.", suggest)
    assert result.shown == result.whole == 0 and result.non_words == result.typed_offered == 0.0
