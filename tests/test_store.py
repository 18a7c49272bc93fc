"""The store: personal model saved atomically, reset, export and import (which changes nothing when it rejects)."""
import pytest
import torch

from app.storage.personal_file import PersonalFileError, PersonalModel
from app.storage.store import Store, new_meta

EXPECTED = {"w": torch.zeros(3, 2)}


def _personal(value=0.5):
    return PersonalModel(new_meta("base", "tok", "sparse"), {"w": torch.full((3, 2), value)})


def test_save_load_and_reset(tmp_path):
    store = Store(tmp_path)
    assert store.load(EXPECTED, "base", "tok") is None
    store.save(_personal())
    store.history.add("hello world")
    store.history.forget("secret")
    loaded = store.load(EXPECTED, "base", "tok")
    assert torch.equal(loaded.deltas["w"], torch.full((3, 2), 0.5)) and loaded.meta.updated > 0
    store.reset()
    assert store.load(EXPECTED, "base", "tok") is None
    assert len(store.history) == 0 and store.history.blocked() == {"secret"}


def test_export_import_with_history(tmp_path):
    store = Store(tmp_path / "a")
    store.history.add("my own words")
    store.export(tmp_path / "out.pkb", _personal(0.25), with_history=True)
    other = Store(tmp_path / "b")
    imported = other.import_file(tmp_path / "out.pkb", EXPECTED, "base", "tok")
    assert torch.equal(imported.deltas["w"], torch.full((3, 2), 0.25))
    assert other.history.sentences() == ["my own words"]
    assert torch.equal(other.load(EXPECTED, "base", "tok").deltas["w"], torch.full((3, 2), 0.25))


def test_rejected_import_changes_nothing(tmp_path):
    store = Store(tmp_path / "a")
    store.save(_personal(0.5))
    store.history.add("keep me")
    (tmp_path / "bad.pkb").write_bytes(b"\x80\x04garbage")
    with pytest.raises(PersonalFileError):
        store.import_file(tmp_path / "bad.pkb", EXPECTED, "base", "tok")
    assert torch.equal(store.load(EXPECTED, "base", "tok").deltas["w"], torch.full((3, 2), 0.5))
    assert store.history.sentences() == ["keep me"]


def test_leftover_temp_files_are_cleaned(tmp_path):
    (tmp_path / ".personal.safetensors.abc.tmp").write_bytes(b"half")
    Store(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
