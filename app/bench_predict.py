"""`pocketkb bench predict`: suggestion latency per keystroke, typing a text character by character.

Measured with the KV cache reused across keystrokes and with it off, in the same run.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from app.predictor import Predictor


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


def bench_predict(predictor: Predictor, text: str, keystrokes: int) -> dict[str, LatencyStats]:
    results = {}
    for reuse in (True, False):
        predictor.config.reuse_cache = reuse
        results["kv-cache reuse" if reuse else "no cache reuse"] = type_text(predictor, text, keystrokes)
    predictor.config.reuse_cache = True
    return results
