"""The on-screen QWERTY keyboard: letters, digits, punctuation, shift, backspace, space and enter.

It emits what a key means; the window types it into the same text area as the physical keyboard.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QPushButton, QSizePolicy, QWidget

ROWS = ["1234567890", "qwertyuiop", "asdfghjkl'", "zxcvbnm,.?"]
BACKSPACE, ENTER, SHIFT, SPACE = "⌫", "⏎", "⇧", "space"


class OnScreenKeyboard(QWidget):
    typed = Signal(str)         # a character to insert ("\n" for enter)
    backspace = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.shift = False
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        grid.setSpacing(4)
        grid.setContentsMargins(0, 0, 0, 0)
        for r, row in enumerate(ROWS):
            for c, ch in enumerate(row):
                grid.addWidget(self._key(ch), r, 2 * c, 1, 2)
        grid.addWidget(self._key(BACKSPACE), 0, 20, 1, 3)
        grid.addWidget(self._key(ENTER), 1, 20, 2, 3)
        grid.addWidget(self._key(SHIFT), 3, 20, 1, 3)
        grid.addWidget(self._key(SPACE), 4, 4, 1, 12)

    def _key(self, label: str) -> QPushButton:
        button = QPushButton(label)
        button.setObjectName("key")
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        button.setMinimumHeight(34)
        button.clicked.connect(lambda: self.press(label))
        self.buttons[label] = button
        return button

    def press(self, label: str) -> None:
        if label == SHIFT:
            self.shift = not self.shift
            self.buttons[SHIFT].setDown(self.shift)
            return
        if label == BACKSPACE:
            self.backspace.emit()
            return
        text = {SPACE: " ", ENTER: "\n"}.get(label, label)
        if self.shift:
            text = text.upper()
            self.shift = False
            self.buttons[SHIFT].setDown(False)
        self.typed.emit(text)
