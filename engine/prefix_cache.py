"""Outputs of the frozen prefix of a network, kept per training sample so later steps on it skip that work.

Least recently used samples go first past a byte budget; everything goes when a tensor below the cut changes.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Hashable, Iterable

import torch


def sample_key(row: torch.Tensor) -> bytes:
    """A key for one sample from its contents: dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{row.dtype}{tuple(row.shape)}".encode())
    digest.update(row.detach().contiguous().numpy().tobytes())
    return digest.digest()


class PrefixCache:
    def __init__(self, watched: Iterable[torch.Tensor], max_bytes: int):
        self._watched = list(watched)
        self._max_bytes = max_bytes
        self._rows: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._fingerprint = self._current_fingerprint()
        self.bytes = 0

    def _current_fingerprint(self) -> tuple:
        """In-place changes bump a tensor's version counter; that is how changes below the cut are seen."""
        return tuple((id(t), t._version) for t in self._watched)

    def clear(self) -> None:
        self._rows.clear()
        self.bytes = 0

    def check(self) -> None:
        """Drop every entry if a watched tensor changed since the entries were made."""
        fingerprint = self._current_fingerprint()
        if fingerprint != self._fingerprint:
            self.clear()
            self._fingerprint = fingerprint

    def get(self, key: Hashable) -> torch.Tensor | None:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def put(self, key: Hashable, row: torch.Tensor) -> None:
        size = row.untyped_storage().nbytes()
        if size > self._max_bytes:
            return
        if key in self._rows:
            self.bytes -= self._rows.pop(key).untyped_storage().nbytes()
        self._rows[key] = row
        self.bytes += size
        while self.bytes > self._max_bytes:
            _, old = self._rows.popitem(last=False)
            self.bytes -= old.untyped_storage().nbytes()
