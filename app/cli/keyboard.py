"""The keyboard commands: the window, the terminal keyboard, one prediction, and the personal model's reset, export
and import. Each opens the data folder's session as the keyboard does.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.cli.common import fail, open_session


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal"))


def start(args: argparse.Namespace) -> int:
    """The window where there is a display, the terminal keyboard elsewhere."""
    if _has_display():
        return _cmd_gui(args)
    print("no display: starting the terminal keyboard (pocketkb gui needs a desktop)")
    return _cmd_interactive(args)


def _cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.app import run_window

    if not _has_display():
        return fail("no display to open the window on (set DISPLAY, or use QT_QPA_PLATFORM=offscreen)")
    if getattr(args, "replay", None) and not Path(args.replay).exists():
        return fail(f"no such text file: {args.replay}")
    session = open_session(args, background=True, measure_costs=True)
    try:
        return run_window(session, getattr(args, "replay", None), getattr(args, "speed", 40),
                          getattr(args, "screenshot", None))
    finally:
        session.close()


def _cmd_predict(args: argparse.Namespace) -> int:
    """The strip as the keyboard on this data folder would show it (the personal model and the user's words), or
    with `--base` as the shipped model alone shows it."""
    from app.typing.loading import load_predictor
    from app.terminal import strip_line

    session = None if args.base else open_session(args, read_only=True)
    predictor = load_predictor(args.model) if session is None else session.predictor
    strip_of = predictor.strip if session is None else session.strip
    try:
        strip_of(args.text)  # the first call pays for one-time set-up
        predictor.invalidate()
        t0 = time.perf_counter()
        strip = strip_of(args.text)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        if session is not None:
            session.close()
    print(strip_line(strip))
    print(f"{ms:.1f} ms")
    return 0


def _cmd_interactive(args: argparse.Namespace) -> int:
    from app.terminal import run_interactive

    session = open_session(args, background=True)
    try:
        run_interactive(session)
    finally:
        session.close()
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    session = open_session(args)
    session.reset()
    session.close()
    print(f"back to the base model: personal model and history removed from {session.store.folder}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    session = open_session(args)
    try:
        session.export(args.path, with_history=args.with_history)
    except OSError as err:
        return fail(f"cannot write {args.path}: {err.strerror}")
    finally:
        session.close()
    extra = " and history" if args.with_history else ""
    print(f"personal model{extra} written to {args.path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from app.storage.personal_file import PersonalFileError

    session = open_session(args)
    try:
        session.import_file(args.path)
    except PersonalFileError as err:
        return fail(f"not imported, nothing changed: {err}")
    finally:
        session.close()
    print(f"imported {args.path}: {len(session.learner.deltas())} personalised tensors, mode {session.learner.mode}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="the keyboard window (the default where there is a display)")
    p.add_argument("--replay", help="type this text file into the window, taking suggestions as a user would")
    p.add_argument("--speed", type=int, default=40, help="replay speed in characters per second")
    p.add_argument("--screenshot", help="after the replay, save the window as this PNG and quit")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("terminal", help="the terminal keyboard: suggestions after each key, Tab accepts")
    p.set_defaults(func=_cmd_interactive)

    p = sub.add_parser("predict", help="print the strip for a text (with the data folder's personal model and "
                                       "words) and the time taken")
    p.add_argument("text", help="the text before the cursor")
    p.add_argument("--base", action="store_true", help="the shipped model alone, without the personal model")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("reset", help="back to the base model: delete the personal model and the typed history")
    p.set_defaults(func=_cmd_reset)

    p = sub.add_parser("export", help="write the personal model (and optionally the history) to one file")
    p.add_argument("path")
    p.add_argument("--with-history", action="store_true", help="include the typed sentences and blocked words")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="replace the personal model with an exported file, after checking it")
    p.add_argument("path")
    p.set_defaults(func=_cmd_import)
