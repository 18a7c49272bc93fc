"""Mean squared gradients for dynamic evaluation: factored shapes, exact rank-1 reconstruction, the hash-tied file."""
import pytest
import torch

from models import BASE_DIR, TOKENIZER_PATH
from models.checkpoint import load_model, weights_sha256
from models.gpt import GPT, GPTConfig
from models.build.grad_stats import compute_grad_stats, factor_mean_squares, save_grad_stats
from models.grad_stats import GRAD_STATS_FILE, GradStats, GradStatsError, load_grad_stats
from models.tokenizer import Tokenizer

DOCUMENTS = ["Thank you very much for coming to the party last night, it was lovely to see you again.",
             "short",
             "I don't know what to say about the weather this week: rain, then sun, then rain again all day."]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = Tokenizer(TOKENIZER_PATH)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32))
    return model, compute_grad_stats(model, tokenizer, DOCUMENTS, batches=3, rows=2)


def test_factors_have_the_parameters_shapes_and_are_positive(tiny):
    model, tensors = tiny
    stats = GradStats(tensors, {})
    params = dict(model.named_parameters())
    assert sorted(stats.names()) == sorted(params) and "lm_head.weight" not in params
    for name, p in params.items():
        rows, cols = stats.factors(name)
        assert (rows.shape, None if cols is None else cols.shape) == (
            (p.shape[:1], p.shape[1:]) if p.dim() == 2 else (p.shape, None))
        assert stats.mean_square(name).shape == p.shape
        for factor in (rows, cols):
            assert factor is None or (factor.isfinite().all() and (factor >= 0).all() and factor.sum() > 0)
        if cols is not None:
            assert (rows > 0).all() and (cols > 0).all()


def test_same_seed_same_statistics(tiny):
    model, tensors = tiny
    again = compute_grad_stats(model, Tokenizer(TOKENIZER_PATH), DOCUMENTS, batches=3, rows=2)
    assert all(torch.equal(again[k], v) for k, v in tensors.items())


def test_no_document_long_enough_is_a_value_error(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="long enough"):
        compute_grad_stats(model, Tokenizer(TOKENIZER_PATH), ["short", "tiny"], batches=1, rows=1)


def test_rank_one_mean_square_is_reconstructed_exactly():
    rows, cols, vector = torch.rand(5) + 0.1, torch.rand(3) + 0.1, torch.rand(4)
    stats = GradStats(factor_mean_squares({"w": torch.outer(rows, cols), "b": vector}), {})
    assert torch.allclose(stats.mean_square("w"), torch.outer(rows, cols))
    assert torch.equal(stats.mean_square("b"), vector) and stats.factors("b")[1] is None


def test_saved_file_loads_back_with_its_hash(tiny, tmp_path):
    _, tensors = tiny
    path = tmp_path / GRAD_STATS_FILE
    save_grad_stats(path, tensors, "abc123", {"batches": 3, "rows": 2, "tokens": 96})
    stats = load_grad_stats(path, "abc123")
    assert stats.info == {"batches": 3, "rows": 2, "tokens": 96}
    assert stats.tensors.keys() == tensors.keys()
    assert all(torch.equal(stats.tensors[k], v) for k, v in tensors.items())


def test_mismatched_hash_is_refused(tiny, tmp_path):
    path = tmp_path / GRAD_STATS_FILE
    save_grad_stats(path, tiny[1], "abc123", {})
    with pytest.raises(GradStatsError, match="does not match the base model.*pocketkb grad-stats"):
        load_grad_stats(path, "def456")


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "empty"])
def test_damaged_file_is_a_grad_stats_error(tiny, tmp_path, damage):
    path = tmp_path / GRAD_STATS_FILE
    save_grad_stats(path, tiny[1], "abc123", {})
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"\x07not safetensors" * 9,
                          "empty": b""}[damage])
    with pytest.raises(GradStatsError, match=f"{GRAD_STATS_FILE}.*pocketkb grad-stats"):
        load_grad_stats(path, "abc123")


def test_shipped_file_matches_the_shipped_base_and_covers_it():
    stats = load_grad_stats(BASE_DIR / GRAD_STATS_FILE, weights_sha256(BASE_DIR))
    params = dict(load_model(BASE_DIR).named_parameters())
    assert sorted(stats.names()) == sorted(params)
    for name, p in params.items():
        ms = stats.mean_square(name)
        assert ms.shape == p.shape and ms.isfinite().all() and (ms >= 0).all()


def test_the_app_refuses_a_base_model_whose_gradient_statistics_do_not_match(tmp_path, capsys):
    import shutil

    from app.cli import main
    from models import BASE_DIR

    model = tmp_path / "base"
    shutil.copytree(BASE_DIR, model)
    (model / "grad_stats.safetensors").write_bytes((BASE_DIR / "grad_stats.safetensors").read_bytes()[:100])
    assert main(["--model", str(model), "--data", str(tmp_path / "data"), "reset"]) == 2
    assert "pocketkb grad-stats" in capsys.readouterr().err
