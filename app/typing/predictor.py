"""Word completion and next-word prediction: what the strip shows for the text before the cursor.

Keystroke → context → search → combine → suggestions: the model source reads the context (its KV cache reused across
keystrokes), `WordSearch` proposes known words from every source and has the model score them, and the combiner mixes
the model, the count prior and the user's statistics. Only known words are offered (the shipped vocabulary, the user's
own, and words typed lately); the strip also holds the typed word itself when it is a known word.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable

import torch

from app.typing.combiner import Combiner
from app.typing.model_source import ModelSource
from app.typing.predictor_config import PredictorConfig
from app.typing.search import WordSearch
from app.typing.sources import PriorSource, UserSource
from app.typing.user_vocab import UserVocabulary
from app.typing.vocab_index import VocabIndex
from app.typing.words import KnownWords, TypingState, split_typing
from models.gpt import GPT
from models.tokenizer import Tokenizer
from models.word_prior import WordPrior


@dataclass(frozen=True)
class Strip:
    """What the suggestion strip shows: the predictions, best first, and the typed word itself when it is a known
    word (accepting it adds the space). The typed word never takes a prediction's place: it matters only once the
    word is whole, when a completion can no longer save a keystroke but longer words can still be wanted."""

    words: list[str]
    typed: str | None = None

    @property
    def shown(self) -> list[str]:
        """Everything on the strip: the typed word first, then the predictions."""
        return ([self.typed] if self.typed else []) + self.words


class Predictor:
    """Suggests three words for the text before the cursor. Thread-safe: the learner publishes weights, and the
    session changes the user's words, through these methods while the keyboard asks for strips."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, config: PredictorConfig | None = None,
                 prior: WordPrior | None = None):
        self.config = config or PredictorConfig()
        self.tokenizer, self.prior = tokenizer, prior
        self.index = VocabIndex(tokenizer, prior.t.words if prior else (), prior.t.unigram if prior else None)
        self.vocabulary = KnownWords(self.index)
        self.model_source = ModelSource(model, tokenizer, self.index, self.config)
        self.user = UserSource()
        self.combiner = Combiner(self.config.mix, PriorSource(prior) if prior is not None else None, self.user)
        self.blocked: set[str] = set()
        self.search = WordSearch(self.config, self.model_source, self.combiner.prior, self.user, self.combiner,
                                 self.blocked)
        self.lock = threading.RLock()  # strips, published weights and the user's words take turns

    @property
    def model(self) -> GPT:
        return self.model_source.model

    @property
    def model_calls(self) -> int:
        return self.model_source.model_calls

    # -- what the session changes -------------------------------------------------------------
    @property
    def user_words(self) -> UserVocabulary:
        return self.user.words

    @user_words.setter
    def user_words(self, words: UserVocabulary) -> None:
        self.user.words = words

    def update_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """New values for some parameters, taken in when the next word starts (or at `invalidate`)."""
        with self.lock:
            self.model_source.update_weights(tensors)

    def invalidate(self) -> None:
        """Take in waiting weights and forget the KV cache: call after the model's weights change."""
        with self.lock:
            self.model_source.invalidate()

    def weights_changed(self) -> None:
        """Call after the learner changed some weights in place (see `ModelSource.weights_changed`)."""
        with self.lock:
            self.model_source.weights_changed()

    def learn_words(self, sentences: Iterable[str]) -> None:
        """The user's word statistics take in sentences (ones the learner kept)."""
        with self.lock:
            for sentence in sentences:
                self.user.words.add_sentence(sentence)

    def reset_words(self, words: UserVocabulary, blocked: Iterable[str]) -> None:
        """The user's words and the words never to suggest, as the history now holds them; shown at once."""
        with self.lock:
            self.user.words = words
            self.set_blocked(blocked)

    def set_blocked(self, blocked: Iterable[str]) -> None:
        """The words never to suggest, shown at once (the set is changed in place: the search holds it)."""
        with self.lock:
            self.blocked.clear()
            self.blocked.update(blocked)
            self.model_source.invalidate()

    def set_personal_mix(self, word_stats_share: float, new_word_factor: float) -> None:
        """How much of the user's statistics the mix takes, and the factor on words the user never typed (both set
        once the personal model has learned: `SessionConfig`)."""
        with self.lock:
            self.combiner.word_stats_share, self.combiner.new_word_factor = word_stats_share, new_word_factor

    def mixture_state(self) -> dict:
        """The sources' mixture weights as adapted to the user, for the personal model's file."""
        with self.lock:
            return self.combiner.weights.to_dict()

    def load_mixture(self, state: dict) -> None:
        """Mixture weights saved by `mixture_state` (an empty dict: the configured ones, unadapted)."""
        with self.lock:
            self.combiner.weights.load(state)

    # -- what the keyboard asks ---------------------------------------------------------------
    def suggest(self, text: str) -> list[str]:
        """The predictions for the text before the cursor, best first."""
        return self.strip(text).words

    def strip(self, text: str, adapt: bool = True) -> Strip:
        """The strip for the text before the cursor; with `adapt`, a word committed since the last call teaches the
        mixture weights (not while incognito)."""
        state = split_typing(text)
        with self.lock, torch.inference_mode():
            logp = self.model_source.read_context(state.context)
            words = self.search.run(state, logp, adapt)
        return Strip(words, self._typed_word(state))

    def knows(self, word: str, context: str = "") -> bool:
        """A word of the shipped vocabulary (`KnownWords`), or one the user typed: before, or lately in `context`."""
        key = word.lower()
        return key in self.vocabulary or self.user.knows(key, context)

    def _typed_word(self, state: TypingState) -> str | None:
        """The word typed so far when it is a known word the user has not asked never to see: as typed, but
        capitalised at a sentence start, and "i" as "I"."""
        word = state.prefix
        if not word or not self.knows(word, state.context) or word.lower() in self.blocked:
            return None
        if word == "i":
            return "I"
        return word[:1].upper() + word[1:] if state.sentence_start else word
