"""`pocketkb bench TARGET`: predict (suggestion latency), engine (training step cost), crash (kill-and-restart
safety), soak (a long session), footprint (the window's memory), learning (does learning a user's earlier text help
on their later text); each target with its own options.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.common import CORPUS_DIR, fail
from models import BASE_DIR, GENERAL_REPLAY_PATH, TOKENIZER_PATH


def _bench_predict(args: argparse.Namespace) -> int:
    from app.bench.predict import measure, measure_checkout

    path = args.text or CORPUS_DIR / "dailydialog_test.txt.xz"
    if not Path(path).exists():
        return fail(f"no such text file: {path} (give one with --text)")
    if args.baseline and not (Path(args.baseline) / "app" / "typing" / "predictor.py").exists():
        return fail(f"{args.baseline} is no checkout of this project (make one with git worktree add DIR REV)")
    mode = None if args.learning_mode == "off" else args.learning_mode
    runs = {}
    if args.baseline:  # first, so neither build has the machine warmer
        # the baseline as it ships, its own base model with it, unless --model names one for both
        own = Path(args.model).resolve() == BASE_DIR.resolve()
        model = Path(args.baseline) / "models" / "base" if own else args.model
        try:
            runs["baseline"] = measure_checkout(args.baseline, str(model), str(path), args.keystrokes, mode)
        except RuntimeError as err:
            return fail(str(err))
    runs["this build"] = measure(args.model, str(path), args.keystrokes, mode)
    for name, results in runs.items():
        if args.baseline:
            print(f"{name}{f' ({_build_name(args.baseline)})' if name == 'baseline' else ''}:")
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


def _build_name(checkout: str) -> str:
    """A checkout as its commit ("commit 1a2b3c4"), not as a path of this machine; the folder's name if no git."""
    import subprocess

    done = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"commit {done.stdout.strip()}" if done.returncode == 0 else Path(checkout).name


def _bench_engine(args: argparse.Namespace) -> int:
    import copy
    import dataclasses

    import torch

    from app.learning.modes import MODES, mode
    from engine.bench import run_engine_bench
    from engine.dyneval import ModelReference
    from engine.segments import Windowing, rows_after
    from models.checkpoint import load_model, weights_sha256
    from models.general_replay import load as load_general
    from models.grad_stats import GRAD_STATS_FILE, load_grad_stats
    from models.tokenizer import BOS_ID, Tokenizer

    torch.set_num_threads(1)
    model = load_model(args.model)
    schemes = [mode(name).scheme() for name in MODES if mode(name).learns]
    sparse = mode("sparse").scheme()
    schemes.append(dataclasses.replace(sparse, name="sparse-int8", frozen_int8=True))
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
    result = run_engine_bench(lambda: copy.deepcopy(model).staged(), batch, schemes, repeats=args.repeats,
                              optimizer_of=optimizers.__getitem__,
                              reference=reference, positions=positions)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _bench_crash(args: argparse.Namespace) -> int:
    import tempfile

    from app.bench.crash import run_crash_bench

    with tempfile.TemporaryDirectory(prefix="pocketkb-crash-") as folder:
        report = run_crash_bench(Path(folder), args.kills)
    for line in report.lines():
        print(line)
    return 0 if not report.problems and report.restarts_ok == report.kills else 1


def _bench_soak(args: argparse.Namespace) -> int:
    from app.bench.texts import read_eval_texts
    from app.typing.loading import load_predictor
    from app.bench.soak import run_soak

    path = args.text or CORPUS_DIR / "dailydialog_test.txt.xz"
    if not Path(path).exists():
        return fail(f"no such text file: {path} (give one with --text)")
    report = run_soak(load_predictor(args.model), read_eval_texts(path, args.keystrokes)[0].text, args.keystrokes)
    for line in report.lines():
        print(line)
    return 0


