"""The int8 option: frozen Linear weights held as int8 per output channel, less model memory, exact gradients
for the int8-rounded model, int8 values untouched by training, fp32 weights given back on close."""
import copy
from dataclasses import replace

import torch

from models.gpt_stages import next_token_loss, next_token_pairs, staged_lm
from engine.plan import compile_plan
from engine.quant import quantize_per_channel
from engine.scheme import UpdateScheme
from test_engine_fixtures import CHANNELS_SPARSE, tiny_gpt, token_batch

SPARSE_INT8 = replace(CHANNELS_SPARSE, name="sparse-int8", frozen_int8=True)


def test_per_channel_quantization_is_close():
    weight = torch.randn(16, 40)
    values, scale = quantize_per_channel(weight)
    assert values.dtype == torch.int8 and scale.shape == (16, 1)
    assert ((values.float() * scale - weight).abs() <= scale / 2 + 1e-7).all()


def test_int8_cuts_parameter_memory_and_keeps_the_scheme_json():
    assert UpdateScheme.from_json(SPARSE_INT8.to_json()) == SPARSE_INT8
    with compile_plan(staged_lm(tiny_gpt()), CHANNELS_SPARSE) as plain:
        fp32 = plain.memory()
    with compile_plan(staged_lm(tiny_gpt()), SPARSE_INT8) as quantized:
        int8 = quantized.memory()
        held = sum(q.values.numel() for q in quantized.int8.values())
    assert held > 0
    assert fp32.parameter_bytes - int8.parameter_bytes >= 0.9 * 3 * held
    assert int8.trainable_bytes == fp32.trainable_bytes


def test_gradients_equal_autograd_on_the_int8_rounded_model():
    model, batch = tiny_gpt(), token_batch()
    with compile_plan(staged_lm(model), SPARSE_INT8) as plan:
        reference = copy.deepcopy(tiny_gpt()).requires_grad_(True)
        with torch.no_grad():
            for path, weight in plan.int8.items():
                reference.get_submodule(path).weight.copy_(weight.weight())
        inputs, targets = next_token_pairs(batch)
        keep = SPARSE_INT8.loss_positions(targets.shape[1])
        loss = next_token_loss(reference(inputs)[:, -keep:], targets[:, -keep:])
        loss.backward()
        plan_loss, grads = plan.gradients(batch)
        assert abs(plan_loss - loss.item()) < 1e-5
        for name, grad in grads.items():
            if name.endswith("columns"):
                path = name.removesuffix(".weight.columns")
                expected = reference.get_submodule(path).weight.grad[:, plan.adapters[path].channels]
            else:
                expected = reference.get_parameter(name).grad
            torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-5)


def test_int8_values_stay_and_fp32_weights_come_back_on_close():
    model, batch = tiny_gpt(), token_batch()
    plan = compile_plan(staged_lm(model), SPARSE_INT8)
    before = {path: q.values.clone() for path, q in plan.int8.items()}
    assert "weight" not in dict(model.blocks[0].mlp.c_fc.named_parameters())
    planned = plan.memory(batch).planned_saved_bytes
    for _ in range(10):
        report = plan.step(batch)
    assert abs(report.saved_bytes - planned) <= 0.1 * planned
    assert all(torch.equal(q.values, before[path]) for path, q in plan.int8.items())
    plan.close()
    weight = model.blocks[0].mlp.c_fc.weight
    assert isinstance(weight, torch.nn.Parameter) and weight.requires_grad
    with torch.no_grad():
        assert torch.allclose(model(batch[:, :-1]), tiny_gpt()(batch[:, :-1]), atol=0.05)


def test_rounding_linears_to_int8_matches_what_the_plan_computes_with():
    import torch.nn as nn

    from engine.quant import Int8Weight, round_frozen_linears_to_int8

    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    b, original = copy.deepcopy(a), copy.deepcopy(a)
    assert round_frozen_linears_to_int8(a) == 2
    for m in b:
        if isinstance(m, nn.Linear):
            Int8Weight(m)
    x = torch.randn(3, 8)
    assert torch.allclose(a(x), b(x), atol=1e-6)
    assert not torch.equal(a[0].weight, original[0].weight)
