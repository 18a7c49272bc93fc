"""The Learned words dialog: search the words you typed, and forget one (its sentences go, it is never suggested).

Reads the history through the Session; the list refreshes after each change.
"""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QHBoxLayout, QLineEdit, QListWidget, QPushButton, QVBoxLayout

from app.session import Session


class LearnedWordsDialog(QDialog):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Learned words")
        self.resize(360, 420)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search your words")
        self.list = QListWidget()
        forget = QPushButton("Forget selected")
        close = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(forget)
        buttons.addStretch()
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.search.textChanged.connect(self.refresh)
        forget.clicked.connect(self.forget_selected)
        close.clicked.connect(self.accept)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for word, count in self.session.store.history.word_counts(self.search.text()):
            self.list.addItem(f"{word}  ({count})")

    def forget_selected(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.session.forget(item.text().split("  (")[0])
            self.refresh()
