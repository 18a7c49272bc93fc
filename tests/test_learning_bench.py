"""The learning benchmark: users' sentences typed through the learner, each segment scored before it is learned."""
import json
import random

import torch

from app.cli import main
from app.bench.learning import SegmentScore, learn_stream, tail_of
from app.bench.texts import EvalText
from app.typing.loading import load_predictor
from app.bench.paired import paired_gain
from app.bench.plot import frontier
from models import BASE_DIR, GENERAL_REPLAY_PATH
from models.checkpoint import weights_sha256
from models.general_replay import load as load_general
from models.grad_stats import GRAD_STATS_FILE, load_grad_stats

NAMES = ["Kowalczyk", "Brenna", "the lake", "the old mill", "my sister", "Dr Osei"]
VERBS = ["walked to", "talked about", "wrote to", "waited for", "laughed with", "cooked for"]


def _user_text(n=40, seed=0):
    rng = random.Random(seed)
    return " ".join(f"Yesterday {rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(NAMES)} after work."
                    for _ in range(n))


def test_learning_a_users_habits_makes_their_later_text_likelier():
    predictor = load_predictor()
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    stats = load_grad_stats(BASE_DIR / GRAD_STATS_FILE, weights_sha256(BASE_DIR))
    result = learn_stream(predictor.model, predictor.tokenizer, load_general(GENERAL_REPLAY_PATH), stats,
                          EvalText("7", _user_text()), "sparse", {"lr": {"sparse": 1e-5}})
    assert result.steps >= 40
    assert result.gain_tail > 0.1 and result.gain_tail > result.gain > 0  # learning shows more as it goes
    assert all(torch.equal(v, before[k]) for k, v in predictor.model.state_dict().items())  # base untouched


def test_the_last_quarter_is_the_segments_holding_its_last_quarter_of_tokens():
    scores = [SegmentScore(t, 1.0, 1.0) for t in (16, 16, 8, 4, 4, 16)]
    assert tail_of(scores) == scores[-1:]  # 16 of 64 tokens
    assert tail_of(scores, 0.5) == scores[-4:]


def test_a_paired_gain_brackets_its_mean_and_counts_the_users_who_gained():
    gain = paired_gain([0.1, 0.2, -0.05, 0.15])
    assert gain.low < gain.mean < gain.high and gain.better == 3 and gain.users == 4
    same = paired_gain([0.1] * 5)
    assert same.low == same.mean == same.high == 0.1


def test_bench_learning_prints_and_writes_per_user_results(tmp_path, capsys):
    users = tmp_path / "users.jsonl"
    users.write_text("\n".join(json.dumps({"user": str(u), "posts": [{"date": "2004-01-01", "text": _user_text(12, u)}]})
                               for u in range(2)) + "\n")
    out = tmp_path / "learning.json"
    args = ["bench", "learning", "--users", str(users), "--skip", "0", "--limit", "2", "--chars", "2000",
            "--lr", "1e-5", "--processes", "1", "--json", str(out), "--frontier", str(tmp_path / "frontier.svg")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sparse: last quarter" in printed and "95% CI" in printed and "of 2 users" in printed
    assert "ms per segment: context" in printed
    assert (tmp_path / "frontier.svg").read_text().startswith("<svg") and ">sparse</text>" in (
        tmp_path / "frontier.svg").read_text()
    results = json.loads(out.read_text())
    assert [r["user"] for r in results] == ["0", "1"] and all(r["gain_tail"] > 0.05 for r in results)
    assert main(["bench", "learning", "--users", str(users), "--modes", "off"]) == 2


def test_the_frontier_keeps_the_points_nothing_beats_on_both_cost_and_gain():
    points = {"full": (90.0, 0.065), "sparse": (50.0, 0.060), "slow": (60.0, 0.050), "output": (30.0, 0.040),
              "nothing": (30.0, 0.0)}
    assert frontier(points) == ["output", "sparse", "full"]
