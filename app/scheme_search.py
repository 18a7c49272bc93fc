"""`pocketkb search-scheme`: contribution analysis and scheme search for the shipped model on users' own text.

Each user's earlier text is what the candidates train on, the later text what their gain is measured on.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.contribution import AnalysisConfig, ContributionAnalysis, UserText
from engine.contribution_plot import contribution_svg
from engine.lm import staged_lm
from engine.search import SearchResult, analyse_and_search
from models.checkpoint import load_model
from models.corpus import read_users
from models.progress import Progress
from models.tokenizer import BOS_ID, Tokenizer


def user_texts(users_file: str | Path, tokenizer: Tokenizer, limit: int, chars: int, later_fraction: float = 0.25
               ) -> list[UserText]:
    """The first `limit` users, `chars` characters each in date order, split into earlier and later text."""
    out = []
    for user in read_users(users_file, limit=limit):
        text = " ".join(user.posts)[:chars]
        cut = text.rfind(" ", 0, int(len(text) * (1 - later_fraction)))
        earlier, later = ([BOS_ID] + tokenizer.encode(part.strip()) for part in (text[:cut], text[cut:]))
        out.append(UserText(user.user, torch.tensor(earlier), torch.tensor(later)))
    return out


def search(model_dir: str | Path, tokenizer: Tokenizer, users: list[UserText], budget_bytes: int
           ) -> tuple[list, SearchResult]:
    torch.set_num_threads(1)

    def factory():
        return staged_lm(load_model(model_dir))

    analysis = ContributionAnalysis(factory, users, AnalysisConfig())
    bar = Progress(1, "contribution analysis", " candidates")

    def progress(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.update(done, name)

    table, result = analyse_and_search(analysis, budget_bytes, progress=progress)
    bar.close()
    return table, result


def write_results(table: list, result: SearchResult, scheme_path: Path, docs: Path) -> None:
    scheme_path.write_text(result.scheme.to_json() + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "contribution.json").write_text(json.dumps({"table": [c.to_dict() for c in table],
                                                         "search": result.to_dict()}, indent=2))
    (docs / "contribution.svg").write_text(contribution_svg(table))
