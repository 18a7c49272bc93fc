"""Starting the window: the Qt application, style sheet and icon, the Session with its worker, and
the scripted run `make screenshot` uses (replay a text, wait for the learner, save a picture, quit)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

from app.session import Session
from app.ui.main_window import MainWindow

ASSETS = resources.files("assets")


def app_icon() -> QIcon:
    pixmap = QPixmap(128, 128)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor("#3a7bd5"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(QRectF(4, 4, 120, 120), 26, 26)
    painter.setPen(QColor("white"))
    painter.setFont(QFont("DejaVu Sans", 44, QFont.Weight.Bold))
    painter.drawText(QRectF(4, 4, 120, 120), Qt.AlignmentFlag.AlignCenter, "pk")
    painter.end()
    return QIcon(pixmap)


def application() -> QApplication:
    app = QApplication.instance() or QApplication(["pocketkb"])
    app.setApplicationName("Pocket Keyboard")
    app.setWindowIcon(app_icon())
    style = ASSETS / "style.qss"
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    return app


def run_window(session: Session, replay: str | None = None, speed: int = 40, screenshot: str | None = None) -> int:
    app = application()
    window = MainWindow(session)
    window.speed.setValue(speed)
    window.show()
    if replay:
        text = Path(replay).read_text(encoding="utf-8", errors="replace")
        QTimer.singleShot(300, lambda: window.start_replay(text))
        if screenshot:
            window.replay.finished.connect(lambda: _shoot(window, Path(screenshot)))
    return app.exec()


def _shoot(window: MainWindow, path: Path) -> None:
    """Once the learner has caught up, save the window as a PNG and close."""
    if window.session.worker is not None:
        window.session.worker.idle(timeout=120)
    window.refresh()
    window.repaint()
    path.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(path), "PNG")
    print(f"screenshot saved: {path}")
    window.close()
