"""The interactive terminal keyboard: type, see three suggestions after each key, Tab or 1/2/3 accepts.

Finished sentences are learned in the background; without a terminal (piped input) it prints suggestions per line.
"""
from __future__ import annotations

import sys
import termios
import time
import tty

from app.ksr import Suggest
from app.session import Session
from app.words import split_typing

HELP = "Type. Tab accepts the best suggestion, Alt+1/2/3 picks one. Ctrl+D quits."


def accept(text: str, word: str) -> str:
    """Replace the word being typed with `word` and add a space."""
    prefix = split_typing(text).prefix
    return text[: len(text) - len(prefix)] + word + " "


def run_piped(suggest: Suggest, stream=sys.stdin, out=sys.stdout) -> None:
    for line in stream:
        text = line.rstrip("\n")
        t0 = time.perf_counter()
        words = suggest(text)
        out.write(f"{' | '.join(words)}\t({(time.perf_counter() - t0) * 1000:.1f} ms)\n")


def run_interactive(session: Session) -> None:
    if not sys.stdin.isatty():
        run_piped(session.suggest)
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    text, words, ms = "", session.suggest(""), 0.0
    print(HELP)
    try:
        tty.setraw(fd)
        while True:
            _draw(text, words, ms)
            ch = sys.stdin.read(1)
            if ch in ("\x04", "\x03"):
                break
            if ch == "\x1b":  # Alt+digit arrives as ESC digit
                digit = sys.stdin.read(1)
                if digit in "123" and int(digit) <= len(words):
                    text = accept(text, words[int(digit) - 1])
            elif ch == "\t" and words:
                text = accept(text, words[0])
            elif ch in ("\x7f", "\b"):
                text = text[:-1]
            elif ch == "\r":
                text += "\n"
            elif ch.isprintable():
                text += ch
            session.text_changed(text)
            t0 = time.perf_counter()
            words = session.suggest(text)
            ms = (time.perf_counter() - t0) * 1000
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        stats = session.stats
        sys.stdout.write(f"\nlearned: {stats.rounds_accepted} rounds kept, {stats.rounds_rolled_back} rolled back "
                         f"(mode {session.learner.mode})\n")


def _draw(text: str, words: list[str], ms: float) -> None:
    strip = "   ".join(f"[{i + 1}] {w}" for i, w in enumerate(words))
    tail = text.replace("\n", " ⏎ ")[-70:]
    sys.stdout.write(f"\r\x1b[2K{strip}   ({ms:.1f} ms)\r\n\x1b[2K> {tail}\x1b[1A\r")
    sys.stdout.flush()
