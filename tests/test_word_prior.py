"""The count-based prior: Kneser-Ney statistics, normalised probabilities, the 4-gram context, prefix candidates,
the compact file and its memory-mapped cache."""
import fcntl
import lzma
import os
import time

import numpy as np
import pytest

from models.build.ngram_counts import count_in_vocabulary
from app.typing.words import lower_words
from models.build.prior import PriorConfig, kneser_ney_counts, tables_from_documents
from models import prior_cache
from models.prior_tables import PriorFileError, PriorTables
from models.word_prior import WordPrior

DOCS = ["The cat sat on the mat. The cat ate the rat!", "Thank you very much; thank you very well.",
        "See you very soon.", "I don't know, you know?"]
EVERYTHING = PriorConfig(max_words=1000, order=4, min_counts=(1, 1, 1))


def _prior(tmp_path, docs, config=EVERYTHING):
    path = tmp_path / "prior.npz.xz"
    tables_from_documents(lambda: iter(docs), lower_words, config).save(path)
    return WordPrior.load(path)


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return _prior(tmp_path_factory.mktemp("prior"), DOCS)


def test_counts_in_a_vocabulary_mark_other_words():
    (uni, uni_n), (bi, bi_n) = count_in_vocabulary(["a b zz", "b a"], lower_words, ["a", "b"], 2)
    assert dict(zip(uni[:, 0].tolist(), uni_n.tolist())) == {0: 2, 1: 2, 2: 1}   # 2: a word outside the list
    assert {tuple(r): int(c) for r, c in zip(bi.tolist(), bi_n.tolist())} == {(0, 1): 1, (1, 2): 1, (1, 0): 1}


def test_continuation_counts_below_the_top_order():
    words = ["a", "cat", "francisco", "my", "san", "the"]
    docs = ["san francisco", "san francisco", "san francisco", "the cat", "a cat", "my cat"]
    grams = count_in_vocabulary(docs, lower_words, words, 2)
    unigram = dict(zip((words[i] for i in grams[0][0][:, 0]), kneser_ney_counts(grams, len(words) + 1)[0].tolist()))
    assert unigram["francisco"] == 1 and unigram["cat"] == 3   # both seen 3 times, but "cat" after 3 words
    assert kneser_ney_counts(grams, len(words) + 1)[1].tolist() == grams[1][1].tolist()  # top order: raw


def test_a_word_seen_after_many_words_is_likelier_in_a_new_context(tmp_path):
    prior = _prior(tmp_path, ["san francisco", "san francisco", "san francisco", "the cat", "a cat", "my cat"])
    assert prior.probability(("nobody",), "cat") > 2 * prior.probability(("nobody",), "francisco")
    assert prior.probability(("san",), "francisco") > prior.probability(("san",), "cat")


@pytest.mark.parametrize("history", [("you", "very"), ("the",), ("nobody", "here"), (), ("thank", "you", "very"),
                                     ("x", "i", "don", "t")])
def test_probabilities_sum_to_one(prior, history):
    assert sum(prior.probability(history, w) for w in prior.t.words) == pytest.approx(1.0)


def test_the_longest_context_decides(prior):
    assert prior.order == 4
    assert prior.probability(("thank", "you", "very"), "much") > prior.probability(("thank", "you", "very"), "soon")
    assert prior.probability(("see", "you", "very"), "soon") > prior.probability(("see", "you", "very"), "much")
    assert prior.candidates(("see", "you", "very"), "", 1)[0] == "soon"
    assert prior.candidates(("thank", "you", "very"), "", 1)[0] in ("much", "well")


def test_candidates_follow_the_prefix(prior):
    assert prior.candidates(("the",), "r", 3) == ["rat"]
    assert prior.candidates(("i", "don"), "", 1)[0] == "t"
    assert prior.candidates((), "zz", 3) == []


def test_pruned_continuations_keep_their_share(tmp_path):
    full = _prior(tmp_path, DOCS)
    pruned = _prior(tmp_path, DOCS, PriorConfig(max_words=1000, order=4, min_counts=(2, 2, 2)))
    assert len(pruned.t.levels[0].next) < len(full.t.levels[0].next)
    (_, pos_full, _), = full._contexts(("the",))
    (_, pos_pruned, _), = pruned._contexts(("the",))
    assert pruned.t.levels[0].total[pos_pruned] == full.t.levels[0].total[pos_full]
    assert sum(pruned.probability(("the",), w) for w in pruned.t.words) < 1.0


