"""`pocketkb simulate`: users' posts typed in date order through a Session while the learner learns, per update mode.

KSR is scored before every word; each finished sentence goes to the learner exactly as in the app (rounds run inline).
"""
from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from app.ksr import KsrResult, score_word, tokens
from app.learner import LearnerConfig
from app.loading import EvalText, load_predictor
from app.predictor import PredictorConfig
from app.session import Session, SessionConfig
from app.store import Store

TAIL = 0.25  # the last quarter of each stream: where learning should show


@dataclass
class StreamResult:
    user: str
    mode: str
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


def _replay_job(job: tuple[EvalText, str, str, float, dict]) -> StreamResult:
    item, mode, model_dir, prior_weight, learner_overrides = job
    torch.set_num_threads(1)
    start = time.perf_counter()
    predictor = load_predictor(model_dir, config=PredictorConfig(prior_weight=prior_weight))
    with tempfile.TemporaryDirectory(prefix="pocketkb-replay-") as folder:
        session = Session(predictor, Store(folder), LearnerConfig(mode=mode, **learner_overrides),
                          SessionConfig(background=False, autosave=False), base_dir=model_dir)
        result = replay(session, item.text)
        stats = asdict(session.stats)
        session.close()
    return StreamResult(item.name, mode, result, stats, time.perf_counter() - start)


def run_replay(texts: list[EvalText], modes: list[str], model_dir: str, processes: int, prior_weight: float,
               learner_overrides: dict | None = None, progress=print) -> list[StreamResult]:
    """Every (user, mode) stream, `processes` at a time, longest jobs (learning modes) first."""
    jobs = [(item, mode, str(model_dir), prior_weight, learner_overrides or {}) for mode in modes for item in texts]
    jobs.sort(key=lambda job: job[1] in ("off", "bias-only"))
    results = []
    with mp.get_context("spawn").Pool(processes) as pool:
        for done, result in enumerate(pool.imap_unordered(_replay_job, jobs), start=1):
            results.append(result)
            progress(f"replay {done}/{len(jobs)}: user {result.user} mode {result.mode}: KSR {result.ksr.ksr:.2f}, "
                     f"last quarter {result.tail.ksr:.2f} ({result.seconds:.0f} s)")
    return results
