"""More than 1,000 hostile personal-model files fed to import: each is rejected with a clear message, or accepted
only when it is valid; nothing crashes, no code runs, and the saved state is unchanged by a rejection."""
import io
import json
import math
import os
import pickle
import random
import zipfile

import pytest
import torch

from app.storage import personal_file as pf
from app.storage.store import Store

EXPECTED = {"blocks.3.mlp.c_fc.weight": torch.zeros(16, 8), "blocks.3.mlp.c_fc.bias": torch.zeros(16),
            "ln_f.bias": torch.zeros(8)}
BASE, TOK = "b" * 64, "t" * 64


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def valid(**tensor_changes) -> pf.PersonalModel:
    rng = torch.Generator().manual_seed(1)
    deltas = {name: torch.randn(t.shape, generator=rng) * 0.01 for name, t in EXPECTED.items()}
    deltas.update(tensor_changes)
    meta = pf.PersonalMeta(base_sha256=BASE, tokenizer_sha256=TOK, counters={"rounds_accepted": 4})
    return pf.PersonalModel(meta, deltas, ["We walked to the lake."], ["zelda"])


def with_header(data: bytes, edit) -> bytes:
    """The file with its safetensors JSON header changed by `edit` (data left as it is)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + length:]


def meta_edit(**fields):
    def edit(header):
        meta = json.loads(header["__metadata__"]["pocketkb"])
        meta.update(fields)
        header["__metadata__"]["pocketkb"] = json.dumps(meta)
    return edit


def hostile_files(marker) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    good = pf.to_bytes(valid())
    files = []
    for i in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        files.append(("flipped bytes", bytes(data)))
    for _ in range(200):
        files.append(("truncated", good[: rng.randrange(len(good))]))
    name = "blocks.3.mlp.c_fc.weight"
    for i in range(100):
        big = rng.choice([2**40, 2**62, len(good) * 1000])
        edits = [lambda h: h[name].update(dtype=rng.choice(["F16", "I64", "U8", "BOOL", "F64", "??"])),
                 lambda h: h[name].update(shape=[rng.randint(0, 64), rng.randint(0, 64)]),
                 lambda h: h[name].update(data_offsets=[0, big]),
                 lambda h: h[name].update(shape=[big, big]),
                 lambda h: h.pop(name)]
        files.append(("header edited", with_header(good, edits[i % len(edits)])))
    for i in range(25):
        files.append(("huge header length", (2**40 + i).to_bytes(8, "little") + good[8:]))
    shapes = [torch.zeros(16, 9), torch.zeros(8, 16), torch.zeros(16)]
    for i in range(100):
        bad = [shapes[i % 3], torch.zeros(16, 8, dtype=torch.float64), torch.zeros(16, 8, dtype=torch.int32),
               torch.full((16, 8), math.nan), torch.full((16, 8), math.inf), torch.full((16, 8), -math.inf),
               torch.full((16, 8), 1e30)][i % 7]
        files.append(("bad tensor", pf.to_bytes(valid(**{name: bad}))))
    for i in range(25):
        files.append(("unknown tensor", pf.to_bytes(valid(**{f"evil.{i}": torch.zeros(2)}))))
    metas = [meta_edit(base_sha256="c" * 64), meta_edit(tokenizer_sha256="x"), meta_edit(version=99),
             meta_edit(format="other"), meta_edit(counters={"rounds_accepted": "many"}), meta_edit(counters=[1]),
             lambda h: h["__metadata__"].update(pocketkb="{not json"),
             lambda h: h["__metadata__"].update(history=json.dumps({"sentences": [1, 2]})),
             lambda h: h["__metadata__"].update(history=json.dumps({"sentences": ["a."], "rejected": "a."})),
             lambda h: h["__metadata__"].update(history=json.dumps(["a."])),
             lambda h: h["__metadata__"].update(history=json.dumps({"sentences": ["x" * 5000]})),
             lambda h: h.pop("__metadata__")]
    for i in range(100):
        files.append(("bad metadata", with_header(good, metas[i % len(metas)])))
    for i in range(50):
        payload = pickle.dumps(Payload(marker), protocol=i % 6)
        if i % 2:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:  # torch.save's layout: a zip holding data.pkl
                archive.writestr("archive/data.pkl", payload)
            payload = buffer.getvalue()
        files.append(("pickle", payload))
    return files


def test_a_thousand_hostile_files(tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    store = Store(tmp_path / "data")
    store.save(valid())
    saved = store.personal_path.read_bytes()
    files = hostile_files(marker)
    assert len(files) >= 1000
    outcomes = {"rejected": 0, "accepted": 0}
    for i, (kind, data) in enumerate(files):
        path = tmp_path / "in.pkb"
        path.write_bytes(data)
        try:
            personal = store.import_file(path, EXPECTED, BASE, TOK)
        except pf.PersonalFileError as err:
            message = str(err)
            assert message and "Traceback" not in message and len(message) < 400, (kind, message)
            assert store.personal_path.read_bytes() == saved, kind
            outcomes["rejected"] += 1
            continue
        # accepted: it must be a valid personal model (a flipped byte inside tensor data can make one)
        assert set(personal.deltas) <= set(EXPECTED), kind
        for key, tensor in personal.deltas.items():
            assert tensor.shape == EXPECTED[key].shape and torch.isfinite(tensor).all(), kind
        outcomes["accepted"] += 1
        store.save(valid())
        saved = store.personal_path.read_bytes()
    assert not marker.exists()
    assert outcomes["rejected"] >= 900
    store.history.close()


def test_an_oversized_file_is_rejected_without_being_read(tmp_path):
    path = tmp_path / "huge.pkb"
    with open(path, "wb") as handle:
        handle.truncate(pf.MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(pf.PersonalFileError, match="more than a personal model can be"):
        pf.read(path, EXPECTED, BASE, TOK)