def test_unknown_word_gets_a_small_probability(prior):
    assert 0 < prior.probability(("the",), "zebra") < prior.probability(("the",), "rat")


def test_a_config_without_a_minimum_count_per_order_is_refused():
    with pytest.raises(ValueError, match="minimum counts"):
        PriorConfig(order=4, min_counts=(1, 2))


def _tables(config=EVERYTHING):
    return tables_from_documents(lambda: iter(DOCS * 3), lower_words, config)


def _same(a, b):
    assert a.words == b.words and np.array_equal(a.unigram, b.unigram)
    for x, y in zip(a.levels, b.levels, strict=True):
        for name in ("keys", "offsets", "next", "count", "total", "backoff", "discounts"):
            assert getattr(x, name).dtype == getattr(y, name).dtype and np.array_equal(getattr(x, name), getattr(y, name))


def test_the_file_round_trip_is_exact_and_smaller_than_a_deflated_npz(tmp_path):
    tables = _tables()
    tables.save(tmp_path / "prior.npz.xz")
    _same(PriorTables.load(tmp_path / "prior.npz.xz"), tables)
    plain = {f"{n}{name}": getattr(level, name) for n, level in enumerate(tables.levels)
             for name in ("keys", "offsets", "next", "count", "total", "backoff")}
    np.savez_compressed(tmp_path / "plain.npz", unigram=tables.unigram, **plain)
    assert (tmp_path / "prior.npz.xz").stat().st_size < (tmp_path / "plain.npz").stat().st_size


def test_the_cache_is_decoded_once_and_memory_mapped(tmp_path):
    tables = _tables()
    tables.save(tmp_path / "prior.npz.xz")
    first = PriorTables.load(tmp_path / "prior.npz.xz", tmp_path / "cache")
    (folder,) = (tmp_path / "cache").iterdir()
    assert isinstance(first.levels[0].next.base, np.memmap) and not first.levels[0].next.flags.writeable
    _same(first, tables)
    stamp = (folder / "context1_next.npy").stat().st_mtime_ns
    second = WordPrior.load(tmp_path / "prior.npz.xz", tmp_path / "cache")
    assert (folder / "context1_next.npy").stat().st_mtime_ns == stamp and len(list((tmp_path / "cache").iterdir())) == 1
    assert second.candidates(("thank", "you", "very"), "", 1)[0] in ("much", "well")
    tables.levels[0].count[0] += 1  # another prior file: a folder of its own
    tables.save(tmp_path / "other.npz.xz")
    assert PriorTables.load(tmp_path / "other.npz.xz", tmp_path / "cache").levels[0].count[0] == tables.levels[0].count[0]
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_damaged_cache_folder_is_decoded_again(tmp_path):
    tables = _tables()
    tables.save(tmp_path / "prior.npz.xz")
    PriorTables.load(tmp_path / "prior.npz.xz", tmp_path / "cache")
    (folder,) = (tmp_path / "cache").iterdir()
    (folder / "context2_count.npy").write_bytes(b"\x93NUMPY truncated")
    _same(PriorTables.load(tmp_path / "prior.npz.xz", tmp_path / "cache"), tables)


def test_an_unwritable_cache_keeps_the_prior_in_memory(tmp_path):
    _tables().save(tmp_path / "prior.npz.xz")
    (tmp_path / "cache").write_text("a file where the cache folder would go")
    tables = PriorTables.load(tmp_path / "prior.npz.xz", tmp_path / "cache" / "sub")
    assert not isinstance(tables.levels[0].next.base, np.memmap) and len(tables.words) > 10


