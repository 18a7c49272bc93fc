"""The personal-model file: round trip, and clear rejections of damaged, foreign and hostile files."""
import pickle

import pytest
import torch

from app.storage import personal_file as pf

EXPECTED = {"blocks.3.mlp.c_fc.weight": torch.zeros(8, 4), "ln_f.bias": torch.zeros(4)}


def _personal(**changes):
    deltas = {"blocks.3.mlp.c_fc.weight": torch.randn(8, 4) * 0.01, "ln_f.bias": torch.randn(4) * 0.01}
    deltas.update(changes)
    meta = pf.PersonalMeta(base_sha256="base", tokenizer_sha256="tok", counters={"accepted": 3})
    return pf.PersonalModel(meta, deltas, ["hello there.", "qxz vkw."], ["zelda"], ["qxz vkw."])


def _read(path, base="base"):
    return pf.read(path, EXPECTED, base, "tok")


def test_round_trip(tmp_path):
    original = _personal()
    pf.write(tmp_path / "p.pkb", original)
    loaded = _read(tmp_path / "p.pkb")
    assert loaded.meta == original.meta
    assert loaded.history == ["hello there.", "qxz vkw."] and loaded.blocked == ["zelda"]
    assert loaded.rejected == ["qxz vkw."]
    for k, v in original.deltas.items():
        assert torch.equal(loaded.deltas[k], v)


@pytest.mark.parametrize("cut", [3, 20, 100, -10])
def test_truncated_file_is_rejected(tmp_path, cut):
    data = pf.to_bytes(_personal())
    (tmp_path / "p.pkb").write_bytes(data[:cut])
    with pytest.raises(pf.PersonalFileError, match="truncated|too short|damaged|not a Pocket"):
        _read(tmp_path / "p.pkb")


def test_wrong_base_hash(tmp_path):
    pf.write(tmp_path / "p.pkb", _personal())
    with pytest.raises(pf.PersonalFileError, match="different base model"):
        _read(tmp_path / "p.pkb", base="other")


def test_wrong_shape_dtype_name_and_nan(tmp_path):
    cases = {"shape": {"ln_f.bias": torch.zeros(5)}, "float64": {"ln_f.bias": torch.zeros(4, dtype=torch.float64)},
             "does not have": {"evil": torch.zeros(1)}, "NaN": {"ln_f.bias": torch.tensor([0.0, float("nan"), 0, 0])}}
    for message, change in cases.items():
        pf.write(tmp_path / "p.pkb", _personal(**change))
        with pytest.raises(pf.PersonalFileError, match=message):
            _read(tmp_path / "p.pkb")


def test_pickle_is_rejected_and_never_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('%s').write_text('pwned')" % (tmp_path / "pwned"),))

    (tmp_path / "p.pkb").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(pf.PersonalFileError, match="not a Pocket Keyboard"):
        _read(tmp_path / "p.pkb")
    torch_file = tmp_path / "t.pt"
    torch.save({"ln_f.bias": torch.zeros(4)}, torch_file)
    with pytest.raises(pf.PersonalFileError, match="not a Pocket Keyboard"):
        _read(torch_file)
    assert not (tmp_path / "pwned").exists()


def test_oversized_file_is_rejected_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "MAX_FILE_BYTES", 100)
    pf.write(tmp_path / "p.pkb", _personal())
    with pytest.raises(pf.PersonalFileError, match="more than a personal model can be"):
        _read(tmp_path / "p.pkb")


def test_missing_file(tmp_path):
    with pytest.raises(pf.PersonalFileError, match="cannot read"):
        _read(tmp_path / "nope.pkb")
