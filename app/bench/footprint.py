"""`pocketkb bench footprint`: the window's resident memory, measured in a fresh process started as `pocketkb gui`
starts (offscreen): after start-up with the first suggestions shown, and after it has learned a replayed text.
"""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIB = 2**20
OPENING_CHARS = 40  # typed before the first sentence ends: suggestions shown, nothing learned yet


@dataclass
class Footprint:
    startup_mib: float        # the window shown, the first suggestions made, no learning yet
    learned_mib: float        # after replaying the text with learning on, the learner idle
    rounds: int
    prior_disk_mb: float
    prior_memory_mib: float   # its arrays' size
    prior_resident_mib: float  # how much of them is resident after the text: all of an array held in memory, the
                               # pages lookups touched of a memory-mapped one

    def lines(self) -> list[str]:
        return [f"window RSS after start-up: {self.startup_mib:.1f} MiB (suggestions shown, nothing learned yet)",
                f"window RSS after learning the text: {self.learned_mib:.1f} MiB ({self.rounds} learning rounds)",
                f"count prior: {self.prior_disk_mb:.1f} MB on disk, {self.prior_memory_mib:.1f} MiB of arrays, "
                f"{self.prior_resident_mib:.1f} MiB of them resident after the text"]


def opening(text: str) -> int:
    """How much of `text` to type before its first sentence is finished (at most OPENING_CHARS)."""
    end = re.search(r"[.!?\n]", text)
    return min(OPENING_CHARS, end.start() if end else len(text))


def window_footprint(model_dir: str, text: str) -> dict:
    """In this (fresh) process: open the window on an empty data folder as `pocketkb gui` does, replay the text's
    opening, then the rest; RSS at both points. Needs a display or QT_QPA_PLATFORM=offscreen."""
    import argparse

    from app.cli.common import open_session
    from app.ui.app import application
    from app.ui.main_window import MainWindow
    from engine.memory import process_rss_bytes
    from models import PRIOR_PATH

    with tempfile.TemporaryDirectory(prefix="pocketkb-footprint-") as folder:
        session = open_session(argparse.Namespace(data=Path(folder), model=model_dir), background=True,
                               measure_costs=True)
        app = application()
        window = MainWindow(session)
        window.speed.setValue(window.speed.maximum())
        window.show()
        rss = []
        split = opening(text)
        for part in (text[:split], text[split:]):
            window.start_replay(part)
            _wait(app, lambda: not window.replay.running)
            _wait(app, lambda: session.worker.idle(timeout=0.05))
            _wait(app, lambda: False, seconds=1.0)  # the window's timers refresh the gauges once more
            rss.append(process_rss_bytes() / MIB)
        prior = session.predictor.prior.t
        arrays = [a for a in [prior.unigram, *(a for level in prior.levels for a in vars(level).values())]
                  if isinstance(a, np.ndarray)]
        files = {id(a): _mapped_file(a) for a in arrays}
        result = {"startup_mib": rss[0], "learned_mib": rss[1],
                  "rounds": session.stats.rounds_accepted + session.stats.rounds_rolled_back,
                  "prior_disk_mb": PRIOR_PATH.stat().st_size / 1e6,
                  "prior_memory_mib": sum(a.nbytes for a in arrays) / MIB,
                  "prior_resident_mib": (sum(a.nbytes for a in arrays if files[id(a)] is None)
                                         + resident_bytes_of_files({f for f in files.values() if f})) / MIB}
        window.close()
    return result


def _mapped_file(array: np.ndarray) -> str | None:
    """The file an array is a view of a memory mapping of, None for an array in memory."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array.base, np.ndarray) else None
    return None if array is None else str(Path(array.filename).resolve())


def resident_bytes_of_files(paths: set[str]) -> int:
    """Bytes of this process's memory mappings of `paths` that are resident (Linux /proc/self/smaps; 0 elsewhere)."""
    total, current = 0, None
    try:
        with open("/proc/self/smaps", encoding="utf-8") as smaps:
            for line in smaps:
                head = line.split(maxsplit=5)
                if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
                    current = head[5].strip() if len(head) == 6 else None
                elif head and head[0] == "Rss:" and current in paths:
                    total += int(head[1]) * 1024
    except OSError:
        return 0
    return total


def _wait(app, done, seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def measure_footprint(model_dir: str | Path, text: str, checkout: str | Path | None = None) -> Footprint:
    """`window_footprint` in a child process (this build's, or another checkout's window)."""
    from app.bench.child import run_child

    data = run_child(__file__, "window_footprint", {"model_dir": str(Path(model_dir).resolve()), "text": text},
                     checkout, env={"QT_QPA_PLATFORM": "offscreen"})
    return Footprint(**data)
