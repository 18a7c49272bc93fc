"""The Pocket Keyboard window: typing area, suggestion strip, on-screen keys, gauges, learning chart and controls.

It forwards what the user does to the Session and shows what the Session measured; learning runs in its worker.
"""
from __future__ import annotations

import time
from collections import deque
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMainWindow, QMessageBox, QVBoxLayout, QWidget

from app.storage.personal_file import PersonalFileError
from app.session import Session
from app.typing.typing_stats import TypingStats
from app.ui.dialogs import LearnedWordsDialog
from app.ui.keyboard import OnScreenKeyboard
from app.ui.replay import ReplayDriver
from app.ui.strip import SuggestionStrip, TypingArea
from app.ui.panels import ControlsPanel, CostPanel, LearningPanel
from app.typing.words import split_typing

DEMO_TEXT = Path(str(resources.files("assets") / "demo.txt"))


class SessionSignals(QObject):
    """The learner's worker thread reaches the window only through this signal (queued to the GUI thread)."""

    learned = Signal()

    def __init__(self, session: Session):
        super().__init__()
        session.listeners.append(lambda result: self.learned.emit())


class MainWindow(QMainWindow):
    def __init__(self, session: Session):
        super().__init__()
        self.session = session
        self.latencies: deque[float] = deque(maxlen=1000)
        self.suggestions: list[str] = []
        self.typed_word: str | None = None
        self._text = ""
        self._status = ""
        self.typing = TypingStats()
        self.signals = SessionSignals(session)
        self.setWindowTitle("Pocket Keyboard")
        self.resize(1240, 760)
        self._build()
        self.replay = ReplayDriver(self)
        self.replay.finished.connect(lambda: self.replay_button.setText("Replay text…"))
        self.signals.learned.connect(self.refresh)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(500)
        self._text_changed()

    # --- layout ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        left = QVBoxLayout()
        self.editor = TypingArea()
        self.editor.setPlaceholderText("Type here: suggestions follow every key, and finished sentences teach "
                                       "the model.  Tab takes the best word, Ctrl+1/2/3 the first/second/third, "
                                       "Ctrl+0 the word as typed.")
        self.strip = SuggestionStrip()
        self.keyboard = OnScreenKeyboard()
        left.addWidget(self.editor, 3)
        left.addWidget(self.strip)
        left.addWidget(self.keyboard)
        right = QVBoxLayout()
        self.costs, self.learning = CostPanel(), LearningPanel()
        right.addWidget(self.costs)
        right.addWidget(self.learning)
        self.controls = ControlsPanel(self.session.learner.mode, {
            "Reset…": self.reset, "Export…": self.export, "Import…": self.import_file,
            "Learned words…": self.show_words})
        self.mode_box, self.replay_button, self.speed = self.controls.mode_box, self.controls.replay, self.controls.speed
        self.mode_box.currentTextChanged.connect(self.set_mode)
        self.controls.incognito.toggled.connect(self.set_incognito)
        self.replay_button.clicked.connect(self.toggle_replay)
        right.addWidget(self.controls)
        body = QHBoxLayout()
        body.addLayout(left, 3)
        body.addLayout(right, 2)
        central = QWidget()
        central.setLayout(body)
        self.setCentralWidget(central)
        self.editor.textChanged.connect(self._text_changed)
        self.editor.cursorPositionChanged.connect(self._cursor_moved)
        self.editor.accept_rank.connect(self.accept)
        self.editor.accept_typed.connect(self.accept_typed)
        self.strip.chosen.connect(self.accept)
        self.strip.typed_chosen.connect(self.accept_typed)
        self.strip.never.connect(self.never_suggest)
        self.keyboard.typed.connect(self.type_text)
        self.keyboard.backspace.connect(self._backspace)

    # --- typing ----------------------------------------------------------------------------------------------
    def text_before_cursor(self) -> str:
        return self.editor.toPlainText()[: self.editor.textCursor().position()]

    def _text_changed(self) -> None:
        text = self.editor.toPlainText()
        self._text = text
        self.session.text_changed(text)
        self.typing.typed(text)
        self._suggest()

    def _cursor_moved(self) -> None:
        """A move within unchanged text (an edit's own move is handled when its textChanged arrives)."""
        if self.editor.toPlainText() == self._text and not self.editor.textCursor().hasSelection():
            self._suggest()

    def _suggest(self) -> None:
        before = self.text_before_cursor()
        start = time.perf_counter()
        strip = self.session.strip(before)
        self.latencies.append((time.perf_counter() - start) * 1000)
        if strip.words != self.suggestions or strip.typed != self.typed_word:
            self.suggestions, self.typed_word = strip.words, strip.typed
            self.strip.set_strip(strip)
        self.typing.shown(before, strip.words)

    def type_text(self, text: str) -> None:
        self.editor.insertPlainText(text)
        self.editor.ensureCursorVisible()
        self.editor.setFocus()

    def _backspace(self) -> None:
        cursor = self.editor.textCursor()
        cursor.deletePreviousChar()
        self.editor.setTextCursor(cursor)

    def accept(self, rank: int, space: bool = True) -> None:
        """Replace the word being typed with suggestion `rank` (0 = best), then a space."""
        if rank < len(self.suggestions):
            self._put_word(self.suggestions[rank], space)

    def accept_typed(self) -> None:
        """Keep the word as typed (it is a known word) and add a space."""
        if self.typed_word:
            self._put_word(self.typed_word)

    def _put_word(self, word: str, space: bool = True) -> None:
        """Replace the word being typed with `word`, then a space."""
        cursor = self.editor.textCursor()
        typed = len(split_typing(self.text_before_cursor()).prefix)
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, typed)
        cursor.insertText(word + (" " if space else ""))
        self.editor.setTextCursor(cursor)
        self.editor.setFocus()

    def never_suggest(self, word: str) -> None:
        self.session.block(word)
        self.suggestions = []
        self._suggest()

    # --- controls --------------------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self.session.set_mode(mode)
        self.refresh()

    def set_incognito(self, on: bool) -> None:
        self.session.incognito = on

    def reset(self) -> None:
        answer = QMessageBox.question(self, "Reset personal model",
                                      "Go back to the base model? What it learned from you and your typing "
                                      "history are deleted.")
        if answer == QMessageBox.StandardButton.Yes:
            self.session.reset()
            self._after_model_change("Back to the base model.")

    def export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export personal model", "personal.pkb",
                                              "Personal model (*.pkb)")
        if not path:
            return
        history = QMessageBox.question(self, "Export", "Include your typing history in the file?")
        try:
            self.session.export(path, with_history=history == QMessageBox.StandardButton.Yes)
        except OSError as err:
            QMessageBox.critical(self, "Export failed", f"Cannot write {path}: {err.strerror}")
            return
        self.statusBar().showMessage(f"Exported to {path}", 5000)

    def import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import personal model", "", "Personal model (*.pkb);;All (*)")
        if not path:
            return
        try:
            self.session.import_file(path)
        except PersonalFileError as err:
            QMessageBox.critical(self, "Not imported", f"Nothing was changed.\n\n{err}")
            return
        self.mode_box.setCurrentText(self.session.learner.mode)
        self._after_model_change(f"Imported {Path(path).name}.")

    def _after_model_change(self, message: str) -> None:
        self.suggestions = []
        self._suggest()
        self.refresh()
        self.statusBar().showMessage(message, 5000)

    def show_words(self) -> None:
        LearnedWordsDialog(self.session, self).exec()
        self.suggestions = []
        self._suggest()

    def toggle_replay(self) -> None:
        if self.replay.running:
            self.replay.stop()
            return
        path, _ = QFileDialog.getOpenFileName(self, "Replay a text", str(DEMO_TEXT), "Text (*.txt);;All (*)")
        if path:
            self.start_replay(Path(path).read_text(encoding="utf-8", errors="replace"))

    def start_replay(self, text: str) -> None:
        self.replay_button.setText("Stop replay")
        self.replay.start(text)

    # --- gauges and chart ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.costs.refresh(self.session, self.latencies)
        self.learning.refresh(self.session, self.typing)
        if self.session.status != self._status:  # what does not work now ("learning paused: ..."), kept shown
            self._status = self.session.status
            self.statusBar().showMessage(self._status)

    def closeEvent(self, event) -> None:
        self.timer.stop()
        self.replay.stop()
        self.session.close()
        super().closeEvent(event)
