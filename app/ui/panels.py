"""The window's right-hand panels: the cost gauges (latency, training step, training memory beside full backprop,
model and process memory) and the learning chart, each showing what the session measured, and the personal model's
controls (update mode, incognito, files, replay).
"""
from __future__ import annotations

import statistics
from typing import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QGroupBox, QLabel, QPushButton, QSlider, QVBoxLayout

from app.learning.modes import MODES

from app.session import Session
from app.typing.typing_stats import TypingStats
from app.ui.widgets import BarGauge, LineChart

MIB = 2**20


def memory_scale(values: list[int | None]) -> float | None:
    """One scale (MiB) for the training-memory bars, so they compare: the largest value and a quarter, rounded up to
    a multiple of 8 MiB."""
    known = [v for v in values if v]
    return None if not known else 8 * -(-max(known) * 1.25 // (8 * MIB))


class CostPanel(QGroupBox):
    def __init__(self):
        super().__init__("What it costs (measured)")
        layout = QVBoxLayout(self)
        self.latency_gauge = BarGauge("Suggestion latency, last", "ms", 50)
        self.step_gauge = BarGauge("Last training step", "ms", 200)
        self.train_gauge = BarGauge("Training memory of this mode", "MiB", 100)
        self.full_gauge = BarGauge("Full backprop, same model", "MiB", 100)
        self.model_gauge = BarGauge("Model memory (predictor, learner copy, base weights)", "MiB", 64)
        self.rss_gauge = BarGauge("Process memory (RSS)", "MiB", 2048)
        for gauge in (self.latency_gauge, self.step_gauge, self.train_gauge, self.full_gauge, self.model_gauge,
                      self.rss_gauge):
            layout.addWidget(gauge)

    def refresh(self, session: Session, latencies: Sequence[float]) -> None:
        learner, stats = session.learner, session.stats
        if latencies:
            ordered = sorted(latencies)
            p50 = statistics.median(ordered)
            p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            self.latency_gauge.set_value(latencies[-1], f"p50 {p50:.1f}, p95 {p95:.1f} ms")
        self.step_gauge.set_value(stats.last_step_ms, f"{stats.steps} steps")
        full = learner.measured_training_bytes("full")
        live = stats.training_bytes if stats.training_mode == learner.mode else None  # the running plan's last step
        mode = live if live is not None else learner.measured_training_bytes(learner.mode)
        scale = memory_scale([full, mode])
        later = "measured once learning begins"
        self.full_gauge.set_value(None if full is None else full / MIB, "one step on a copy" if full else later,
                                  maximum=scale)
        how = "last step" if live is not None else "one step on a copy" if mode is not None else later
        self.train_gauge.set_value(None if mode is None else mode / MIB, f"{learner.mode}, {how}", maximum=scale)
        self.model_gauge.set_value(session.model_bytes() / MIB)
        rss = session.process_rss_bytes()
        self.rss_gauge.set_value(None if rss is None else rss / MIB)


class LearningPanel(QGroupBox):
    def __init__(self):
        super().__init__("Learning")
        layout = QVBoxLayout(self)
        self.chart = LineChart("Your words: suggested before typing (last 50) · keystrokes saved")
        self.label = QLabel()
        self.label.setWordWrap(True)  # a long summary must not widen the window past a 1280-pixel screen
        layout.addWidget(self.chart)
        layout.addWidget(self.label)

    def refresh(self, session: Session, typing: TypingStats) -> None:
        learner, stats = session.learner, session.stats
        points = typing.points
        self.chart.set_series("suggested before typing", [(p.word, p.hit_rate) for p in points])
        self.chart.set_series("keystrokes saved", [(p.word, p.saved) for p in points])
        loss = "—" if stats.last_loss is None else f"{stats.last_loss:.3f}"
        self.label.setText(
            f"mode {learner.mode} · rounds kept {stats.rounds_accepted} · rolled back {stats.rounds_rolled_back} · "
            f"pulled back {stats.pullbacks} · sentences learned {stats.sentences_learned} · training loss {loss} · "
            f"keystrokes saved {typing.saved:.1f}% over {typing.words} words")


class ControlsPanel(QGroupBox):
    """The update mode, incognito, the `buttons` (label -> slot) two to a row, and replay with its speed."""

    def __init__(self, mode: str, buttons: dict[str, Callable[[], None]]):
        super().__init__("Personal model")
        grid = QGridLayout(self)
        self.mode_box = QComboBox()
        self.mode_box.addItems(MODES)
        self.mode_box.setCurrentText(mode)
        self.incognito = QCheckBox("Incognito (record and learn nothing)")
        grid.addWidget(QLabel("Update mode"), 0, 0)
        grid.addWidget(self.mode_box, 0, 1)
        grid.addWidget(self.incognito, 1, 0, 1, 2)
        for i, (label, slot) in enumerate(buttons.items()):
            button = QPushButton(label)
            button.clicked.connect(slot)
            grid.addWidget(button, 2 + i // 2, i % 2)
        row = 2 + (len(buttons) + 1) // 2
        self.replay = QPushButton("Replay text…")
        self.replay.setMinimumWidth(130)
        self.speed = QSlider(Qt.Orientation.Horizontal)
        self.speed.setRange(5, 400)
        self.speed.setValue(40)
        self.speed.setToolTip("replay speed, characters per second")
        grid.addWidget(self.replay, row, 0)
        grid.addWidget(self.speed, row, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
