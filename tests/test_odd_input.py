"""Odd input through the predictor, the learner and the window: arbitrary Unicode, NUL, 1 MB pastes, key bursts.

Nothing crashes, suggestions stay quick, and the history holds exactly the sentences that were committed.
"""
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.storage.history import normalize_sentence
from app.typing.words import tokens
from app.learning.settings import LearnerConfig
from app.typing.loading import load_predictor
from app.typing.sentences import finished_sentences
from app.session import Session, SessionConfig
from app.storage.store import Store

ODD = st.text(st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf")), max_size=80)
RTL = "שלום עולם. مرحبا بالعالم! "
SAMPLES = ["e\u0301\u0301\u0301 ", "👩‍👩‍👧‍👦 🏳️‍🌈. ", "a\x00b\x00c. ", RTL, "\u202etxet\u202c. ", "\ufeff\ufeff. ", "\t\r\n\x0b"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = Session(load_predictor(), Store(tmp_path_factory.mktemp("odd")), LearnerConfig(mode="sparse"),
                SessionConfig(background=False, autosave=False))
    yield s
    s.close()


def _new_document(session):
    session.store.history.replace_all([], set())
    session.text_changed("")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.one_of(ODD, st.sampled_from(SAMPLES)), min_size=1, max_size=6))
def test_arbitrary_typing_is_recorded_exactly_and_never_crashes(session, chunks):
    _new_document(session)
    text = ""
    for chunk in chunks:
        text += chunk
        start = time.perf_counter()
        session.text_changed(text)
        words = session.suggest(text)
        assert time.perf_counter() - start < 5.0
        assert len(words) <= 3 and all(w and w == w.strip() for w in words)
    finished = [normalize_sentence(s) for s in finished_sentences(text, 0)[0]]
    assert session.store.history.sentences() == [s for s in finished if any(True for _ in tokens(s))]


def test_a_one_megabyte_paste(session):
    paste = ("We walked to the lake after work, and then we talked about Lisbon. " * 15_000)[:1_000_000]
    _new_document(session)
    start = time.perf_counter()
    session.text_changed(paste)
    words = session.suggest(paste)
    assert time.perf_counter() - start < 60
    assert len(words) == 3
    assert len(session.store.history) == min(paste.count(". "), session.store.history.max_sentences)


def test_a_burst_of_keys_in_the_window(qtbot, session):
    from app.ui.main_window import MainWindow

    window = MainWindow(session)
    qtbot.addWidget(window)
    for chunk in SAMPLES + ["x" * 300, "Thank you very much. " * 20]:
        window.type_text(chunk)
    qtbot.keyClicks(window.editor, "asdf jkl; " * 30)
    assert window.editor.toPlainText().endswith("asdf jkl; ")
    assert len(window.suggestions) <= 3
    window.timer.stop()
