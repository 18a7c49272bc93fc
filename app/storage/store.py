"""Where the personal model and history live on disk (the platformdirs user data folder), written atomically.

Export writes one file; import validates a file completely before it replaces anything. One keyboard at a time owns
a data folder (an exclusive lock the system drops if the process dies); a second is refused with a clear message.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

import platformdirs
import torch

from app.storage import personal_file
from app.storage.history import History
from app.storage.personal_file import PersonalMeta, PersonalModel

PERSONAL_FILE = "personal.safetensors"
HISTORY_FILE = "history.db"
LOCK_FILE = ".lock"


class StoreBusyError(Exception):
    """Another keyboard (a window, the terminal keyboard) already uses this data folder."""


def default_folder() -> Path:
    return Path(platformdirs.user_data_dir("pocketkb", appauthor=False))


class Store:
    """`read_only`: only look (`pocketkb predict` beside a running keyboard): no lock is taken, nothing is written."""

    def __init__(self, folder: str | Path | None = None, max_sentences: int = 20_000, read_only: bool = False):
        self.folder = Path(folder) if folder else default_folder()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = None if read_only else self._take_lock()
        self.history = History(self.folder / HISTORY_FILE, max_sentences)
        if not read_only:
            self._clean_temp_files()

    def _take_lock(self) -> IO[str]:
        """The folder's lock file, held open and locked for as long as this store lives (closing it, or the process
        ending in any way, releases it); it holds the owner's process id for the message a second keyboard gets."""
        path = self.folder / LOCK_FILE
        lock = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="ascii")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read(32).strip() or "unknown"
            lock.close()
            raise StoreBusyError(f"{self.folder} is in use by another Pocket Keyboard (process {holder}); close it "
                                 "first, or give this one another folder with --data") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        return lock

    def close(self) -> None:
        self.history.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

    @property
    def personal_path(self) -> Path:
        return self.folder / PERSONAL_FILE

    def _clean_temp_files(self) -> None:
        """Temporary files left by a write that a crash interrupted: the target file is intact."""
        for tmp in self.folder.glob(f".{PERSONAL_FILE}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def load(self, expected: dict[str, torch.Tensor], base_sha256: str, tokenizer_sha256: str
             ) -> PersonalModel | None:
        """The saved personal model, or None if there is none (a first start, or after reset)."""
        if not self.personal_path.exists():
            return None
        return personal_file.read(self.personal_path, expected, base_sha256, tokenizer_sha256)

    def save(self, personal: PersonalModel) -> None:
        personal.meta.updated = time.time()
        personal.meta.created = personal.meta.created or personal.meta.updated
        personal_file.write(self.personal_path, PersonalModel(personal.meta, personal.deltas))

    def reset(self) -> None:
        """Back to the base model: the personal model and the typed history go; blocked words stay."""
        self.personal_path.unlink(missing_ok=True)
        self.history.replace_all([], self.history.blocked())

    def export(self, path: str | Path, personal: PersonalModel, with_history: bool) -> None:
        history = self.history.sentences() if with_history else None
        blocked = sorted(self.history.blocked()) if with_history else None
        rejected = sorted(self.history.rejected()) if with_history else None
        personal_file.write(path, PersonalModel(personal.meta, personal.deltas, history, blocked, rejected))

    def import_file(self, path: str | Path, expected: dict[str, torch.Tensor], base_sha256: str,
                    tokenizer_sha256: str) -> PersonalModel:
        """Validate `path` completely, then make it the saved personal model (and history, if it has one).

        Raises `PersonalFileError` and changes nothing if the file is not acceptable.
        """
        personal = personal_file.read(path, expected, base_sha256, tokenizer_sha256)
        self.save(personal)
        if personal.history is not None:
            self.history.replace_all(personal.history, set(personal.blocked or []), set(personal.rejected or []))
        return personal


def new_meta(base_sha256: str, tokenizer_sha256: str, mode: str) -> PersonalMeta:
    return PersonalMeta(base_sha256=base_sha256, tokenizer_sha256=tokenizer_sha256, mode=mode,
                        created=time.time())
