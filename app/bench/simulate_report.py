"""The replay benchmark's report: per-mode table beside Presage learning online, the gains asked of `sparse`, JSON, plot.

KSR over the stream is pooled over users in tenths of each user's words; gains are means of per-user differences.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.bench.ksr import KsrResult, tokens
from app.bench.texts import EvalText
from app.bench.paired import PairedGain, paired_gain
from app.bench.plot import curve_svg
from app.bench.simulate import TAIL, ReplaySystem, StreamResult, run_replay

BINS = 10


def binned_ksr(results: list[KsrResult], bins: int = BINS) -> list[float]:
    """KSR in each tenth of the stream, pooled over users (each user's words cut into tenths)."""
    cost, plain = [0] * bins, [0] * bins
    for result in results:
        n = len(result.curve)
        for i, (c, p) in enumerate(result.curve):
            b = min(bins - 1, i * bins // max(n, 1))
            cost[b] += c
            plain[b] += p
    return [100.0 * (1 - c / p) if p else 0.0 for c, p in zip(cost, plain)]


def _total(results: list[KsrResult]) -> KsrResult:
    total = KsrResult()
    for r in results:
        total.add(r)
    return total


def mode_row(mode: str, streams: list[StreamResult]) -> dict:
    total = _total([s.ksr for s in streams])
    tail = _total([s.tail for s in streams])
    steps = sum(s.stats["steps"] for s in streams)
    memory = [s.stats["training_bytes"] for s in streams if s.stats["training_bytes"]]
    return {"system": mode, "ksr": round(total.ksr, 2), "tail_ksr": round(tail.ksr, 2), "top3": round(total.top3, 2),
            "learn_s": round(sum(s.stats["learn_ms"] for s in streams) / 1000, 1),
            "step_ms": round(sum(s.stats["step_ms"] for s in streams) / steps, 1) if steps else 0.0,
            "train_mib": round(max(memory) / 2**20, 2) if memory else 0.0,
            "accepted": sum(s.stats["rounds_accepted"] for s in streams),
            "rolled_back": sum(s.stats["rounds_rolled_back"] for s in streams),
            "per_user_tail": [round(s.tail.ksr, 2) for s in streams]}


def tail_ksr_by_novelty(result: KsrResult, text: str, new: bool, share: float = TAIL) -> float:
    """KSR on the last `share` of the words of `text`, counting only words the user had not typed before in it
    (`new`: what the word statistics cannot know yet), or only words they had."""
    seen, fresh = set(), []
    for token in tokens(text):
        fresh.append(token.text.lower() not in seen)
        seen.add(token.text.lower())
    start = len(result.curve) - int(round(len(result.curve) * share))
    part = [word for word, is_new in zip(result.curve[start:], fresh[start:]) if is_new == new]
    plain = sum(p for _, p in part)
    return 100.0 * (1 - sum(c for c, _ in part) / plain) if plain else 0.0


def gains(rows: dict[str, dict], mode: str, reference: str = "off", key: str = "per_user_tail") -> PairedGain:
    """Per-user last-quarter KSR gain of `mode` over `reference` (`key`: on all words, or on new words alone):
    mean, 95% bootstrap interval, users who gained."""
    return paired_gain([a - b for a, b in zip(rows[mode][key], rows[reference][key])])


def format_rows(rows: list[dict], title: str) -> str:
    head = (f"{'system':<34} {'KSR %':>6} {'last 1/4':>8} {'top-3':>6} {'learn s':>8} {'ms/step':>8} "
            f"{'train MiB':>9} {'kept':>5} {'rolled':>6}")
    lines = [title, head]
    for r in rows:
        lines.append(f"{r['system']:<34} {r['ksr']:>6.2f} {r['tail_ksr']:>8.2f} {r['top3']:>6.2f} "
                     f"{r.get('learn_s', 0):>8.1f} {r.get('step_ms', 0):>8.1f} {r.get('train_mib', 0):>9.2f} "
                     f"{r.get('accepted', 0):>5} {r.get('rolled_back', 0):>6}")
    return "\n".join(lines)


def _presage_row(texts: list[EvalText], args: argparse.Namespace) -> tuple[dict | None, list[KsrResult]]:
    from app.bench.presage_eval import presage_ksr
    from app.bench.presage_peer import presage_available

    if args.no_presage:
        return None, []
    if not presage_available() or not Path(args.presage_db).exists():
        print("Presage or its database is missing (make presage; pocketkb presage-db): its row is left out")
        return None, []
    results = presage_ksr([t.text for t in texts], args.presage_db, online_learning=True, processes=args.processes)
    tail = _total([r.tail(TAIL) for r in results])
    total = _total(results)
    return ({"system": "Presage, our-text DB, learning online", "ksr": round(total.ksr, 2),
             "tail_ksr": round(tail.ksr, 2), "top3": round(total.top3, 2),
             "per_user_tail": [round(r.tail(TAIL).ksr, 2) for r in results]}, results)


NO_CACHE_OFF = ReplaySystem("off", word_cache=False).label


def summary(rows: dict[str, dict]) -> list[str]:
    lines = []
    if NO_CACHE_OFF in rows and "off" in rows:
        off, alone = rows["off"], rows[NO_CACHE_OFF]
        lines.append(f"the word cache alone (off vs {NO_CACHE_OFF}): {off['ksr'] - alone['ksr']:+.2f} KSR points over "
                     f"the stream, {off['tail_ksr'] - alone['tail_ksr']:+.2f} on the last quarter")
    for mode in rows:
        if mode not in ("off", "presage", NO_CACHE_OFF) and "off" in rows:
            lines.append(f"{mode} vs off, last quarter: {gains(rows, mode).line('KSR points', digits=2)}")
            for key, words in (("per_user_tail_new", "words new to the user"),
                               ("per_user_tail_seen", "words typed before")):
                lines.append(f"{mode} vs off, last quarter, {words}: "
                             f"{gains(rows, mode, key=key).line('KSR points', digits=2)}")
    if {"sparse", "full", "off"} <= set(rows):
        full, sparse = gains(rows, "full").mean, gains(rows, "sparse").mean
        share = sparse / full if full > 0 else float("nan")
        time_ratio = rows["sparse"]["learn_s"] / rows["full"]["learn_s"] if rows["full"]["learn_s"] else float("nan")
        lines.append(f"sparse reaches {100 * share:.0f}% of full's gain with {time_ratio:.2f}x its learning time")
    if "presage" in rows and "sparse" in rows:
        lines.append(f"sparse vs Presage learning online: {rows['sparse']['ksr'] - rows['presage']['ksr']:+.2f} KSR "
                     f"points over the stream, {rows['sparse']['tail_ksr'] - rows['presage']['tail_ksr']:+.2f} "
                     f"on the last quarter")
    return lines


def report(texts: list[EvalText], args: argparse.Namespace) -> int:
    chars = sum(len(t.text) for t in texts)
    print(f"replaying {len(texts)} user(s), {chars:,} characters, modes: {', '.join(args.modes)}")
    tuning = {"learned_word_stats": args.word_stats, "mix_rate": args.mix_rate, "learned_new_words": args.new_words}
    systems = [ReplaySystem(m, **tuning) for m in args.modes]
    if "off" in args.modes:  # what the user's word statistics add, with no learning at all
        systems.insert(args.modes.index("off"), ReplaySystem("off", word_cache=False, mix_rate=args.mix_rate))
    labels = [s.label for s in systems]
    overrides = {} if args.typed_rows is None else {"typed_rows_only": args.typed_rows == "on"}
    if args.lr:
        overrides["lr"] = {m: args.lr for m in args.modes}
    if args.context_keep:
        overrides["context_keep"] = args.context_keep
    streams = run_replay(texts, systems, args.model, args.processes, overrides)
    order = [t.name for t in texts]
    by_mode = {m: sorted((s for s in streams if s.system == m), key=lambda s: order.index(s.user)) for m in labels}
    rows = {m: mode_row(m, by_mode[m]) for m in labels}
    text_of = {t.name: t.text for t in texts}
    for m in labels:
        for key, new in (("per_user_tail_new", True), ("per_user_tail_seen", False)):
            rows[m][key] = [round(tail_ksr_by_novelty(s.ksr, text_of[s.user], new), 2) for s in by_mode[m]]
    presage, presage_results = _presage_row(texts, args)
    if presage:
        rows["presage"] = presage
    title = f"{Path(args.users).name}: {len(texts)} users, {chars:,} chars, typed in date order, 3 suggestions"
    print(format_rows(list(rows.values()), title))
    for line in summary(rows):
        print(line)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    series = {m: binned_ksr([s.ksr for s in by_mode[m]]) for m in labels}
    if presage_results:
        series["Presage online"] = binned_ksr(presage_results)
    (docs / "simulate.json").write_text(json.dumps({"users": order, "chars": chars, "rows": rows,
                                                    "summary": summary(rows), "curves": series}, indent=2))
    (docs / "simulate_ksr.svg").write_text(curve_svg(series, "KSR over each user's stream, per update mode",
                                                             "tenth of each user's stream", "KSR %"))
    print(f"written: {docs / 'simulate.json'}, {docs / 'simulate_ksr.svg'}")
    return 0
