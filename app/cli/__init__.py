"""The `pocketkb` command line: predict, eval, simulate, bench, pretrain, the personal model, and the terminal predictor.

Each subcommand parses its own arguments and calls into the headless parts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from models import BASE_DIR, GENERAL_REPLAY_PATH, PRIOR_PATH, TOKENIZER_PATH

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "corpus"
PRESAGE_DB = Path(__file__).resolve().parents[2] / "runs" / "presage" / "blogs_dd.db"
STOCK_PRESAGE_DB = Path("/usr/share/presage/database_en.db")


def _fail(message: str) -> int:
    print(f"pocketkb: {message}", file=sys.stderr)
    return 2


def _open_session(args: argparse.Namespace, background: bool = False, measure_costs: bool = False):
    from app.typing.loading import load_predictor
    from app.session import Session, SessionConfig
    from app.storage.store import Store

    config = SessionConfig(background=background, measure_costs=measure_costs)
    return Session(load_predictor(args.model), Store(args.data), config=config, base_dir=args.model)


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal"))


def _cmd_start(args: argparse.Namespace) -> int:
    """The window where there is a display, the terminal keyboard elsewhere."""
    if _has_display():
        return _cmd_gui(args)
    print("no display: starting the terminal keyboard (pocketkb gui needs a desktop)")
    return _cmd_interactive(args)


def _cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.app import run_window

    if not _has_display():
        return _fail("no display to open the window on (set DISPLAY, or use QT_QPA_PLATFORM=offscreen)")
    if getattr(args, "replay", None) and not Path(args.replay).exists():
        return _fail(f"no such text file: {args.replay}")
    session = _open_session(args, background=True, measure_costs=True)
    try:
        return run_window(session, getattr(args, "replay", None), getattr(args, "speed", 40),
                          getattr(args, "screenshot", None))
    finally:
        session.close()


def _cmd_predict(args: argparse.Namespace) -> int:
    from app.typing.loading import load_predictor
    from app.terminal import strip_line

    predictor = load_predictor(args.model)
    predictor.suggest(args.text)  # the first call pays for one-time set-up
    predictor.invalidate()
    t0 = time.perf_counter()
    strip = predictor.strip(args.text)
    ms = (time.perf_counter() - t0) * 1000
    print(strip_line(strip))
    print(f"{ms:.1f} ms")
    return 0


def _cmd_interactive(args: argparse.Namespace) -> int:
    from app.terminal import run_interactive

    session = _open_session(args, background=True)
    try:
        run_interactive(session)
    finally:
        session.close()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from app.bench.evaluate import SystemResult, format_table, perplexity, run_predictor
    from app.bench.texts import read_eval_texts
    from app.typing.loading import load_predictor

    if not Path(args.file).exists():
        return _fail(f"no such file: {args.file}")
    texts = read_eval_texts(args.file, args.chars, args.skip + args.users)[args.skip:]
    chars = sum(len(t.text) for t in texts)
    print(f"evaluating on {len(texts)} text(s), {chars:,} characters")
    predictor = load_predictor(args.model)
    systems = [SystemResult("pocketkb neural LM alone", run_predictor(texts, args.model, args.processes, 0.0)),
               SystemResult("pocketkb LM + count prior",
                            run_predictor(texts, args.model, args.processes, predictor.config.prior_weight))]
    if args.int8:
        systems.append(SystemResult("pocketkb LM + prior, int8 Linears", run_predictor(
            texts, args.model, args.processes, predictor.config.prior_weight, int8=True)))
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


def _cmd_presage_db(args: argparse.Namespace) -> int:
    from app.bench.presage_db import build_presage_db

    missing = [c for c in args.corpus if not Path(c).exists()]
    if missing:
        return _fail(f"no such corpus file: {missing[0]}")
    build_presage_db(args.corpus, args.out)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    return {"engine": _bench_engine, "predict": _bench_predict, "crash": _bench_crash,
            "soak": _bench_soak, "learning": _bench_learning}[args.target](args)


def _bench_learning(args: argparse.Namespace) -> int:
    from app.bench.learning import HEADER, format_row, run_learning, summary
    from app.learning.modes import MODES
    from app.bench.texts import read_eval_texts

    path = args.users or CORPUS_DIR / "blogs_users_dev.jsonl.xz"
    if not Path(path).exists():
        return _fail(f"no such users file: {path} (give one with --users)")
    unknown = [m for m in args.modes if m not in MODES or m == "off"]
    if unknown:
        return _fail(f"cannot measure learning in mode {unknown[0]!r}; modes: {', '.join(MODES[1:])}")
    texts = read_eval_texts(path, args.chars, args.skip + args.limit)[args.skip:]
    overrides = {"lr": {m: args.lr for m in args.modes}} if args.lr else {}
    if args.decay is not None:
        overrides["decay"] = {m: args.decay for m in args.modes}
    if args.segment:
        overrides["segment"] = args.segment
    print(HEADER, flush=True)
    try:
        results = run_learning(args.model, texts, args.modes, overrides, args.processes,
                               progress=lambda r: print(format_row(r), flush=True))
    except ValueError as e:
        return _fail(str(e))
    for line in summary(results):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from app.bench.texts import read_eval_texts
    from app.typing.loading import load_predictor
    from app.bench.soak import run_soak

    path = args.text or CORPUS_DIR / "dailydialog_test.txt.xz"
    if not Path(path).exists():
        return _fail(f"no such text file: {path} (give one with --text)")
    report = run_soak(load_predictor(args.model), read_eval_texts(path, args.keystrokes)[0].text, args.keystrokes)
    for line in report.lines():
        print(line)
    return 0


def _bench_crash(args: argparse.Namespace) -> int:
    import tempfile

    from app.bench.crash import run_crash_bench

    with tempfile.TemporaryDirectory(prefix="pocketkb-crash-") as folder:
        report = run_crash_bench(Path(folder), args.kills)
    for line in report.lines():
        print(line)
    return 0 if not report.problems and report.restarts_ok == report.kills else 1


def _bench_engine(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from app.learning.modes import MODES, mode
    from engine.bench import run_engine_bench
    from engine.dyneval import ModelReference
    from engine.scheme import BUILTIN_SCHEMES, UpdateScheme
    from engine.segments import Windowing, rows_after
    from models import SCHEMES_DIR
    from models.checkpoint import load_model, weights_sha256
    from models.general_replay import load as load_general
    from models.grad_stats import GRAD_STATS_FILE, load_grad_stats
    from models.tokenizer import BOS_ID, Tokenizer

    torch.set_num_threads(1)
    model = load_model(args.model)
    sparse = UpdateScheme.from_json((SCHEMES_DIR / "sparse.json").read_text())
    schemes = [*BUILTIN_SCHEMES.values(), sparse, dataclasses.replace(sparse, name="sparse-int8", frozen_int8=True)]
    if args.stream:  # the learner's steps: one segment after a remembered window of the base model's own text
        tokens = Tokenizer(TOKENIZER_PATH).encode(" ".join(load_general(GENERAL_REPLAY_PATH)))
        windowing = Windowing()
        batch = [torch.tensor([row]) for row, _ in rows_after([BOS_ID], tokens, windowing)][-(args.repeats + 3):]
        positions = windowing.segment
    else:
        batch = torch.randint(0, model.config.vocab_size, (8, 65), generator=torch.Generator().manual_seed(0))
        positions = None
    optimizers = {name: mode(name).optimizer() for name in MODES if name != "off"}
    optimizers["sparse-int8"] = optimizers["sparse"]
    stats = load_grad_stats(Path(args.model) / GRAD_STATS_FILE, weights_sha256(args.model))
    reference = ModelReference.of(model, stats.all_factors())
    result = run_engine_bench(model, batch, schemes, repeats=args.repeats, optimizer_of=optimizers.__getitem__,
                              reference=reference, positions=positions)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _bench_predict(args: argparse.Namespace) -> int:
    from app.bench.predict import measure, measure_checkout

    path = args.text or CORPUS_DIR / "dailydialog_test.txt.xz"
    if not Path(path).exists():
        return _fail(f"no such text file: {path} (give one with --text)")
    if args.baseline and not (Path(args.baseline) / "app" / "predictor.py").exists():
        return _fail(f"{args.baseline} is no checkout of this project (make one with git worktree add DIR REV)")
    mode = None if args.learning_mode == "off" else args.learning_mode
    runs = {}
    if args.baseline:  # first, so neither build has the machine warmer
        try:
            runs["baseline"] = measure_checkout(args.baseline, args.model, str(path), args.keystrokes, mode)
        except RuntimeError as err:
            return _fail(str(err))
    runs["this build"] = measure(args.model, str(path), args.keystrokes, mode)
    for name, results in runs.items():
        if args.baseline:
            print(f"{name}{f' ({args.baseline})' if name == 'baseline' else ''}:")
        for label, stats in results.items():
            print(stats.line(label))
        if mode:
            idle, busy = results["kv-cache reuse"], results[f"learning {mode}"]
            print(f"p95 while learning / idle: {busy.p95_ms / idle.p95_ms:.2f}x")
    if args.baseline:
        new, old = runs["this build"]["kv-cache reuse"], runs["baseline"]["kv-cache reuse"]
        print(f"this build / baseline, with KV-cache reuse: p95 {new.p95_ms / old.p95_ms:.2f}x, "
              f"model calls per keystroke {new.model_calls / old.model_calls:.2f}x")
    if args.json:
        data = {name: {k: vars(v) for k, v in results.items()} for name, results in runs.items()}
        Path(args.json).write_text(json.dumps(data if args.baseline else data["this build"], indent=2))
    return 0


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
            return _fail(f"corpus weight must be a number: {spec}")
        corpora.append(path)
    given = any(":" in spec for spec in args.corpus)  # none given: a resumed run keeps its checkpoint's mixture
    cfg = PretrainConfig(corpora=corpora, weights=weights if given else None, out_dir=args.out,
                         tokenizer=str(args.tokenizer),
                         minutes=args.minutes, total_tokens=args.total_tokens, seed=args.seed,
                         cache_dir=args.cache_dir, threads=args.threads)
    pretrain(cfg)
    return 0



def _cmd_build_prior(args: argparse.Namespace) -> int:
    from app.typing.words import lower_words
    from models.build.prior import PriorConfig, build_prior

    missing = [c for c in args.corpus if not Path(c).exists()]
    if missing:
        return _fail(f"no such corpus file: {missing[0]}")
    config = PriorConfig(max_words=args.max_words)
    try:
        tables = build_prior(args.corpus, args.out, lower_words, config)
    except ValueError as e:
        return _fail(str(e))
    rows = ", ".join(f"{len(level.next):,} {n}-grams" for n, level in enumerate(tables.levels, start=2))
    print(f"{len(tables.words):,} words, {rows} -> {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MB)")
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
        return _fail(f"no such corpus file: {corpus} (give one with --corpus)")
    out = Path(args.out or Path(args.model) / GRAD_STATS_FILE)
    torch.set_num_threads(1)
    model = load_model(args.model)
    try:
        stats = compute_grad_stats(model, Tokenizer(TOKENIZER_PATH), training_documents([corpus]),
                                   args.batches, args.rows)
    except ValueError as err:
        return _fail(str(err))
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
        return _fail(f"no such users file: {args.users}")
    users = user_texts(args.users, Tokenizer(TOKENIZER_PATH), args.skip, args.limit, args.chars)
    table, result = search(args.model, users, args.budget_kb * 1024, args.tokens)
    write_results(table, result, Path(args.out) if args.out else SCHEMES_DIR / "sparse.json", Path(args.docs))
    print(f"{result.method} search over {result.sets_planned} planned sets: {', '.join(c.candidate.name for c in result.chosen)}")
    print(f"estimated gain {result.estimated_gain:.4f} nats/token, measured {result.measured_gain:.4f}; "
          f"training memory {result.training_bytes / 1024:.0f} KiB of {args.budget_kb} KiB")
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    session = _open_session(args)
    session.reset()
    session.close()
    print(f"back to the base model: personal model and history removed from {session.store.folder}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    session = _open_session(args)
    try:
        session.export(args.path, with_history=args.with_history)
    except OSError as err:
        return _fail(f"cannot write {args.path}: {err.strerror}")
    finally:
        session.close()
    extra = " and history" if args.with_history else ""
    print(f"personal model{extra} written to {args.path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from app.storage.personal_file import PersonalFileError

    session = _open_session(args)
    try:
        session.import_file(args.path)
    except PersonalFileError as err:
        return _fail(f"not imported, nothing changed: {err}")
    finally:
        session.close()
    print(f"imported {args.path}: {len(session.learner.deltas())} personalised tensors, mode {session.learner.mode}")
    return 0


def _cmd_build_replay(args: argparse.Namespace) -> int:
    from models.checkpoint import load_model
    from models.build.replay import build
    from models.tokenizer import Tokenizer

    lines = build(load_model(args.model), Tokenizer(TOKENIZER_PATH), args.out, args.samples)
    print(f"{len(lines)} passages written by {args.model} -> {args.out}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from app.learning.modes import MODES
    from app.bench.texts import read_eval_texts
    from app.bench.simulate_report import report

    if not Path(args.users).exists():
        return _fail(f"no such users file: {args.users}")
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        return _fail(f"unknown mode {unknown[0]!r}; modes: {', '.join(MODES)}")
    texts = read_eval_texts(args.users, args.chars, args.skip + args.limit)[args.skip:]
    return report(texts, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocketkb", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BASE_DIR), help="model folder (default: the shipped base)")
    parser.add_argument("--data", help="folder of the personal model and history (default: the user data folder)")
    parser.set_defaults(func=_cmd_start)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", help="the keyboard window (the default where there is a display)")
    p.add_argument("--replay", help="type this text file into the window, taking suggestions as a user would")
    p.add_argument("--speed", type=int, default=40, help="replay speed in characters per second")
    p.add_argument("--screenshot", help="after the replay, save the window as this PNG and quit")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("terminal", help="the terminal keyboard: suggestions after each key, Tab accepts")
    p.set_defaults(func=_cmd_interactive)

    p = sub.add_parser("predict", help="print the three suggestions for a text and the time taken")
    p.add_argument("text", help="the text before the cursor")
    p.set_defaults(func=_cmd_predict)

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
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("presage-db", help="build Presage's n-gram database from the pretraining text")
    p.add_argument("--corpus", nargs="+", required=True, help="the pretraining corpus files")
    p.add_argument("--out", default=str(PRESAGE_DB))
    p.set_defaults(func=_cmd_presage_db)

    p = sub.add_parser("bench", help="benchmarks: predict (suggestion latency), engine (training step cost), "
                                     "crash (kill-and-restart safety), soak (a long session), learning (does "
                                     "learning a user's earlier text help on their later text)")
    p.add_argument("target", choices=["predict", "engine", "crash", "soak", "learning"])
    p.add_argument("--kills", type=int, default=50, help="crash: SIGKILLs of the learning child process")
    p.add_argument("--keystrokes", type=int, default=2000, help="predict, soak: keystrokes to type")
    p.add_argument("--repeats", type=int, default=20, help="engine: timed steps per scheme")
    p.add_argument("--stream", action="store_true", help="engine: step as the learner does, one segment of 8 tokens "
                                                         "at a time along a text, not one 8 x 65 batch")
    p.add_argument("--text", help="text to type (default: DailyDialog test from ../shared/corpus)")
    p.add_argument("--learning-mode", default="sparse", help="predict: also time keystrokes while this mode learns "
                                                            "in the background ('off' to skip)")
    p.add_argument("--baseline", help="predict: also measure another checkout's predictor first, in the same sitting "
                                      "(e.g. a worktree of the previous commit: git worktree add DIR HEAD~1)")
    p.add_argument("--users", help="learning: users .jsonl.xz file (default: the dev users in ../shared/corpus)")
    p.add_argument("--skip", type=int, default=20, help="learning: users to pass over first (20: not the eval users)")
    p.add_argument("--limit", type=int, default=4, help="learning: users to learn")
    p.add_argument("--chars", type=int, default=20_000, help="learning: characters per user")
    p.add_argument("--modes", nargs="+", default=["sparse"], help="learning: update modes to measure")
    p.add_argument("--lr", type=float, help="learning: learning rate of the measured modes (default: the registry's)")
    p.add_argument("--decay", type=float, help="learning: decay toward the base of the measured modes")
    p.add_argument("--segment", type=int, help="learning: tokens per segment")
    p.add_argument("--processes", type=int, default=2, help="learning: streams learned at once (one thread each)")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("pretrain", help="pretrain (or resume pretraining) the base model")
    p.add_argument("--corpus", nargs="+", required=True,
                   help="corpus files (.txt, .txt.xz, users .jsonl.xz), each optionally FILE:WEIGHT (without any "
                        "weight a resumed run keeps its checkpoint's mixture, a new one samples them equally)")
    p.add_argument("--out", default=str(BASE_DIR), help="checkpoint folder (resumed if it holds one)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this run")
    p.add_argument("--total-tokens", type=int, default=48_000_000, help="length of the learning-rate schedule")
    p.add_argument("--tokenizer", default=str(TOKENIZER_PATH))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--cache-dir", default="runs/tokens", help="where tokenised corpora are cached")
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 leaves a core to other work)")
    p.set_defaults(func=_cmd_pretrain)

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

    p = sub.add_parser("grad-stats", help="mean squared gradients of the model on pretraining text, "
                                          "for dynamic evaluation")
    p.add_argument("--corpus", help="corpus file (default: blogs_pretrain.txt.xz in ../shared/corpus)")
    p.add_argument("--batches", type=int, default=24)
    p.add_argument("--rows", type=int, default=4, help="windows of block_size + 1 tokens per batch")
    p.add_argument("--out", help="file to write (default: grad_stats.safetensors in the --model folder)")
    p.set_defaults(func=_cmd_grad_stats)

    p = sub.add_parser("simulate", help="replay users' posts through the learner, per update mode, beside Presage")
    p.add_argument("--users", required=True, help="users .jsonl.xz file (posts are typed in date order)")
    p.add_argument("--skip", type=int, default=0, help="users to pass over first (20: the tuning users 21-)")
    p.add_argument("--limit", type=int, default=12, help="users to replay")
    p.add_argument("--word-stats", type=float, help="tuning: the share of the word statistics in suggestions once "
                                                    "the personal model has learned (default: the session's)")
    p.add_argument("--chars", type=int, default=20_000, help="characters per user")
    p.add_argument("--modes", nargs="+", default=["off", "sparse", "full"], help="update modes to compare")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--presage-db", default=str(PRESAGE_DB), help="Presage database built from our pretraining text")
    p.add_argument("--no-presage", action="store_true", help="leave Presage out")
    p.add_argument("--docs", default="docs", help="where the JSON and the plot go")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("reset", help="back to the base model: delete the personal model and the typed history")
    p.set_defaults(func=_cmd_reset)

    p = sub.add_parser("export", help="write the personal model (and optionally the history) to one file")
    p.add_argument("path")
    p.add_argument("--with-history", action="store_true", help="include the typed sentences and blocked words")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="replace the personal model with an exported file, after checking it")
    p.add_argument("path")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("build-replay", help="write the base model's own text, replayed against forgetting")
    p.add_argument("--out", default=str(GENERAL_REPLAY_PATH))
    p.add_argument("--samples", type=int, default=256)
    p.set_defaults(func=_cmd_build_replay)

    p = sub.add_parser("build-prior", help="count the pretraining text into the compact word prior")
    p.add_argument("--corpus", nargs="+", required=True, help="the pretraining corpus files")
    p.add_argument("--out", default=str(PRIOR_PATH))
    p.add_argument("--max-words", type=int, default=60_000)
    p.set_defaults(func=_cmd_build_prior)
    return parser


def main(argv: list[str] | None = None) -> int:
    from models.grad_stats import GradStatsError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GradStatsError as err:  # a base model without (or with stale) gradient statistics cannot learn
        return _fail(str(err))


if __name__ == "__main__":
    sys.exit(main())
