"""The tree of word pieces: one packed pass gives each node exactly what decoding its row alone gives, across passes."""
import torch

from app.typing.piece_tree import PieceTree
from models.gpt import GPT, GPTConfig

TINY = GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32)


def _alone(model, context_cache, row):
    logits, _ = model.decode(torch.tensor([row]), prefix=context_cache)
    return torch.log_softmax(logits[0].float(), dim=-1)


def test_tree_nodes_match_rows_decoded_alone():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    with torch.inference_mode():
        context, cache = model.decode(torch.tensor([[1, 5, 9, 14]]), last=1)
        first = torch.log_softmax(context[0, -1], dim=-1)
        tree = PieceTree(torch.tensor([2, 3, 4]))
        rows = [[10, 11, 12], [10, 11, 13], [10, 20], [30]]
        assert tree.grow(model.decode_tree, cache, rows[:2], whole=rows[:2])  # two rows sharing two pieces
        assert len(tree.nodes) == 4
        assert tree.grow(model.decode_tree, cache, rows[2:], whole=rows[2:])  # a later pass reuses node (10,)
        assert len(tree.nodes) == 6 and not tree.grow(model.decode_tree, cache, rows, whole=rows)
        for row in rows:
            alone = _alone(model, cache, row)
            expected = first[row[0]] + sum(alone[t - 1, row[t]] for t in range(1, len(row)))
            assert abs(tree.pieces_logp(first, row) - expected.item()) < 1e-4
            assert abs(tree.end(row) - torch.logsumexp(alone[-1, [2, 3, 4]], 0).item()) < 1e-4
            own, after = tree.after(row)
            assert torch.allclose(after, alone[-1], atol=1e-4)
            _, direct = model.decode(torch.tensor([row]), prefix=cache)
            assert all(torch.allclose(k, dk, atol=1e-5) for (k, _), (dk, _) in zip(own, direct))


def test_a_row_needs_only_the_nodes_before_its_last_piece_to_be_spelled():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    with torch.inference_mode():
        _, cache = model.decode(torch.tensor([[1, 5]]), last=1)
        tree = PieceTree(torch.tensor([2]))
        tree.grow(model.decode_tree, cache, [[10, 11, 12]])
        assert tree.spells([10, 11, 12]) and not tree.holds([10, 11, 12]) and tree.holds([10, 11])
        assert tree.spells([40])  # one piece: the context's own distribution spells it
