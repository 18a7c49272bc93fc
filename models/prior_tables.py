"""The count prior's tables and their file: sorted arrays of pruned 1-4-gram Kneser-Ney statistics, shipped as an
xz-compressed npz (no pickle) with word ids coded by frequency rank and sorted lists coded as differences, and decoded
once into a cache folder of .npy arrays that later starts memory-map: only the pages lookups touch are resident.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import mmap
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from models import prior_cache
from models.safe_io import atomic_write_bytes

FORMAT = 2  # 1 was a deflated npz of the in-memory arrays, four times larger
STORED_FIELDS = ("keys", "lengths", "next", "count", "total", "backoff", "discounts")


class PriorFileError(ValueError):
    """A count prior file that cannot be read: missing, damaged, or of another format."""


def smallest_int(values: np.ndarray, signed: bool = True) -> np.ndarray:
    """`values` in the narrowest integer type that holds them all (signed, so negation and differences stay safe)."""
    kinds = (np.int8, np.int16, np.int32, np.int64) if signed else (np.uint8, np.uint16, np.uint32, np.uint64)
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    kind = next(k for k in kinds if np.iinfo(k).min <= low and high <= np.iinfo(k).max)
    return values.astype(kind)


@dataclass
class ContextLevel:
    """Every kept context of one length: `keys` are the contexts' word ids packed in base V, sorted; context i's
    continuations are next/count[offsets[i]:offsets[i + 1]], sorted by word id. `total` and `backoff` (the
    discounts taken from the context's counts) hold every count before pruning, unknown words included, so
    pruned continuations keep their share. `discounts` are taken from counts of 1, 2 and 3 or more
    (modified Kneser-Ney, Chen & Goodman 1998). Offsets, counts and totals come in the narrowest integers
    (`narrow_level`)."""

    keys: np.ndarray
    offsets: np.ndarray
    next: np.ndarray
    count: np.ndarray
    total: np.ndarray
    backoff: np.ndarray
    discounts: np.ndarray


@dataclass
class PriorTables:
    """Word ids are positions in `words`, which is sorted, so a typed prefix is a range of ids."""

    words: list[str]
    unigram: np.ndarray          # Kneser-Ney continuation count per word: after how many distinct words it came
    levels: list[ContextLevel]   # contexts of 1, 2, ... words

    def save(self, path: str | Path) -> None:
        """Continuation ids are stored as ranks by unigram count, as differences within their context, and keys
        as differences: small numbers that xz packs well."""
        ranks = np.empty(len(self.words), np.int64)
        ranks[self._by_rank()] = np.arange(len(self.words))
        arrays = {"format": np.array([FORMAT]), "unigram": self.unigram, "words": self._words_array()}
        for n, level in enumerate(self.levels, start=1):
            arrays.update({f"context{n}_{name}": value for name, value in _encode(level, ranks).items()})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, lzma.compress(buffer.getvalue(), preset=9))

    @classmethod
    def load(cls, path: str | Path, cache_dir: str | Path | None = None) -> "PriorTables":
        """The tables in `path`; PriorFileError if it is not a count prior of this format. With `cache_dir`, the
        arrays are decoded there once (a folder per file content) and memory-mapped read-only."""
        try:
            content = Path(path).read_bytes()
        except OSError as e:
            raise PriorFileError(f"cannot read the count prior {path}: {e}") from e
        if cache_dir is None:
            return cls._decode(content, path)
        folder = Path(cache_dir) / f"prior-{hashlib.sha256(content).hexdigest()[:24]}"
        if folder.is_dir():
            try:
                return cls._mapped_in_use(folder)
            except (OSError, ValueError):  # a damaged cache folder: decoded again
                shutil.rmtree(folder, ignore_errors=True)
        tables = cls._decode(content, path)
        try:
            tables._write_arrays(folder)
        except OSError:  # no cache to write (a read-only home, a full disk): held in memory instead
            return tables
        return cls._mapped_in_use(folder)

    @classmethod
    def _mapped_in_use(cls, folder: Path) -> "PriorTables":
        """The arrays of `folder` mapped, the folder marked in use, and older versions' idle copies removed."""
        tables = cls._map_arrays(folder)
        prior_cache.hold(folder)
        prior_cache.prune(folder.parent, keep=folder)
        return tables

    @classmethod
    def _decode(cls, content: bytes, path: str | Path) -> "PriorTables":
        """The tables in `content`, the bytes of the file `path`."""
        try:
            with np.load(io.BytesIO(lzma.decompress(content)), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            if arrays["format"].tolist() != [FORMAT]:
                raise ValueError(f"format {arrays['format'].tolist()}, this build reads {FORMAT}")
            words = arrays["words"].tobytes().decode("utf-8").split("\n")
            tables = cls(words=words, unigram=arrays["unigram"], levels=[])
            by_rank = tables._by_rank()
            while f"context{len(tables.levels) + 1}_keys" in arrays:
                n = len(tables.levels) + 1
                stored = {name: arrays[f"context{n}_{name}"] for name in STORED_FIELDS}
                tables.levels.append(_decode_level(stored, by_rank))
        except (lzma.LZMAError, zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as e:
            raise PriorFileError(f"{path} is not a count prior that this build can read ({e}); "
                                 "build one with pocketkb build-prior") from e
        return tables

    def _write_arrays(self, folder: Path) -> None:
        """Every array as a .npy file, written in a temporary folder renamed into place: a crash leaves no half
        folder, and of two processes decoding at once one folder wins."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            np.save(work / "words.npy", self._words_array())
            np.save(work / "unigram.npy", self.unigram)
            for n, level in enumerate(self.levels, start=1):
                for field in fields(ContextLevel):
                    np.save(work / f"context{n}_{field.name}.npy", getattr(level, field.name))
            for file in work.iterdir():
                _settle(file)
            os.rename(work, folder)
        except OSError:
            if not folder.is_dir():
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @classmethod
    def _map_arrays(cls, folder: Path) -> "PriorTables":
        def array(name: str) -> np.ndarray:
            mapped = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if getattr(mapped, "_mmap", None) is not None and hasattr(mmap, "MADV_RANDOM"):
                mapped._mmap.madvise(mmap.MADV_RANDOM)  # lookups jump about: read no pages ahead of them
            return mapped.view(np.ndarray)  # a plain array over the mapping: np.memmap's every slice costs a call

        levels = []
        while (folder / f"context{len(levels) + 1}_keys.npy").exists():
            n = len(levels) + 1
            levels.append(ContextLevel(**{f.name: array(f"context{n}_{f.name}") for f in fields(ContextLevel)}))
        words = np.load(folder / "words.npy", allow_pickle=False).tobytes().decode("utf-8").split("\n")
        return cls(words=words, unigram=np.load(folder / "unigram.npy", allow_pickle=False), levels=levels)

    def _words_array(self) -> np.ndarray:
        return np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)

    def _by_rank(self) -> np.ndarray:
        """Word ids from the most to the least frequent (ties by id)."""
        return np.argsort(-self.unigram.astype(np.int64), kind="stable")


def _settle(file: Path) -> None:
    """On disk before the folder is renamed into place (so a crash leaves no torn array), and out of the page cache:
    the pages the writing left there come in large folios, and a mapping faults in a whole folio where one page is
    read, which made the prior's untouched arrays resident."""
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def entry_rows(offsets: np.ndarray) -> np.ndarray:
    """For each continuation, the index of its context (`offsets` as in `ContextLevel`)."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets.astype(np.int64)))


def _encode(level: ContextLevel, ranks: np.ndarray) -> dict[str, np.ndarray]:
    lengths = np.diff(level.offsets.astype(np.int64))
    rows = entry_rows(level.offsets)
    rank = ranks[level.next.astype(np.int64)]
    order = np.argsort(rows * len(ranks) + rank, kind="stable")
    rank = rank[order]
    steps = np.diff(rank, prepend=0)
    starts = level.offsets[:-1][lengths > 0].astype(np.int64)
    steps[starts] = rank[starts]
    return {"keys": smallest_int(np.diff(level.keys, prepend=0)), "lengths": smallest_int(lengths, signed=False),
            "next": smallest_int(steps, signed=False), "count": level.count[order], "total": level.total,
            "backoff": level.backoff, "discounts": level.discounts}


def _decode_level(stored: dict[str, np.ndarray], by_rank: np.ndarray) -> ContextLevel:
    lengths = stored["lengths"].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = entry_rows(offsets)
    running = np.cumsum(stored["next"].astype(np.int64))
    before_row = running[offsets[:-1][lengths > 0]] - stored["next"][offsets[:-1][lengths > 0]]
    rank = running - np.repeat(before_row, lengths[lengths > 0])
    ids = by_rank[rank]
    order = np.argsort(rows * len(by_rank) + ids, kind="stable")
    return narrow_level(ContextLevel(keys=np.cumsum(stored["keys"].astype(np.int64)), offsets=offsets,
                                     next=ids[order], count=stored["count"][order], total=stored["total"],
                                     backoff=stored["backoff"], discounts=stored["discounts"]), len(by_rank))


def narrow_level(level: ContextLevel, vocabulary: int) -> ContextLevel:
    """`level` in the types it is held in: int64 keys, word ids in 16 bits where they fit, the narrowest integers
    for offsets, counts and totals, float32 statistics."""
    return ContextLevel(keys=level.keys.astype(np.int64), offsets=smallest_int(level.offsets),
                        next=level.next.astype(np.uint16 if vocabulary <= 65535 else np.int32),
                        count=smallest_int(level.count), total=smallest_int(level.total),
                        backoff=level.backoff.astype(np.float32), discounts=level.discounts.astype(np.float32))
