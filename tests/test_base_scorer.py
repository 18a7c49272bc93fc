"""The guard's base-model scores, with the context remembered between segments (`BaseScorer`)."""
import random

import torch
import torch.nn.functional as F

from app.learning.base_scorer import BaseScorer
from engine.segments import Windowing, rows_after
from models.gpt import GPT, GPTConfig


def _model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()


def _stream(windowing, sentences=30):
    rng, window = random.Random(0), [0]
    for _ in range(sentences):
        rows = rows_after(window, [rng.randrange(64) for _ in range(rng.randint(1, 12))], windowing)
        yield from rows
        window = rows[-1][0]


def test_scores_with_the_remembered_context_equal_a_whole_forward_across_window_jumps():
    model = _model()
    scorer = BaseScorer(model, {n: p.detach().clone() for n, p in model.named_parameters()})
    rows = list(_stream(Windowing(4, 24, 12)))
    assert any(len(b[0]) < len(a[0]) for a, b in zip(rows, rows[1:]))  # the window jumped
    for row, n in rows:
        with torch.no_grad():
            whole = F.cross_entropy(model(torch.tensor([row[:-1]]), last=n)[0], torch.tensor(row[-n:])).item()
        assert abs(scorer.loss(row, n) - whole) < 1e-5


def test_between_window_jumps_only_the_new_positions_run_and_the_base_weights_are_shared():
    model = _model()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    scorer = BaseScorer(model, base)
    shared = base["wte.weight"].data_ptr()
    assert scorer.model.wte.weight.data_ptr() == shared == scorer.model.lm_head.weight.data_ptr()
    assert all(p.data_ptr() == base[n].data_ptr() for n, p in scorer.model.named_parameters())
    ran = []
    decode = scorer.model.decode
    scorer.model.decode = lambda idx, *args, **kwargs: ran.append(idx.shape[1]) or decode(idx, *args, **kwargs)
    rows = list(_stream(Windowing(4, 24, 12)))
    for row, n in rows:
        scorer.loss(row, n)
    assert sum(ran) < 0.4 * sum(len(row) - 1 for row, _ in rows)  # a whole forward per segment runs every position
