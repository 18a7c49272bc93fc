"""Splitting the text before the cursor into context, anchor and typed prefix; following the user's case."""
import pytest

from app.typing.words import match_case, split_typing


def test_split_new_word_after_space():
    s = split_typing("Thank you ve")
    assert (s.context, s.anchor, s.prefix) == ("Thank you ", "", "ve")


def test_split_continuation_after_apostrophe():
    s = split_typing("I don'")
    assert (s.context, s.anchor, s.prefix) == ("I ", "don'", "")


@pytest.mark.parametrize("space", ["\xa0", "\u2003", "\u3000"])
def test_any_unicode_space_ends_a_word(space):
    s = split_typing(f"Thank you{space}ve")
    assert s.prefix == "ve" and split_typing(f"Thank you{space}").prefix == ""


def test_sentence_start():
    assert split_typing("").sentence_start
    assert split_typing("Hello there. ").sentence_start
    assert split_typing("Hello there. W").sentence_start
    assert not split_typing("Hello there ").sentence_start
    assert split_typing('She said "Go!" Th').sentence_start and split_typing("(Really?) \n").sentence_start
    assert not split_typing("Hello there.) But ").sentence_start and not split_typing(")] ").sentence_start


def test_words_longer_than_the_searched_tail_are_whole():
    word, chunk = "x" * 1000, "y" * 700 + "'"
    s = split_typing("Some text " + chunk + word)
    assert (s.context, s.anchor, s.prefix) == ("Some text ", chunk, word)
    assert split_typing("a " * 5000 + "wor").prefix == "wor"


def test_match_case():
    assert match_case("the", "Th", False) == "The"
    assert match_case("the", "TH", False) == "THE"
    assert match_case("the", "", True) == "The"
    assert match_case("iPhone", "i", False) == "iPhone"
    assert match_case("there", "th", True) == "There"  # a sentence start, typed small
