"""Gradients of every trained tensor equal plain PyTorch autograd on the same loss (fp32, within 1e-5).

Covers every scheme on the tiny GPT (split channels, LoRA, loss on the newest positions), an MLP and a CNN.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from models.gpt_stages import next_token_loss, next_token_pairs, staged_lm
from engine.optimizer import OptimizerConfig
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from engine.staged import sequential_model
from test_engine_fixtures import ALL_SCHEMES, cnn, mlp, shipped_scheme, tiny_gpt, token_batch, vector_batch

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def _give_lora_a_nonzero_b(plan):
    delta = plan.snapshot()
    generator = torch.Generator().manual_seed(3)
    for name in delta:
        if name.endswith("lora_b"):
            delta[name] = 0.1 * torch.randn(delta[name].shape, generator=generator)
    plan.restore(delta)


def _detach_first(positions):
    return lambda m, inputs, out: torch.cat((out[:, :positions].detach(), out[:, positions:]), dim=1)


def _reference_gradients(plan, base, loss_of_model, remembered=0):
    """Plain autograd on a copy of the untouched model, every parameter trainable, LoRA as explicit hooks. A weight
    tied to a module before the plan's cut (the embedding, when only the output projection is selected) trains from
    the selected use alone: the reference's earlier use reads a detached copy. With a remembered context, the first
    `remembered` positions' queries, keys and values are detached in every attention."""
    reference = copy.deepcopy(base).requires_grad_(True)
    if plan.cut > 0 and hasattr(reference, "wte"):
        reference.wte.register_forward_hook(lambda m, inputs, out: F.embedding(inputs[0], m.weight.detach()))
    if plan.scheme.remember_context:
        for block in reference.blocks:
            block.attn.c_attn.register_forward_hook(_detach_first(remembered))
    lora = {}
    for path, adapter in plan.adapters.items():
        if hasattr(adapter, "lora_a"):
            a, b = (t.detach().clone().requires_grad_(True) for t in (adapter.lora_a, adapter.lora_b))
            lora[path] = (a, b)
            reference.get_submodule(path).register_forward_hook(
                lambda m, inputs, out, a=a, b=b, s=adapter.scale: out + s * F.linear(F.linear(inputs[0], a), b))
    loss = loss_of_model(reference)
    loss.backward()
    grads = {}
    for name in plan.trainable:
        path, _, kind = name.rpartition(".")
        if kind == "columns":
            module_path = path.rpartition(".")[0]
            channels = plan.adapters[module_path].channels
            grads[name] = reference.get_submodule(module_path).weight.grad[:, channels]
        elif kind in ("lora_a", "lora_b"):
            grads[name] = lora[path][kind == "lora_b"].grad
        else:
            grads[name] = reference.get_parameter(name).grad
    return loss.item(), grads


def _lm_loss(scheme, batch):
    def loss_of_model(model):
        inputs, targets = next_token_pairs(batch)
        keep = scheme.loss_positions(targets.shape[1])
        return next_token_loss(model(inputs)[:, -keep:], targets[:, -keep:])
    return loss_of_model


def _assert_same(plan_result, reference_result):
    (loss, grads), (ref_loss, ref_grads) = plan_result, reference_result
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        assert ref_grads[name].abs().sum() > 0, f"{name}: a zero gradient would prove nothing"
        torch.testing.assert_close(grads[name], ref_grads[name], **TOLERANCE, msg=name)


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=lambda s: s.name)
def test_lm_gradients_equal_plain_autograd(scheme):
    model, batch = tiny_gpt(), token_batch()
    base = copy.deepcopy(model)
    with compile_plan(staged_lm(model), scheme) as plan:
        _give_lora_a_nonzero_b(plan)
        positions = batch.shape[1] - 1
        remembered = positions - scheme.loss_positions(positions)
        reference = _reference_gradients(plan, base, _lm_loss(scheme, batch), remembered)
        plan.gradients(batch)  # fills the prefix cache; the next call reads from it
        _assert_same(plan.gradients(batch), reference)


SEQUENTIAL_SCHEMES = [
    shipped_scheme("full"), shipped_scheme("last-block"), shipped_scheme("bias-only"),
    UpdateScheme("split", (PartRule(blocks="2", weight=0.4), PartRule(blocks="-1", bias=True))),
    UpdateScheme("lora", (PartRule(blocks="2", lora_rank=3), PartRule(blocks="3", bias=True))),
]


@pytest.mark.parametrize("scheme", SEQUENTIAL_SCHEMES, ids=lambda s: s.name)
def test_mlp_gradients_equal_plain_autograd(scheme):
    model, batch = mlp(), vector_batch((12,), 5)
    base = copy.deepcopy(model)
    with compile_plan(sequential_model(model), scheme) as plan:
        _give_lora_a_nonzero_b(plan)
        reference = _reference_gradients(plan, base, lambda m: F.cross_entropy(m(batch[0]), batch[1]))
        _assert_same(plan.gradients(batch), reference)


@pytest.mark.parametrize("scheme", [shipped_scheme("last-block"), shipped_scheme("bias-only"),
                                    UpdateScheme("conv", (PartRule(blocks="2", weight=1.0, bias=True),))],
                         ids=lambda s: s.name)
def test_cnn_gradients_equal_plain_autograd(scheme):
    model, batch = cnn(), vector_batch((3, 6, 6), 4)
    base = copy.deepcopy(model)
    with compile_plan(sequential_model(model), scheme) as plan:
        reference = _reference_gradients(plan, base, lambda m: F.cross_entropy(m(batch[0]), batch[1]))
        _assert_same(plan.gradients(batch), reference)


def test_cnn_trains():
    model, batch = cnn(), vector_batch((3, 6, 6), 4)
    with compile_plan(sequential_model(model), shipped_scheme("last-block")) as plan:
        first = plan.step(batch).loss
        for _ in range(30):
            last = plan.step(batch).loss
    assert last < first


def test_split_weights_refuse_other_module_kinds():
    with pytest.raises(TypeError, match="nn.Linear"):
        compile_plan(sequential_model(cnn()), UpdateScheme("x", (PartRule(blocks="0", weight=0.5),)))


def test_sgd_moves_trained_tensors_by_the_gradient():
    model, batch = mlp(), vector_batch((12,), 5)
    scheme = UpdateScheme("split", (PartRule(blocks="2", weight=0.4, bias=True),))
    with compile_plan(sequential_model(model), scheme, OptimizerConfig(kind="sgd", lr=1.0, momentum=0.0)) as plan:
        before = plan.snapshot()
        _, grads = plan.gradients(batch)
        plan.step(batch)
        after = plan.snapshot()
    for name, grad in grads.items():
        torch.testing.assert_close(before[name] - after[name], grad, atol=1e-6, rtol=1e-5)
