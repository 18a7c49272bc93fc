"""What the command groups share: the corpus and Presage database locations, the error line, and opening a session
on the `--model` and `--data` folders.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "corpus"
PRESAGE_DB = Path(__file__).resolve().parents[2] / "runs" / "presage" / "blogs_dd.db"
STOCK_PRESAGE_DB = Path("/usr/share/presage/database_en.db")


def fail(message: str) -> int:
    print(f"pocketkb: {message}", file=sys.stderr)
    return 2


def open_session(args: argparse.Namespace, background: bool = False, measure_costs: bool = False,
                 read_only: bool = False):
    """The data folder's session on the `--model` base. `read_only`: only to look (beside a running keyboard), so
    nothing is saved. A folder another keyboard holds raises StoreBusyError (`main` prints it)."""
    from app.typing.loading import load_predictor
    from app.session import Session, SessionConfig
    from app.storage.store import Store

    config = SessionConfig(background=background, measure_costs=measure_costs, autosave=not read_only)
    store = Store(args.data, read_only=read_only)
    return Session(load_predictor(args.model), store, config=config, base_dir=args.model)
