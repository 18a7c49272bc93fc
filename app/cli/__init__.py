"""The `pocketkb` command line: the keyboard (window, terminal, predict, personal model), evaluation, benchmarks and
the build of the base model's files; one module per command group.
"""
from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from app.cli import bench, build, evaluate, federate, keyboard
from app.cli.common import fail
from models import BASE_DIR


def _version() -> str:
    try:
        return version("pocketkb")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocketkb", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pocketkb {_version()}")
    parser.add_argument("--model", default=str(BASE_DIR), help="model folder (default: the shipped base)")
    parser.add_argument("--data", help="folder of the personal model and history (default: the user data folder)")
    parser.set_defaults(func=keyboard.start)
    sub = parser.add_subparsers(dest="command")
    for group in (keyboard, evaluate, bench, build, federate):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.storage.history import HistoryError
    from app.storage.store import StoreBusyError
    from models.grad_stats import GradStatsError
    from models.prior_tables import PriorFileError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GradStatsError, StoreBusyError, HistoryError, PriorFileError) as err:
        return fail(str(err))  # stale gradient statistics, a folder in use, a prior that cannot be read ...
