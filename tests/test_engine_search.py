"""Contribution analysis and scheme search on tiny synthetic users: gains, memory budgets, exact vs evolutionary."""
import json
from dataclasses import replace
import xml.etree.ElementTree as ET

import torch

from engine.contribution import AnalysisConfig, Candidate, Contribution, ContributionAnalysis, UserText, candidates
from engine.contribution_plot import contribution_svg
from engine.optimizer import OptimizerConfig
from engine.scheme import PartRule, UpdateScheme
from engine.search import SearchConfig, analyse_and_search, search_scheme
from engine.segments import Windowing
from models.gpt_stages import LAYOUT
from test_engine_fixtures import TINY, tiny_gpt

LAYOUT = replace(LAYOUT, block_tensors=("mlp.c_fc",))  # one matrix per block: a small table
CONFIG = AnalysisConfig(channel_ratios=(0.5, 1.0),
                        windowing=Windowing(segment=4, context=20, keep=12), tokens=200,
                        lr_scales=(1.0,), optimizer=OptimizerConfig(lr=1e-2))


def _user(name: str, seed: int) -> UserText:
    """A user who keeps typing the same few phrases: learning the earlier text helps on the later."""
    generator = torch.Generator().manual_seed(seed)
    phrases = torch.randint(0, TINY.vocab_size, (3, 8), generator=generator)
    order = torch.randint(0, 3, (30,), generator=generator)
    return UserText(name, phrases[order].flatten())


def _analysis() -> ContributionAnalysis:
    return ContributionAnalysis(lambda: replace(tiny_gpt().staged(), layout=LAYOUT), [_user("a", 1), _user("b", 2)], CONFIG)


def test_analysis_measures_every_candidate_and_search_respects_the_budget():
    analysis = _analysis()
    table, result = analyse_and_search(analysis, budget_bytes=10**9)
    assert len(table) == 4 * 2 + 4 + 2  # channels per block, biases by depth, the embedding through either use
    assert max(c.gain for c in table) > 0.05
    assert result.method == "exact" and result.training_bytes <= result.budget_bytes
    assert result.estimated_gain == sum(c.gain for c in result.chosen) > 0
    assert result.measured_gain > 0
    assert result.measured_gain == max(result.measured_prefixes)  # the best-measured prefix of the found set is kept
    assert len(result.chosen) == result.measured_prefixes.index(result.measured_gain) + 1
    assert UpdateScheme.from_json(result.scheme.to_json()) == result.scheme
    assert result.scheme.remember_context  # learned as the learner learns: a step on its segment alone
    assert json.loads(json.dumps([c.to_dict() for c in table]))[0]["rules"]
    assert json.loads(json.dumps(result.to_dict()))["chosen"] == [c.candidate.name for c in result.chosen]
    smallest = min(c.training_bytes for c in table if c.gain > 0)
    tight = search_scheme(table, smallest, analysis.training_bytes, CONFIG)
    assert tight.training_bytes <= smallest and len(tight.chosen) == 1
    assert search_scheme(table, 0, lambda chosen: 1, CONFIG).chosen == ()


def _synthetic_table() -> tuple[list[Contribution], dict[str, int]]:
    table, sizes = [], {}
    for g in range(5):
        for r, ratio in enumerate((0.25, 0.5, 1.0)):
            name = f"t{g}@{ratio}"
            sizes[name] = (g + 1) * (r + 1) * 10
            table.append(Contribution(Candidate(name, f"t{g}", (PartRule(bias=True),)), (g % 3 + 1) * ratio, 0))
    return table, sizes


def test_evolutionary_search_finds_the_exact_optimum_of_a_small_space():
    table, sizes = _synthetic_table()

    def cost(chosen):
        return sum(sizes[c.name] for c in chosen)

    exact = search_scheme(table, 120, cost, CONFIG)
    evolved = search_scheme(table, 120, cost, CONFIG, SearchConfig(exact_limit=0, generations=60))
    assert exact.method == "exact" and evolved.method == "evolutionary"
    assert evolved.training_bytes <= 120
    assert evolved.estimated_gain == exact.estimated_gain


def test_contribution_plot_is_an_svg_with_a_bar_per_candidate():
    table, _ = _synthetic_table()
    root = ET.fromstring(contribution_svg(table))
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}rect")) == len(table) + 1  # + the background


def test_every_candidate_comes_at_each_learning_rate_scale():
    single, scaled = candidates(LAYOUT, 2, CONFIG), candidates(LAYOUT, 2, replace(CONFIG, lr_scales=(1.0, 10.0)))
    assert len(scaled) == 2 * len(single)
    assert [c.group for c in scaled[::2]] == [c.group for c in single]  # one option per scale, in the same group
    assert {rule.lr_scale for c in scaled[1::2] for rule in c.rules} == {10.0}
    assert any(rule.modules == ("wte",) for c in single for rule in c.rules)  # the embedding through both uses
