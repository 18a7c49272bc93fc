"""The window, offscreen: typing and accepting, gauges equal to what the session measured, modes, files, replay."""
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app.learning.settings import LearnerConfig
from app.typing.loading import load_predictor
from app.session import Session, SessionConfig
from app.storage.store import Store
from app.ui.main_window import MainWindow
from app.ui.panels import MIB


@pytest.fixture
def window(qtbot, tmp_path):
    session = Session(load_predictor(), Store(tmp_path / "data"), LearnerConfig(mode="sparse"),
                      SessionConfig(background=True, autosave=False, measure_costs=True))
    win = MainWindow(session)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_typing_updates_the_suggestions(window, qtbot):
    qtbot.keyClicks(window.editor, "Thank you very ")
    assert "much" in window.strip.words and window.strip.words == window.suggestions
    assert window.strip.button_for_rank(0).text() == window.suggestions[0]


def test_every_way_of_accepting_inserts_the_right_word(window, qtbot):
    qtbot.keyClicks(window.editor, "Thank you very mu")
    assert window.suggestions[0] == "much"
    qtbot.keyClick(window.editor, Qt.Key.Key_Tab)
    assert window.editor.toPlainText() == "Thank you very much "
    third = window.suggestions[2]
    qtbot.keyClick(window.editor, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.editor.toPlainText() == f"Thank you very much {third} "
    second = window.suggestions[1]
    qtbot.mouseClick(window.strip.button_for_rank(1), Qt.MouseButton.LeftButton)
    assert window.editor.toPlainText().endswith(f"{third} {second} ")
    for key in ("⇧", "o", "k", "⌫", "k"):
        window.keyboard.press(key)
    assert window.editor.toPlainText().endswith(f"{second} Ok")


def test_the_typed_word_is_set_apart_and_taken_with_a_space(window, qtbot):
    qtbot.keyClicks(window.editor, "Thank you very")
    assert window.typed_word == "very" and window.strip.typed_button.text() == "“very”"
    assert "very" not in window.suggestions  # it takes no prediction's place
    qtbot.mouseClick(window.strip.typed_button, Qt.MouseButton.LeftButton)
    assert window.editor.toPlainText() == "Thank you very "
    assert not window.strip.typed_button.isEnabled()  # nothing typed of the next word
    qtbot.keyClicks(window.editor, "i")
    qtbot.keyClick(window.editor, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert window.editor.toPlainText() == "Thank you very I "


def test_never_suggest_from_the_strip(window, qtbot):
    qtbot.keyClicks(window.editor, "Thank you very ")
    menu = window.strip.never_menu(window.suggestions.index("much"))
    menu.actions()[0].trigger()
    assert "much" not in [w.lower() for w in window.suggestions]
    assert "much" in window.session.store.history.blocked()


def test_gauges_show_what_the_session_measured(window, qtbot):
    learner = window.session.learner
    qtbot.keyClicks(window.editor, "Thank you very")
    assert window.session.worker.idle()
    window.refresh()  # nothing learned yet: no training step taken, none measured, no figure shown
    assert learner.measured_training_bytes("full") is None and learner.measured_training_bytes("sparse") is None
    assert window.costs.full_gauge.value is None and window.costs.train_gauge.value is None
    qtbot.keyClicks(window.editor, " much. We walked to the lake after work. ")
    qtbot.waitUntil(lambda: window.session.stats.training_mode is not None, timeout=30_000)  # a round has ended
    qtbot.waitUntil(lambda: learner.measured_training_bytes("full") is not None, timeout=60_000)
    window.refresh()
    assert window.costs.latency_gauge.value == window.latencies[-1]
    assert window.costs.step_gauge.value == window.session.stats.last_step_ms
    stats = window.session.stats
    assert stats.training_mode == "sparse"  # the running plan's own figure from its last step, not the copy's
    assert window.costs.train_gauge.value == stats.training_bytes / MIB
    assert window.costs.full_gauge.value == learner.measured_training_bytes("full") / MIB
    assert window.costs.train_gauge.value < window.costs.full_gauge.value < window.costs.full_gauge.maximum
    assert window.costs.train_gauge.maximum == window.costs.full_gauge.maximum  # one scale
    weights = sum(p.numel() * 4 for p in learner.model.parameters())
    assert window.costs.model_gauge.value == window.session.model_bytes() / MIB
    assert 3 * weights / MIB <= window.costs.model_gauge.value < 3.5 * weights / MIB  # predictor, learner, base
    assert window.costs.rss_gauge.value > 50
    window.session.problems["learning"] = "learning paused: RuntimeError: boom"
    window.refresh()
    assert window.statusBar().currentMessage() == "learning paused: RuntimeError: boom"
    del window.session.problems["learning"]
    assert (f"rounds kept {stats.rounds_accepted} · rolled back {stats.rounds_rolled_back} · "
            f"pulled back {stats.pullbacks}") in window.learning.label.text()


def test_mode_switch_changes_the_plan_and_the_memory_gauge(window, qtbot):
    learner = window.session.learner
    qtbot.keyClicks(window.editor, "We walked to the lake after work. ")
    qtbot.waitUntil(lambda: learner.measured_training_bytes("full") is not None, timeout=60_000)
    assert learner.measured_training_bytes("lora") is None  # measured when chosen, not at start
    window.refresh()
    sparse = window.costs.train_gauge.value
    window.mode_box.setCurrentText("lora")
    qtbot.waitUntil(lambda: learner.measured_training_bytes("lora") is not None, timeout=60_000)
    window.refresh()
    assert learner.mode == "lora" and window.costs.train_gauge.value == learner.measured_training_bytes("lora") / MIB
    assert window.costs.train_gauge.value != sparse
    window.mode_box.setCurrentText("full")
    window.refresh()
    assert learner.mode == "full" and window.costs.train_gauge.value == learner.measured_training_bytes("full") / MIB
    qtbot.keyClicks(window.editor, "We walked to the lake after work. ")
    qtbot.waitUntil(lambda: learner.stats.training_mode == "full", timeout=30_000)  # a round ran with full's plan


def answer_dialogs(seen: list[str], button=QMessageBox.StandardButton.Yes):
    """Answer every message box that opens (as a user clicking `button` would), noting its text."""
    def poll():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            (box.button(button) or box.button(QMessageBox.StandardButton.Ok)).click()
    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    return timer


def test_export_reset_import_and_a_rejected_file(window, qtbot, tmp_path, monkeypatch):
    errors = []
    timer = answer_dialogs(errors)
    qtbot.keyClicks(window.editor, "Mira and Tobias went to Lisbon. Mira liked Lisbon. ")
    qtbot.waitUntil(lambda: window.session.stats.rounds_accepted > 0, timeout=30_000)
    learned = window.session.learner.deltas()
    target = tmp_path / "me.pkb"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.export()
    assert target.exists()
    window.reset()
    assert window.session.learner.deltas() == {} and window.session.store.history.sentences() == []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target), ""))
    window.import_file()
    assert set(window.session.learner.deltas()) == set(learned)
    assert len(errors) == 2 and "history" in errors[0] and "base model" in errors[1]  # export, reset questions
    (tmp_path / "bad.pkb").write_bytes(b"not a model")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "bad.pkb"), ""))
    window.import_file()
    assert "Nothing was changed" in errors[2] and "not a Pocket Keyboard personal model" in errors[2]
    assert set(window.session.learner.deltas()) == set(learned)
    timer.stop()


def test_replay_types_the_text_to_the_end_and_the_chart_has_points(window, qtbot):
    text = "Mira and I walked to the lake. Mira and I talked about Lisbon. We walked home along the canal. "
    window.speed.setValue(400)
    window.start_replay(text)
    qtbot.waitUntil(lambda: not window.replay.running, timeout=60_000)
    assert window.editor.toPlainText() == text
    window.refresh()
    assert len(window.learning.chart.series["suggested before typing"]) == window.typing.words >= 15
    assert window.typing.keystrokes < window.typing.characters  # suggestions were taken
    assert window.typing.hit_rate > 0 and window.learning.chart.series["keystrokes saved"][-1][1] == window.typing.points[-1].saved