@pytest.mark.parametrize("content", [b"", b"not xz at all", lzma.compress(b"PK\x03\x04 not an npz")])
def test_a_damaged_prior_file_gets_a_clear_error(tmp_path, content):
    (tmp_path / "prior.npz.xz").write_bytes(content)
    with pytest.raises(PriorFileError, match="build one with pocketkb build-prior"):
        PriorTables.load(tmp_path / "prior.npz.xz", tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_prior_of_the_old_deflated_format_is_refused_clearly(tmp_path):
    np.savez_compressed(tmp_path / "old.npz", unigram=np.ones(3, np.int64))
    with pytest.raises(PriorFileError, match="not a count prior that this build can read"):
        WordPrior.load(tmp_path / "old.npz")


def test_words_of_equal_count_rank_the_same_whatever_width_the_counts_are_stored_in():
    from models.word_prior import _top

    counts = np.random.default_rng(0).integers(1, 4, 5000)  # many ties, as in a rare context's row
    ids = np.arange(5000)
    assert _top(ids, counts.astype(np.int16), 7) == _top(ids, counts.astype(np.int32), 7)


def test_the_vectorised_interpolation_is_the_priors_own_probability(prior):
    from models.build.prune import Interpolation
    from models.prior_tables import entry_rows

    interpolation, V = Interpolation(prior.t), len(prior.t.words)
    for n, level in enumerate(prior.t.levels, start=1):
        rows = entry_rows(level.offsets)
        contexts, words = level.keys[rows].astype(np.uint64), level.next.astype(np.int64)
        for extra in (0, 1):  # each row's own word, and a word the context may never have seen
            others = (words + extra * 7) % V
            vectorised = interpolation.probability(n, contexts, others)
            for i in range(0, len(rows), max(1, len(rows) // 40)):
                history = [prior.t.words[(int(level.keys[rows[i]]) // V ** k) % V] for k in reversed(range(n))]
                assert vectorised[i] == pytest.approx(prior.probability(history, prior.t.words[others[i]]), rel=1e-5)


def test_weighted_difference_pruning_keeps_the_n_grams_that_reach_the_threshold():
    from models.build.prune import prune, pruning_scores

    config = PriorConfig(max_words=1000, order=4, min_counts=(1, 1, 1))
    full = _tables(config)
    pruned = _tables(PriorConfig(max_words=1000, order=4, min_counts=(1, 1, 1), prune_threshold=4.0))
    assert 0 < sum(len(level.next) for level in pruned.levels) < sum(len(level.next) for level in full.levels)
    # the same as pruning the full tables with their raw counts: the scores decide, level by level
    docs = DOCS * 3
    grams = count_in_vocabulary(docs, lower_words, full.words, 4)
    raw = _raw_counts(full, grams)
    scores = pruning_scores(full, raw)
    assert [len(level.next) for level in prune(full, raw, 4.0).levels] == [int((s >= 4.0).sum()) for s in scores]
    assert [len(level.next) for level in pruned.levels] == [int((s >= 4.0).sum()) for s in scores]
    assert sum(WordPrior(pruned).probability(("the",), w) for w in pruned.words) < 1.0


def _raw_counts(tables, grams):
    """Each continuation's raw count, looked up in `count_in_vocabulary`'s rows."""
    from models.prior_tables import entry_rows

    V = len(tables.words)
    out = []
    for n, level in enumerate(tables.levels, start=1):
        rows, counts = grams[n]
        found = {tuple(r): int(c) for r, c in zip(rows.tolist(), counts.tolist())}
        index = entry_rows(level.offsets)
        out.append(np.array([found[tuple((int(level.keys[i]) // V ** k) % V for k in reversed(range(n))) + (int(w),)]
                             for i, w in zip(index, level.next)], np.float64))
    return out


def _cache_left_by_keyboards_that_ended(tmp_path, days_ago):
    """A cache folder per version (one per entry of `days_ago`) as keyboards that have since ended left them, each
    last loaded that many days ago."""
    folders = []
    for n, days in enumerate(days_ago, start=1):
        tables = _tables()
        tables.levels[0].count[0] += n
        tables.save(tmp_path / f"v{n}.npz.xz")
        before = set((tmp_path / "cache").glob("prior-*"))
        PriorTables.load(tmp_path / f"v{n}.npz.xz", tmp_path / "cache")
        folders += set((tmp_path / "cache").glob("prior-*")) - before
    for folder, days in zip(folders, days_ago):
        os.close(prior_cache._held.pop(folder))  # its lock ends with its process
        stamp = time.time() - days * 86400
        os.utime(folder / prior_cache.IN_USE, (stamp, stamp))
    return folders


def test_old_versions_idle_for_a_day_are_removed_and_one_another_keyboard_maps_is_kept(tmp_path):
    old, mapped, recent = _cache_left_by_keyboards_that_ended(tmp_path, days_ago=(2, 2, 0.5))
    other_keyboard = os.open(mapped / prior_cache.IN_USE, os.O_RDONLY)
    fcntl.flock(other_keyboard, fcntl.LOCK_SH)  # another running keyboard maps this one
    try:
        _tables().save(tmp_path / "new.npz.xz")
        PriorTables.load(tmp_path / "new.npz.xz", tmp_path / "cache")
        left = set((tmp_path / "cache").glob("prior-*"))
        assert old not in left and {mapped, recent} <= left and len(left) == 3  # the new one, mapped, recent
    finally:
        os.close(other_keyboard)
