"""The build commands: pretraining, and the files tied to a base model (count prior, gradient statistics, replay
text, the searched sparse scheme).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.cli.common import CORPUS_DIR, fail
from models import BASE_DIR, GENERAL_REPLAY_PATH, PRIOR_PATH, TOKENIZER_PATH


def _relative(path: str | Path) -> str:
    """`path` relative to the working directory when it lies inside it: checkpoints record no path of this machine."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from models.build.pretrain import PretrainConfig, pretrain

    corpora, weights = [], []
    for spec in args.corpus:
        path, _, weight = spec.partition(":")
        if not Path(path).exists():
            print(f"pocketkb pretrain: no such corpus file: {path}", file=sys.stderr)
            return 2
        try:
            weights.append(float(weight) if weight else 1.0)
        except ValueError:
            return fail(f"corpus weight must be a number: {spec}")
        corpora.append(path)
    if args.grow_from and not (Path(args.grow_from) / "config.json").exists():
        return fail(f"--grow-from {args.grow_from}: no checkpoint there (config.json is missing)")
    if args.grow_from and args.layers is None:
        return fail("--grow-from needs --layers: the number of blocks to grow to")
    given = any(":" in spec for spec in args.corpus)  # none given: a resumed run keeps its checkpoint's mixture
    shape = {"n_layer": args.layers, "n_embd": args.width, "n_head": args.heads}
    cfg = PretrainConfig(corpora=corpora, weights=weights if given else None, out_dir=args.out,
                         tokenizer=_relative(args.tokenizer),
                         minutes=args.minutes, total_tokens=args.total_tokens, seed=args.seed,
                         cooldown_tokens=args.cooldown_tokens, final_lr=args.final_lr, lr=args.lr,
                         grow_from=args.grow_from,
                         cache_dir=args.cache_dir, threads=args.threads)
    cfg.model.update({k: v for k, v in shape.items() if v is not None})
    pretrain(cfg)
    return 0


