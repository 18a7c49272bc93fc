"""`pocketkb federate`: federated learning of the shared base on this machine's loopback (Flower's SuperLink and
one SuperNode per device), then a comparison run and the held-out score of every round's base.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from app.cli.common import CORPUS_DIR, fail


def _cmd_federate(args: argparse.Namespace) -> int:
    from app.bench.federation import comparison, run_federation, write_devices, write_report
    from app.bench.texts import read_eval_texts
    from app.federate.launcher import FederationError
    from app.federate.settings import FederationSettings
    from models.checkpoint import load_model

    if args.first_client <= args.eval_users:
        return fail(f"clients must not be held-out users: --first-client must be above --eval-users "
                    f"({args.eval_users})")
    for path in filter(None, [args.users, args.grad_corpus]):
        if not Path(path).exists():
            return fail(f"no such file: {path}")
    root = Path(args.out).resolve()
    budget = args.budget if args.budget is not None else load_model(args.model).num_params() // 32
    settings = FederationSettings(
        base=str(Path(args.model).resolve()), out=str(root / "server"), rounds=args.rounds, nodes=args.clients,
        mode=args.mode, budget=budget, chars=args.chars, round_timeout=args.round_timeout,
        min_replies=args.min_replies or (args.clients + 1) // 2, max_norm=args.max_norm, server_lr=args.server_lr,
        dp_noise=args.dp_noise, grad_corpus=str(Path(args.grad_corpus).resolve()) if args.grad_corpus else "",
        secagg=args.secagg)
    compare = comparison(settings, args.compare, args.compare_rounds) if args.compare != "none" else None
    devices = write_devices(args.users, args.first_client - 1, args.clients, args.chars * args.rounds, root / "devices")
    texts = read_eval_texts(args.users, args.eval_chars, users=args.eval_users)
    print(f"clients: users {args.first_client}-{args.first_client + args.clients - 1}; held out: users "
          f"1-{args.eval_users}; {args.mode} uploads at most {budget:,} values per round", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the daemons on the way out, as Ctrl+C does
    try:
        report = run_federation(settings, compare, devices, texts, root, args.processes, args.timeout * 60,
                                lambda line: print(line, flush=True))
    except FederationError as err:
        return fail(str(err))
    print("\n".join(report.lines()))
    if args.docs:
        print("written: " + ", ".join(str(p) for p in write_report(report, Path(args.docs))))
    print(f"the shared base after round {args.rounds}: {report.per_round[-1].folder}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("federate", help="federated learning of the shared base over dev users on loopback (Flower)")
    p.add_argument("--users", default=str(CORPUS_DIR / "blogs_users_dev.jsonl.xz"), help="users .jsonl.xz file")
    p.add_argument("--clients", type=int, default=20, help="devices, one dev user each")
    p.add_argument("--first-client", type=int, default=21, help="the first client's user number (1-based)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--chars", type=int, default=4000, help="characters of its user's text a device learns per round")
    p.add_argument("--mode", default="sparse", help="the update mode devices learn with")
    p.add_argument("--budget", type=int, help="values a device uploads per round (default: the model's parameters "
                                              "/ 32; 0: all it changed)")
    p.add_argument("--compare", default="full", help="the comparison run's update mode (uploading all it changes), "
                                                     "or none")
    p.add_argument("--compare-rounds", type=int, default=1, help="rounds of the comparison run")
    p.add_argument("--eval-users", type=int, default=12, help="held-out users 1..N scored with every round's base")
    p.add_argument("--eval-chars", type=int, default=5000, help="characters of each held-out user's text")
    p.add_argument("--min-replies", type=int, help="accepted deltas a round needs (default: half the clients)")
    p.add_argument("--round-timeout", type=float, default=900.0, help="seconds a round waits for devices")
    p.add_argument("--max-norm", type=float, default=2.0, help="L2 norm each delta is clipped to")
    p.add_argument("--server-lr", type=float, default=1.0, help="the base moves by this times the mean delta")
    p.add_argument("--dp-noise", type=float, default=0.0, help="Gaussian noise multiplier on the mean delta")
    p.add_argument("--secagg", action="store_true", help="aggregate with Flower's SecAgg+ (the server sees the sum)")
    p.add_argument("--grad-corpus", default=str(CORPUS_DIR / "blogs_pretrain.txt.xz"),
                   help="text each round's gradient statistics are measured on ('': keep the shipped base's)")
    p.add_argument("--processes", type=int, default=2, help="processes scoring the held-out users")
    p.add_argument("--timeout", type=float, default=60.0, help="minutes a run may take")
    p.add_argument("--out", default="runs/federate", help="working folder: devices, Flower homes, checkpoints")
    p.add_argument("--docs", default="", help="folder for federate.json and federate_nats.svg")
    p.set_defaults(func=_cmd_federate)
