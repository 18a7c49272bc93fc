"""The learning benchmark: a user's earlier sentences are learned, their later text scored by base and personal model."""
import json
import random

import torch

from app.cli import main
from app.learning_bench import learn_and_score, text_loss
from app.loading import EvalText, load_predictor
from models.general_replay import load as load_general
from models import GENERAL_REPLAY_PATH

NAMES = ["Kowalczyk", "Brenna", "the lake", "the old mill", "my sister", "Dr Osei"]
VERBS = ["walked to", "talked about", "wrote to", "waited for", "laughed with", "cooked for"]


def _user_text(n=40, seed=0):
    rng = random.Random(seed)
    return " ".join(f"Yesterday {rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(NAMES)} after work."
                    for _ in range(n))


def test_learning_a_users_habits_makes_their_later_text_likelier():
    predictor = load_predictor()
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    result = learn_and_score(predictor.model, predictor.tokenizer, load_general(GENERAL_REPLAY_PATH),
                             EvalText("7", _user_text()), "sparse", {"lr": {"sparse": 3e-3}})
    assert result.rounds_accepted > 10 and result.steps > 0
    assert result.gain > 0.1 and result.personal_loss < result.base_loss
    assert all(torch.equal(v, before[k]) for k, v in predictor.model.state_dict().items())  # base untouched
    ids = predictor.tokenizer.encode("Thank you very much")
    assert text_loss(predictor.model, ids) < text_loss(predictor.model, ids[::-1])


def test_bench_learning_prints_and_writes_per_user_results(tmp_path, capsys):
    users = tmp_path / "users.jsonl"
    users.write_text("\n".join(json.dumps({"user": str(u), "posts": [{"date": "2004-01-01", "text": _user_text(12, u)}]})
                               for u in range(2)) + "\n")
    out = tmp_path / "learning.json"
    args = ["bench", "learning", "--users", str(users), "--skip", "1", "--limit", "1", "--chars", "2000",
            "--lr", "3e-3", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sparse: mean gain" in printed and "of 1 users" in printed
    (result,) = json.loads(out.read_text())
    assert result["user"] == "1" and result["gain"] > 0.05  # habits learned at a high rate
    assert main(["bench", "learning", "--users", str(users), "--modes", "off"]) == 2
