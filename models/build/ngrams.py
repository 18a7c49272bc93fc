"""Word 1-, 2- and 3-gram counts of the pretraining corpora, split as the caller splits words, for the Presage database
and count-based priors: the documents pretraining sees (held-out ones excluded), counted by `models.build.ngram_counts`.
"""
from __future__ import annotations

from pathlib import Path

from models.build.corpus import training_documents
from models.build.ngram_counts import NgramCounts, Split, count_ngrams

XZ_EXPANSION = 3.5  # xz text of this kind unpacks to about 3.5 times its size: an estimate for the progress bar


def estimated_chars(paths: list[str | Path]) -> float:
    return sum(Path(p).stat().st_size * (XZ_EXPANSION if str(p).endswith(".xz") else 1.0) for p in paths)


def corpus_counts(paths: list[str | Path], split: Split) -> NgramCounts:
    """Counts over every document of the files except the held-out ones (`models.build.corpus.is_held_out`).

    No n-gram spans two documents. About 25 M words take a few minutes and a few GB on one core.
    """
    return count_ngrams(training_documents(paths), split, total_chars=estimated_chars(paths))
