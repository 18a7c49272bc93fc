"""search-scheme end to end on a tiny users file the test writes: a scheme, a table and a plot come out."""
import json

import torch

from app.cli import main
from engine.scheme import UpdateScheme
from models import TOKENIZER_PATH
from models.checkpoint import save_model, weights_sha256
from models.build.grad_stats import compute_grad_stats, save_grad_stats
from models.grad_stats import GRAD_STATS_FILE
from models.gpt import GPT, GPTConfig
from models.tokenizer import Tokenizer


def test_search_scheme_writes_scheme_table_and_plot(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = GPT(GPTConfig(vocab_size=4096, block_size=80, n_layer=2, n_head=2, n_embd=16)), Tokenizer(TOKENIZER_PATH)
    save_model(model, tmp_path / "m", tokenizer)
    stats = compute_grad_stats(model, tokenizer, ["I love my cat Whiskers and my dog Rex. " * 20], batches=2, rows=2)
    save_grad_stats(tmp_path / "m" / GRAD_STATS_FILE, stats, weights_sha256(tmp_path / "m"), {})
    posts = [{"date": f"2004-01-{d:02d}", "text": "I love my cat Whiskers and my dog Rex. " * 30} for d in range(1, 9)]
    users = tmp_path / "users.jsonl"
    users.write_text("\n".join(json.dumps({"user": str(u), "posts": posts}) for u in range(2)) + "\n")
    out = tmp_path / "sparse.json"
    code = main(["--model", str(tmp_path / "m"), "search-scheme", "--budget-kb", "3000", "--users", str(users), "--skip", "0",
                 "--limit", "2", "--chars", "4000", "--tokens", "300", "--out", str(out), "--docs", str(tmp_path / "docs")])
    assert code == 0
    scheme = UpdateScheme.from_json(out.read_text())
    assert scheme.rules
    table = json.loads((tmp_path / "docs" / "contribution.json").read_text())
    assert table["table"] and table["search"]["training_bytes"] <= 3000 * 1024
    assert (tmp_path / "docs" / "contribution.svg").read_text().startswith("<svg")
