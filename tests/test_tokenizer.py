"""The shipped SentencePiece tokenizer: every Unicode string survives encode then decode."""
from hypothesis import given, settings
from hypothesis import strategies as st

from models import TOKENIZER_PATH
from models.tokenizer import Tokenizer

TOKENIZER = Tokenizer(TOKENIZER_PATH)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_round_trip_arbitrary_unicode(text):
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


def test_case_punctuation_and_emoji_kept():
    text = "Hello, World! Don't  stop 😀 — naïve 東京\ttab"
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


def test_words_start_with_a_space_piece():
    ids = TOKENIZER.encode("thank you")
    assert TOKENIZER.pieces[ids[0]].startswith(" ")
