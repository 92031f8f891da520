"""`eval`: crash's calculator — an integer expression over numbers and kernel symbols, shown in hex, decimal,
octal and binary.  `evaluate()` is also the number/symbol parser other commands may reuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, Option, UsageError, command
from kcrash.errors import KcrashError
from kcrash.records import dec_field, hex_field

__all__ = ["evaluate", "parse_number", "EvalResult"]

MASK64 = (1 << 64) - 1
_TOKEN = re.compile(r"\s*(?:(<<|>>|\*\*|[-+*/%&|^~()#])|([A-Za-z0-9_.$]+))")
_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# Binary operators by precedence, loosest first (C's order; `#` is crash's power operator).
_LEVELS = (("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"), ("#", "**"))


class EvalError(KcrashError):
    """An expression eval cannot compute."""


def parse_number(word: str, hex_default: bool = False) -> int | None:
    """crash's number rules: `0x…` is hex, digits alone decimal (hex if `hex_default`), digits with a-f hex;
    a k/m/g suffix multiplies by KiB/MiB/GiB. None if `word` is not a number."""
    factor = 1
    if (
        word[-1:].lower() in _SUFFIX
        and len(word) > 1
        and re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]+", word[:-1])
    ):
        factor = _SUFFIX[word[-1].lower()]
        word = word[:-1]
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", word):
        return int(word, 16) * factor
    if re.fullmatch(r"[0-9]+", word):
        return int(word, 16 if hex_default else 10) * factor
    if re.fullmatch(r"[0-9a-fA-F]+", word):
        return int(word, 16) * factor
    return None


def evaluate(text: str, kernel: object | None = None) -> int:
    """Evaluate an integer expression; names are kernel symbols (their addresses). Result is 64-bit."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise EvalError(f"invalid expression: {text}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        raise EvalError("empty expression")
    parser = _Parser(tokens, kernel, text)
    value = parser.expression(0)
    if parser.pos != len(tokens):
        raise EvalError(f"invalid expression: {text}")
    return value & MASK64


class _Parser:
    def __init__(self, tokens: list[str], kernel: object | None, text: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.kernel = kernel
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise EvalError(f"invalid expression: {self.text}")
        self.pos += 1
        return token

    def expression(self, level: int) -> int:
        if level == len(_LEVELS):
            return self.unary()
        value = self.expression(level + 1)
        while self.peek() in _LEVELS[level]:
            op = self.take()
            right = self.expression(level + 1)
            value = _apply(op, value, right) & MASK64
        return value

    def unary(self) -> int:
        token = self.peek()
        if token == "-":
            self.take()
            return -self.unary() & MASK64
        if token == "+":
            self.take()
            return self.unary()
        if token == "~":
            self.take()
            return ~self.unary() & MASK64
        if token == "(":
            self.take()
            value = self.expression(0)
            if self.take() != ")":
                raise EvalError(f"invalid expression: {self.text}")
            return value
        return self.atom(self.take())

    def atom(self, word: str) -> int:
        if not re.fullmatch(r"[A-Za-z0-9_.$]+", word):
            raise EvalError(f"invalid expression: {self.text}")
        symbols = getattr(self.kernel, "symbols", None)
        if symbols is not None and not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]+", word):
            sym = symbols.lookup(word)
            if sym is not None:
                return sym.address
        value = parse_number(word)
        if value is None:
            raise EvalError(f"invalid expression: {self.text}")
        return value


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%") and b == 0:
        raise EvalError("divide by zero")
    if op in ("<<", ">>") and b >= 64:
        return 0
    return {
        "|": lambda: a | b,
        "^": lambda: a ^ b,
        "&": lambda: a & b,
        "<<": lambda: a << b,
        ">>": lambda: a >> b,
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a // b,
        "%": lambda: a % b,
        "#": lambda: pow(a, b, 1 << 64),
        "**": lambda: pow(a, b, 1 << 64),
    }[op]()


@dataclass(frozen=True)
class EvalResult:
    """The value eval computed, as an unsigned and a signed 64-bit number, with the bits set."""

    value: int = hex_field()
    signed: int = dec_field()
    bits_set: list[int] = field(default_factory=list)
    show_bits: bool = False


def render_eval(result: EvalResult) -> str:
    """crash's print_number() for a 64-bit value (tools.c), trailing blanks included."""
    v = result.value
    size = ""
    if v >= 1 << 10:
        for unit, shift in (("GB", 30), ("MB", 20), ("KB", 10)):
            if v % (1 << shift) == 0:
                size = f"({v >> shift}{unit})"
                break
    lines = [f"hexadecimal: {v:x}  {size}", f"    decimal: {v}  " + (f"({result.signed})" if v >> 63 else "")]
    lines.append(f"      octal: {v:o}")
    lines.append(f"     binary: {v:064b}")
    if result.show_bits:
        hdr = "   bits set: "
        line, count = hdr, len(hdr)
        for bit in result.bits_set:
            piece = f"{bit} "
            line += piece
            count += len(piece)
            if count >= 77:
                lines.append(line)
                line, count = " " * len(hdr), len(hdr)
        lines.append(line)
    return "\n".join(lines)


@command(
    "eval",
    summary="evaluate",
    options=[
        Option("-b", help="also list the bits set in the result."),
        Option("-l", help="use 64-bit arithmetic (always the case on x86_64; accepted for crash scripts)."),
    ],
    arguments=[Argument("expression", nargs="+", help="numbers, symbols and operators.")],
    raw=True,
    render=render_eval,
    help="""
    SYNOPSIS
    eval [-b][-l] (expression) | value

    DESCRIPTION
    This command evaluates an expression or numeric value, and displays its
    result in hexadecimal, decimal, octal and binary. If the resultant value
    is an integral number of gigabytes, megabytes, or kilobytes, a short-hand
    translation of the number will also be shown next to the hexadecimal value.

    The expression may use the operators + - * / % << >> & | ^ ~ and # (power),
    with C's precedence, and parentheses. Numbers are decimal unless they start
    with 0x or contain a hexadecimal letter, and may end in k, m or g. A kernel
    symbol stands for its address. Expressions that use | or > must be put in
    parentheses (or quotes), as the shell would otherwise pipe or redirect.

      -b  also lists the bits set in the result.
      -l  64-bit arithmetic (the default on x86_64).

    EXAMPLES
      kcrash> eval 0x1000 + 16
      hexadecimal: 1010
          decimal: 4112
            octal: 10020
           binary: 0000000000000000000000000000000000000000000000000001000000010000

      kcrash> eval ((1 << 32) | 0x1000)
      kcrash> eval -b 0x8000000000000001
    """,
)
def eval_command(ctx: Context, args: Args) -> None:
    words = list(args.expression)
    show_bits = False
    while words and words[0] in ("-b", "-l", "-bl", "-lb") and len(words) > 1:
        show_bits |= "b" in words.pop(0)
    if not words:
        raise UsageError("missing expression")
    value = evaluate(" ".join(words), ctx.kernel)
    signed = value - (1 << 64) if value >> 63 else value
    bits = [i for i in range(63, -1, -1) if value >> i & 1]
    ctx.emit(EvalResult(value, signed, bits, show_bits))
