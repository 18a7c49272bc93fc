"""The terminal keyboard, on prompt_toolkit: line editing, arrow keys and resizing as any terminal program has them, a
completion menu fed by the session's strip, and a toolbar with the strip, its time and anything that is not working.

Tab takes the best suggestion, Alt+1/2/3 one of the three, Alt+0 the typed word; finished sentences are learned in the
background. Without a terminal (piped input) it prints the strip for each line read.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.key_binding import KeyBindings

from app.session import Session
from app.typing.predictor import Strip
from app.typing.words import split_typing

HELP = ("Type; Enter starts a new line. Tab takes the best suggestion, Alt+1/2/3 one of the three, Alt+0 keeps the "
        "typed word. Ctrl+D quits.")


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


class _StripCompleter(Completer):
    """The strip as a completion menu: the typed word first (when known), then the suggestions."""

    def __init__(self, keyboard: "TerminalKeyboard"):
        self.keyboard = keyboard

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        prefix = split_typing(text).prefix
        for word in self.keyboard.strip_for(text).shown:
            yield Completion(word + " ", start_position=-len(prefix), display=word)


class TerminalKeyboard:
    """One prompt_toolkit prompt over the whole text; every change goes to the session, which learns what is finished."""

    def __init__(self, session: Session, input=None, output=None):
        self.session = session
        self.strip, self.ms = session.strip(""), 0.0
        self.prompt = PromptSession("> ", multiline=True, key_bindings=self._bindings(), bottom_toolbar=self._toolbar,
                                    completer=_StripCompleter(self), complete_while_typing=True,
                                    input=input, output=output)
        self._text: str | None = None  # the text before the cursor that `strip` is for
        buffer = self.prompt.default_buffer
        buffer.on_text_changed += self._text_changed
        buffer.on_cursor_position_changed += lambda buffer: self.strip_for(buffer.document.text_before_cursor)

    def _text_changed(self, buffer: Buffer) -> None:
        """Every edit (typing, deleting, pasting): the session hears the whole text, the strip follows the text
        before the cursor."""
        self.session.text_changed(buffer.text)
        self.strip_for(buffer.document.text_before_cursor)

    def strip_for(self, text: str) -> Strip:
        """The strip for the text before the cursor (computed once per text: an edit, the cursor moving and the
        completion menu all ask)."""
        if text != self._text:
            t0 = time.perf_counter()
            self.strip, self._text = self.session.strip(text), text
            self.ms = (time.perf_counter() - t0) * 1000
        return self.strip

    def _take(self, buffer: Buffer, rank: int) -> None:
        """Put the strip's word at `rank` (0: the typed word) in place of the word being typed, with a space."""
        text = buffer.document.text_before_cursor
        strip = self.strip_for(text)
        word = strip.typed if rank == 0 else (strip.words[rank - 1] if rank <= len(strip.words) else None)
        if word:
            buffer.cancel_completion()
            buffer.delete_before_cursor(len(split_typing(text).prefix))
            buffer.insert_text(word + " ")

    def _bindings(self) -> KeyBindings:
        bindings = KeyBindings()
        bindings.add("tab")(lambda event: self._take(event.current_buffer, 1))
        for rank in range(4):  # Alt+digit arrives as Escape, digit
            bindings.add("escape", str(rank))(lambda event, rank=rank: self._take(event.current_buffer, rank))
        bindings.add("c-d")(lambda event: event.app.exit(result=event.current_buffer.text))
        return bindings

    def _toolbar(self) -> str:
        shown = "   ".join(([f"[0] “{self.strip.typed}”"] if self.strip.typed else [])
                           + [f"[{i + 1}] {w}" for i, w in enumerate(self.strip.words)])
        status = self.session.status
        return f"{shown}   ({self.ms:.1f} ms)" + (f"   ⚠ {status}" if status else "")

    def run(self) -> str:
        """Until Ctrl+D (or Ctrl+C): the text typed."""
        try:
            return self.prompt.prompt()
        except (EOFError, KeyboardInterrupt):
            return self.prompt.default_buffer.text


def run_interactive(session: Session) -> None:
    if not sys.stdin.isatty():
        run_piped(session.strip)
        return
    print(HELP)
    TerminalKeyboard(session).run()
    stats = session.stats
    print(f"learned: {stats.rounds_accepted} rounds kept, {stats.rounds_rolled_back} rolled back "
          f"(mode {session.learner.mode})" + (f"; {session.status}" if session.status else ""))