def _bench_footprint(args: argparse.Namespace) -> int:
    from importlib import resources

    from app.bench.footprint import measure_footprint

    path = Path(args.text) if args.text else Path(str(resources.files("assets") / "demo.txt"))
    if not path.is_file():
        return fail(f"no such text file: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    builds = ([("baseline", args.baseline)] if args.baseline else []) + [("this build", None)]
    runs = {}
    for label, checkout in builds:
        try:
            runs[label] = measure_footprint(args.model, text, checkout)
        except RuntimeError as err:
            return fail(f"the {label}'s window could not be measured: {err}")
        for line in runs[label].lines():
            print(f"{label}: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps({label: vars(run) for label, run in runs.items()}, indent=2))
    return 0


def _bench_learning(args: argparse.Namespace) -> int:
    from app.bench.learning import HEADER, format_row, run_learning, summary
    from app.learning.modes import MODES, mode
    from app.bench.texts import read_eval_texts

    path = args.users or CORPUS_DIR / "blogs_users_dev.jsonl.xz"
    if not Path(path).exists():
        return fail(f"no such users file: {path} (give one with --users)")
    learning = [name for name in MODES if mode(name).learns]
    unknown = [m for m in args.modes if m not in learning]
    if unknown:
        return fail(f"cannot measure learning in mode {unknown[0]!r}; modes: {', '.join(learning)}")
    texts = read_eval_texts(path, args.chars, args.skip + args.limit)[args.skip:]
    overrides = {"lr": {m: args.lr for m in args.modes}} if args.lr else {}
    if args.decay is not None:
        overrides["decay"] = {m: args.decay for m in args.modes}
    if args.segment:
        overrides["segment"] = args.segment
    if args.context_keep:
        overrides["context_keep"] = args.context_keep
    print(HEADER, flush=True)
    try:
        results = run_learning(args.model, texts, args.modes, overrides, args.processes,
                               progress=lambda r: print(format_row(r), flush=True))
    except ValueError as e:
        return fail(str(e))
    for line in summary(results):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=2))
    if args.frontier:
        from app.bench.learning import frontier_points
        from app.bench.plot import scatter_svg

        title = f"Gain against cost: {len(texts)} users x {args.chars:,} characters, one thread each"
        Path(args.frontier).write_text(scatter_svg(frontier_points(results), title, "learner's ms per segment",
                                                   "last-quarter gain, nats/token"))
        print(f"written: {args.frontier}")
    return 0


def _text_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", help="text to type (default: DailyDialog test from ../shared/corpus)")


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks: predict, engine, crash, soak, footprint, learning")
    targets = bench.add_subparsers(dest="target", required=True)

    p = targets.add_parser("predict", help="suggestion latency and model calls per keystroke")
    p.add_argument("--keystrokes", type=int, default=2000, help="keystrokes to type")
    _text_option(p)
    p.add_argument("--learning-mode", default="sparse", help="also time keystrokes while this mode learns "
                                                            "in the background ('off' to skip)")
    p.add_argument("--baseline", help="also measure another checkout's predictor, with its own base model unless "
                                      "--model is given, first, in the same sitting (e.g. a worktree of the "
                                      "previous commit: git worktree add DIR HEAD~1)")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(func=_bench_predict)

    p = targets.add_parser("engine", help="training step time and memory per update scheme")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per scheme")
    p.add_argument("--stream", action="store_true", help="step as the learner does, one segment of 8 tokens "
                                                         "at a time along a text, not one 8 x 65 batch")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(func=_bench_engine)

    p = targets.add_parser("crash", help="kill the learning child process and check what restarts")
    p.add_argument("--kills", type=int, default=50, help="SIGKILLs of the learning child process")
    p.set_defaults(func=_bench_crash)

    p = targets.add_parser("soak", help="a long typing session while learning: latency and memory growth")
    p.add_argument("--keystrokes", type=int, default=2000, help="keystrokes to type")
    _text_option(p)
    p.set_defaults(func=_bench_soak)

    p = targets.add_parser("footprint", help="the window's memory after start-up and after learning a text, and the "
                                             "count prior's size")
    p.add_argument("--text", help="text to replay (default: the demo text the window ships)")
    p.add_argument("--baseline", help="also measure another checkout's window first (git worktree add DIR REV)")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(func=_bench_footprint)

    p = targets.add_parser("learning", help="does learning a user's earlier text lower nats on their later text")
    p.add_argument("--users", help="users .jsonl.xz file (default: the dev users in ../shared/corpus)")
    p.add_argument("--skip", type=int, default=20, help="users to pass over first (20: not the eval users)")
    p.add_argument("--limit", type=int, default=4, help="users to learn")
    p.add_argument("--chars", type=int, default=20_000, help="characters per user")
    p.add_argument("--modes", nargs="+", default=["sparse"], help="update modes to measure")
    p.add_argument("--lr", type=float, help="learning rate of the measured modes (default: the registry's)")
    p.add_argument("--decay", type=float, help="decay toward the base of the measured modes")
    p.add_argument("--segment", type=int, help="tokens per segment")
    p.add_argument("--context-keep", type=int, help="tokens of context a window jump keeps (tuning)")
    p.add_argument("--frontier", help="write the modes' gain against their time per segment here (SVG)")
    p.add_argument("--processes", type=int, default=2, help="streams learned at once (one thread each)")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(func=_bench_learning)
