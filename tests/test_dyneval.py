"""Dynamic evaluation's update rule: RMS-normalised SGD steps, the decay toward the base weights, and plans using it."""
import pytest
import torch

from engine.dyneval import DynamicEvalSGD, ModelReference, TensorReference
from models.gpt_stages import staged_lm
from engine.optimizer import OptimizerConfig
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from models.gpt import GPT, GPTConfig


def _tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()


def _reference(model):
    base = {k: p.detach().clone() for k, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    factors = {k: (torch.rand(p.shape[0], generator=gen) + 0.5,
                   torch.rand(p.shape[1], generator=gen) + 0.5 if p.dim() == 2 else None)
               for k, p in model.named_parameters()}
    return ModelReference(base, factors)


def test_a_step_divides_each_gradient_by_its_rms():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    rows, cols = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([1.0, 4.0])
    ref = TensorReference(torch.zeros(3, 2), rows, cols)
    opt = DynamicEvalSGD([p], [ref], lr=0.1, decay=0.0, eps_share=0.0)
    p.grad = torch.ones(3, 2)
    opt.step()
    rms = (torch.outer(rows, cols) / rows.mean()).sqrt()
    assert torch.allclose(p.detach(), -0.1 / rms)


def test_decay_pulls_toward_the_base_and_lambda_one_returns_it_exactly():
    base = torch.randn(300, 4)  # more rows than one chunk
    ref = TensorReference(base, torch.rand(300) + 0.1, torch.rand(4) + 0.1)
    p = torch.nn.Parameter(base + torch.randn(300, 4))
    half = torch.nn.Parameter(p.detach().clone())
    DynamicEvalSGD([half], [ref], lr=0.0, decay=0.5).step()
    assert (half - base).norm() < (p - base).norm()
    p.grad = torch.randn(300, 4)
    DynamicEvalSGD([p], [ref], lr=1e-2, decay=1.0).step()
    assert torch.equal(p.detach(), base)


def test_a_plan_steps_with_dynamic_evaluation_and_needs_its_reference():
    model = _tiny()
    scheme = UpdateScheme("mlp", (PartRule(("mlp.c_fc",), blocks="-1", weight=0.5),))
    optimizer = OptimizerConfig(kind="dyneval", lr=1e-2)
    with pytest.raises(ValueError, match="gradient statistics"):
        compile_plan(staged_lm(model), scheme, optimizer)
    batch = torch.randint(0, 64, (1, 17), generator=torch.Generator().manual_seed(2))
    with compile_plan(staged_lm(model), scheme, optimizer, reference=_reference(model)) as plan:
        before = plan.evaluate_rows(batch, positions=4)[0]
        report = plan.step(batch, positions=4)
        assert report.loss == pytest.approx(before, abs=1e-5)  # the loss is taken before the update
        assert plan.evaluate_rows(batch, positions=4)[0] < before
        assert plan.memory().optimizer_bytes == 2 * (64 + 8) * 4  # the trained columns' factored statistic, inverted too


def test_a_tied_output_matrix_trains_from_the_head_alone():
    model = _tiny()
    scheme = UpdateScheme("head", (PartRule(("lm_head",), weight=1.0),))
    batch = torch.randint(0, 64, (1, 17), generator=torch.Generator().manual_seed(3))
    with compile_plan(staged_lm(model), scheme, OptimizerConfig(kind="sgd", lr=0.1, momentum=0.0)) as plan:
        assert plan.cut == len(plan.staged.stages) - 1 and list(plan.trainable) == ["wte.weight"]
        _, grads = plan.gradients(batch, positions=4)
    hidden = model.ln_f(model.hidden_states(batch[:, :-1], model.config.n_layer))[:, -4:]
    wte = model.wte.weight.detach().clone().requires_grad_(True)
    torch.nn.functional.cross_entropy((hidden.detach() @ wte.t())[0], batch[0, -4:]).backward()
    assert torch.allclose(grads["wte.weight"], wte.grad, atol=1e-6)


def test_an_embedding_gradient_kept_factored_steps_as_the_dense_one_would():
    """The tied embedding's gradient stays as looked-up rows and thin products; scaled in those parts and added as
    their product, the step equals dynamic evaluation on the dense gradient."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=1200, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    reference = _reference(model)
    scheme = UpdateScheme("embedding", (PartRule(("wte",), weight=1.0),), remember_context=True)
    batch = torch.randint(0, 1200, (1, 13), generator=torch.Generator().manual_seed(2))
    config = OptimizerConfig(kind="dyneval", lr=1e-2)
    with compile_plan(staged_lm(model), scheme, config, reference=reference) as plan:
        assert set(plan.factored) == {"wte.weight"}
        _, grads = plan.gradients(batch, positions=4)
        expected = torch.nn.Parameter(model.wte.weight.detach().clone())
        expected.grad = grads["wte.weight"]
        DynamicEvalSGD([expected], [reference.tensor("wte.weight")], lr=1e-2, decay=0.0).step()
        plan.step(batch, positions=4)
        torch.testing.assert_close(model.wte.weight.detach(), expected.detach(), atol=1e-6, rtol=1e-5)
        dense = model.wte.weight.numel() * 4
        assert 0 < plan.memory().gradient_bytes < dense  # four positions' parts and a scaled copy, not the matrix
    assert "forward" not in model.wte.__dict__ and "forward" not in model.lm_head.__dict__  # given back on close


@pytest.mark.parametrize("kind", ["dyneval", "sgd"])
def test_a_rules_lr_scale_multiplies_the_step_of_what_it_trains(kind):
    moves = []
    for scale in (1.0, 10.0):
        model = _tiny()
        before = {k: p.detach().clone() for k, p in model.named_parameters()}
        scheme = UpdateScheme("two", (PartRule(("mlp.c_fc",), blocks="-1", weight=1.0, lr_scale=scale),
                                      PartRule(("ln_f",), bias=True)))
        config = OptimizerConfig(kind=kind, lr=1e-3, momentum=0.0)
        with compile_plan(staged_lm(model), scheme, config, reference=_reference(model)) as plan:
            plan.step(torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(5)))
        params = dict(model.named_parameters())
        moves.append({k: (params[k] - before[k]).detach() for k in ("blocks.1.mlp.c_fc.weight", "ln_f.bias")})
    torch.testing.assert_close(moves[1]["blocks.1.mlp.c_fc.weight"], 10 * moves[0]["blocks.1.mlp.c_fc.weight"])
    torch.testing.assert_close(moves[1]["ln_f.bias"], moves[0]["ln_f.bias"])  # the other rule keeps its rate
    with pytest.raises(ValueError, match="lr_scale"):
        PartRule(bias=True, lr_scale=0.0)


def test_factored_parts_that_would_outgrow_the_matrix_are_summed_into_it():
    from engine.factored import FactoredGradient

    gen = torch.Generator().manual_seed(0)
    sink = FactoredGradient(torch.Size((10, 8)))
    left, right = torch.randn(3, 10, generator=gen), torch.randn(3, 8, generator=gen)
    sink.add_product(left, right)  # 3 x (10 + 8) floats: fewer bytes than the matrix's 80 floats
    assert sink.summed is None
    ids, grads = torch.tensor([1, 1, 5]), torch.randn(3, 8, generator=gen)
    sink.add_rows(ids, grads)  # now more than the matrix: summed into it
    assert sink.summed is not None and not sink.products and sink.bytes == 80 * 4
    expected = left.t() @ right
    expected.index_add_(0, ids, grads)
    torch.testing.assert_close(sink.dense(), expected)
    torch.testing.assert_close(sink.block(2, 6), expected[2:6])


def test_a_dynamic_evaluation_step_does_not_load_torchs_compiler_stack():
    """A torch.optim.Optimizer would import torch._dynamo (about 80 MiB of the keyboard's memory) when built."""
    import subprocess
    import sys

    code = """
import sys, torch
from engine.dyneval import DynamicEvalSGD, TensorReference
p = torch.nn.Parameter(torch.zeros(3, 2))
opt = DynamicEvalSGD([p], [TensorReference(torch.zeros(3, 2), torch.ones(3), torch.ones(2))], lr=0.1, decay=0.5)
p.grad = torch.ones(3, 2)
opt.step()
opt.zero_grad()
assert p.grad is None and p.detach().abs().sum() > 0
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_limited_rows_of_a_factored_embedding_are_the_only_ones_a_step_changes():
    """With a row limit, the rows outside the allowed set (tokens never typed) keep their values exactly, on the
    output side too, and the allowed set is read at each step (the learner grows it in place)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=300, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    scheme = UpdateScheme("embedding", (PartRule(("wte",), weight=1.0),), remember_context=True)
    batch = torch.randint(0, 100, (1, 13), generator=torch.Generator().manual_seed(2))
    allowed = torch.zeros(300, dtype=torch.bool)
    allowed[batch[0]] = True
    before = model.wte.weight.detach().clone()
    with compile_plan(staged_lm(model), scheme, OptimizerConfig(kind="dyneval", lr=1e-2),
                      reference=_reference(model)) as plan:
        with pytest.raises(ValueError, match="300 booleans"):
            plan.factored["wte.weight"].limit(torch.ones(299, dtype=torch.bool))
        plan.factored["wte.weight"].limit(allowed)
        plan.step(batch, positions=4)
        changed = (model.wte.weight.detach() != before).any(dim=1)
        assert torch.equal(changed, allowed)
        allowed[200] = True  # a token typed since: the next step may change its row
        plan.step(batch, positions=4)
        assert (model.wte.weight.detach()[200] != before[200]).any()
        assert torch.equal(model.wte.weight.detach()[~allowed], before[~allowed])
