"""Tokenised corpora on disk: each corpus file encoded once into a train and a held-out token array.

Documents are separated by BOS; every 200th document is held out for evaluation (`corpus.is_held_out`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.build.corpus import is_held_out, read_documents
from models.build.progress import advance_to, progress
from models.tokenizer import BOS_ID, Tokenizer


@dataclass
class TokenSplit:
    train: np.ndarray
    heldout: np.ndarray
    chars_per_token: float


def _encode_batches(tokenizer: Tokenizer, path: Path, batch_chars: int = 2_000_000):
    batch: list[tuple[int, str]] = []
    size = 0
    for index, doc in enumerate(read_documents(path)):
        batch.append((index, doc))
        size += len(doc)
        if size >= batch_chars:
            yield batch, tokenizer.sp.encode([d for _, d in batch], num_threads=2)
            batch, size = [], 0
    if batch:
        yield batch, tokenizer.sp.encode([d for _, d in batch], num_threads=2)


def build(tokenizer: Tokenizer, path: str | Path, cache_dir: str | Path) -> TokenSplit:
    """Encode a corpus file (or load it from the cache) into train and held-out arrays."""
    path = Path(path)
    key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{tokenizer.sha256}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"{path.name}.{key}"
    files = {name: folder / f"{name}.npy" for name in ("train", "heldout", "chars")}
    if all(f.exists() for f in files.values()):
        arrays = {name: np.load(f, mmap_mode="r", allow_pickle=False) for name, f in files.items()}
        return TokenSplit(arrays["train"], arrays["heldout"], float(arrays["chars"][0]))
    parts: dict[str, list[np.ndarray]] = {"train": [], "heldout": []}
    chars = tokens = 0
    # xz text of this kind unpacks to about 3.5 times its size: an estimate for the bar only
    bar = progress(path.stat().st_size * (3.5 if path.suffix == ".xz" else 1.0), f"tokenising {path.name}", "char")
    done_chars = 0
    for batch, encoded in _encode_batches(tokenizer, path):
        for (index, doc), ids in zip(batch, encoded):
            split = "heldout" if is_held_out(index) else "train"
            parts[split].append(np.asarray([BOS_ID, *ids], dtype=np.uint16))
            chars += len(doc) + 1
            tokens += len(ids) + 1
            done_chars += len(doc)
        advance_to(bar, done_chars)
    bar.close()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "heldout"):
        array = np.concatenate(parts[name]) if parts[name] else np.zeros(0, np.uint16)
        np.save(files[name], array, allow_pickle=False)
    np.save(files["chars"], np.asarray([chars / max(tokens, 1)]), allow_pickle=False)
    return build(tokenizer, path, cache_dir)
