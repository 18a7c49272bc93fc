"""Pretraining on a tiny made-up corpus: seeded, checkpointed, resumable to the same weights, ends with an evaluation."""
import lzma
import json

import torch

from models import TOKENIZER_PATH
from models.checkpoint import load_model
from models.build.corpus import read_documents, read_users
from models.build.grow import block_sources, grow_depth
from models.build.pretrain import PretrainConfig, learning_rate, pretrain
from models.gpt import GPT, GPTConfig

TINY = {"vocab_size": 0, "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}


def _corpus(tmp_path):
    lines = [f"post number {i}: the cat sat on the mat and I said thank you very much." for i in range(400)]
    blog = tmp_path / "blogs.txt.xz"
    with lzma.open(blog, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    dialog = tmp_path / "dialog.txt"
    dialog.write_text("How are you?\nFine, thanks.\n\nWhat time is it?\nNoon.\n\n" * 200)
    return [str(blog), str(dialog)]


def _cfg(tmp_path, out, **kw):
    settings = dict(minutes=5, total_tokens=16 * 16 * 6, batch_size=16, eval_windows=4, warmup_tokens=512,
                    cache_dir=str(tmp_path / "cache"), model=TINY)
    return PretrainConfig(corpora=_corpus(tmp_path), out_dir=str(tmp_path / out), tokenizer=str(TOKENIZER_PATH),
                          **{"weights": [0.8, 0.2], **settings, **kw})


def test_readers(tmp_path):
    blog, dialog = _corpus(tmp_path)
    assert sum(1 for _ in read_documents(blog)) == 400
    docs = list(read_documents(dialog))
    assert docs[0] == "How are you? Fine, thanks." and len(docs) == 400
    users = tmp_path / "users.jsonl"
    users.write_text(json.dumps({"user": "7", "posts": [{"date": "2004-02-01", "text": "later  post"},
                                                         {"date": "2004-01-01", "text": "first post"}]}) + "\n")
    assert next(read_users(users)).posts == ["first post", "later post"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    result = pretrain(_cfg(tmp_path, "straight"))
    assert result["tokens"] == 16 * 16 * 6 and "corpus0_loss" in result and "corpus1_bpc" in result
    pretrain(_cfg(tmp_path, "resumed", max_steps=2))
    assert load_model(tmp_path / "resumed") is not None
    pretrain(_cfg(tmp_path, "resumed"))
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name
    state = json.loads((tmp_path / "resumed" / "pretrain_state.json").read_text())
    assert state["step"] == 6 and len(state["evals"]) == 2


def test_a_cooldown_after_the_cosine_takes_the_rate_to_its_final_value_and_then_training_stops(tmp_path):
    cfg = PretrainConfig(corpora=[], weights=[], out_dir="", tokenizer="", total_tokens=10_000, warmup_tokens=100,
                         lr=1e-3, min_lr=1e-4, cooldown_tokens=4_000, final_lr=1e-5)
    assert abs(learning_rate(cfg, 9_999) - 1e-4) < 1e-8  # the cosine ends where the cooldown starts
    assert abs(learning_rate(cfg, 10_000) - 1e-4) < 1e-12
    assert abs(learning_rate(cfg, 11_000) - (1e-5 + 9e-5 * 0.5)) < 1e-12  # 1 - sqrt(1/4)
    assert abs(learning_rate(cfg, 14_000) - 1e-5) < 1e-12
    first = pretrain(_cfg(tmp_path, "run"))
    result = pretrain(_cfg(tmp_path, "run", cooldown_tokens=16 * 16 * 2, final_lr=0.0))  # resumed: 2 steps more
    assert (first["tokens"], result["tokens"]) == (16 * 16 * 6, 16 * 16 * 8)
    state = json.loads((tmp_path / "run" / "pretrain_state.json").read_text())
    assert 0 < state["lr"] < 1e-4 and state["config"]["cooldown_tokens"] == 512


def test_a_model_grown_deeper_computes_what_it_computed_and_then_trains_its_new_blocks(tmp_path):
    assert block_sources(4, 6) == [0, 0, 1, 2, 2, 3] and block_sources(2, 2) == [0, 1]
    torch.manual_seed(0)
    small = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    idx = torch.randint(0, 50, (3, 16))
    for n in (3, 5):
        grown = grow_depth(small, n)
        assert grown.config.n_layer == n and torch.allclose(grown(idx)[0], small(idx)[0], atol=1e-6)
    try:
        grow_depth(small, 1)
        raise AssertionError("shrinking must be refused")
    except ValueError as err:
        assert "does not shrink" in str(err)

    source = pretrain(_cfg(tmp_path, "small"))
    at_start = pretrain(_cfg(tmp_path, "grown", grow_from=str(tmp_path / "small"), max_steps=0,
                             model={**TINY, "n_layer": 2}))
    assert abs(at_start["corpus0_loss"] - source["corpus0_loss"]) < 1e-4  # the same function, evaluated alike
    state = json.loads((tmp_path / "grown" / "pretrain_state.json").read_text())
    assert state["grown_from"]["blocks"] == 1 and load_model(tmp_path / "grown").config.n_layer == 2
    new_proj = load_model(tmp_path / "grown").blocks[1].mlp.c_proj.weight
    assert not new_proj.any()  # the repeated block adds nothing yet
    pretrain(_cfg(tmp_path, "grown", model={**TINY, "n_layer": 2}, max_steps=2))  # resumed: it trains
    assert load_model(tmp_path / "grown").blocks[1].mlp.c_proj.weight.any()


def test_resume_without_optimizer_state_ramps_the_learning_rate_up_again(tmp_path, capsys):
    pretrain(_cfg(tmp_path, "run", max_steps=3))
    (tmp_path / "run" / "optimizer.safetensors").unlink()
    pretrain(_cfg(tmp_path, "run", max_steps=1, rewarm_steps=4))
    assert "ramps up again" in capsys.readouterr().out
    state = json.loads((tmp_path / "run" / "pretrain_state.json").read_text())
    full = PretrainConfig(corpora=[], weights=[], out_dir="", tokenizer="", total_tokens=16 * 16 * 6,
                          warmup_tokens=512)
    assert abs(state["lr"] - learning_rate(full, 3 * 256) / 4) < 1e-9


def test_sigterm_ends_a_run_with_a_checkpoint(tmp_path):
    import os
    import signal
    import threading

    timer = threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    result = pretrain(_cfg(tmp_path, "run", total_tokens=10**9))
    timer.join()
    assert 0 < result["tokens"] < 10**9 and "corpus0_loss" in result
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_resume_without_weights_keeps_the_checkpoints_mixture(tmp_path, capsys):
    pretrain(_cfg(tmp_path, "run", max_steps=1))
    pretrain(_cfg(tmp_path, "run", max_steps=1, weights=None))
    state = json.loads((tmp_path / "run" / "pretrain_state.json").read_text())
    assert state["config"]["weights"] == [0.8, 0.2] and "corpus weights [0.8, 0.2]" in capsys.readouterr().out
    pretrain(_cfg(tmp_path, "new", max_steps=1, weights=None))
    assert json.loads((tmp_path / "new" / "pretrain_state.json").read_text())["config"]["weights"] == [1.0, 1.0]


def test_the_command_line_sets_a_new_models_shape(tmp_path, monkeypatch):
    import models.build.pretrain as module
    from app.cli import main

    seen = []
    monkeypatch.setattr(module, "pretrain", seen.append)
    corpus = _corpus(tmp_path)
    assert main(["pretrain", "--corpus", *corpus, "--out", str(tmp_path / "run"), "--layers", "6"]) == 0
    assert main(["pretrain", "--corpus", *corpus, "--out", str(tmp_path / "run")]) == 0
    assert seen[0].model["n_layer"] == 6 and seen[0].model["n_embd"] == 256
    assert seen[1].model["n_layer"] == 4  # the default shape: each run's config is its own
