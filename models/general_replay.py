"""Text the base model writes itself: the learner rolls back rounds that make it harder (general English kept).

Generated once per base model (`pocketkb build-replay`, `models.build.replay`) and shipped beside it: no corpus
text leaves the build.
"""
from __future__ import annotations

from pathlib import Path


def load(path: str | Path) -> list[str]:
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
