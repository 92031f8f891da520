"""Tab completion for the REPL: command names, their options, kernel symbol names, files, variables.

Symbol names come from a sorted, de-duplicated list built on first use; a completion is two bisections,
so it stays instant with the ~120k symbols of a vmlinux.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from kcrash.shell.grammar import _scan
from kcrash.shell.spec import Argument, CommandSpec

if TYPE_CHECKING:
    from kcrash.shell.core import Shell

__all__ = ["SymbolIndex", "KcrashCompleter", "MAX_COMPLETIONS"]

MAX_COMPLETIONS = 1000


class SymbolIndex:
    """Prefix search over a large set of names: sorted once, lazily; bisect per query."""

    def __init__(self, source: Callable[[], Sequence[str]]) -> None:
        self._source = source
        self._names: list[str] | None = None
        self._built_from = -1

    @property
    def names(self) -> list[str]:
        raw = self._source()
        if self._names is None or len(raw) != self._built_from:
            # Rebuilt only when the source grows (module symbols added), never per keystroke.
            self._names = sorted(set(raw))
            self._built_from = len(raw)
        return self._names

    def prefixed(self, prefix: str, limit: int = MAX_COMPLETIONS) -> list[str]:
        names = self.names
        lo = bisect.bisect_left(names, prefix)
        if not prefix:
            return names[lo : lo + limit]
        successor = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        hi = bisect.bisect_left(names, successor, lo)
        return names[lo : min(hi, lo + limit)]

    def count(self, prefix: str) -> int:
        names = self.names
        lo = bisect.bisect_left(names, prefix)
        if not prefix:
            return len(names) - lo
        successor = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return bisect.bisect_left(names, successor, lo) - lo


def _kernel_names(shell: Shell) -> Sequence[str]:
    symbols = getattr(shell.kernel, "symbols", None)
    return getattr(symbols, "names", None) or ()


class KcrashCompleter(Completer):
    """Completes what the cursor is on: the command word, an option, or an argument of the command."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.symbols = SymbolIndex(lambda: _kernel_names(shell))
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        segment_start = 0
        redirect_at = None
        for i, c, top in _scan(text):
            if not top:
                continue
            if c == ";":
                segment_start, redirect_at = i + 1, None
            elif c == "|" and i >= segment_start:
                return  # the rest is the user's shell pipeline
            elif c == ">" and (i == 0 or text[i - 1] != "-"):
                redirect_at = i + 1
        if redirect_at is not None:
            target = text[redirect_at:].lstrip(">").lstrip()
            yield from self.paths.get_completions(Document(target, len(target)), complete_event)
            return
        segment = text[segment_start:].lstrip()
        if segment.startswith("!"):
            return
        words = segment.split()
        current = "" if not words or segment[-1:].isspace() else words[-1]
        previous = words[:-1] if current else words
        if not previous:
            yield from self._complete(current, self._command_names(current))
            return
        expanded = self.shell.expand_alias(" ".join(previous)).split()
        spec, _ = self.shell.resolve(expanded[0])
        if spec is None:
            return
        if current.startswith("-") and spec.options:
            for opt in spec.options:
                for flag in opt.flags:
                    if flag.startswith(current):
                        yield Completion(flag, -len(current), display_meta=opt.help.split(".")[0])
            return
        argument = _argument_at(spec, expanded[1:])
        kind = argument.complete if argument is not None else "none"
        if callable(kind):
            yield from self._complete(current, kind(self.shell, current))
        elif kind == "symbol":
            if current:
                yield from self._complete(current, self.symbols.prefixed(current))
        elif kind == "command":
            yield from self._complete(current, self._command_names(current) + ["input", "output"])
        elif kind == "file":
            yield from self.paths.get_completions(Document(current, len(current)), complete_event)
        elif kind == "plugin":
            yield from self._complete(current, sorted(self.shell.registry.plugins))

    def _command_names(self, prefix: str) -> list[str]:
        names = set(self.shell.registry.names()) | set(self.shell.aliases)
        return sorted(n for n in names if n.startswith(prefix))

    @staticmethod
    def _complete(current: str, candidates: Iterable[str]) -> Iterator[Completion]:
        for name in candidates:
            if name.startswith(current):
                yield Completion(name, -len(current))


def _argument_at(spec: CommandSpec, words: list[str]) -> Argument | None:
    """The Argument the next positional word fills, skipping options (and their values) already typed."""
    position = 0
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-") and len(word) > 1 and not spec.raw:
            opt = spec.option(word) or spec.option(word[:2])
            skip = bool(opt and opt.takes_value and len(word) == 2)
            continue
        position += 1
    index = 0
    for arg in spec.arguments:
        if arg.nargs in ("*", "+"):
            return arg
        if index == position:
            return arg
        index += 1
    return None
