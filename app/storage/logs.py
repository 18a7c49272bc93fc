"""The keyboard's log: a rotating file in the platformdirs user log folder, where failures that must not stop typing
(an error in a learning round) are written with their tracebacks. Nothing typed is logged.
"""
from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

import platformdirs

LOG_FILE = "pocketkb.log"


def default_log_folder() -> Path:
    return Path(platformdirs.user_log_dir("pocketkb", appauthor=False))


def log_to_file(folder: str | Path | None = None) -> Path:
    """Send the `pocketkb` loggers' warnings and errors to `folder`/pocketkb.log (at most 3 x 1 MB); once per file."""
    path = Path(folder) if folder else default_log_folder()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = path / LOG_FILE
    logger = logging.getLogger("pocketkb")
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        handler = RotatingFileHandler(path, maxBytes=1 << 20, backupCount=2, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return path
