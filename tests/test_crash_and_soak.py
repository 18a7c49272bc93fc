"""Short runs of the crash and soak benchmarks: kills during learning and saves, and a long-ish typing session."""
from app.bench.crash import run_crash_bench
from app.typing.loading import load_predictor
from app.bench.soak import run_soak
from app.storage.store import Store


def test_kill_during_learning_and_during_a_save_restarts_from_a_saved_state(tmp_path):
    # every other kill aims at a save in progress; a save takes milliseconds, so an aimed kill can land after it
    report = run_crash_bench(tmp_path, kills=8, progress=lambda line: None)
    assert report.kills == 8 and report.during_save >= 1
    assert report.restarts_ok == 8 and not report.problems
    assert report.max_leftover_temp_files <= 1  # a kill during a save leaves at most its own temp file
    Store(tmp_path / "data").history.close()  # which the next start removes (the last child may die saving)
    assert not list((tmp_path / "data").glob(".*.tmp"))


def test_soak_keeps_history_bounded_and_learns(tmp_path):
    text = "We walked to the lake after work. Mira talked about Lisbon again! Did Tobias send it? " * 10
    report = run_soak(load_predictor(), text, keystrokes=1200, history_bound=5, progress=lambda line: None)
    assert report.keystrokes == 1200 and report.rounds >= 3
    assert report.history == 5
    assert report.first_tenth.keystrokes == report.last_tenth.keystrokes == 120
