"""The README's measured figures are the runs kept in docs/: every line a bench prints from its JSON appears in the
README as printed, so a figure cannot drift from its run."""
import dataclasses
import json
from pathlib import Path

import pytest

from app.bench.evaluate import format_table
from app.bench.footprint import Footprint
from app.bench.learning import LearningResult, format_row
from app.bench.predict import LatencyStats
from app.bench.simulate_report import format_rows
from engine.bench import format_bench

ROOT = Path(__file__).resolve().parents[1]


def _json(name: str):
    return json.loads((ROOT / "docs" / f"{name}.json").read_text(encoding="utf-8"))


def _eval_rows(name: str) -> list[str]:
    return format_table(_json(name)["systems"], "").splitlines()[2:]


def _predict_rows() -> list[str]:
    return [LatencyStats(**stats).line(label) for run in _json("bench_predict").values() for label, stats in run.items()]


def _engine_rows(name: str) -> list[str]:
    return format_bench(_json(name)).splitlines()[2:]


def _learning_rows() -> list[str]:
    names = {f.name for f in dataclasses.fields(LearningResult)}
    return [format_row(LearningResult(**{k: v for k, v in row.items() if k in names})) for row in _json("bench_learning")]


def _simulate_rows(name: str = "simulate") -> list[str]:
    data = _json(name)
    return format_rows(list(data["rows"].values()), "").splitlines()[2:] + data["summary"]


def _footprint_rows() -> list[str]:
    return [f"{label}: {line}" for label, run in _json("bench_footprint").items() for line in Footprint(**run).lines()]


def _federate_rows() -> list[str]:
    return _json("federate")["lines"]


@pytest.mark.parametrize("rows", [
    lambda: _eval_rows("eval_dd_test"), lambda: _eval_rows("eval_dev_users"), _predict_rows,
    lambda: _engine_rows("bench_engine"), lambda: _engine_rows("bench_engine_stream"), _learning_rows, _simulate_rows,
    lambda: _simulate_rows("users_69_92/simulate"), _footprint_rows, _federate_rows],
    ids=["eval DailyDialog test", "eval dev users", "bench predict", "bench engine", "bench engine --stream",
         "bench learning", "simulate", "simulate, users 69-92", "bench footprint", "federate"])
def test_every_figure_of_a_run_is_in_the_readme_as_printed(rows):
    readme = {line.strip() for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()}
    lines = rows()
    assert lines and [line for line in lines if line.strip() not in readme] == []
