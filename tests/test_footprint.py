"""`bench footprint`: the window's memory in a fresh process, after start-up and after learning a text."""
from app.bench.footprint import OPENING_CHARS, measure_footprint, opening
from models import BASE_DIR, PRIOR_PATH


def test_the_opening_stops_before_the_first_sentence_ends():
    assert opening("Hi there. We walked.") == len("Hi there")
    assert opening("no end in sight " * 10) == OPENING_CHARS


def test_the_window_is_measured_before_and_after_it_learns():
    footprint = measure_footprint(BASE_DIR, "See you at the lake. We walked to the lake after work. Thanks a lot!")
    assert footprint.rounds >= 1  # the sentences after the opening were learned
    assert footprint.startup_mib > 200 and footprint.learned_mib > 200  # torch, Qt and the model are in it
    assert footprint.prior_disk_mb == PRIOR_PATH.stat().st_size / 1e6 and footprint.prior_memory_mib > 1
    assert 0 < footprint.prior_resident_mib < footprint.prior_memory_mib  # memory-mapped: only what lookups touched
    assert "window RSS after start-up" in footprint.lines()[0] and f"{footprint.rounds} learning rounds" in footprint.lines()[1]
