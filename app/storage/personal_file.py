"""The personal-model file: trained-tensor deltas as safetensors, metadata in its header, and optionally the history
as a UTF-8 JSON byte tensor (safetensors refuses headers over 100 MB; 20,000 long non-ASCII sentences exceed that).

Reading one checks everything before anything is used and never unpickles; problems raise `PersonalFileError`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from models.safe_io import atomic_write_bytes, tensors_to_bytes

FORMAT = "pocketkb-personal"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_HISTORY_SENTENCES = 100_000
MAX_SENTENCE_CHARS = 2000
MAX_ABS_DELTA = 1e3
HISTORY_TENSOR = "__history__"  # no parameter is named so


class PersonalFileError(ValueError):
    """A personal-model file that cannot be used; the message says why, for the user."""


@dataclass
class PersonalMeta:
    base_sha256: str
    tokenizer_sha256: str
    mode: str = "sparse"
    counters: dict[str, int] = field(default_factory=dict)
    mixture: dict = field(default_factory=dict)  # the suggestion sources' weights as adapted to the user
    created: float = 0.0
    updated: float = 0.0
    format: str = FORMAT
    version: int = FORMAT_VERSION


@dataclass
class PersonalModel:
    meta: PersonalMeta
    deltas: dict[str, torch.Tensor]
    history: list[str] | None = None
    blocked: list[str] | None = None
    rejected: list[str] | None = None  # sentences of the history the learner turned down


def to_bytes(personal: PersonalModel) -> bytes:
    header = {"pocketkb": json.dumps(asdict(personal.meta))}
    tensors = dict(personal.deltas)
    if personal.history is not None:
        history = json.dumps({"sentences": personal.history, "blocked": personal.blocked or [],
                              "rejected": personal.rejected or []}, ensure_ascii=False).encode("utf-8")
        tensors[HISTORY_TENSOR] = torch.frombuffer(bytearray(history), dtype=torch.uint8)
    return tensors_to_bytes(tensors, metadata=header)


def write(path: str | Path, personal: PersonalModel) -> None:
    atomic_write_bytes(path, to_bytes(personal), mode=0o600)


def read(path: str | Path, expected: dict[str, torch.Tensor], base_sha256: str, tokenizer_sha256: str
         ) -> PersonalModel:
    """Load and validate a personal-model file against the running model's parameters `expected`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise PersonalFileError(f"cannot read {path}: {err.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise PersonalFileError(f"{path.name} is {size / 2**20:.0f} MB, more than a personal model can be "
                                f"({MAX_FILE_BYTES // 2**20} MB)")
    data = path.read_bytes()
    return parse(data, expected, base_sha256, tokenizer_sha256, path.name)


def parse(data: bytes, expected: dict[str, torch.Tensor], base_sha256: str, tokenizer_sha256: str,
          name: str = "the file") -> PersonalModel:
    header = _header(data, name)
    meta = _meta(header, name, base_sha256, tokenizer_sha256)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise PersonalFileError(f"{name} is damaged: its tensors cannot be read ({err})") from None
    history = tensors.pop(HISTORY_TENSOR, None)
    _check_tensors(tensors, expected, name)
    return PersonalModel(meta, tensors, *_history(header, history, name))


def _header(data: bytes, name: str) -> dict:
    """The safetensors header's metadata, read by hand so a damaged file gets a precise message."""
    if len(data) < 8:
        raise PersonalFileError(f"{name} is not a Pocket Keyboard personal model (too short)")
    length = int.from_bytes(data[:8], "little")
    if length <= 0 or 8 + length > len(data):
        raise PersonalFileError(f"{name} is not a Pocket Keyboard personal model, or it is truncated")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
        metadata = header.get("__metadata__", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise PersonalFileError(f"{name} is not a Pocket Keyboard personal model (unreadable header)") from None
    if not isinstance(metadata, dict) or "pocketkb" not in metadata:
        raise PersonalFileError(f"{name} is not a Pocket Keyboard personal model (no Pocket Keyboard metadata)")
    return metadata


def _meta(header: dict, name: str, base_sha256: str, tokenizer_sha256: str) -> PersonalMeta:
    try:
        raw = json.loads(header["pocketkb"])
        meta = PersonalMeta(**{k: raw[k] for k in PersonalMeta.__dataclass_fields__ if k in raw})
    except (json.JSONDecodeError, TypeError):
        raise PersonalFileError(f"{name} has damaged metadata") from None
    if meta.format != FORMAT:
        raise PersonalFileError(f"{name} is not a Pocket Keyboard personal model (format {meta.format!r})")
    if meta.version != FORMAT_VERSION:
        raise PersonalFileError(f"{name} was written by format version {meta.version}; "
                                f"this Pocket Keyboard reads version {FORMAT_VERSION}")
    if meta.base_sha256 != base_sha256:
        raise PersonalFileError(f"{name} was trained on a different base model, so it cannot be applied to this one")
    if meta.tokenizer_sha256 != tokenizer_sha256:
        raise PersonalFileError(f"{name} was trained with a different tokenizer")
    if not isinstance(meta.counters, dict) or not all(isinstance(v, int) for v in meta.counters.values()):
        raise PersonalFileError(f"{name} has damaged metadata (counters)")
    if not isinstance(meta.mixture, dict):
        raise PersonalFileError(f"{name} has damaged metadata (mixture weights)")
    return meta


def _check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str) -> None:
    for key, tensor in tensors.items():
        if key not in expected:
            raise PersonalFileError(f"{name} holds a tensor {key!r} this model does not have")
        want = expected[key]
        if tuple(tensor.shape) != tuple(want.shape):
            raise PersonalFileError(f"{name}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                                    f"the model needs {tuple(want.shape)}")
        if tensor.dtype != want.dtype:
            raise PersonalFileError(f"{name}: tensor {key!r} is {tensor.dtype}, the model needs {want.dtype}")
        if not torch.isfinite(tensor).all():
            raise PersonalFileError(f"{name}: tensor {key!r} holds NaN or infinite values")
        if tensor.numel() and tensor.abs().max().item() > MAX_ABS_DELTA:
            raise PersonalFileError(f"{name}: tensor {key!r} holds implausibly large values")


def _history(header: dict, stored: torch.Tensor | None, name: str
             ) -> tuple[list[str] | None, list[str] | None, list[str] | None]:
    """The sentences, blocked words and turned-down sentences: from the history tensor, or from the header where
    files before it kept them (files without a history have none)."""
    if stored is not None:
        if stored.dtype != torch.uint8 or stored.dim() != 1:
            raise PersonalFileError(f"{name} has a damaged history")
        try:
            header = {"history": bytes(stored.numpy()).decode("utf-8")}
        except UnicodeDecodeError:
            raise PersonalFileError(f"{name} has a damaged history") from None
    if "history" not in header:
        return None, None, None
    try:
        raw = json.loads(header["history"])
        parts = raw["sentences"], raw.get("blocked", []), raw.get("rejected", [])
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        raise PersonalFileError(f"{name} has a damaged history") from None
    ok = all(isinstance(part, list) and len(part) <= MAX_HISTORY_SENTENCES
             and all(isinstance(s, str) and len(s) <= MAX_SENTENCE_CHARS for s in part) for part in parts)
    if not ok:
        raise PersonalFileError(f"{name} has a history this app does not accept (wrong types or too large)")
    return parts
