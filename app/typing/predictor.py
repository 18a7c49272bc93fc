"""Word completion and next-word prediction from the language model, with the KV cache reused across keystrokes.

Only known words are offered (the shipped vocabulary and the user's own): the model scores a few likely ones in one
batched call, memoised while the context stays; the strip also holds the typed word itself when it is a known word.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Iterable

import torch

from app.typing.words import tokens
from app.typing.piece_tree import PieceTree
from app.typing.user_vocab import CONTEXT_WORDS, CacheWeights, UserVocabulary
from app.typing.vocab_index import VocabIndex
from app.typing.words import APOSTROPHE, CONTRACTIONS, KnownWords, TypingState, match_case, split_typing
from models.gpt import GPT, LayerCache
from models.tokenizer import BOS_ID, Tokenizer
from models.word_prior import WordPrior

_SPACES = re.compile(r"\s+")
MAX_SPELLED = 40  # a typed chunk longer than this is no word: nothing is suggested
USER_CANDIDATES = 6  # the user's most frequent words with the prefix that the model scores too, per keystroke
PRIOR_CANDIDATES = 3  # likeliest words of the count prior that the model scores too (up to twice this many)
ANCHORED_CANDIDATES = 8  # the prior's likeliest words glued to the chunk typed before ("t" in "don't"), for the model
RECENT_CHARS = 2000  # the text before the cursor whose words count as typed by the user (candidates, and known)
RECENT_CANDIDATES = 6  # the latest of them that complete the prefix, scored by the model too
SPELLINGS_KEPT = 50_000  # words whose tokens are remembered
USER_FOLLOWERS = 6  # words the user most often typed after the last word (and the last two) ranked too, each


@dataclass
class PredictorConfig:
    suggestions: int = 3
    candidates: int = 16        # vocabulary words the model scores per keystroke, picked by its first-piece estimate
    estimate_margin: float = 3.0  # nats a vocabulary word's probability may exceed that estimate (not scored beyond)
    window_margin: int = 8      # positions of the model window left free for the word being spelled
    reuse_cache: bool = True
    prior_weight: float = 0.25  # share of the count-based prior in the word probability (0: neural alone)
    cache: CacheWeights = field(default_factory=CacheWeights)  # the user's own word statistics' share


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


@dataclass
class _Candidates:
    """Complete words found by the search: lower-cased word -> probability mass and best surface form."""

    mass: dict[str, float] = field(default_factory=dict)
    form: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add(self, word: str, logp: float) -> None:
        key = word.lower()
        self.mass[key] = self.mass.get(key, 0.0) + math.exp(logp)
        if logp > self.form.get(key, (-math.inf, ""))[0]:
            self.form[key] = (logp, word)


class _PriorMemo:
    """The prior's answers for one history, kept while the words before the one being typed stay the same (a word's
    keystrokes ask the same questions)."""

    def __init__(self, prior: WordPrior):
        self.prior = prior
        self._history: tuple[str, ...] | None = None
        self._probability: dict[str, float] = {}
        self._candidates: dict[tuple[str, int], list[str]] = {}

    def _at(self, history: tuple[str, ...]) -> None:
        if history != self._history:
            self._history, self._probability, self._candidates = history, {}, {}

    def candidates(self, history: tuple[str, ...], prefix: str, k: int) -> list[str]:
        self._at(history)
        if (prefix, k) not in self._candidates:
            self._candidates[(prefix, k)] = self.prior.candidates(history, prefix, k)
        return self._candidates[(prefix, k)]

    def probabilities(self, history: tuple[str, ...], words: set[str]) -> dict[str, float]:
        self._at(history)
        todo = [w for w in words if w not in self._probability]
        if todo:
            self._probability.update(self.prior.probabilities(history, todo))
        return {w: self._probability[w] for w in words}


class Predictor:
    """Suggests three words for the text before the cursor."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, config: PredictorConfig | None = None,
                 prior: WordPrior | None = None):
        self.model = model.eval()
        self.config = config or PredictorConfig()
        self.tokenizer = tokenizer
        self.prior = prior
        self._prior = _PriorMemo(prior) if prior is not None else None
        self.index = VocabIndex(tokenizer, prior.t.words if prior else (), prior.t.unigram if prior else None)
        self.vocabulary = KnownWords(self.index)
        self.blocked: set[str] = set()
        self.user_words = UserVocabulary()  # words the user typed: known even if the prior is not, and candidates
        self.word_stats_share = 1.0  # of `config.cache`: the session lowers it while the model learns the user's words
        self.lock = threading.RLock()  # the learner changes weights under this lock
        self._window: tuple[int, str] = (0, "")
        self._tokens: list[int] = []
        self._cache: list[LayerCache] | None = None
        self._last_logp: torch.Tensor | None = None
        self._tree = PieceTree(self.index.boundary_ids)  # the pieces of words scored after the context
        self._recent: tuple[str, dict[str, str]] = ("", {})  # text searched -> its words, latest first
        self._spellings: dict[str, list[int]] = {}  # word -> its tokens
        self.model_calls = 0  # forward passes run for suggestions, ever
        self._pending: dict[str, torch.Tensor] = {}  # new parameter values waiting for the next word

    def update_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """New values for some parameters, taken in when the next word starts (or at `invalidate`): taken in mid-word
        they would throw away the word's memoised search, the costly part of a keystroke."""
        with self.lock:
            self._pending.update(tensors)

    def _take_pending(self) -> None:
        if not self._pending:
            return
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self._pending.items():
                params[name].copy_(value)
        self._pending = {}
        self.weights_changed()

    def invalidate(self) -> None:
        """Take in waiting weights and forget the KV cache: call after the model's weights change."""
        with self.lock:
            self._take_pending()
            self._tokens, self._cache, self._last_logp = [], None, None
            self._forget_words()

    def weights_changed(self) -> None:
        """Call after the learner changed some weights. The KV cache stays: the context's keys and values keep the
        weights they were computed with until the window next moves (a memory, as in Transformer-XL, and as the
        learner's own steps treat their context); the newest token runs again with the new weights."""
        with self.lock:
            self._tokens, self._last_logp = self._tokens[:-1], None
            self._forget_words()

    def suggest(self, text: str) -> list[str]:
        """The predictions for the text before the cursor, best first."""
        return self.strip(text).words

    def strip(self, text: str) -> Strip:
        state = split_typing(text)
        with self.lock, torch.inference_mode():
            logp = self._context_logp(state.context)
            words = self._search(state, logp)
        return Strip(words, self._typed_word(state))

    def knows(self, word: str, context: str = "") -> bool:
        """A word of the shipped vocabulary (`KnownWords`), or one the user typed: before, or lately in `context`."""
        key = word.lower()
        return key in self.vocabulary or key in self.user_words or key in self._recent_words(context)

    def _recent_words(self, context: str) -> dict[str, str]:
        """The words of the context's last `RECENT_CHARS` characters, lower case -> latest spelling, latest first."""
        tail = context[-RECENT_CHARS:]
        if len(context) > RECENT_CHARS:  # the cut may fall inside a word: its end is no word the user typed
            tail = tail[next((i for i, ch in enumerate(tail) if ch.isspace()), len(tail)):]
        if self._recent[0] != tail:
            words: dict[str, str] = {}
            for token in reversed(list(tokens(tail))):
                words.setdefault(token.text.lower(), token.text)
            self._recent = (tail, words)
        return self._recent[1]

    def _typed_word(self, state: TypingState) -> str | None:
        """The word typed so far when it is a known word the user has not asked never to see: as typed, but
        capitalised at a sentence start, and "i" as "I"."""
        word = state.prefix
        if not word or not self.knows(word, state.context) or word.lower() in self.blocked:
            return None
        if word == "i":
            return "I"
        return word[:1].upper() + word[1:] if state.sentence_start else word

    # -- context ------------------------------------------------------------------------------
    def _context_tokens(self, context: str) -> list[int]:
        """Tokens of the context that fit the model window, cut at a word boundary.

        The cut point is kept while the text grows, so the cached prefix stays valid.
        """
        limit = self.model.config.block_size - self.config.window_margin
        context = context.rstrip()
        start, text = self._window
        if not (self.config.reuse_cache and len(context) >= start + len(text)
                and context.startswith(text, start)):
            start = 0
        too_long = len(context) - start > 8 * limit  # surely over the limit: skip encoding it whole
        tokens = None if too_long else self._encode_window(context, start)
        if tokens is None or len(tokens) > limit:
            start = self._choose_cut(context, limit // 2)
            tokens = self._encode_window(context, start)[-limit:]
        self._window = (start, context[start:start + 64])
        return tokens

    def _encode_window(self, context: str, start: int) -> list[int]:
        text = _SPACES.sub(" ", context[start:]).strip()
        return ([BOS_ID] if start == 0 else []) + (self.tokenizer.encode(text) if text else [])

    def _choose_cut(self, context: str, keep_tokens: int) -> int:
        """A char offset after which roughly `keep_tokens` tokens of the context remain."""
        cut = max(0, len(context) - keep_tokens * 3)
        while cut > 0 and len(self._encode_window(context, cut)) < keep_tokens:
            cut = max(0, cut - keep_tokens)
        space = context.find(" ", cut)
        return space + 1 if 0 < space < len(context) - 1 else cut

    def _context_logp(self, context: str) -> torch.Tensor:
        tokens = self._context_tokens(context)
        if self._pending and tokens != self._tokens:  # a new word: its search starts afresh anyway
            self._take_pending()
        common = 0
        if self.config.reuse_cache and self._cache is not None:
            for a, b in zip(self._tokens, tokens):
                if a != b:
                    break
                common += 1
            if common == len(tokens) == len(self._tokens) and self._last_logp is not None:
                return self._last_logp
            common = min(common, len(tokens) - 1)
            if common == len(self._tokens) and self._tree.holds(tokens[common:]):
                return self._extend_by_word(tokens)
        past = None
        if common > 0:
            past = [(k[:, :, :common], v[:, :, :common]) for k, v in self._cache]
        logits, cache = self._decode(torch.tensor([tokens[common:]]), past)
        self._tokens, self._cache = tokens, cache
        self._forget_words()
        self._last_logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        return self._last_logp

    def _extend_by_word(self, tokens: list[int]) -> torch.Tensor:
        """The context grew by a word that was scored after it (the word typed, or a suggestion taken): its keys,
        values and next-piece log-probs are at hand, and no model call is needed."""
        own, logp = self._tree.after(tokens[len(self._tokens):])
        self._cache = [(torch.cat([k, own_k], 2), torch.cat([v, own_v], 2))
                       for (k, v), (own_k, own_v) in zip(self._cache, own)]
        self._tokens, self._last_logp = tokens, logp
        self._forget_words()
        return logp

    def _forget_words(self) -> None:
        self._tree = PieceTree(self.index.boundary_ids)

    # -- search -------------------------------------------------------------------------------
    def _search(self, state: TypingState, first_logp: torch.Tensor) -> list[str]:
        """Known words that complete the prefix, scored by the model in one batch and ranked with the prior and the
        user's statistics. Candidates come from the vocabulary (the model's first-piece estimate picks them), the
        prior's likeliest and the user's own words: no spelling no one uses is ever offered."""
        if len(state.anchor) + len(state.prefix) >= MAX_SPELLED:
            return []  # no word is that long: a paste of a URL or a key held down
        history = self._history(state)
        followers = self._followers(state, history)
        candidates = self._candidates(state, first_logp, history, followers)
        spelled = self._spell([state.anchor + f for f in candidates])
        rows = {f: row for f, row in zip(candidates, spelled) if 0 < len(row) <= self.config.window_margin}
        ends = self._ends(list(rows.values()))
        if not state.anchor:
            rows = self._worth_scoring(rows, candidates, ends, state, first_logp, history, followers)
        found = _Candidates()
        ride = [state.prefix] if state.prefix and not state.anchor else []  # so a space after it needs no model call
        for form, logp in self._scored(state.anchor, rows, ends, ride).items():
            found.add(state.prefix + form[len(state.prefix):], logp)
        return self._rank(found, state, history, followers)

    def _candidates(self, state: TypingState, first_logp: torch.Tensor, history: tuple[str, ...],
                    followers: list[str]) -> dict[str, bool]:
        """Spellings of known words that go on from the prefix, for the model to score, each with whether its
        first-piece estimate bounds it (vocabulary words found by the estimate or the prior; not the user's words,
        which the context may make far likelier)."""
        prefix = state.prefix
        if APOSTROPHE in prefix:  # "I’" + "m": one word, contracted
            head, _, tail = prefix.rpartition(APOSTROPHE)
            forms = [head + APOSTROPHE + ending for ending in CONTRACTIONS if ending.startswith(tail.lower())]
        elif state.anchor:  # a word glued to what precedes it ("ll" after "I'"): the first-piece estimate does not apply
            forms = list(CONTRACTIONS) if state.anchor.endswith("'") else []
            if self.prior is not None:
                forms += self._prior.candidates(history, prefix, ANCHORED_CANDIDATES)
        else:
            forms = self.index.propose(first_logp, prefix, self.config.candidates)
            if self.prior is not None and self.config.prior_weight > 0:
                forms += [self.index.likelier_form(w, first_logp)
                          for w in self._prior.candidates(history, prefix, PRIOR_CANDIDATES)]
        bounded = dict.fromkeys(forms, not state.anchor)
        users = self.user_words.with_prefix(prefix, USER_CANDIDATES) if prefix else []
        users += [self.user_words.forms[w] for w in followers]
        if not state.anchor:
            users += self._recent_candidates(state, first_logp)
        bounded.update(dict.fromkeys(users, False))
        return {f: b for f, b in bounded.items() if len(f) > len(prefix) and f.lower() not in self.blocked}

    def _recent_candidates(self, state: TypingState, first_logp: torch.Tensor) -> list[str]:
        """Words typed lately in this text that complete the prefix (a name the model can copy from its context), in
        the model's likelier spelling when the vocabulary has them, else as typed."""
        key = state.prefix.lower()
        out = []
        for word, form in self._recent_words(state.context).items():
            if word.startswith(key) and len(word) > len(key):
                out.append(self.index.likelier_form(word, first_logp) if word in self.index else form)
                if len(out) == RECENT_CANDIDATES:
                    break
        return out

    def _ends(self, rows: list[list[int]]) -> set[tuple[int, ...]]:
        """The rows whose word-boundary probability the model is asked for: those another candidate goes on from.
        Elsewhere the boundary is taken as certain: what else could follow spells no word a candidate offers (on
        tuning text, asking the model after every word as well gained 0.07-0.09 KSR for three times the positions
        decoded; estimating it by how often a word goes on into longer ones did worse). A function of the
        candidates alone: the strip never depends on what earlier keystrokes happened to decode."""
        return {tuple(row[:t]) for row in rows for t in range(1, len(row))} & {tuple(row) for row in rows}

    def _logp(self, row: list[int], ends: set[tuple[int, ...]]) -> float | None:
        """The row's log-probability as the next word (its pieces, then a boundary: see `_ends`), if the tree has all
        it takes, else None."""
        end = tuple(row) in ends
        if not self._tree.spells(row) or (end and not self._tree.holds(row)):
            return None
        return self._tree.pieces_logp(self._last_logp, row) + (self._tree.end(row) if end else 0.0)

    def _worth_scoring(self, rows: dict[str, list[int]], bounded: dict[str, bool], ends: set[tuple[int, ...]],
                       state: TypingState, first_logp: torch.Tensor, history: tuple[str, ...],
                       followers: list[str]) -> dict[str, list[int]]:
        """The candidates that could reach the strip (branch and bound). A word is no likelier than its first piece,
        nor (for words the estimate bounds) than `estimate_margin` above its estimate; a word whose value with that
        bound stays below the third best value the words already scored (or the prior alone) guarantee, is not
        scored."""
        low: dict[str, float] = {}   # lower case -> model probability known so far
        high: dict[str, float] = {}  # ... and the most it can be
        for form, row in rows.items():
            key, logp = form.lower(), self._logp(row, ends)
            known = math.exp(logp) if logp is not None else 0.0
            low[key] = low.get(key, 0.0) + known
            high[key] = high.get(key, 0.0) + (known if logp is not None else
                                              math.exp(self._bound(form, row, bounded[form], first_logp)))
        shown = lambda key: key not in self.blocked and key != state.prefix.lower()  # noqa: E731 (as `_rank` skips)
        floor = sorted((v for k, v in self._values(low, state, history, followers).items() if shown(k)), reverse=True)
        bar = floor[self.config.suggestions - 1] if len(floor) >= self.config.suggestions else -math.inf
        hopeful = {k for k, v in self._values(high, state, history, followers).items() if k in high and v >= bar}
        return {f: row for f, row in rows.items() if f.lower() in hopeful}

    def _bound(self, form: str, row: list[int], bounded: bool, first_logp: torch.Tensor) -> float:
        """The most log-probability `form` (spelled as `row`) can have as the next word, as `_worth_scoring` says."""
        first = first_logp[row[0]].item()
        estimate = self.index.estimate(form, first_logp) if bounded else None
        return first if estimate is None else min(first, estimate + self.config.estimate_margin)

    def _scored(self, anchor: str, rows: dict[str, list[int]], ends: set[tuple[int, ...]],
                ride_along: list[str] = ()) -> dict[str, float]:
        """Each word's log-probability as the next word (`rows`: its tokens, after the `anchor` typed of the same
        chunk; given the anchor). What the tree lacks is decoded in one pass, with the `ride_along` words whole."""
        anchor_row = self._spell([anchor])[0] if anchor else []
        if len(anchor_row) > self.config.window_margin:
            return {}  # no word after it fits the window
        needed = list(rows.values()) + ([anchor_row] if anchor_row else [])
        if any(self._logp(row, ends) is None for row in rows.values()) or \
                (anchor_row and not self._tree.spells(anchor_row)):
            whole = [row for row in rows.values() if tuple(row) in ends]
            ride = [row for row in self._spell(list(ride_along)) if 0 < len(row) <= self.config.window_margin]
            self._tree.grow(self._decode_tree, self._cache, needed, whole + ride)
        given = self._tree.pieces_logp(self._last_logp, anchor_row) if anchor_row else 0.0
        return {form: self._logp(row, ends) - given for form, row in rows.items()}

    def _spell(self, words: list[str]) -> list[list[int]]:
        """The tokens of each word as the next word of a text (leading space), remembered: words recur."""
        if len(self._spellings) > SPELLINGS_KEPT:
            self._spellings.clear()
        new = [w for w in dict.fromkeys(words) if w not in self._spellings]
        if new:
            self._spellings.update(zip(new, self.tokenizer.encode_many(new)))
        return [self._spellings[w] for w in words]

    def _decode_tree(self, *args) -> tuple[torch.Tensor, list[LayerCache]]:
        """The model's tree decode (`PieceTree.grow`), counted."""
        self.model_calls += 1
        return self.model.decode_tree(*args)

    def _decode(self, idx: torch.Tensor, past: list[LayerCache] | None) -> tuple[torch.Tensor, list[LayerCache]]:
        """The model's incremental decode of the context, counted (`bench predict` reports calls per keystroke)."""
        self.model_calls += 1
        return self.model.decode(idx, past, last_only=True)

    def _values(self, mass: dict[str, float], state: TypingState, history: tuple[str, ...],
                followers: Iterable[str] = ()) -> dict[str, float]:
        """What ranks a word (lower case): its model probability `mass` mixed with the prior's, plus the user's own
        statistics; over the given words, the user's followers and the prior's likeliest."""
        scores = dict(mass)
        for word in followers:
            scores.setdefault(word, 0.0)
        if self.prior is not None and self.config.prior_weight > 0:
            scores = self._with_prior(scores, state, history)
        return self._with_cache(scores, history)

    def _rank(self, found: _Candidates, state: TypingState, history: tuple[str, ...],
              followers: Iterable[str] = ()) -> list[str]:
        scores = self._values(found.mass, state, history, followers)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))  # ties by the word: no hash-seed order
        out = []
        for key, _ in ranked:
            if key in self.blocked or key == state.prefix.lower():
                continue
            form = found.form[key][1] if key in found.form else self.user_words.forms.get(key, key)
            out.append(match_case(form, state.prefix, state.sentence_start))
            if len(out) == self.config.suggestions:
                break
        return out

    def _with_prior(self, mass: dict[str, float], state: TypingState, history: tuple[str, ...]) -> dict[str, float]:
        """Interpolate the model's word probabilities with the count-based prior's, over both their candidates."""
        keys = set(mass)
        keys.update(self._prior.candidates(history, state.prefix, 2 * self.config.suggestions))
        lam = self.config.prior_weight
        prior = self._prior.probabilities(history, keys)
        return {k: (1 - lam) * mass.get(k, 0.0) + lam * prior[k] for k in keys}

    def _followers(self, state: TypingState, history: tuple[str, ...]) -> list[str]:
        """Words the user typed after the last word or two that complete the prefix (none with pairs left out)."""
        if not self._cache_weights().pairs:
            return []
        return self.user_words.followers(history, state.prefix, USER_FOLLOWERS)

    def _with_cache(self, scores: dict[str, float], history: tuple[str, ...]) -> dict[str, float]:
        """Add what the user's own word and word-pair frequencies say (every word is rare without a prior)."""
        if not self.user_words.total:
            return scores
        general = self.prior.unigram_probability if self.prior is not None else (lambda word: 0.0)
        weights = self._cache_weights()
        return {k: v + self.user_words.boost(history, k, weights, general) for k, v in scores.items()}

    def _cache_weights(self) -> CacheWeights:
        return self.config.cache.scaled(self.word_stats_share)

    def _history(self, state: TypingState) -> tuple[str, ...]:
        """The words before the one being typed, as many as the prior's or the user cache's longest context."""
        words = [t.text.lower() for t in tokens((state.context + state.anchor)[-200:])]
        order = max(self.prior.order if self.prior is not None else 0, CONTEXT_WORDS + 1)
        return tuple(words[-(order - 1):])
