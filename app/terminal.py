"""The interactive terminal keyboard: type, see the typed word and three suggestions after each key; Tab or Alt+1/2/3
accepts a suggestion, Alt+0 the typed word.

Finished sentences are learned in the background; without a terminal (piped input) it prints suggestions per line.
"""
from __future__ import annotations

import sys
import termios
import time
import tty

from typing import Callable

from app.typing.predictor import Strip
from app.session import Session
from app.typing.words import split_typing

HELP = "Type. Tab accepts the best suggestion, Alt+1/2/3 picks one, Alt+0 keeps the typed word. Ctrl+D quits."


def accept(text: str, word: str) -> str:
    """Replace the word being typed with `word` and add a space."""
    prefix = split_typing(text).prefix
    return text[: len(text) - len(prefix)] + word + " "


def strip_line(strip: Strip) -> str:
    """The strip on one line: the typed word in quotes (when it is a known word), then the suggestions."""
    return " | ".join(([f"“{strip.typed}”"] if strip.typed else []) + strip.words)


def run_piped(strip_of: Callable[[str], Strip], stream=sys.stdin, out=sys.stdout) -> None:
    for line in stream:
        text = line.rstrip("\n")
        t0 = time.perf_counter()
        strip = strip_of(text)
        out.write(f"{strip_line(strip)}\t({(time.perf_counter() - t0) * 1000:.1f} ms)\n")


def run_interactive(session: Session) -> None:
    if not sys.stdin.isatty():
        run_piped(session.strip)
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    text, strip, ms = "", session.strip(""), 0.0
    print(HELP)
    try:
        tty.setraw(fd)
        while True:
            _draw(text, strip, ms)
            ch = sys.stdin.read(1)
            if ch in ("\x04", "\x03"):
                break
            if ch == "\x1b":  # Alt+digit arrives as ESC digit
                digit = sys.stdin.read(1)
                if digit == "0" and strip.typed:
                    text = accept(text, strip.typed)
                elif digit in "123" and int(digit) <= len(strip.words):
                    text = accept(text, strip.words[int(digit) - 1])
            elif ch == "\t" and strip.words:
                text = accept(text, strip.words[0])
            elif ch in ("\x7f", "\b"):
                text = text[:-1]
            elif ch == "\r":
                text += "\n"
            elif ch.isprintable():
                text += ch
            session.text_changed(text)
            t0 = time.perf_counter()
            strip = session.strip(text)
            ms = (time.perf_counter() - t0) * 1000
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        stats = session.stats
        sys.stdout.write(f"\nlearned: {stats.rounds_accepted} rounds kept, {stats.rounds_rolled_back} rolled back "
                         f"(mode {session.learner.mode})\n")


def _draw(text: str, strip: Strip, ms: float) -> None:
    shown = "   ".join(([f"[0] “{strip.typed}”"] if strip.typed else [])
                       + [f"[{i + 1}] {w}" for i, w in enumerate(strip.words)])
    tail = text.replace("\n", " ⏎ ")[-70:]
    sys.stdout.write(f"\r\x1b[2K{shown}   ({ms:.1f} ms)\r\n\x1b[2K> {tail}\x1b[1A\r")
    sys.stdout.flush()
