"""The neural model as a source of next words: the context window and its KV cache reused across keystrokes, and
exact scores of known words' spellings, decoded as one piece tree per context.

Keystroke → context (`read_context`) → the search asks `propose` and `score` → the combiner mixes its masses.
"""
from __future__ import annotations

import re

import torch

from app.typing.piece_tree import PieceTree
from app.typing.predictor_config import PredictorConfig
from app.typing.vocab_index import VocabIndex
from models.gpt import GPT, LayerCache
from models.tokenizer import BOS_ID, Tokenizer


_SPACES = re.compile(r"\s+")
SPELLINGS_KEPT = 50_000  # words whose tokens are remembered

Ends = set[tuple[int, ...]]


class ModelSource:
    """Log-probabilities of whole words after the context, from the model; its weights change as the learner
    publishes them."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, index: VocabIndex, config: PredictorConfig):
        self.model, self.tokenizer, self.index, self.config = model.eval(), tokenizer, index, config
        self._window: tuple[int, str] = (0, "")
        self._tokens: list[int] = []
        self._cache: list[LayerCache] | None = None
        self._last_logp: torch.Tensor | None = None
        self._tree = PieceTree(index.boundary_ids)  # the pieces of words scored after the context
        self._spellings: dict[str, list[int]] = {}  # word -> its tokens
        self.model_calls = 0  # forward passes run for suggestions, ever
        self._pending: dict[str, torch.Tensor] = {}  # new parameter values waiting for the next word

    # -- weights ------------------------------------------------------------------------------
    def update_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """New values for some parameters, taken in when the next word starts (or at `invalidate`): taken in mid-word
        they would throw away the word's memoised search, the costly part of a keystroke."""
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
        """Take in waiting weights and forget the KV cache."""
        self._take_pending()
        self._tokens, self._cache, self._last_logp = [], None, None
        self._forget_words()

    def weights_changed(self) -> None:
        """After the learner changed some weights. The KV cache stays: the context's keys and values keep the weights
        they were computed with until the window next moves (a memory, as in Transformer-XL, and as the learner's own
        steps treat their context); the newest token runs again with the new weights."""
        self._tokens, self._last_logp = self._tokens[:-1], None
        self._forget_words()

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

    def read_context(self, context: str) -> torch.Tensor:
        """The next piece's log-probabilities after the context, reusing what the last keystroke decoded."""
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

    # -- words --------------------------------------------------------------------------------
    def propose(self, first_logp: torch.Tensor, prefix: str, k: int) -> list[str]:
        """Vocabulary words that complete `prefix`, picked by the model's first-piece estimate."""
        return self.index.propose(first_logp, prefix, k)

    @staticmethod
    def ends(rows: list[list[int]]) -> Ends:
        """The rows whose word-boundary probability the model is asked for: those another candidate goes on from.
        Elsewhere the boundary is taken as certain: what else could follow spells no word a candidate offers (on
        tuning text, asking the model after every word as well gained 0.07-0.09 KSR for three times the positions
        decoded; estimating it by how often a word goes on into longer ones did worse). A function of the
        candidates alone: the strip never depends on what earlier keystrokes happened to decode."""
        return {tuple(row[:t]) for row in rows for t in range(1, len(row))} & {tuple(row) for row in rows}

    def row_logp(self, row: list[int], ends: Ends) -> float | None:
        """The row's log-probability as the next word (its pieces, then a boundary: see `ends`), if the tree has all
        it takes, else None."""
        end = tuple(row) in ends
        if not self._tree.spells(row) or (end and not self._tree.holds(row)):
            return None
        return self._tree.pieces_logp(self._last_logp, row) + (self._tree.end(row) if end else 0.0)

    def score(self, anchor: str, rows: dict[str, list[int]], ends: Ends, ride_along: list[str] = ()
              ) -> dict[str, float]:
        """Each word's log-probability as the next word (`rows`: its tokens, after the `anchor` typed of the same
        chunk; given the anchor). What the tree lacks is decoded in one pass, with the `ride_along` words whole."""
        anchor_row = self.spell([anchor])[0] if anchor else []
        if len(anchor_row) > self.config.window_margin:
            return {}  # no word after it fits the window
        needed = list(rows.values()) + ([anchor_row] if anchor_row else [])
        if any(self.row_logp(row, ends) is None for row in rows.values()) or \
                (anchor_row and not self._tree.spells(anchor_row)):
            whole = [row for row in rows.values() if tuple(row) in ends]
            ride = [row for row in self.spell(list(ride_along)) if 0 < len(row) <= self.config.window_margin]
            self._tree.grow(self._decode_tree, self._cache, needed, whole + ride)
        given = self._tree.pieces_logp(self._last_logp, anchor_row) if anchor_row else 0.0
        return {form: self.row_logp(row, ends) - given for form, row in rows.items()}

    def spell(self, words: list[str]) -> list[list[int]]:
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
        return self.model.decode(idx, past, last=1)
