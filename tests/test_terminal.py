"""The terminal keyboard driven through prompt_toolkit's pipe input: typing, arrow keys that move instead of typing,
Tab and Alt+digit taking words from the strip, the toolbar's status, and Escape at the end of input."""
import asyncio

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from app.session import Session, SessionConfig
from app.storage.store import Store
from app.terminal import TerminalKeyboard


@pytest.fixture
def session(shipped_predictor, tmp_path):
    s = Session(shipped_predictor, Store(tmp_path / "data"), config=SessionConfig(background=False, autosave=False,
                                                                                   log_dir=str(tmp_path / "log")))
    yield s
    s.close()


def _type(session, keys: str, close: bool = False) -> str:
    with create_pipe_input() as pipe:
        keyboard = TerminalKeyboard(session, input=pipe, output=DummyOutput())
        pipe.send_text(keys)
        if close:  # the end of input
            pipe.close()
        return keyboard.run()


def test_tab_takes_the_best_suggestion_and_alt_digits_the_others(session):
    best = session.strip("Thank you very ").words
    assert _type(session, "Thank you very \t\x04") == f"Thank you very {best[0]} "
    assert _type(session, "Thank you very \x1b2\x04") == f"Thank you very {best[1]} "


def test_alt_zero_keeps_the_typed_word_and_arrows_move_the_cursor(session):
    assert _type(session, "I like the\x1b0\x04") == "I like the "
    # Left twice then "X": inserted before the last two letters, and no "[D" typed
    assert _type(session, "abcd\x1b[D\x1b[DX\x04") == "abXcd"


def test_escape_at_the_end_of_input_and_a_finished_sentence_learned(session):
    text = _type(session, "We walked to Brightwater today. \x1b", close=True)
    assert text == "We walked to Brightwater today. "
    assert session.store.history.sentences() == ["We walked to Brightwater today."]


def test_the_toolbar_shows_the_strip_and_what_is_not_working(session):
    with create_pipe_input() as pipe:
        keyboard = TerminalKeyboard(session, input=pipe, output=DummyOutput())
        keyboard.strip_for("Thank you very ")
        assert "[1] " in keyboard._toolbar() and "⚠" not in keyboard._toolbar()
        session.problems["learning"] = "learning paused: boom"
        assert keyboard._toolbar().endswith("⚠ learning paused: boom")


def test_after_moving_left_and_deleting_the_strip_is_for_the_text_before_the_cursor(session):
    """Edits and cursor moves, made on the buffer directly (no completion menu runs): the strip follows at once."""
    async def edit_and_move(keyboard):
        buffer = keyboard.prompt.default_buffer
        buffer.text = "I want to go home"
        buffer.cursor_position = len("I want to go ")  # moved left, before "home"
        assert keyboard.strip == session.strip("I want to go ")
        buffer.delete_before_cursor(1)  # the space: "I want to gohome"
        return buffer.text

    with create_pipe_input() as pipe:
        keyboard = TerminalKeyboard(session, input=pipe, output=DummyOutput())
        assert asyncio.run(edit_and_move(keyboard)) == "I want to gohome"
        expected = session.strip("I want to go")
        assert expected.words and keyboard.strip == expected
        assert f"[1] {expected.words[0]}" in keyboard._toolbar()
