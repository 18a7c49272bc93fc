"""A typing session: the predictor, the user's history and personal model on disk, and the learner in the background.

The app, the terminal and the replay benchmark all type through this one class, so they learn the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from app.learning.learner import Learner
from app.learning.settings import LearnerConfig, LearnerStats, RoundResult
from app.learning.worker import LearnerWorker
from app.storage.personal_file import PersonalModel
from app.typing.predictor import Predictor, Strip
from app.typing.sentences import NewSentences
from app.storage.history import HistoryError
from app.storage.logs import log_to_file
from app.storage.store import Store, new_meta
from app.typing.user_vocab import UserVocabulary
from engine.memory import process_rss_bytes, tensor_bytes
from models import BASE_DIR, GENERAL_REPLAY_PATH
from models.checkpoint import weights_sha256
from models.general_replay import load as load_general
from models.grad_stats import GRAD_STATS_FILE, load_grad_stats


@dataclass
class SessionConfig:
    background: bool = True          # learn in a worker thread (the app); False: right away, in the caller's
    save_seconds: float = 20.0       # the personal model is written at most this often while learning
    autosave: bool = True
    measure_costs: bool = False      # full backprop's training memory is measured for the gauges once learning starts
    trim_seconds: float = 10.0       # when learning pauses, freed heap goes back to the system at most this often
    learned_word_stats: float = 0.5  # share of the user's word statistics in suggestions once the personal model
                                     # has learned: it gives the user's words more itself, and two boosts of the
                                     # same words crowd out new ones (tuned on dev users 21-24)
    learned_new_words: float = 1.0   # once it has learned, the value of a word the user never typed is multiplied
                                     # by this: the personal model lowers such words, a new word still comes
    log_dir: str | None = None       # where failures are logged (default: the platformdirs user log folder)


class Session:
    def __init__(self, predictor: Predictor, store: Store, learner_config: LearnerConfig | None = None,
                 config: SessionConfig | None = None, base_dir: str | Path = BASE_DIR,
                 general_path: str | Path = GENERAL_REPLAY_PATH):
        self.predictor, self.store = predictor, store
        self.config = config or SessionConfig()
        self.base_sha256 = weights_sha256(base_dir)
        self.tokenizer_sha256 = predictor.tokenizer.sha256
        self.learner = Learner(predictor.model, predictor.tokenizer, load_general(general_path), learner_config,
                               publish=self._publish, absorb=self._absorb, reject=self.store.history.mark_rejected,
                               grad_stats=load_grad_stats(Path(base_dir) / GRAD_STATS_FILE, self.base_sha256),
                               known=self._known_word if predictor.prior is not None else None)
        self.learner.stream.max_sentences = store.history.max_sentences
        self.meta = new_meta(self.base_sha256, self.tokenizer_sha256, self.learner.mode)
        self._finished = NewSentences()
        self._last_save = time.monotonic()
        self._dirty = False
        self.listeners: list[Callable[[RoundResult | None], None]] = []  # called after each round, in its thread
        self.problems: dict[str, str] = {}  # what does not work right now, by part ("learning", "history")
        self.log_path = log_to_file(self.config.log_dir)
        self._load_saved()
        # the gauges compare the running plan's training memory with full backprop's, measured after the first
        # learning round; a mode's own figure (one step on a copy) when the user switches to it
        self.measure_modes = ("full",) if self.config.measure_costs else ()
        self.worker = LearnerWorker(self.learner, self.learn_round, self.notify, self.measure_modes,
                                    self.config.trim_seconds, self._learning_failed) if self.config.background else None

    # --- the model and the store -----------------------------------------------------------------------------
    def _publish(self, tensors: dict[str, torch.Tensor]) -> None:
        """Hand weights the learner accepted to the predictor, which takes them in at the next word."""
        self.predictor.update_weights(tensors)

    def _absorb(self, sentences: list[str]) -> None:
        """The user's word statistics take in sentences the learner kept (a garbage burst it rolled back stays out)."""
        self.predictor.learn_words(sentences)

    def _known_word(self, word: str) -> bool:
        """In the shipped vocabulary, or a word the user typed before (what the garbage guard asks)."""
        return self.predictor.knows(word)

    def expected_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.learner.base)

    def _load_saved(self) -> None:
        personal = self.store.load(self.expected_tensors(), self.base_sha256, self.tokenizer_sha256)
        self._apply(personal)

    def _apply(self, personal: PersonalModel | None) -> None:
        history = self.store.history
        if personal is not None:
            self.meta = personal.meta
            self.learner.set_mode(personal.meta.mode)
        self.predictor.load_mixture(personal.meta.mixture if personal is not None else {})
        self.learner.load_deltas(personal.deltas if personal else {}, history.sentences(), history.rejected())
        # a loaded or reset model shows at once, not from the next word on
        self.predictor.reset_words(UserVocabulary(history.kept_sentences()), history.blocked())

    def personal(self) -> PersonalModel:
        self.meta.mode = self.learner.mode
        self.meta.counters = self.learner.stats.counters()
        self.meta.mixture = self.predictor.mixture_state()
        return PersonalModel(self.meta, self.learner.deltas())

    def save(self) -> None:
        self.store.save(self.personal())
        self._last_save, self._dirty = time.monotonic(), False

    # --- typing ----------------------------------------------------------------------------------------------
    def strip(self, text: str) -> Strip:
        """What the suggestion strip shows for the text before the cursor."""
        learned = self.learner.has_learned()
        self.predictor.set_personal_mix(self.config.learned_word_stats if learned else 1.0,
                                        self.config.learned_new_words if learned else 1.0)
        return self.predictor.strip(text, adapt=not self.incognito)

    def suggest(self, text: str) -> list[str]:
        """The predictions alone, best first."""
        return self.strip(text).words

    def text_changed(self, text: str) -> list[str]:
        """The whole text as it now stands; sentences finished since the last call are recorded and learned (one
        deleted by an edit and typed again in its place, not a second time: `NewSentences`)."""
        sentences = self._finished.update(text)
        self.commit_sentences(sentences)
        return sentences

    def commit_sentences(self, sentences: list[str]) -> int:
        """Record finished sentences, then let the learner take them in one round (a paste is one burst).

        Returns how many were recorded: none while incognito, nor those holding a blocked word.
        """
        try:
            recorded = self.store.history.add_many(sentences)
        except HistoryError as err:  # a full disk, say: typing goes on, and the next sentence tries again
            self.problems["history"] = str(err)
            self.notify(None)
            return 0
        self.problems.pop("history", None)
        if not recorded:
            return 0
        for sentence in recorded:
            self.learner.add(sentence)
        if self.worker is not None:
            self.worker.wake()
        else:
            self.learn_round()
        return len(recorded)

    def learn_round(self) -> None:
        result = self.learner.run_round()
        if (result is not None and result.accepted) or self.predictor.mixture_state() != self.meta.mixture:
            self._dirty = True
        if self._dirty and self.config.autosave and time.monotonic() - self._last_save >= self.config.save_seconds:
            self.save()
        self.notify(result)

    def _learning_failed(self, reason: str) -> None:
        """The worker stopped learning after an error (logged to `log_path`); suggestions go on."""
        self.problems["learning"] = f"learning paused: {reason} (details in {self.log_path})"
        self.notify(None)

    @property
    def status(self) -> str:
        """What does not work right now, for the window and the terminal to show ("" when all is well)."""
        return " · ".join(self.problems.values())

    def notify(self, result: RoundResult | None) -> None:
        for listener in list(self.listeners):
            listener(result)

    def model_bytes(self) -> int:
        """Bytes of the model tensors held: the predictor's weights and the learner's (a storage shared counts once)."""
        return tensor_bytes([*self.predictor.model.parameters(), *self.predictor.model.buffers(),
                             *self.learner.held_tensors()])

    @staticmethod
    def process_rss_bytes() -> int | None:
        """This process's resident memory, as the kernel counts it (None where it cannot be read)."""
        return process_rss_bytes()

    # --- settings --------------------------------------------------------------------------------------------
    @property
    def stats(self) -> LearnerStats:
        return self.learner.stats

    @property
    def incognito(self) -> bool:
        return self.store.history.incognito

    @incognito.setter
    def incognito(self, value: bool) -> None:
        self.store.history.incognito = value

    def set_mode(self, mode: str) -> None:
        self.learner.set_mode(mode)
        self._dirty = True
        if self.worker is not None and self.config.measure_costs:
            self.worker.measure(mode)

    def block(self, word: str) -> None:
        """Never suggest `word` again (what was typed stays in history)."""
        self.store.history.block(word)
        self.predictor.set_blocked(self.store.history.blocked())

    def forget(self, phrase: str) -> int:
        """Delete the sentences holding `phrase` from history; a single word is also never suggested again."""
        removed = self.store.history.forget(phrase)
        self.learner.replace_sentences(self.store.history.sentences())
        self.predictor.reset_words(UserVocabulary(self.store.history.kept_sentences()), self.store.history.blocked())
        return removed

    def reset(self) -> None:
        """Back to the base model; history goes too (blocked words stay)."""
        self.store.reset()
        self.meta = new_meta(self.base_sha256, self.tokenizer_sha256, self.learner.mode)
        self.learner.stats = LearnerStats()
        self._apply(None)

    def export(self, path: str | Path, with_history: bool = False) -> None:
        self.store.export(path, self.personal(), with_history)

    def import_file(self, path: str | Path) -> None:
        """Validate and take over an exported personal model; raises PersonalFileError and changes nothing if bad."""
        personal = self.store.import_file(path, self.expected_tensors(), self.base_sha256, self.tokenizer_sha256)
        self._apply(personal)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._dirty and self.config.autosave:
            self.save()
        self.learner.close()
        self.store.close()
