"""The suggestion strip (the word as typed, then three words with the best in the middle) and the text area that
accepts them by key.

Tab takes the best suggestion, Ctrl+1/2/3 the one at that place, Ctrl+0 the typed word; each adds a space.
Right-clicking a suggestion offers "Never suggest".
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QMenu, QPlainTextEdit, QPushButton, QWidget

from app.typing.predictor import Strip

DISPLAY_ORDER = (1, 0, 2)  # rank shown at each place, left to right: best in the middle


class SuggestionStrip(QWidget):
    chosen = Signal(int)        # rank of the suggestion clicked (0 = best)
    typed_chosen = Signal()     # the typed word was clicked
    never = Signal(str)         # a word the user never wants suggested

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.words: list[str] = []
        self.typed: str | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.typed_button = QPushButton("")  # set apart at the left, as phone keyboards show the literal word
        self.typed_button.setObjectName("typed")
        self.typed_button.setToolTip("The word as you typed it, with a space (Ctrl+0)")
        self.typed_button.clicked.connect(lambda: self.typed and self.typed_chosen.emit())
        layout.addWidget(self.typed_button, 0)
        self.buttons = []
        for place, rank in enumerate(DISPLAY_ORDER):
            button = QPushButton("")
            button.setObjectName("best" if rank == 0 else "suggestion")
            button.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            button.clicked.connect(lambda _=False, r=rank: self._click(r))
            button.customContextMenuRequested.connect(lambda pos, r=rank, b=button: self._menu(r, b, pos))
            layout.addWidget(button, 1)
            self.buttons.append(button)

    def set_strip(self, strip: Strip) -> None:
        self.typed = strip.typed
        self.typed_button.setText(f"“{strip.typed}”" if strip.typed else "")
        self.typed_button.setEnabled(bool(strip.typed))
        self.set_words(strip.words)

    def set_words(self, words: list[str]) -> None:
        self.words = list(words)
        for button, rank in zip(self.buttons, DISPLAY_ORDER):
            button.setText(words[rank] if rank < len(words) else "")
            button.setEnabled(rank < len(words))

    def button_for_rank(self, rank: int) -> QPushButton:
        return self.buttons[DISPLAY_ORDER.index(rank)]

    def _click(self, rank: int) -> None:
        if rank < len(self.words):
            self.chosen.emit(rank)

    def never_menu(self, rank: int) -> QMenu | None:
        if rank >= len(self.words):
            return None
        menu = QMenu(self)
        word = self.words[rank]
        menu.addAction(f"Never suggest “{word}”", lambda: self.never.emit(word))
        return menu

    def _menu(self, rank: int, button: QPushButton, pos) -> None:
        menu = self.never_menu(rank)
        if menu is not None:
            menu.exec(button.mapToGlobal(pos))


class TypingArea(QPlainTextEdit):
    accept_rank = Signal(int)
    accept_typed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Tab and not event.modifiers():
            self.accept_rank.emit(0)
            return
        if event.modifiers() == Qt.KeyboardModifier.ControlModifier and event.key() == Qt.Key.Key_0:
            self.accept_typed.emit()
            return
        digits = {Qt.Key.Key_1: 0, Qt.Key.Key_2: 1, Qt.Key.Key_3: 2}
        if event.modifiers() == Qt.KeyboardModifier.ControlModifier and event.key() in digits:
            self.accept_rank.emit(digits[event.key()])
            return
        super().keyPressEvent(event)
