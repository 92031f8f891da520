"""Pygments colour, used only on a terminal: the input lexer of the prompt, and `highlight()` for commands.
Imported only when colour is actually wanted (pygments costs start-up time)."""

from __future__ import annotations

from pygments import highlight as _pygments_highlight
from pygments.formatters import TerminalFormatter
from pygments.lexer import RegexLexer, bygroups
from pygments.lexers import get_lexer_by_name
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)
from pygments.util import ClassNotFound

__all__ = ["KcrashLexer", "highlight"]


class KcrashLexer(RegexLexer):
    """A kcrash command line: command word, options, numbers, symbols, `|` pipelines, `>` files, `!` escapes."""

    name = "kcrash"
    aliases = ["kcrash"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"!.*", String.Backtick),
            (r"#.*", Comment.Single),
            (r"[^\s|>;#]+", Keyword, "arguments"),
        ],
        "arguments": [
            (r";", Punctuation, "#pop"),
            (r"(\|)(.*)", bygroups(Operator, String.Backtick)),
            (r"(>>?)(.*)", bygroups(Operator, String.Other)),
            (r"\s+#.*", Comment.Single),
            (r"\s+", Whitespace),
            (r'"[^"]*"?', String.Double),
            (r"'[^']*'?", String.Single),
            (r"-[A-Za-z0-9]+(?=\s|$)", Name.Attribute),
            (r"0[xX][0-9a-fA-F]+\b|[0-9]+\b", Number),
            (r"[A-Za-z_][\w.]*", Name),
            (r".", Text),
        ],
    }


def highlight(text: str, language: str) -> str:
    """ANSI-coloured `text` for a pygments language name ("c", "gas", "kcrash"); unchanged if unknown."""
    try:
        lexer = KcrashLexer() if language == "kcrash" else get_lexer_by_name(language)
    except ClassNotFound:
        return text
    result = _pygments_highlight(text, lexer, TerminalFormatter())
    return result if text.endswith("\n") else result.rstrip("\n")
