"""The evaluation commands: `eval` (keystroke savings and perplexity, beside Presage), `simulate` (users' posts
through the learner, per update mode) and `presage-db` (the peer's database from our pretraining text).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from app.cli.common import PRESAGE_DB, STOCK_PRESAGE_DB, fail
from models import PRIOR_PATH


def _cmd_eval(args: argparse.Namespace) -> int:
    from app.bench.evaluate import SystemResult, format_table, perplexity, run_predictor
    from app.bench.texts import read_eval_texts
    from app.typing.loading import load_predictor

    if not Path(args.file).exists():
        return fail(f"no such file: {args.file}")
    texts = read_eval_texts(args.file, args.chars, args.skip + args.users)[args.skip:]
    chars = sum(len(t.text) for t in texts)
    print(f"evaluating on {len(texts)} text(s), {chars:,} characters")
    predictor = load_predictor(args.model, prior_path=args.prior)
    shipped = predictor.config.mix
    with_prior = replace(shipped, text_words=0.0, text_pairs=0.0)
    runs = [("pocketkb neural LM alone", replace(with_prior, prior_weight=0.0), False),
            ("pocketkb LM + count prior", with_prior, False), ("pocketkb LM + prior + text cache", shipped, False)]
    if args.int8:
        runs.append(("pocketkb shipped mix, int8 Linears", shipped, True))
    systems = [SystemResult(name, run_predictor(texts, args.model, args.processes, mix, int8, args.prior,
                                                  desc=name))
               for name, mix, int8 in runs]
    systems += _presage_systems(texts, args, frozenset(predictor.index.words))
    rows = [s.to_dict() for s in systems]
    ppl = perplexity(predictor.model, predictor.tokenizer, texts)
    title = f"{Path(args.file).name}: {len(texts)} text(s), {chars:,} chars, 3 suggestions, no learning"
    print(format_table(rows, title))
    print(f"perplexity {ppl['perplexity']:.2f} per token, {ppl['bits_per_char']:.3f} bits per character")
    if args.json:
        Path(args.json).write_text(json.dumps({"file": str(args.file), "texts": len(texts), "chars": chars,
                                               "systems": rows, **ppl}, indent=2))
    return 0


def _presage_systems(texts: list, args: argparse.Namespace, known: frozenset[str]) -> list:
    """Presage with its stock database and with one built from our pretraining text, learning off; its suggestions
    are checked against the same `known` words as ours."""
    from app.bench.evaluate import SystemResult
    from app.bench.presage_eval import presage_ksr
    from app.bench.presage_peer import presage_available

    if args.no_presage:
        return []
    if not presage_available():
        print("Presage is not installed (make presage): its rows are left out")
        return []
    out = []
    for name, db in (("Presage, stock database", STOCK_PRESAGE_DB),
                     ("Presage, DB from our pretraining text", Path(args.presage_db))):
        if not db.exists():
            print(f"{db} is missing (pocketkb presage-db builds it): '{name}' is left out")
            continue
        out.append(SystemResult(name, presage_ksr([t.text for t in texts], db, processes=args.processes,
                                                  known=known)))
    return out


def _cmd_simulate(args: argparse.Namespace) -> int:
    from app.learning.modes import MODES
    from app.bench.texts import read_eval_texts
    from app.bench.simulate_report import report

    if not Path(args.users).exists():
        return fail(f"no such users file: {args.users}")
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        return fail(f"unknown mode {unknown[0]!r}; modes: {', '.join(MODES)}")
    texts = read_eval_texts(args.users, args.chars, args.skip + args.limit)[args.skip:]
    return report(texts, args)


def _cmd_presage_db(args: argparse.Namespace) -> int:
    from app.bench.presage_db import build_presage_db

    missing = [c for c in args.corpus if not Path(c).exists()]
    if missing:
        return fail(f"no such corpus file: {missing[0]}")
    build_presage_db(args.corpus, args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="keystroke savings, next-word accuracy and perplexity on a text or users file")
    p.add_argument("file", help="a .txt/.txt.xz file or a users .jsonl.xz file")
    p.add_argument("--chars", type=int, default=20_000, help="characters per text (per user for a users file)")
    p.add_argument("--users", type=int, default=20, help="users to take from a users file")
    p.add_argument("--skip", type=int, default=0, help="users to pass over first (20: the tuning users 21-28 next)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--presage-db", default=str(PRESAGE_DB), help="Presage database built from our pretraining text")
    p.add_argument("--no-presage", action="store_true", help="leave Presage out")
    p.add_argument("--int8", action="store_true", help="also with Linear weights rounded to int8 (engine option)")
    p.add_argument("--prior", default=str(PRIOR_PATH), help="count prior to mix in (default: the shipped one)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("simulate", help="replay users' posts through the learner, per update mode, beside Presage")
    p.add_argument("--users", required=True, help="users .jsonl.xz file (posts are typed in date order)")
    p.add_argument("--skip", type=int, default=0, help="users to pass over first (20: the tuning users 21-)")
    p.add_argument("--limit", type=int, default=12, help="users to replay")
    p.add_argument("--word-stats", type=float, help="tuning: the share of the word statistics in suggestions once "
                                                    "the personal model has learned (default: the session's)")
    p.add_argument("--new-words", type=float, help="tuning: the factor on words the user never typed once the "
                                                   "personal model has learned (default: the session's)")
    p.add_argument("--mix-rate", type=float, help="tuning: the step size of the adaptive mixture weights "
                                                  "(default: the shipped one; 0 keeps them fixed)")
    p.add_argument("--lr", type=float, help="tuning: learning rate of the learning modes (default: the registry's)")
    p.add_argument("--context-keep", type=int, help="tuning: tokens of context the learner's window keeps when it "
                                                     "jumps (default: the learner's)")
    p.add_argument("--typed-rows", choices=("on", "off"), help="tuning: whether a tied embedding learns only the "
                                                              "rows of tokens the user typed (default: the learner's)")
    p.add_argument("--chars", type=int, default=20_000, help="characters per user")
    p.add_argument("--modes", nargs="+", default=["off", "sparse", "full"], help="update modes to compare")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--presage-db", default=str(PRESAGE_DB), help="Presage database built from our pretraining text")
    p.add_argument("--no-presage", action="store_true", help="leave Presage out")
    p.add_argument("--docs", default="docs", help="where the JSON and the plot go")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("presage-db", help="build Presage's n-gram database from the pretraining text")
    p.add_argument("--corpus", nargs="+", required=True, help="the pretraining corpus files")
    p.add_argument("--out", default=str(PRESAGE_DB))
    p.set_defaults(func=_cmd_presage_db)
