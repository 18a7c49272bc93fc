"""Small drawn widgets: a bar gauge with its measured value, and a line chart of the learning curves.

Painted with QPainter, sized by the layout; values come from the headless parts, never computed here.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

ACCENT = QColor("#3a7bd5")
MUTED = QColor("#c9d3e0")
TEXT = QColor("#24303f")


class BarGauge(QWidget):
    """A titled horizontal bar: `value` of `maximum`, with the value written out (or "—" when unknown)."""

    def __init__(self, title: str, unit: str, maximum: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.title, self.unit, self.maximum = title, unit, maximum
        self.value: float | None = None
        self.detail = ""
        self.setMinimumHeight(38)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_value(self, value: float | None, detail: str = "", maximum: float | None = None) -> None:
        self.value, self.detail = value, detail
        if maximum:
            self.maximum = maximum
        self.update()

    def text(self) -> str:
        shown = "—" if self.value is None else f"{self.value:,.1f} {self.unit}"
        return f"{self.title}: {shown}" + (f"  ({self.detail})" if self.detail else "")

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(TEXT)
        painter.drawText(QRectF(0, 0, self.width(), 18), Qt.AlignmentFlag.AlignLeft, self.text())
        track = QRectF(0, 22, self.width() - 1, 12)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(MUTED)
        painter.drawRoundedRect(track, 6, 6)
        if self.value is not None and self.maximum > 0:
            share = max(0.0, min(1.0, self.value / self.maximum))
            painter.setBrush(ACCENT if share < 0.8 else QColor("#d55a3a"))
            painter.drawRoundedRect(QRectF(track.x(), track.y(), max(12.0, track.width() * share), 12), 6, 6)
        painter.end()


class LineChart(QWidget):
    """Several named series of (x, y) points over a shared x axis, y in [0, 100]."""

    COLOURS = (ACCENT, QColor("#2aa876"), QColor("#d55a3a"))

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.setMinimumHeight(110)

    def set_series(self, name: str, points: list[tuple[float, float]]) -> None:
        self.series[name] = points
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        left, top, right, bottom = 44, 24, 8, 18
        area = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        painter.setPen(TEXT)
        painter.drawText(QRectF(0, 0, self.width(), 16), Qt.AlignmentFlag.AlignLeft, self.title)
        painter.setPen(QPen(MUTED, 1))
        for y in (0, 50, 100):
            at = area.bottom() - area.height() * y / 100
            painter.drawLine(QPointF(area.left(), at), QPointF(area.right(), at))
            painter.drawText(QRectF(0, at - 7, left - 4, 14), Qt.AlignmentFlag.AlignRight, f"{y}%")
        xs = [x for points in self.series.values() for x, _ in points]
        span = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
        low = min(xs) if xs else 0.0
        for k, (name, points) in enumerate(self.series.items()):
            colour = self.COLOURS[k % len(self.COLOURS)]
            painter.setPen(QPen(colour, 2))
            polygon = QPolygonF([QPointF(area.left() + area.width() * (x - low) / (span or 1.0),
                                         area.bottom() - area.height() * max(0.0, min(100.0, y)) / 100)
                                 for x, y in points])
            painter.drawPolyline(polygon)
            painter.drawText(QRectF(area.left() + 8 + 170 * k, area.bottom() + 2, 170, 16),
                             Qt.AlignmentFlag.AlignLeft, name)
        painter.end()
