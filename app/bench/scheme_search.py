"""`pocketkb search-scheme`: contribution analysis and scheme search for the shipped model on users' own text.

Each candidate learns each user's stream test-then-train, by the sparse mode's update rule, as the learner would.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from app.learning.settings import LearnerConfig
from app.learning.modes import mode
from engine.contribution import AnalysisConfig, ContributionAnalysis, UserText
from engine.contribution_plot import contribution_svg
from engine.dyneval import ModelReference
from engine.search import SearchResult, analyse_and_search
from engine.segments import Windowing
from models.checkpoint import load_model, weights_sha256
from models.build.corpus import read_users
from models.grad_stats import GRAD_STATS_FILE, load_grad_stats
from models.build.progress import advance_to, progress
from models.tokenizer import BOS_ID, Tokenizer


def user_texts(users_file: str | Path, tokenizer: Tokenizer, skip: int, limit: int, chars: int) -> list[UserText]:
    """Users `skip` .. `skip + limit` of the file, `chars` characters each in date order, as token streams."""
    users = itertools.islice(read_users(users_file, limit=skip + limit), skip, None)
    return [UserText(u.user, torch.tensor([BOS_ID] + tokenizer.encode(" ".join(u.posts)[:chars]))) for u in users]


def search(model_dir: str | Path, users: list[UserText], budget_bytes: int, tokens: int
           ) -> tuple[list, SearchResult]:
    """Candidates learn by the `sparse` mode's rule and learning rate, with the base model's gradient statistics, in
    the learner's segments and windows (its context cut to the model's block size)."""
    torch.set_num_threads(1)
    base = load_model(model_dir)
    stats = load_grad_stats(Path(model_dir) / GRAD_STATS_FILE, weights_sha256(model_dir))
    reference = ModelReference.of(base, stats.all_factors())
    learner = LearnerConfig()
    context = min(learner.context, base.config.block_size - learner.segment)
    windowing = Windowing(learner.segment, context, min(learner.context_keep, context))
    config = replace(AnalysisConfig(), windowing=windowing, tokens=tokens, optimizer=mode("sparse").optimizer())
    analysis = ContributionAnalysis(lambda: load_model(model_dir).staged(), users, config, reference)
    bars: dict[str, tqdm] = {}

    def report(phase: str, done: int, total: int, what: str) -> None:
        """One bar per phase (the search's has no total: it counts the sets whose memory it measured)."""
        if phase not in bars:
            for bar in bars.values():
                bar.close()
            bars[phase] = progress(total or None, phase, "")
        advance_to(bars[phase], done, what)

    try:
        return analyse_and_search(analysis, budget_bytes, progress=report)
    finally:
        for bar in bars.values():
            bar.close()


def write_results(table: list, result: SearchResult, scheme_path: Path, docs: Path) -> None:
    scheme_path.write_text(result.scheme.to_json() + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "contribution.json").write_text(json.dumps({"table": [c.to_dict() for c in table],
                                                         "search": result.to_dict()}, indent=2))
    (docs / "contribution.svg").write_text(contribution_svg(table))
