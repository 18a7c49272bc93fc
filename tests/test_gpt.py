"""The language model: incremental decoding with the KV cache equals a full forward pass; checkpoints round-trip."""
import torch

from models.checkpoint import load_model, save_model
from models.gpt import GPT, GPTConfig
from models import TOKENIZER_PATH
from models.tokenizer import Tokenizer

TINY = GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32)


def _model(seed=0):
    torch.manual_seed(seed)
    return GPT(TINY).eval()


def test_kv_cache_matches_full_forward():
    model = _model()
    idx = torch.randint(0, TINY.vocab_size, (1, 24))
    with torch.no_grad():
        full = model(idx)
        logits, cache = model.decode(idx[:, :10])
        outs = [logits]
        logits, cache = model.decode(idx[:, 10:13], cache)  # several new tokens at once
        outs.append(logits)
        for t in range(13, 24):
            logits, cache = model.decode(idx[:, t:t + 1], cache)
            outs.append(logits)
    assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)
    with torch.no_grad():
        last, _ = model.decode(idx[:, 10:13], model.decode(idx[:, :10])[1], last=1)
    assert last.shape[1] == 1 and torch.allclose(last[:, 0], full[:, 12], atol=1e-5)


def test_shared_prefix_cache_serves_a_batch():
    model = _model()
    idx = torch.randint(0, TINY.vocab_size, (1, 12))
    with torch.no_grad():
        _, cache = model.decode(idx[:, :8])
        batch = torch.stack([idx[0, 8:12], idx[0, 8:12].flip(0)])
        logits, own = model.decode(batch[:, :2], prefix=cache)  # several tokens per row, then one by one
        outs = [logits]
        for t in (2, 3):
            logits, own = model.decode(batch[:, t:t + 1], own, prefix=cache)
            outs.append(logits)
        full = model(torch.cat([idx[:, :8].expand(2, -1), batch], dim=1))
    assert torch.allclose(torch.cat(outs, dim=1), full[:, 8:], atol=1e-5)
    assert own[0][0].shape[2] == 4  # the rows' own keys only: the shared prefix is not copied in


def test_tied_embeddings_and_loss():
    model = _model()
    assert model.lm_head.weight is model.wte.weight
    idx = torch.randint(0, TINY.vocab_size, (2, 16))
    loss = model.loss(idx[:, :-1], idx[:, 1:])
    assert 3.0 < loss.item() < 6.0  # about log(97) for a fresh model


def test_checkpoint_round_trip(tmp_path):
    model = _model(seed=3)
    save_model(model, tmp_path, Tokenizer(TOKENIZER_PATH))
    loaded = load_model(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.lm_head.weight is loaded.wte.weight


def test_a_forward_from_kept_hidden_states_equals_the_whole_pass():
    model = _model()
    idx = torch.randint(0, TINY.vocab_size, (3, 16))
    with torch.no_grad():
        full = model(idx, last=4)
        for start in range(TINY.n_layer + 1):
            assert torch.allclose(model(idx, last=4, hidden=(start, model.hidden_states(idx, start))), full, atol=1e-6)
    last = TINY.n_layer - 1
    assert model.first_block_changed_by([f"blocks.{last}.mlp.c_fc.weight", "blocks.1.ln_2.bias"]) == 1
    assert model.first_block_changed_by(["ln_f.weight"]) == TINY.n_layer == model.first_block_changed_by([])
    assert model.first_block_changed_by(["ln_f.bias", "wte.weight"]) == 0  # the (tied) embedding feeds block 0
