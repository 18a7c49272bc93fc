"""The search behind each keystroke: keystroke → context → search → combine → suggestions. Known words that complete
the prefix are proposed by the sources (the model's vocabulary estimate, the count prior, the user's words and the
words typed lately), scored exactly by the model where they could reach the strip, mixed by the combiner and ranked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch

from app.typing.combiner import Combiner
from app.typing.model_source import Ends, ModelSource
from app.typing.predictor_config import PredictorConfig
from app.typing.sources import PriorSource, Query, UserSource
from app.typing.user_vocab import CONTEXT_WORDS
from app.typing.words import APOSTROPHE, CONTRACTIONS, TypingState, match_case, tokens


MAX_SPELLED = 40  # a typed chunk longer than this is no word: nothing is suggested
USER_CANDIDATES = 6  # the user's most frequent words with the prefix that the model scores too, per keystroke
PRIOR_CANDIDATES = 3  # likeliest words of the count prior that the model scores too (up to twice this many)
ANCHORED_CANDIDATES = 8  # the prior's likeliest words glued to the chunk typed before ("t" in "don't"), for the model
RECENT_CANDIDATES = 6  # the latest words typed lately that complete the prefix, scored by the model too
USER_FOLLOWERS = 6  # words the user most often typed after the last word (and the last two) ranked too, each
TEXT_FOLLOWERS = 6  # words that most often came after the last word in the text typed lately, scored by the model too


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


class WordSearch:
    """Ranks known words for a keystroke from the model, the prior and the user's statistics."""

    def __init__(self, config: PredictorConfig, model: ModelSource, prior: PriorSource | None, user: UserSource,
                 combiner: Combiner, blocked: set[str]):
        self.config, self.model, self.prior, self.user, self.combiner = config, model, prior, user, combiner
        self.index = model.index
        self.blocked = blocked  # the predictor's set, changed in place

    def run(self, state: TypingState, first_logp: torch.Tensor, adapt: bool = True) -> list[str]:
        """Known words that complete the prefix, scored by the model in one batch and ranked with the prior and the
        user's statistics. Candidates come from the vocabulary (the model's first-piece estimate picks them), the
        prior's likeliest and the user's own words: no spelling no one uses is ever offered."""
        if len(state.anchor) + len(state.prefix) >= MAX_SPELLED:
            return []  # no word is that long: a paste of a URL or a key held down
        query = Query(state, self._history(state))
        self.combiner.observe(state, learn=adapt)
        self.combiner.refresh()
        followers = self.user.followers(query, USER_FOLLOWERS)
        if self.combiner.config.text_pairs:
            followers = list(dict.fromkeys(followers + self.user.text_followers(query, TEXT_FOLLOWERS)))
        candidates = self._candidates(query, first_logp, followers)
        spelled = self.model.spell([state.anchor + f for f in candidates])
        rows = {f: row for f, row in zip(candidates, spelled) if 0 < len(row) <= self.config.window_margin}
        ends = self.model.ends(list(rows.values()))
        if not state.anchor:
            rows = self._worth_scoring(rows, candidates, ends, query, first_logp, followers)
        found = _Candidates()
        ride = [state.prefix] if state.prefix and not state.anchor else []  # so a space after it needs no model call
        for form, logp in self.model.score(state.anchor, rows, ends, ride).items():
            found.add(state.prefix + form[len(state.prefix):], logp)
        return self._rank(found, query, followers)

    def _candidates(self, query: Query, first_logp: torch.Tensor, followers: list[str]) -> dict[str, bool]:
        """Spellings of known words that go on from the prefix, for the model to score, each with whether its
        first-piece estimate bounds it (vocabulary words found by the estimate or the prior; not the user's words,
        which the context may make far likelier)."""
        state, prefix = query.state, query.state.prefix
        if APOSTROPHE in prefix:  # "I’" + "m": one word, contracted
            head, _, tail = prefix.rpartition(APOSTROPHE)
            forms = [head + APOSTROPHE + ending for ending in CONTRACTIONS if ending.startswith(tail.lower())]
        elif state.anchor:  # a word glued to what precedes it ("ll" after "I'"): the first-piece estimate does not apply
            forms = list(CONTRACTIONS) if state.anchor.endswith("'") else []
            if self.prior is not None:
                forms += self.prior.propose(query, ANCHORED_CANDIDATES)
        else:
            forms = self.model.propose(first_logp, prefix, self.config.candidates)
            if self.combiner.uses_prior:
                forms += [self.index.likelier_form(w, first_logp) for w in self.prior.propose(query, PRIOR_CANDIDATES)]
        bounded = dict.fromkeys(forms, not state.anchor)
        users = self.user.propose(query, USER_CANDIDATES)
        users += [self.user.words.forms.get(w) or self._lately_form(w, state.context, first_logp) for w in followers]
        if not state.anchor:
            users += self._recent_candidates(state, first_logp)
        bounded.update(dict.fromkeys(users, False))
        return {f: b for f, b in bounded.items() if len(f) > len(prefix) and f.lower() not in self.blocked}

    def _recent_candidates(self, state: TypingState, first_logp: torch.Tensor) -> list[str]:
        """Words typed lately in this text that complete the prefix (a name the model can copy from its context), in
        the model's likelier spelling when the vocabulary has them, else as typed."""
        key = state.prefix.lower()
        out = []
        for word in self.user.recent(state.context):
            if word.startswith(key) and len(word) > len(key):
                out.append(self._lately_form(word, state.context, first_logp))
                if len(out) == RECENT_CANDIDATES:
                    break
        return out

    def _lately_form(self, word: str, context: str, first_logp: torch.Tensor) -> str:
        """A word typed lately, in the model's likelier spelling when the vocabulary has it, else as typed."""
        return self.index.likelier_form(word, first_logp) if word in self.index else self.user.recent(context)[word]

    def _worth_scoring(self, rows: dict[str, list[int]], bounded: dict[str, bool], ends: Ends, query: Query,
                       first_logp: torch.Tensor, followers: list[str]) -> dict[str, list[int]]:
        """The candidates that could reach the strip (branch and bound). A word is no likelier than its first piece,
        nor (for words the estimate bounds) than `estimate_margin` above its estimate; a word whose value with that
        bound stays below the third best value the words already scored (or the prior alone) guarantee, is not
        scored."""
        low: dict[str, float] = {}   # lower case -> model probability known so far
        high: dict[str, float] = {}  # ... and the most it can be
        for form, row in rows.items():
            key, logp = form.lower(), self.model.row_logp(row, ends)
            known = math.exp(logp) if logp is not None else 0.0
            low[key] = low.get(key, 0.0) + known
            high[key] = high.get(key, 0.0) + (known if logp is not None else
                                              math.exp(self._bound(form, row, bounded[form], first_logp)))
        shown = lambda key: key not in self.blocked and key != query.state.prefix.lower()  # noqa: E731 (as `_rank`)
        values = self.combiner.values
        floor = sorted((v for k, v in values(low, query, followers).items() if shown(k)), reverse=True)
        bar = floor[self.config.suggestions - 1] if len(floor) >= self.config.suggestions else -math.inf
        hopeful = {k for k, v in values(high, query, followers).items() if k in high and v >= bar}
        return {f: row for f, row in rows.items() if f.lower() in hopeful}

    def _bound(self, form: str, row: list[int], bounded: bool, first_logp: torch.Tensor) -> float:
        """The most log-probability `form` (spelled as `row`) can have as the next word, as `_worth_scoring` says."""
        first = first_logp[row[0]].item()
        estimate = self.index.estimate(form, first_logp) if bounded else None
        return first if estimate is None else min(first, estimate + self.config.estimate_margin)

    def _rank(self, found: _Candidates, query: Query, followers: Iterable[str] = ()) -> list[str]:
        state = query.state
        scores = self.combiner.values(found.mass, query, followers, remember=True)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))  # ties by the word: no hash-seed order
        out = []
        for key, _ in ranked:
            if key in self.blocked or key == state.prefix.lower():
                continue
            form = found.form[key][1] if key in found.form else self.user.form(key, state.context)
            out.append(match_case(form, state.prefix, state.sentence_start))
            if len(out) == self.config.suggestions:
                break
        return out

    def _history(self, state: TypingState) -> tuple[str, ...]:
        """The words before the one being typed, as many as the prior's or the user cache's longest context."""
        words = [t.text.lower() for t in tokens((state.context + state.anchor)[-200:])]
        order = max(self.prior.prior.order if self.prior is not None else 0, CONTEXT_WORDS + 1)
        return tuple(words[-(order - 1):])
