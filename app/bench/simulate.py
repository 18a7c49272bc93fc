"""`pocketkb simulate`: users' posts typed in date order through a Session while the learner learns, per update mode.

KSR is scored before every word; each finished sentence goes to the learner exactly as in the app (rounds run inline).
"""
from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import torch

from app.bench.ksr import KsrResult, score_word, tokens
from app.learning.settings import LearnerConfig
from app.bench.texts import EvalText
from app.typing.loading import load_predictor
from app.typing.combiner import MixConfig
from app.typing.predictor_config import PredictorConfig
from app.session import Session, SessionConfig
from app.storage.store import Store
from app.typing.user_vocab import CacheWeights
from engine.optimizer import preload as preload_optimizer

TAIL = 0.25  # the last quarter of each stream: where learning should show


@dataclass(frozen=True)
class ReplaySystem:
    """An update mode, with or without the user's word statistics in the suggestions."""

    mode: str
    word_cache: bool = True
    learned_word_stats: float | None = None  # the session's share of word statistics once learned (tuning)
    mix_rate: float | None = None  # the adaptive mixture weights' step size (tuning; None: the shipped one)
    learned_new_words: float | None = None  # the session's factor on words never typed once learned (tuning)

    @property
    def label(self) -> str:
        return self.mode if self.word_cache else f"{self.mode}, no word cache"

    def predictor_config(self) -> PredictorConfig:
        mix = MixConfig() if self.word_cache else MixConfig(cache=CacheWeights.none())
        if self.mix_rate is not None:
            mix.adapt = replace(mix.adapt, rate=self.mix_rate)
        return PredictorConfig(mix=mix)


@dataclass
class StreamResult:
    user: str
    system: str
    ksr: KsrResult
    stats: dict
    seconds: float

    @property
    def tail(self) -> KsrResult:
        return self.ksr.tail(TAIL)


def replay(session: Session, text: str) -> KsrResult:
    """Type `text` word by word; sentences finished before a word reach the learner before it is suggested."""
    result = KsrResult()
    for token in tokens(text):
        session.text_changed(text[:token.start])
        score_word(result, text, token, session.suggest)
    session.text_changed(text)
    return result


def _replay_job(job: tuple[EvalText, ReplaySystem, str, dict]) -> StreamResult:
    item, system, model_dir, learner_overrides = job
    torch.set_num_threads(1)
    preload_optimizer()  # as the app's learner thread does at start: not part of any round
    start = time.perf_counter()
    predictor = load_predictor(model_dir, config=system.predictor_config())
    with tempfile.TemporaryDirectory(prefix="pocketkb-replay-") as folder:
        shares = {name: getattr(system, name) for name in ("learned_word_stats", "learned_new_words")
                  if getattr(system, name) is not None}
        session = Session(predictor, Store(folder), LearnerConfig(mode=system.mode, **learner_overrides),
                          SessionConfig(background=False, autosave=False, **shares), base_dir=model_dir)
        result = replay(session, item.text)
        stats = asdict(session.stats)
        session.close()
    return StreamResult(item.name, system.label, result, stats, time.perf_counter() - start)


def run_replay(texts: list[EvalText], systems: list[ReplaySystem], model_dir: str, processes: int,
               learner_overrides: dict | None = None, progress=print) -> list[StreamResult]:
    """Every (user, system) stream, `processes` at a time, longest jobs (learning modes) first."""
    jobs = [(item, system, str(model_dir), learner_overrides or {}) for system in systems for item in texts]
    jobs.sort(key=lambda job: job[1].mode in ("off", "bias-only"))
    results = []
    with mp.get_context("spawn").Pool(processes) as pool:
        for done, result in enumerate(pool.imap_unordered(_replay_job, jobs), start=1):
            results.append(result)
            progress(f"replay {done}/{len(jobs)}: user {result.user} {result.system}: KSR {result.ksr.ksr:.2f}, "
                     f"last quarter {result.tail.ksr:.2f} ({result.seconds:.0f} s)")
    return results
