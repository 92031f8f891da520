"""Tokens of a C expression as gdb reads it: identifiers, numbers, character and string literals,
`$` history/convenience names and punctuators, each with the column it starts at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kcrash.expr.errors import ExprSyntaxError

__all__ = ["Token", "tokenize", "decode_escapes"]

# Longest punctuators first.
_PUNCT = (
    "<<=", ">>=", "...", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "+=", "-=",
    "*=", "/=", "%=", "&=", "^=", "|=", "::",
    "+", "-", "*", "/", "%", "<", ">", "=", "!", "~", "&", "|", "^", "?", ":", ",", ".", "(", ")",
    "[", "]", "{", "}", "@",
)  # fmt: skip
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*|\$?\d*)")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]+)([uUlL]*)(?![A-Za-z0-9_.])")
_FLOAT = re.compile(r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?[fFlL]?|[0-9]+[eE][-+]?[0-9]+[fFlL]?")
_SIMPLE_ESCAPES = {
    "n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27,
    "\\": 92, "'": 39, '"': 34, "?": 63,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "ident", "int", "float", "char", "string", "dollar", "punct", "end"
    text: str
    column: int
    value: Any = None  # int for int/char, bytes for string, (digits, suffix) detail for int


def decode_escapes(body: str, text: str, column: int) -> bytes:
    """The bytes a C character/string literal body stands for."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ExprSyntaxError("unfinished escape sequence", text, column)
        c = body[i]
        if c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
            i += 1
        elif c in "01234567":
            j = i
            while j < len(body) and j - i < 3 and body[j] in "01234567":
                j += 1
            out.append(int(body[i:j], 8) & 0xFF)
            i = j
        elif c == "x":
            j = i + 1
            while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 1:
                raise ExprSyntaxError("\\x used with no following hex digits", text, column)
            out.append(int(body[i + 1 : j], 16) & 0xFF)
            i = j
        else:
            out += c.encode("utf-8")
            i += 1
    return bytes(out)


def _quoted(text: str, pos: int, quote: str) -> int:
    """Index just past the closing quote of the literal starting at `pos`."""
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    what = "character constant" if quote == "'" else "string"
    raise ExprSyntaxError(f"unterminated {what}", text, pos)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            tokens.append(Token("end", "", pos))
            return tokens
        c = text[pos]
        if c.isalpha() or c == "_":
            m = _IDENT.match(text, pos)
            assert m is not None  # text[pos] starts an identifier
            tokens.append(Token("ident", m.group(), pos))
            pos = m.end()
            continue
        if c.isdigit() or (c == "." and pos + 1 < n and text[pos + 1].isdigit()):
            m = _FLOAT.match(text, pos)
            if m and not text[pos : m.end()].isdigit():
                tokens.append(Token("float", m.group(), pos))
                pos = m.end()
                continue
            m = _NUMBER.match(text, pos)
            if m is None:
                end = pos
                while end < n and (text[end].isalnum() or text[end] in "_."):
                    end += 1
                raise ExprSyntaxError(f'invalid number "{text[pos:end]}"', text, pos)
            digits, suffix = m.group(1), m.group(2).lower()
            if suffix not in ("", "u", "l", "ul", "lu", "ll", "ull", "llu"):
                raise ExprSyntaxError(f'invalid number "{m.group()}"', text, pos)
            if digits[:2].lower() == "0x":
                value = int(digits, 16)
            elif len(digits) > 1 and digits[0] == "0":
                if any(d in "89" for d in digits):
                    raise ExprSyntaxError(f'invalid number "{m.group()}"', text, pos)
                value = int(digits, 8)
            else:
                value = int(digits)
            tokens.append(Token("int", m.group(), pos, (value, suffix)))
            pos = m.end()
            continue
        if c == "'":
            end = _quoted(text, pos, "'")
            body = decode_escapes(text[pos + 1 : end - 1], text, pos)
            if len(body) != 1:
                what = "empty character constant" if not body else "multi-character constant"
                raise ExprSyntaxError(what, text, pos)
            tokens.append(Token("char", text[pos:end], pos, body[0]))
            pos = end
            continue
        if c == '"':
            end = _quoted(text, pos, '"')
            tokens.append(
                Token("string", text[pos:end], pos, decode_escapes(text[pos + 1 : end - 1], text, pos))
            )
            pos = end
            continue
        if c == "$":
            m = _DOLLAR.match(text, pos)
            assert m is not None  # the pattern matches "$" alone
            tokens.append(Token("dollar", m.group(), pos))
            pos = m.end()
            continue
        for p in _PUNCT:
            if text.startswith(p, pos):
                tokens.append(Token("punct", p, pos))
                pos += len(p)
                break
        else:
            raise ExprSyntaxError(f'invalid character "{c}"', text, pos)