def _cmd_build_prior(args: argparse.Namespace) -> int:
    from app.typing.words import lower_words
    from models.build.prior import PriorConfig, build_prior

    missing = [c for c in args.corpus if not Path(c).exists()]
    if missing:
        return fail(f"no such corpus file: {missing[0]}")
    try:
        config = PriorConfig(max_words=args.max_words, min_counts=tuple(args.min_counts),
                             prune_threshold=args.prune_threshold)
        tables = build_prior(args.corpus, args.out, lower_words, config)
    except ValueError as e:
        return fail(str(e))
    rows = ", ".join(f"{len(level.next):,} {n}-grams" for n, level in enumerate(tables.levels, start=2))
    print(f"{len(tables.words):,} words, {rows} -> {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_grad_stats(args: argparse.Namespace) -> int:
    import torch

    from models.checkpoint import load_model, weights_sha256
    from models.build.corpus import training_documents
    from models.build.grad_stats import compute_grad_stats, save_grad_stats
    from models.grad_stats import GRAD_STATS_FILE
    from models.tokenizer import Tokenizer

    corpus = Path(args.corpus or CORPUS_DIR / "blogs_pretrain.txt.xz")
    if not corpus.exists():
        return fail(f"no such corpus file: {corpus} (give one with --corpus)")
    out = Path(args.out or Path(args.model) / GRAD_STATS_FILE)
    torch.set_num_threads(1)
    model = load_model(args.model)
    try:
        stats = compute_grad_stats(model, Tokenizer(TOKENIZER_PATH), training_documents([corpus]),
                                   args.batches, args.rows)
    except ValueError as err:
        return fail(str(err))
    tokens = args.batches * args.rows * model.config.block_size
    save_grad_stats(out, stats, weights_sha256(args.model),
                    {"batches": args.batches, "rows": args.rows, "tokens": tokens, "corpus": corpus.name})
    covered = len(list(model.parameters()))
    print(f"mean squared gradients of {covered} parameters ({model.num_params():,} values) from {tokens:,} tokens "
          f"-> {out} ({out.stat().st_size / 1024:.1f} KiB)")
    return 0


def _cmd_search_scheme(args: argparse.Namespace) -> int:
    from app.bench.scheme_search import search, user_texts, write_results
    from models import SCHEMES_DIR
    from models.tokenizer import Tokenizer

    if not Path(args.users).exists():
        return fail(f"no such users file: {args.users}")
    users = user_texts(args.users, Tokenizer(TOKENIZER_PATH), args.skip, args.limit, args.chars)
    table, result = search(args.model, users, args.budget_kb * 1024, args.tokens)
    write_results(table, result, Path(args.out) if args.out else SCHEMES_DIR / "sparse.json", Path(args.docs))
    print(f"{result.method} search over {result.sets_planned} planned sets: {', '.join(c.candidate.name for c in result.chosen)}")
    print(f"estimated gain {result.estimated_gain:.4f} nats/token, measured {result.measured_gain:.4f}; "
          f"training memory {result.training_bytes / 1024:.0f} KiB of {args.budget_kb} KiB")
    return 0


def _cmd_build_replay(args: argparse.Namespace) -> int:
    from models.checkpoint import load_model
    from models.build.replay import build
    from models.tokenizer import Tokenizer

    lines = build(load_model(args.model), Tokenizer(TOKENIZER_PATH), args.out, args.samples)
    print(f"{len(lines)} passages written by {args.model} -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain (or resume pretraining) the base model")
    p.add_argument("--corpus", nargs="+", required=True,
                   help="corpus files (.txt, .txt.xz, users .jsonl.xz), each optionally FILE:WEIGHT (without any "
                        "weight a resumed run keeps its checkpoint's mixture, a new one samples them equally)")
    p.add_argument("--out", default=str(BASE_DIR), help="checkpoint folder (resumed if it holds one)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this run")
    p.add_argument("--total-tokens", type=int, default=48_000_000, help="length of the learning-rate schedule")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate of the cosine")
    p.add_argument("--cooldown-tokens", type=int, default=0,
                   help="then this many more tokens while the rate falls from the cosine's floor (1e-4) to --final-lr")
    p.add_argument("--final-lr", type=float, default=0.0, help="the rate at the end of the cooldown")
    p.add_argument("--tokenizer", default=str(TOKENIZER_PATH))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--cache-dir", default="runs/tokens", help="where tokenised corpora are cached")
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 leaves a core to other work)")
    p.add_argument("--layers", type=int, help="blocks of a new model (default 4; a resumed run keeps its own)")
    p.add_argument("--width", type=int, help="embedding width of a new model (default 256)")
    p.add_argument("--heads", type=int, help="attention heads of a new model (default 4)")
    p.add_argument("--grow-from", help="a new model starts as this trained checkpoint grown to --layers blocks, "
                                       "computing what it computed (its width and heads kept)")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("build-prior", help="count the pretraining text into the compact word prior")
    p.add_argument("--corpus", nargs="+", required=True, help="the pretraining corpus files")
    p.add_argument("--out", default=str(PRIOR_PATH))
    p.add_argument("--max-words", type=int, default=60_000)
    p.add_argument("--min-counts", type=int, nargs="+", default=[1, 2, 2],
                   help="a 2-, 3-, 4-gram is kept if seen at least this often")
    p.add_argument("--prune-threshold", type=float, help="then keep an n-gram only if its raw count x log(p / p "
                                                         "backed off) reaches this (weighted-difference pruning)")
    p.set_defaults(func=_cmd_build_prior)

    p = sub.add_parser("grad-stats", help="mean squared gradients of the model on pretraining text, "
                                          "for dynamic evaluation")
    p.add_argument("--corpus", help="corpus file (default: blogs_pretrain.txt.xz in ../shared/corpus)")
    p.add_argument("--batches", type=int, default=24)
    p.add_argument("--rows", type=int, default=4, help="windows of block_size + 1 tokens per batch")
    p.add_argument("--out", help="file to write (default: grad_stats.safetensors in the --model folder)")
    p.set_defaults(func=_cmd_grad_stats)

    p = sub.add_parser("search-scheme", help="contribution analysis and search for the sparse update scheme")
    p.add_argument("--budget-kb", type=int, required=True, help="training-memory budget of the scheme")
    p.add_argument("--users", required=True, help="users .jsonl.xz file (each user's stream is learned test-then-train)")
    p.add_argument("--skip", type=int, default=20, help="users to pass over first (20: not the evaluation users)")
    p.add_argument("--limit", type=int, default=4, help="users to use")
    p.add_argument("--chars", type=int, default=20_000, help="characters per user")
    p.add_argument("--tokens", type=int, default=2400, help="tokens of each user's stream each candidate learns")
    p.add_argument("--out", help="scheme JSON to write (default: the shipped models/schemes/sparse.json)")
    p.add_argument("--docs", default="docs", help="where the contribution table and plot go")
    p.set_defaults(func=_cmd_search_scheme)

    p = sub.add_parser("build-replay", help="write the base model's own text, replayed against forgetting")
    p.add_argument("--out", default=str(GENERAL_REPLAY_PATH))
    p.add_argument("--samples", type=int, default=256)
    p.set_defaults(func=_cmd_build_replay)
