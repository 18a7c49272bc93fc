"""The base model's own text for replay: sampled reproducibly, written atomically, read back line by line."""
import torch

from models import GENERAL_REPLAY_PATH, TOKENIZER_PATH
from models.build.replay import build, generate_token_rows
from models.general_replay import load
from models.gpt import GPT, GPTConfig
from models.tokenizer import Tokenizer


def test_generation_is_seeded_and_written_one_passage_per_line(tmp_path):
    torch.manual_seed(0)
    tokenizer = Tokenizer(TOKENIZER_PATH)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    rows = generate_token_rows(model, samples=3, length=10, seed=5)
    assert len(rows) == 3 and all(len(r) == 10 for r in rows)
    assert rows == generate_token_rows(model, samples=3, length=10, seed=5)
    lines = build(model, tokenizer, tmp_path / "replay.txt", samples=4, length=12)
    assert load(tmp_path / "replay.txt") == lines and all("\n" not in line for line in lines)


def test_shipped_replay_text_is_there():
    assert len(load(GENERAL_REPLAY_PATH)) >= 200
