"""`pocketkb bench soak`: a long session in one process, typing key by key while the learner trains behind.

Reports RSS growth after warm-up, the history against its bound, and p95 latency of the last tenth vs the first.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.bench.predict import LatencyStats
from app.learning.settings import LearnerConfig
from app.typing.predictor import Predictor
from app.session import Session, SessionConfig
from app.storage.store import Store
from engine.memory import process_rss_bytes

MIB = 2**20


@dataclass
class SoakReport:
    keystrokes: int
    rounds: int
    rss_after_warmup_mib: float
    rss_end_mib: float
    history: int
    history_bound: int
    first_tenth: LatencyStats
    last_tenth: LatencyStats

    def lines(self) -> list[str]:
        return [f"keystrokes {self.keystrokes}, learning rounds {self.rounds}",
                f"RSS after warm-up {self.rss_after_warmup_mib:.1f} MiB, at the end {self.rss_end_mib:.1f} MiB: "
                f"growth {self.rss_end_mib - self.rss_after_warmup_mib:+.1f} MiB",
                f"history {self.history} sentences (bound {self.history_bound})",
                self.first_tenth.line("first tenth"), self.last_tenth.line("last tenth"),
                f"p95 last tenth / first tenth: {self.last_tenth.p95_ms / self.first_tenth.p95_ms:.2f}x"]


def run_soak(predictor: Predictor, text: str, keystrokes: int, history_bound: int = 200, progress=print
             ) -> SoakReport:
    """Type `text` (repeated as needed) for `keystrokes` keys through a Session with its background learner."""
    text = (text * (keystrokes // max(1, len(text)) + 1))[:keystrokes]
    with tempfile.TemporaryDirectory(prefix="pocketkb-soak-") as folder:
        session = Session(predictor, Store(Path(folder), max_sentences=history_bound), LearnerConfig(mode="sparse"),
                          SessionConfig(background=True, save_seconds=10.0))
        samples, warm_rss = [], None
        for i in range(1, len(text) + 1):
            typed = text[:i]  # the whole text area, as the window passes it on
            session.text_changed(typed)
            start = time.perf_counter()
            session.suggest(typed)
            samples.append((time.perf_counter() - start) * 1000)
            if i == len(text) // 10:
                warm_rss = process_rss_bytes()
            if i % 5000 == 0:
                progress(f"soak: {i}/{len(text)} keystrokes, {session.stats.rounds_accepted} rounds kept, "
                         f"{session.stats.rounds_rolled_back} rolled back")
        session.worker.idle(timeout=120)
        rounds = session.stats.rounds_accepted + session.stats.rounds_rolled_back
        history = len(session.store.history)
        end_rss = process_rss_bytes()
        session.close()
    tenth = len(samples) // 10
    return SoakReport(len(samples), rounds, (warm_rss or 0) / MIB, (end_rss or 0) / MIB, history, history_bound,
                      LatencyStats.of(samples[:tenth]), LatencyStats.of(samples[-tenth:]))
