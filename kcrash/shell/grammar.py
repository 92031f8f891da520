"""crash's command-line grammar: `cmd args | shell pipeline`, `cmd > file`, `cmd >> file`, `!shell command`,
`#` comments and `;` between commands.

`|`, `>`, `;` and `#` are special only outside quotes and outside parentheses/brackets, so expressions
such as `eval (1 << 3)` or `p (x | y)` keep their operators (crash asks for parentheses there too).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kcrash.errors import KcrashError

__all__ = ["CommandLine", "GrammarError", "split_commands", "parse_command_line", "tokenize"]


class GrammarError(KcrashError):
    """A line the shell cannot split (unbalanced quotes, a redirect without a file)."""


@dataclass
class CommandLine:
    """One command of a line: the command text and where its output goes."""

    text: str  # command word and arguments
    pipe: str | None = None  # shell pipeline after `|`
    redirect: str | None = None  # file after `>` / `>>`
    append: bool = False

    @property
    def word(self) -> str:
        return self.text.split(None, 1)[0] if self.text.strip() else ""

    @property
    def argtext(self) -> str:
        parts = self.text.strip().split(None, 1)
        return parts[1] if len(parts) > 1 else ""


def _scan(line: str):
    """Yield (index, char, top_level) for each character; top_level is False inside quotes/brackets."""
    depth = 0
    quote: str | None = None
    escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
            yield i, c, False
            continue
        if c == "\\" and quote != "'":
            escaped = True
            yield i, c, False
            continue
        if quote:
            if c == quote:
                quote = None
            yield i, c, False
            continue
        if c in "'\"":
            quote = c
            yield i, c, False
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}" and depth > 0:
            depth -= 1
            yield i, c, False
            continue
        yield i, c, depth == 0


def strip_comment(line: str) -> str:
    """Drop a `#` comment: at the start of the line, or a top-level `#` after whitespace."""
    for i, c, top in _scan(line):
        if c == "#" and top and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def split_commands(line: str) -> list[str]:
    """Split a line at top-level `;` (before anything else; a pipeline cannot contain a bare `;`)."""
    parts: list[str] = []
    start = 0
    for i, c, top in _scan(line):
        if c == ";" and top:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_command_line(text: str) -> CommandLine:
    """Separate the command from its `| pipeline` or `> file` / `>> file`."""
    for i, c, top in _scan(text):
        if not top:
            continue
        if c == "|":
            pipeline = text[i + 1 :].strip()
            if not pipeline:
                raise GrammarError("missing command after '|'")
            return CommandLine(text[:i].strip(), pipe=pipeline)
        if c == ">" and (i == 0 or text[i - 1] != "-"):  # `->` is member access, not a redirect
            append = text[i + 1 : i + 2] == ">"
            target = text[i + (2 if append else 1) :].strip()
            try:
                words = shlex.split(target)
            except ValueError:
                raise GrammarError("unbalanced quotes in the redirect target") from None
            if len(words) != 1:
                raise GrammarError(
                    "redirect needs exactly one file name" if words else "missing file after '>'"
                )
            return CommandLine(text[:i].strip(), redirect=words[0], append=append)
    return CommandLine(text.strip())


def tokenize(text: str) -> list[str]:
    """Split arguments like a shell: whitespace separates, quotes group (and are removed)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        raise GrammarError("unbalanced quotes") from None
