"""`pocketkb bench predict`: suggestion latency per keystroke, typing a text character by character.

Measured with the KV cache reused across keystrokes, with it off, and while the learner trains in the background.
"""
from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass

from app.learner import LearnerConfig
from app.predictor import Predictor
from app.sentences import finished_sentences
from app.session import Session, SessionConfig
from app.store import Store


@dataclass
class LatencyStats:
    keystrokes: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> "LatencyStats":
        ordered = sorted(samples_ms)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return cls(len(ordered), pick(0.50), pick(0.95), ordered[-1], statistics.fmean(ordered))

    def line(self, label: str) -> str:
        return (f"{label:<18} keystrokes {self.keystrokes:>6}  p50 {self.p50_ms:6.2f} ms  "
                f"p95 {self.p95_ms:6.2f} ms  max {self.max_ms:7.2f} ms  mean {self.mean_ms:6.2f} ms")


def type_text(predictor: Predictor, text: str, keystrokes: int, warmup: int = 20) -> LatencyStats:
    """Time `predictor.suggest` after each of the first `keystrokes` characters of `text`."""
    predictor.invalidate()
    for i in range(1, warmup + 1):
        predictor.suggest(text[:i])
    predictor.invalidate()
    samples = []
    for i in range(1, min(keystrokes, len(text)) + 1):
        t0 = time.perf_counter()
        predictor.suggest(text[:i])
        samples.append((time.perf_counter() - t0) * 1000)
    return LatencyStats.of(samples)


def type_while_learning(predictor: Predictor, text: str, keystrokes: int, mode: str) -> tuple[LatencyStats, int]:
    """Latency while the background learner runs round after round on sentences from the rest of `text`.

    Returns the latency and how many rounds ran meanwhile.
    """
    feed, _ = finished_sentences(text[keystrokes:], 0)
    if not feed:
        raise ValueError("the text has no finished sentence beyond the typed part to learn from")
    with tempfile.TemporaryDirectory(prefix="pocketkb-bench-") as folder:
        session = Session(predictor, Store(folder), LearnerConfig(mode=mode), SessionConfig(autosave=False))
        stop = threading.Event()

        def keep_learner_busy() -> None:
            for i in range(1 << 30):
                if stop.is_set():
                    return
                if not session.learner.pending():
                    session.commit_sentences([feed[i % len(feed)]])
                time.sleep(0.001)

        feeder = threading.Thread(target=keep_learner_busy, daemon=True)
        feeder.start()
        while session.stats.steps == 0:  # the first round has compiled its plan
            time.sleep(0.01)
        rounds = session.stats.rounds_accepted + session.stats.rounds_rolled_back
        stats = type_text(predictor, text, keystrokes)
        rounds = session.stats.rounds_accepted + session.stats.rounds_rolled_back - rounds
        stop.set()
        feeder.join()
        session.close()
    return stats, rounds


def bench_predict(predictor: Predictor, text: str, keystrokes: int, learning_mode: str | None = "sparse"
                  ) -> dict[str, LatencyStats]:
    results = {}
    for reuse in (True, False):
        predictor.config.reuse_cache = reuse
        results["kv-cache reuse" if reuse else "no cache reuse"] = type_text(predictor, text, keystrokes)
    predictor.config.reuse_cache = True
    if learning_mode:
        results[f"learning {learning_mode}"], rounds = type_while_learning(predictor, text, keystrokes, learning_mode)
        print(f"{rounds} learning rounds ran in the background while typing")
    return results
