"""Key bindings of the REPL, beyond prompt_toolkit's emacs defaults (history search with Ctrl-R, Ctrl-D to
exit on an empty line, Tab completion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

if TYPE_CHECKING:
    from kcrash.shell.core import Shell

__all__ = ["build_key_bindings"]


def build_key_bindings(shell: Shell) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("escape", "h")
    def _synopsis(event: KeyPressEvent) -> None:
        """Alt-H: show the synopsis of the command being typed, without losing the line."""
        words = event.current_buffer.document.text.split()
        if not words:
            return
        spec, _ = shell.resolve(shell.expand_alias(words[0]).split()[0])
        text = f"{spec.synopsis()}\n  {spec.summary}" if spec else f"command not found: {words[0]}"
        run_in_terminal(lambda: print(text))

    @bindings.add("c-c")
    def _cancel(event: KeyPressEvent) -> None:
        """Ctrl-C at the prompt drops the line being typed, as a shell does."""
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return bindings
