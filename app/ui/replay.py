"""Replay: types a text into the window at an adjustable speed, taking a suggestion whenever it holds the word.

So a user can watch the model adapt without typing; each tick is one keystroke, as a person would spend it.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.typing.words import is_word_char


class ReplayDriver(QObject):
    finished = Signal()

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.text, self.position = "", 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)

    @property
    def running(self) -> bool:
        return self.timer.isActive()

    def start(self, text: str) -> None:
        self.text, self.position = text, 0
        self.window.editor.moveCursor(self.window.editor.textCursor().MoveOperation.End)
        self.timer.start(max(1, int(1000 / self.window.speed.value())))

    def stop(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.finished.emit()

    def tick(self) -> None:
        """One keystroke: the rest of the current word if a suggestion holds it, else the next character."""
        self.timer.setInterval(max(1, int(1000 / self.window.speed.value())))
        if self.position >= len(self.text):
            self.stop()
            return
        i = self.position
        if is_word_char(self.text[i]):
            start = i
            while start > 0 and is_word_char(self.text[start - 1]):
                start -= 1
            end = i
            while end < len(self.text) and is_word_char(self.text[end]):
                end += 1
            word = self.text[start:end]
            for rank, suggestion in enumerate(self.window.suggestions):
                if suggestion.lower() == word.lower():
                    self.window.type_text(self.text[i:end])
                    self.position = end
                    return
        self.window.type_text(self.text[i])
        self.position = i + 1
