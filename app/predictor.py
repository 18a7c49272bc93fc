"""Word completion and next-word prediction from the language model, with the KV cache reused across keystrokes.

A prefix-constrained beam search spells words from subword pieces up to a word boundary and ranks them.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Iterable

import torch

from app.ksr import tokens
from app.user_vocab import CONTEXT_WORDS, CacheWeights, UserVocabulary
from app.vocab_index import VocabIndex, word_part
from app.words import TypingState, match_case, split_typing
from models.gpt import GPT, LayerCache
from models.tokenizer import BOS_ID, Tokenizer
from models.word_prior import WordPrior

_SPACES = re.compile(r"\s+")
MEMO_LIMIT = 2000  # memoised partial words kept per context
MAX_SPELLED = 40  # a typed chunk longer than this is no word: nothing is suggested
USER_CANDIDATES = 6  # words the user typed that the model scores beside its own search, per keystroke
PRIOR_CANDIDATES = 3  # likeliest words of the count prior that the model scores too (up to twice this many)
USER_FOLLOWERS = 6  # words the user most often typed after the last word (and the last two) ranked too, each


@dataclass
class PredictorConfig:
    suggestions: int = 3
    beam: int = 8               # partial words kept per search level
    max_levels: int = 5         # model calls per search beyond the context
    window_margin: int = 8      # positions of the model window left free for the word being spelled
    reuse_cache: bool = True
    prior_weight: float = 0.25  # share of the count-based prior in the word probability (0: neural alone)
    unknown_word_factor: float = 0.01  # with the prior: a word neither it nor the user knows counts this much
    cache: CacheWeights = field(default_factory=CacheWeights)  # the user's own word statistics' share


@dataclass
class _Hyp:
    tokens: list[int]
    logp: float
    consumed: int               # characters of the required text spelled so far
    word: str = ""              # characters spelled beyond the required text (model's casing)


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

    def kth_best(self, k: int) -> float:
        if len(self.mass) < k:
            return -math.inf
        return math.log(sorted(self.mass.values(), reverse=True)[k - 1])


def _plausible(word: str, prefix: str) -> bool:
    """Letters and digits only, unless the user is typing symbols themselves (mojibake like "donâ€™t" is not)."""
    return word.isalnum() or not (prefix == "" or prefix.isalnum())


class Predictor:
    """Suggests three words for the text before the cursor."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, config: PredictorConfig | None = None,
                 prior: WordPrior | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or PredictorConfig()
        self.prior = prior
        self.index = VocabIndex(tokenizer)
        self.blocked: set[str] = set()
        self.user_words = UserVocabulary()  # words the user typed: known even if the prior is not, and candidates
        self.word_stats_share = 1.0  # of `config.cache`: the session lowers it while the model learns the user's words
        self.lock = threading.RLock()  # the learner changes weights under this lock
        self._window: tuple[int, str] = (0, "")
        self._tokens: list[int] = []
        self._cache: list[LayerCache] | None = None
        self._last_logp: torch.Tensor | None = None
        # piece sequence after the context -> (next-piece log-probs, its own keys/values per layer)
        self._memo: dict[tuple[int, ...], tuple[torch.Tensor, list[LayerCache]]] = {}
        self._word_memo: dict[str, float] = {}  # word as spelled -> its log-probability after the context
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
            self._memo.clear()
            self._word_memo.clear()

    def weights_changed(self) -> None:
        """Call after the learner changed some weights. The KV cache stays: the context's keys and values keep the
        weights they were computed with until the window next moves (a memory, as in Transformer-XL, and as the
        learner's own steps treat their context); the newest token runs again with the new weights."""
        with self.lock:
            self._tokens, self._last_logp = self._tokens[:-1], None
            self._memo.clear()
            self._word_memo.clear()

    def suggest(self, text: str) -> list[str]:
        state = split_typing(text)
        with self.lock, torch.inference_mode():
            logp = self._context_logp(state.context)
            words = self._search(state, logp)
        return words

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
        past = None
        if common > 0:
            past = [(k[:, :, :common], v[:, :, :common]) for k, v in self._cache]
        logits, cache = self.model.decode(torch.tensor([tokens[common:]]), past, last_only=True)
        self._tokens, self._cache = tokens, cache
        self._memo.clear()
        self._word_memo.clear()
        self._last_logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        return self._last_logp

    # -- search -------------------------------------------------------------------------------
    def _search(self, state: TypingState, first_logp: torch.Tensor) -> list[str]:
        required = " " + state.anchor.lower() + state.prefix.lower()
        found = _Candidates()
        if len(required) > MAX_SPELLED:
            return []  # no word is that long: a paste of a URL or a key held down
        level = [_Hyp([], 0.0, 0)]
        logps = [first_logp]
        for depth in range(self.config.max_levels):
            children = []
            for hyp, logp in zip(level, logps):
                children.extend(self._expand(hyp, logp, required, state, found))
            bar = found.kth_best(self.config.suggestions + min(len(self.blocked), 3))
            children = [c for c in children if c.logp > bar]
            children.sort(key=lambda h: h.logp, reverse=True)
            level = children[: self.config.beam]
            if not level or depth == self.config.max_levels - 1:
                break
            logps = self._next_logps(level)
        history = self._history(state)
        followers = self._followers(state, history)
        self._score_words(state, found, history, followers)
        words = self._rank(found, state, history, followers)
        if len(words) < self.config.suggestions:
            self._spell_forced(state, found)
            words = self._rank(found, state, history, followers)
        return words

    def _score_words(self, state: TypingState, found: _Candidates, history: tuple[str, ...],
                     followers: list[str]) -> None:
        """Words the search did not reach that complete the prefix, scored by the model in one batch (memoised
        per context): the user's own words (their most frequent, and those they typed after these words), and the
        count prior's likeliest, so the mix weighs them fairly."""
        if not state.prefix or state.anchor:
            return
        forms = self.user_words.with_prefix(state.prefix, USER_CANDIDATES)
        forms += [self.user_words.forms[w] for w in followers]
        if self.prior is not None and self.config.prior_weight > 0:
            forms += [w for w in self.prior.candidates(history, state.prefix, PRIOR_CANDIDATES)
                      if len(w) > len(state.prefix)]
        spelled = list(dict.fromkeys(state.prefix + form[len(state.prefix):] for form in forms))
        todo = [w for w in spelled if w.lower() not in found.mass and w not in self._word_memo]
        encoded = {w: self.tokenizer.encode(w) for w in todo}
        todo = [w for w in todo if 0 < len(encoded[w]) <= self.config.window_margin]  # must fit the window
        if todo:
            rows = [encoded[w] for w in todo]
            width = max(map(len, rows))
            logits, _ = self.model.decode(torch.tensor([r + [0] * (width - len(r)) for r in rows]), prefix=self._cache)
            logps = torch.log_softmax(logits.float(), dim=-1)
            for i, (word, row) in enumerate(zip(todo, rows)):
                score = self._last_logp[row[0]].item() + sum(logps[i, t - 1, row[t]].item() for t in range(1, len(row)))
                end = torch.logsumexp(logps[i, len(row) - 1, self.index.boundary_ids], 0).item()
                self._word_memo[word] = score + end
        for word in spelled:
            if word in self._word_memo and word.lower() not in found.mass:
                found.add(word, self._word_memo[word])

    def _spell_forced(self, state: TypingState, found: _Candidates) -> None:
        """For text no piece search can spell (rare symbols): the typed text's own tokens, then one piece more."""
        forced = self.tokenizer.encode(state.anchor + state.prefix)[-self.config.window_margin:]
        logits, _ = self.model.decode(torch.tensor([forced]), prefix=self._cache, last_only=True)
        logp = torch.log_softmax(logits[0, -1].float(), dim=-1)[self.index.continue_ids]
        top_scores, top_pos = logp.topk(min(len(logp), 4 * self.config.suggestions + len(self.blocked)))
        for score, pos in zip(top_scores.tolist(), top_pos.tolist()):
            word, _ = word_part(self.index.pieces[int(self.index.continue_ids[pos])])
            found.add(state.prefix + word, score - 50.0)  # ranked below every word the search found

    def _next_logps(self, level: list[_Hyp]) -> list[torch.Tensor]:
        """Next-piece log-probabilities after each partial word, all of one length.

        Results are memoised per piece sequence while the context stays the same, so the next
        keystroke of the same word mostly finds the paths it needs already computed.
        """
        todo = [h for h in level if tuple(h.tokens) not in self._memo]
        if todo:
            past = None
            if len(todo[0].tokens) > 1:  # each row's own keys/values beyond the context, from the memo
                own = [self._memo[tuple(h.tokens[:-1])][1] for h in todo]
                past = [(torch.cat([o[i][0] for o in own]), torch.cat([o[i][1] for o in own]))
                        for i in range(len(self._cache))]
            logits, cache = self.model.decode(torch.tensor([[h.tokens[-1]] for h in todo]), past, prefix=self._cache)
            logps = torch.log_softmax(logits[:, -1].float(), dim=-1)
            if len(self._memo) > MEMO_LIMIT:
                self._memo.clear()
            for row, hyp in enumerate(todo):
                self._memo[tuple(hyp.tokens)] = (logps[row], [(k[row:row + 1].clone(), v[row:row + 1].clone())
                                                               for k, v in cache])
        return [self._memo[tuple(h.tokens)][0] for h in level]

    def _expand(self, hyp: _Hyp, logp: torch.Tensor, required: str, state: TypingState,
                found: _Candidates) -> list[_Hyp]:
        """Complete words and partial words one piece beyond `hyp`."""
        children = []
        if hyp.consumed >= len(required):
            if hyp.word:
                found.add(state.prefix + hyp.word, hyp.logp + torch.logsumexp(logp[self.index.boundary_ids], 0).item())
            ids = self.index.continue_ids
            extras = None
        else:
            ids, extras = self.index.compatible(required[hyp.consumed:])
            if len(ids) == 0:
                return children
        scores = logp[ids]
        k = min(len(ids), self.config.beam)
        top_scores, top_pos = scores.topk(k)
        for score, pos in zip(top_scores.tolist(), top_pos.tolist()):
            token = int(ids[pos])
            piece = self.index.pieces[token]
            if extras is None:
                added, consumed = piece, hyp.consumed
            else:
                added = extras[pos]
                consumed = hyp.consumed + (len(piece) - len(added))
            word, ended = word_part(added)
            child = _Hyp(hyp.tokens + [token], hyp.logp + score, consumed, hyp.word + word)
            if ended:
                if child.word:
                    found.add(state.prefix + child.word, child.logp)
            else:
                children.append(child)
        return children

    def _rank(self, found: _Candidates, state: TypingState, history: tuple[str, ...],
              followers: Iterable[str] = ()) -> list[str]:
        scores = dict(found.mass)
        for word in followers:
            scores.setdefault(word, 0.0)
        if self.prior is not None and self.config.prior_weight > 0:
            scores = self._with_prior(scores, state, history)
        scores = self._with_cache(scores, history)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))  # ties by the word: no hash-seed order
        out = []
        for key, _ in ranked:
            if key in self.blocked or key == state.prefix.lower() or not _plausible(key, state.prefix):
                continue
            form = found.form[key][1] if key in found.form else self.user_words.forms.get(key, key)
            out.append(match_case(form, state.prefix, state.sentence_start))
            if len(out) == self.config.suggestions:
                break
        return out

    def _with_prior(self, mass: dict[str, float], state: TypingState, history: tuple[str, ...]) -> dict[str, float]:
        """Interpolate the model's word probabilities with the count-based prior's, over both their candidates."""
        keys = set(mass)
        keys.update(self.prior.candidates(history, state.prefix, 2 * self.config.suggestions))
        lam = self.config.prior_weight
        prior = self.prior.probabilities(history, keys)
        return {k: (1 - lam) * mass.get(k, 0.0) * self._familiarity(k) + lam * prior[k] for k in keys}

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

    def _familiarity(self, word: str) -> float:
        """Down-weights spellings the model invents ("veryth") that no dictionary or user ever used."""
        known = word in self.prior.index or word in self.user_words
        return 1.0 if known else self.config.unknown_word_factor

