"""Presage, the classic n-gram word predictor, driven through its C API (libpresage via ctypes) as our peer.

A PresagePeer predicts 3 words from a given n-gram database, frozen or learning online as it reads the text.
"""
from __future__ import annotations

import ctypes
import tempfile
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

LIBRARY = "libpresage.so.1"
TEMPLATE = Path("/etc/presage.xml")  # the stock configuration, from Debian's libpresage-data
SUGGESTIONS = 3
FROZEN_PREDICTORS = "DefaultSmoothedNgramPredictor"
LEARNING_PREDICTORS = "DefaultSmoothedNgramPredictor UserSmoothedNgramPredictor DefaultRecencyPredictor"

_STREAM = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)  # const char* (*)(void*), returned as an address
_STRINGS = ctypes.POINTER(ctypes.c_char_p)


class PresageError(RuntimeError):
    pass


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        return None
    lib.presage_new_with_config.argtypes = [_STREAM, ctypes.c_void_p, _STREAM, ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_void_p)]
    lib.presage_predict.argtypes = [ctypes.c_void_p, ctypes.POINTER(_STRINGS)]
    lib.presage_free_string_array.argtypes = [_STRINGS]
    lib.presage_free_string_array.restype = None
    lib.presage_free.argtypes = [ctypes.c_void_p]
    lib.presage_free.restype = None
    return lib


def presage_available() -> bool:
    """True when libpresage and its stock configuration (Debian: libpresage1v5, libpresage-data) are installed."""
    return _library() is not None and TEMPLATE.exists()


def peer_settings(db: str | Path, online_learning: bool, user_db: str | Path = "") -> dict[str, str]:
    """Configuration values set over the stock template, by path below the <Presage> element."""
    learn = "true" if online_learning else "false"
    return {
        "PredictorRegistry/PREDICTORS": LEARNING_PREDICTORS if online_learning else FROZEN_PREDICTORS,
        "ContextTracker/ONLINE_LEARNING": "yes" if online_learning else "no",
        "Selector/SUGGESTIONS": str(SUGGESTIONS),
        "Predictors/DefaultSmoothedNgramPredictor/DBFILENAME": str(db),
        "Predictors/DefaultSmoothedNgramPredictor/LEARN": "false",
        "Predictors/UserSmoothedNgramPredictor/DBFILENAME": str(user_db),
        "Predictors/UserSmoothedNgramPredictor/LEARN": learn,
    }


def write_config(path: Path, settings: dict[str, str]) -> None:
    tree = ET.parse(TEMPLATE)
    for key, value in settings.items():
        node = tree.getroot().find(key)
        if node is None:
            raise PresageError(f"{TEMPLATE} has no {key}")
        node.text = value
    tree.write(path, encoding="UTF-8", xml_declaration=True)


def _check(code: int, what: str) -> None:
    if code != 0:
        raise PresageError(f"{what} failed with presage error code {code}")


class PresagePeer:
    """One Presage instance reading the context given to `suggest`; with `online_learning`, a fresh user n-gram
    database (`user_db`, in a temporary folder) learns the text as it goes, and the recency predictor joins in."""

    def __init__(self, db: str | Path, online_learning: bool = False):
        lib = _library()
        if lib is None or not TEMPLATE.exists():
            raise PresageError("Presage is not installed (Debian packages libpresage1v5 and libpresage-data)")
        db = Path(db).resolve()
        if not db.is_file():
            raise PresageError(f"no Presage database at {db}")
        self._lib = lib
        self._folder = tempfile.TemporaryDirectory(prefix="presage-peer-")
        config = Path(self._folder.name) / "presage.xml"
        self.user_db = Path(self._folder.name) / "user.db" if online_learning else None
        write_config(config, peer_settings(db, online_learning, self.user_db or ""))
        self._past = ctypes.create_string_buffer(b"")
        self._future = ctypes.create_string_buffer(b"")
        self._callbacks = (_STREAM(lambda _: ctypes.addressof(self._past)),
                           _STREAM(lambda _: ctypes.addressof(self._future)))
        handle = ctypes.c_void_p()
        _check(lib.presage_new_with_config(self._callbacks[0], None, self._callbacks[1], None,
                                           str(config).encode(), ctypes.byref(handle)), "presage_new_with_config")
        self._handle = handle.value

    def suggest(self, context: str) -> list[str]:
        """Up to 3 words for the text before the cursor (a partly typed word included)."""
        self._past = ctypes.create_string_buffer(context.replace("\0", " ").encode("utf-8", "replace"))
        result = _STRINGS()
        _check(self._lib.presage_predict(self._handle, ctypes.byref(result)), "presage_predict")
        try:
            words = []
            while result and result[len(words)] is not None:
                words.append(result[len(words)].decode("utf-8", "replace"))
            return words[:SUGGESTIONS]
        finally:
            self._lib.presage_free_string_array(result)

    def close(self) -> None:
        if self._handle:
            self._lib.presage_free(self._handle)
            self._handle = None
        self._folder.cleanup()

    def __enter__(self) -> "PresagePeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
