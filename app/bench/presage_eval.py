"""Keystroke savings of Presage on many texts, one worker process per text at a time, results cached as JSON.

A cached result is keyed by the text, the database file's content and the peer's settings, so reruns are instant.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
from pathlib import Path

from typing import Collection

from app.bench.ksr import PROTOCOL, KsrResult, simulate
from app.bench.presage_peer import PresagePeer, peer_settings
from app.typing.words import KnownWords

CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "presage" / "cache"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def words_sha256(known: Collection[str] | None) -> str:
    return hashlib.sha256("\n".join(sorted(known)).encode()).hexdigest() if known is not None else ""


def cache_key(text: str, db_sha256: str, online_learning: bool, known_sha256: str = "") -> str:
    """The database enters by content (not path); the settings enter without paths, which vary per run; with figures
    counted against known words, those words and the protocol's version enter too."""
    settings = {k: v for k, v in peer_settings("", online_learning).items() if not k.endswith("DBFILENAME")}
    identity = {"text": hashlib.sha256(text.encode()).hexdigest(), "db": db_sha256, "settings": settings}
    if known_sha256:  # results of KSR alone keep their key
        identity.update(known=known_sha256, protocol=PROTOCOL)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def result_from_dict(data: dict) -> KsrResult:
    return KsrResult(**{**data, "curve": [tuple(pair) for pair in data["curve"]]})


def _write_json(path: Path, data: dict) -> None:
    """Write then rename, so an interrupted run leaves no half file (models.safe_io would pull torch into workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _simulate_text(job: tuple[str, str, bool, frozenset[str] | None]) -> KsrResult:
    text, db, online_learning, vocabulary = job
    with PresagePeer(db, online_learning) as peer:
        return simulate(text, peer.suggest, known=KnownWords(vocabulary) if vocabulary is not None else None)


def presage_ksr(texts: list[str], db: str | Path, online_learning: bool = False, processes: int = 2,
                cache_dir: str | Path = CACHE_DIR, known: Collection[str] | None = None) -> list[KsrResult]:
    """KSR of Presage on each text (a fresh peer per text), `processes` texts at a time; cached texts are not rerun.
    With `known` (the vocabulary, lower case), also the share of its suggestions that are no known word
    (`app.typing.words.KnownWords`), and how often it offers a whole-typed known word itself."""
    cache_dir = Path(cache_dir)
    db_sha256 = file_sha256(db)
    known = frozenset(known) if known is not None else None
    keys = [cache_key(text, db_sha256, online_learning, words_sha256(known)) for text in texts]
    done = {key: result_from_dict(json.loads((cache_dir / f"{key}.json").read_text())["result"])
            for key in set(keys) if (cache_dir / f"{key}.json").exists()}
    todo = {key: text for key, text in zip(keys, texts) if key not in done}
    if todo:
        with mp.get_context("spawn").Pool(max(1, min(processes, len(todo)))) as pool:
            jobs = [(text, str(db), online_learning, known) for text in todo.values()]
            for count, (key, result) in enumerate(zip(todo, pool.imap(_simulate_text, jobs)), start=1):
                _write_json(cache_dir / f"{key}.json", {"db": str(db), "online_learning": online_learning,
                                                        "result": dataclasses.asdict(result)})
                done[key] = result
                print(f"presage: {count}/{len(todo)} texts, KSR {result.ksr:.2f}%", file=sys.stderr, flush=True)
    return [done[key] for key in keys]
