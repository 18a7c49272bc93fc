"""Cutting a token stream for test-then-train steps: near-equal segments, windows that move in jumps."""
import pytest

from engine.segments import Windowing, rows_after, segment_bounds


def test_sentences_are_cut_into_near_equal_segments():
    assert segment_bounds(20, 16) == [(0, 10), (10, 20)]
    assert segment_bounds(16, 16) == [(0, 16)]
    assert segment_bounds(33, 16) == [(0, 11), (11, 22), (22, 33)]
    assert segment_bounds(0, 16) == []


def test_each_row_ends_with_its_segment_after_the_window():
    rows = rows_after([0, 1], list(range(2, 12)), Windowing(segment=4, context=20, keep=8))
    assert [n for _, n in rows] == [3, 4, 3]
    assert [row for row, _ in rows] == [list(range(5)), list(range(9)), list(range(12))]


def test_the_window_jumps_to_its_newest_tokens_when_a_segment_would_not_fit():
    windowing = Windowing(segment=4, context=8, keep=5)
    rows = rows_after(list(range(10)), list(range(10, 18)), windowing)
    assert all(len(row) <= windowing.context + windowing.segment + 1 for row, _ in rows)
    assert rows[0][0] == list(range(5, 14))  # 10 + 4 > 13 tokens: the window kept its newest 5 first
    assert rows[1][0] == list(range(5, 18))  # then it grows, so the next row begins like the last one
    with pytest.raises(ValueError):
        Windowing(context=8, keep=9)
