"""Rolling suggestion hits and keystrokes saved, as the window feeds them."""
from app.typing.typing_stats import TypingStats


def test_hits_and_saved_keystrokes():
    stats = TypingStats(window=2)
    stats.shown("", ["I", "The", "We"])
    for i in range(1, 3):
        stats.typed("I am"[:i])
    stats.shown("I ", ["am", "was", "have"])
    stats.typed("I am", keystrokes=1)  # accepted "am"
    stats.typed("I am ")
    assert stats.words == 2 and stats.hit_rate == 100.0
    assert stats.keystrokes == 4 and stats.characters == 5 and abs(stats.saved - 20.0) < 1e-9
    stats.shown("I am ", ["here", "not", "so"])
    for ch in "ok.":
        stats.typed(stats._previous + ch)
    assert stats.words == 3 and stats.hit_rate == 50.0  # window of two: one hit, one miss
    assert [p.word for p in stats.points] == [1, 2, 3]


def test_editing_back_does_not_count():
    stats = TypingStats()
    stats.typed("Hello")
    stats.typed("Hell")
    assert stats.characters == 5 and stats.keystrokes == 1
