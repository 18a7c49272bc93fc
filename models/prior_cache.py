"""The count prior's decoded copies in the user's cache folder: each keyboard marks the copy it maps as in use, and
copies of older versions that no keyboard maps and none has loaded for a day are removed (each is about 32 MB).

"In use" is a shared `flock` on the copy's `.in-use` file, held for as long as the process lives (the kernel drops
it when the process ends, however it ends); loading a copy also stamps that file's time. A copy is removed only when
an exclusive lock on it can be taken at once and its stamp is older than `IDLE_SECONDS`.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

IN_USE = ".in-use"
IDLE_SECONDS = 24 * 3600
_held: dict[Path, int] = {}  # copy folder -> the descriptor whose shared lock marks it in use by this process


def hold(folder: Path) -> None:
    """Mark `folder` as in use by this process (until it ends), and stamp it as just loaded."""
    folder = Path(folder)
    if folder in _held:  # loaded again (the folder may have been decoded afresh): a new lock on what is there now
        os.close(_held.pop(folder))
    fd = os.open(folder / IN_USE, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    os.utime(folder / IN_USE)
    _held[folder] = fd


def prune(cache_dir: Path, keep: Path, idle_seconds: float = IDLE_SECONDS) -> list[Path]:
    """Remove the copies in `cache_dir` other than `keep` that nothing holds and nothing loaded for
    `idle_seconds`; returns them. Never raises: a copy that cannot be checked or removed stays."""
    removed = []
    for folder in Path(cache_dir).glob("prior-*"):
        if folder == Path(keep) or not folder.is_dir() or folder in _held:
            continue
        try:
            if _idle(folder, idle_seconds):
                shutil.rmtree(folder)
                removed.append(folder)
        except OSError:
            continue
    return removed


def _idle(folder: Path, idle_seconds: float) -> bool:
    """Whether no process holds `folder` and its last load is older than `idle_seconds` (a copy from before these
    marks: by the folder's own time)."""
    marker = folder / IN_USE
    stamp = (marker if marker.exists() else folder).stat().st_mtime
    if time.time() - stamp < idle_seconds:
        return False
    if not marker.exists():
        return True
    fd = os.open(marker, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # another keyboard maps it
    finally:
        os.close(fd)  # the lock, if taken, goes with it
    return True
