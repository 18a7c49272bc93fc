"""Update schemes: JSON round trip of every scheme, block selection, what each rule selects in a model, bad input."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.gpt_stages import staged_lm
from engine.resolve import resolve
from engine.scheme import PartRule, UpdateScheme
from engine.staged import sequential_model
from test_engine_fixtures import ALL_SCHEMES, CHANNELS_SPARSE, SHIPPED_SPARSE, mlp, shipped_scheme, tiny_gpt


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=lambda s: s.name)
def test_every_scheme_round_trips_through_json(scheme):
    assert UpdateScheme.from_json(scheme.to_json()) == scheme


rules = st.builds(PartRule,
                  modules=st.lists(st.sampled_from(["*", "mlp.*", "attn.c_attn", "ln_?"]), min_size=1, max_size=3),
                  blocks=st.sampled_from(["", ":", "-1", "-2:", "0,2", "1:3"]),
                  bias=st.just(True), weight=st.floats(0, 1), lora_rank=st.just(0))


@given(st.lists(rules, max_size=4), st.floats(0.01, 1.0), st.text(max_size=10))
def test_random_schemes_round_trip(rule_list, fraction, name):
    scheme = UpdateScheme(name, tuple(rule_list), loss_last_fraction=fraction)
    assert UpdateScheme.from_json(scheme.to_json()) == scheme


def test_block_selection_reads_like_a_subscript():
    assert PartRule(blocks="-1", bias=True).block_indices(4) == [3]
    assert PartRule(blocks="-2:", bias=True).block_indices(4) == [2, 3]
    assert PartRule(blocks=":", bias=True).block_indices(3) == [0, 1, 2]
    assert PartRule(blocks="0, 2, 0", bias=True).block_indices(4) == [0, 2]


def test_rules_select_modules_of_the_gpt():
    staged = staged_lm(tiny_gpt())
    channels = resolve(CHANNELS_SPARSE, staged)
    assert channels["blocks.3.mlp.c_fc"].weight == 0.25 and not channels["blocks.3.mlp.c_fc"].bias
    assert set(channels) == {"blocks.3.mlp.c_fc", "blocks.3.mlp.c_proj"}  # the last block only
    shipped = resolve(SHIPPED_SPARSE, staged)
    assert "wte" in shipped and shipped["wte"].lr_scale == 1.0  # the tied embedding (both of its uses)
    assert all(u.weight < 1.0 and u.lr_scale > 1.0 for path, u in shipped.items() if path != "wte")  # MLP channels
    lora = resolve(shipped_scheme("lora"), staged)
    assert len(lora) == 12 and all(u.lora_rank == 8 for u in lora.values())
    assert "wte" in resolve(shipped_scheme("full"), staged)


def test_rules_select_children_of_a_sequential():
    staged = sequential_model(mlp())
    assert set(resolve(shipped_scheme("last-block"), staged)) == {"5"}
    assert set(resolve(shipped_scheme("bias-only"), staged)) == {"0", "2", "3", "5"}


@pytest.mark.parametrize("bad", [
    {"name": "x", "rules": [{"bias": True, "colour": "red"}]},
    {"name": "x", "rules": [{"weight": 1.5}]},
    {"name": "x", "rules": [{"weight": 0.5, "lora_rank": 4}]},
    {"name": "x", "rules": [{"blocks": "-1"}]},
    {"name": "x", "loss_last_fraction": 0.0},
    {"name": "x", "speed": "fast"},
])
def test_bad_schemes_are_refused(bad):
    with pytest.raises(ValueError):
        UpdateScheme.from_dict(bad)


def test_a_mode_without_a_shipped_scheme_is_refused(tmp_path):
    from app.learning.modes import mode

    assert mode("lora").scheme() == shipped_scheme("lora")
    with pytest.raises(ValueError, match="has no scheme"):
        mode("lora").scheme(tmp_path)
