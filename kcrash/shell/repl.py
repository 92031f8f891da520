"""The interactive prompt (prompt_toolkit): `kcrash> `, file history, completion, auto-suggestion from
history, input highlighting on colour terminals."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

    from kcrash.shell.core import Shell

__all__ = ["PROMPT", "history_path", "make_session", "run_repl", "run_plain_repl"]

PROMPT = "kcrash> "


def history_path() -> str:
    return os.path.expanduser(os.environ.get("KCRASH_HISTORY") or "~/.kcrash_history")


def _history():
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


def make_session(shell: Shell, **overrides) -> PromptSession:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.shortcuts import CompleteStyle

    from kcrash.shell.completion import KcrashCompleter
    from kcrash.shell.keys import build_key_bindings

    options = dict(
        message=PROMPT,
        history=_history(),
        completer=KcrashCompleter(shell),
        complete_while_typing=False,
        complete_style=CompleteStyle.READLINE_LIKE,
        auto_suggest=AutoSuggestFromHistory(),
        key_bindings=build_key_bindings(shell),
        enable_history_search=False,
        mouse_support=False,
    )
    if shell.colour_enabled:
        from prompt_toolkit.lexers import PygmentsLexer

        from kcrash.shell.colour import KcrashLexer

        options["lexer"] = PygmentsLexer(KcrashLexer)
    else:
        from prompt_toolkit.styles import DummyStyle

        options["style"] = DummyStyle()
    options.update(overrides)
    return PromptSession(**options)


def run_repl(shell: Shell, session: PromptSession | None = None) -> None:
    """Read and run lines until `q`/`exit` or Ctrl-D. Ctrl-C drops the current line or command."""
    shell.interactive = True
    if session is None:
        session = make_session(shell)
    try:
        while not shell.exited:
            try:
                line = session.prompt()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            shell.execute(line)
    finally:
        shell.interactive = False


def run_plain_repl(shell: Shell) -> None:
    """A prompt without line editing, for a terminal on stdin whose output goes elsewhere."""
    import sys

    while not shell.exited:
        try:
            sys.stderr.write(PROMPT)
            sys.stderr.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            continue
        if not line:
            break
        shell.execute(line)
