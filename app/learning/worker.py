"""The learner's background thread: runs learning rounds while committed sentences wait, on one torch thread so
suggestions keep the other core. Committed text → learner → plan step → guard → publish happens in its rounds.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import torch

from app.learning.learner import Learner
from engine.memory import map_large_blocks, release_free_heap

log = logging.getLogger("pocketkb.learning")


class LearnerWorker:
    """Runs learning rounds in a thread while sentences wait, with one torch thread so suggestions keep the other core."""

    def __init__(self, learner: Learner, learn_round: Callable[[], None], notify: Callable[[None], None],
                 measure_modes: tuple[str, ...] = (), trim_seconds: float = 10.0,
                 failed: Callable[[str], None] = lambda reason: None):
        map_large_blocks()  # the learner allocates and frees large tensors all day
        self.learner, self.learn_round, self.notify, self.failed = learner, learn_round, notify, failed
        self.paused: str | None = None  # why learning stopped, after an error in a round
        self.measure_modes, self.trim_seconds = list(measure_modes), trim_seconds  # costs still to measure
        self._wake = threading.Event()
        self._stop = False
        self.busy = False
        self.learned = False  # a round has run: from then on the gauges' costs are measured
        self._trimmed = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        """Rounds until stopped. An error in one is logged (with its traceback) and pauses learning: the reason goes
        to `failed`, and typing and suggestions go on with the weights last published."""
        try:
            self._rounds()
        except Exception as err:  # noqa: BLE001 (any failure must pause learning, not end it silently)
            log.exception("learning paused")
            self.paused = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            self.busy = False
            self.failed(self.paused)

    def _rounds(self) -> None:
        torch.set_num_threads(1)
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            self.busy = True
            while not self._stop and self.learner.pending():
                self.learn_round()
                self.learned = True
            self._measure()
            self._trim()
            self.busy = False

    def measure(self, mode: str) -> None:
        """Measure `mode`'s training memory (one step on a copy of the base) when the thread is next free, once
        learning has begun."""
        self.measure_modes.append(mode)
        self.wake()

    def _measurements_due(self) -> bool:
        """Costs are measured once learning has begun: a keyboard that has not learned yet (or never will, with
        learning off) does not pay a training step's memory for a gauge."""
        return self.learned and bool(self.measure_modes)

    def _measure(self) -> None:
        """The gauges' training-memory figures still to measure, each once; the heap the steps used goes back."""
        while self._measurements_due() and not self._stop:
            self.learner.measure_training_bytes(self.measure_modes[0])
            self.measure_modes.pop(0)
            release_free_heap()
            self.notify(None)

    def _trim(self) -> None:
        """Rounds allocate and free tensors of many sizes; without this the heap only grows over a day of typing."""
        if time.monotonic() - self._trimmed >= self.trim_seconds:
            release_free_heap()
            self._trimmed = time.monotonic()

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no round runs or waits (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.paused or not (self.busy or self._wake.is_set() or self.learner.pending()
                                   or self._measurements_due()):
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)
