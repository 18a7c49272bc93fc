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


def test_a_second_keyboard_on_the_same_folder_is_refused_until_the_first_ends(tmp_path):
    import subprocess
    import sys
    import textwrap

    from app.storage.store import StoreBusyError

    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from app.storage.store import Store
        store = Store({str(tmp_path / "data")!r})
        print("ready", flush=True)
        sys.stdin.readline()
        store.close()
        print("closed", flush=True)
        time.sleep(60)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusyError, match=f"in use by another Pocket Keyboard \\(process {child.pid}\\)"):
            Store(tmp_path / "data")
        assert Store(tmp_path / "data", read_only=True).history.sentences() == []  # looking is allowed
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        store = Store(tmp_path / "data")  # the first one let go
        store.close()
        child.kill()
        child.wait()
    finally:
        child.kill()
    killed = subprocess.Popen([sys.executable, "-c", f"from app.storage.store import Store; Store({str(tmp_path / 'b')!r}); "
                               "print('ready', flush=True); import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "ready"
    killed.kill()
    killed.wait()
    Store(tmp_path / "b").close()  # a keyboard that died holds nothing


def test_export_and_import_round_trip_at_the_maximum_history(tmp_path):
    """20,000 sentences of the longest non-ASCII text a sentence may hold: escaped into the header they would be some
    280 MB, past safetensors' 100 MB header limit; as a byte tensor the file takes what UTF-8 takes."""
    unit = "Zażółć gęślą jaźń, 東京で会いましょう 🙂 — "
    sentences = [f"{i} {unit * 80}"[:2000] for i in range(20_000)]
    store = Store(tmp_path / "a")
    store.history.replace_all(sentences, {"żółw"}, {sentences[7]})
    store.export(tmp_path / "me.safetensors", _personal(), with_history=True)
    assert (tmp_path / "me.safetensors").stat().st_size < 200 * 2**20
    store.close()
    other = Store(tmp_path / "b")
    personal = other.import_file(tmp_path / "me.safetensors", EXPECTED, "base", "tok")
    assert other.history.sentences() == sentences and personal.history == sentences
    assert other.history.blocked() == {"żółw"} and other.history.rejected() == {sentences[7]}
    assert torch.equal(personal.deltas["w"], torch.full((3, 2), 0.5))
    other.close()
