"""A recursive-descent parser for C expressions as gdb accepts them, producing a small AST.

Precedence follows gdb's c-exp.y (C's, with gdb's `@` between the shifts and `+`/`-`). Whether an
identifier names a type (for casts and `sizeof(type)`) is asked of the caller through `is_typedef`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kcrash.expr.errors import ExprSyntaxError
from kcrash.expr.lexer import Token, tokenize

__all__ = [
    "Node", "Num", "Char", "Str", "Float", "Name", "Dollar", "Member", "Index", "Call", "Unary",
    "SizeofType", "Cast", "BraceCast", "Binary", "Ternary", "Assign", "Postfix", "Scope", "TypeExpr",
    "TypeSpec", "parse", "BASE_WORDS",
]  # fmt: skip

BASE_WORDS = frozenset(
    ["void", "char", "short", "int", "long", "signed", "unsigned", "_Bool", "float", "double", "__int128"]
)
QUALIFIER_WORDS = frozenset(["const", "volatile", "restrict", "__restrict", "__volatile__", "__const"])
_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",),
    ("&&",),
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("<<", ">>"),
    ("@",),
    ("+", "-"),
    ("*", "/", "%"),
)
_ASSIGN_OPS = frozenset(["=", "+=", "-=", "*=", "/=", "%=", "&=", "^=", "|=", "<<=", ">>="])


@dataclass(slots=True)
class Node:
    column: int


@dataclass(slots=True)
class Num(Node):
    value: int
    suffix: str


@dataclass(slots=True)
class Char(Node):
    value: int


@dataclass(slots=True)
class Str(Node):
    value: bytes


@dataclass(slots=True)
class Float(Node):
    text: str


@dataclass(slots=True)
class Name(Node):
    name: str


@dataclass(slots=True)
class Dollar(Node):
    text: str


@dataclass(slots=True)
class Member(Node):
    obj: Node
    name: str
    arrow: bool


@dataclass(slots=True)
class Index(Node):
    obj: Node
    index: Node


@dataclass(slots=True)
class Call(Node):
    func: Node
    args: list[Node]


@dataclass(slots=True)
class Unary(Node):
    op: str  # - + ! ~ * & ++ -- sizeof
    operand: Node


@dataclass(slots=True)
class Postfix(Node):
    op: str  # ++ --
    operand: Node


@dataclass(slots=True)
class TypeSpec:
    """A type name: base words (`unsigned long`), a tag (`struct foo`) or a typedef name, its
    qualifiers, then declarator operations applied to it in order: ("ptr", quals), ("array", n),
    ("func", [TypeSpec], variadic)."""

    column: int
    base: str  # "struct X" / "union X" / "enum X" / base words / typedef name
    quals: tuple[str, ...] = ()
    ops: list[tuple] = field(default_factory=list)
    text: str = ""


@dataclass(slots=True)
class SizeofType(Node):
    spec: TypeSpec


@dataclass(slots=True)
class Cast(Node):
    spec: TypeSpec
    operand: Node


@dataclass(slots=True)
class BraceCast(Node):
    """gdb's `{type} address`."""

    spec: TypeSpec
    operand: Node


@dataclass(slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(slots=True)
class Ternary(Node):
    cond: Node
    then: Node
    other: Node


@dataclass(slots=True)
class Assign(Node):
    op: str
    target: Node
    value: Node


@dataclass(slots=True)
class Comma(Node):
    left: Node
    right: Node


@dataclass(slots=True)
class Scope(Node):
    """`scope::name` (gdb's file/function scope): only gdb resolves these."""

    text: str


@dataclass(slots=True)
class TypeExpr(Node):
    """The whole expression is a type name (`whatis struct task_struct`, `ptype pid_t`)."""

    spec: TypeSpec


class _Parser:
    def __init__(self, text: str, is_typedef: Callable[[str], bool]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.is_typedef = is_typedef

    # --- token helpers ----------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def at(self, text: str) -> bool:
        t = self.tok
        return t.kind == "punct" and t.text == text

    def take(self) -> Token:
        t = self.tok
        if t.kind != "end":
            self.pos += 1
        return t

    def expect(self, text: str) -> Token:
        if not self.at(text):
            self.fail(f'expected "{text}"')
        return self.take()

    def fail(self, message: str, token: Token | None = None) -> None:
        t = token or self.tok
        if t.kind == "end" and "expected" not in message:
            message = "unexpected end of expression"
        elif t.kind != "end" and message.startswith("expected"):
            message += f' before "{t.text}"'
        raise ExprSyntaxError(message, self.text, t.column)

    # --- types --------------------------------------------------------------------------------------
    def starts_type(self, ahead: int = 0) -> bool:
        t = self.peek(ahead) if ahead else self.tok
        if t.kind != "ident":
            return False
        if t.text in BASE_WORDS or t.text in QUALIFIER_WORDS or t.text in ("struct", "union", "enum"):
            return True
        return self.is_typedef(t.text)

    def type_name(self) -> TypeSpec:
        start = self.tok.column
        quals: list[str] = []
        words: list[str] = []
        base = None
        while self.tok.kind == "ident":
            w = self.tok.text
            if w in QUALIFIER_WORDS:
                quals.append(
                    {"__restrict": "restrict", "__volatile__": "volatile", "__const": "const"}.get(w, w)
                )
                self.take()
            elif w in ("struct", "union", "enum") and base is None and not words:
                self.take()
                if self.tok.kind != "ident":
                    self.fail(f"expected a {w} name")
                base = f"{w} {self.take().text}"
            elif w in BASE_WORDS and base is None:
                words.append(self.take().text)
            elif base is None and not words and self.is_typedef(w):
                base = self.take().text
            else:
                break
        if base is None:
            if not words:
                self.fail("expected a type name")
            base = " ".join(words)
        spec = TypeSpec(start, base, tuple(quals))
        spec.ops = self.abstract_declarator()
        spec.text = self.text[start : self.tok.column].strip()
        return spec

    def abstract_declarator(self) -> list[tuple]:
        pointers: list[tuple] = []
        while self.at("*"):
            self.take()
            quals = []
            while self.tok.kind == "ident" and self.tok.text in QUALIFIER_WORDS:
                quals.append(self.take().text)
            pointers.append(("ptr", tuple(quals)))
        inner: list[tuple] = []
        if self.at("(") and self.peek().kind == "punct" and self.peek().text in ("*", "(", "["):
            self.take()
            inner = self.abstract_declarator()
            self.expect(")")
        suffixes: list[tuple] = []
        while True:
            if self.at("["):
                self.take()
                length = None
                if not self.at("]"):
                    t = self.take()
                    if t.kind != "int":
                        self.fail("expected an array length", t)
                    length = t.value[0]
                self.expect("]")
                suffixes.append(("array", length))
            elif self.at("(") and (inner or pointers or suffixes or self._looks_like_params()):
                self.take()
                params: list[TypeSpec] = []
                variadic = False
                while not self.at(")"):
                    if self.at("..."):
                        self.take()
                        variadic = True
                        break
                    params.append(self.type_name())
                    if not self.at(","):
                        break
                    self.take()
                self.expect(")")
                if len(params) == 1 and params[0].base == "void" and not params[0].ops:
                    params = []
                suffixes.append(("func", params, variadic))
            else:
                break
        return pointers + suffixes[::-1] + inner

    def _looks_like_params(self) -> bool:
        nxt = self.peek()
        return (nxt.kind == "punct" and nxt.text in (")", "...")) or self.starts_type(1)

    # --- expressions --------------------------------------------------------------------------------
    def parse_top(self) -> Node:
        if self.tok.kind == "end":
            self.fail("empty expression")
        if self.starts_type():
            save = self.pos
            try:
                spec = self.type_name()
            except ExprSyntaxError:
                spec = None
            if spec is not None and self.tok.kind == "end":
                return TypeExpr(spec.column, spec)
            self.pos = save
        node = self.expression()
        if self.tok.kind != "end":
            self.fail(f'unexpected "{self.tok.text}"')
        return node

    def expression(self) -> Node:
        node = self.assignment()
        while self.at(","):
            col = self.take().column
            node = Comma(col, node, self.assignment())
        return node

    def assignment(self) -> Node:
        node = self.ternary()
        if self.tok.kind == "punct" and self.tok.text in _ASSIGN_OPS:
            t = self.take()
            return Assign(t.column, t.text, node, self.assignment())
        return node

    def ternary(self) -> Node:
        node = self.binary(0)
        if self.at("?"):
            col = self.take().column
            then = self.expression()
            self.expect(":")
            return Ternary(col, node, then, self.ternary())
        return node

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        ops = _BINARY_LEVELS[level]
        while self.tok.kind == "punct" and self.tok.text in ops:
            t = self.take()
            node = Binary(t.column, t.text, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "punct":
            if t.text in ("-", "+", "!", "~", "*", "&", "++", "--"):
                self.take()
                return Unary(t.column, t.text, self.unary())
            if t.text == "(" and self.starts_type(1):
                self.take()
                spec = self.type_name()
                self.expect(")")
                if self.tok.kind == "end" or (
                    self.tok.kind == "punct" and self.tok.text in (")", ",", ":", "]")
                ):
                    # `(type)` alone: a type used as a value, which evaluation reports.
                    return TypeExpr(t.column, spec)
                return Cast(t.column, spec, self.unary())
            if t.text == "{" and self.starts_type(1):
                self.take()
                spec = self.type_name()
                self.expect("}")
                return BraceCast(t.column, spec, self.unary())
        if t.kind == "ident" and t.text in ("sizeof", "_Alignof", "alignof"):
            self.take()
            if t.text != "sizeof":
                self.fail(f'"{t.text}" is not supported', t)
            if self.at("(") and self.starts_type(1):
                self.take()
                spec = self.type_name()
                self.expect(")")
                return SizeofType(t.column, spec)
            return Unary(t.column, "sizeof", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            t = self.tok
            if t.kind != "punct":
                return node
            if t.text in (".", "->"):
                self.take()
                name = self.tok
                if name.kind != "ident":
                    self.fail(f'expected a member name after "{t.text}"')
                self.take()
                node = Member(name.column, node, name.text, t.text == "->")
            elif t.text == "[":
                self.take()
                index = self.expression()
                self.expect("]")
                node = Index(t.column, node, index)
            elif t.text == "(":
                self.take()
                args: list[Node] = []
                while not self.at(")"):
                    args.append(self.assignment())
                    if not self.at(","):
                        break
                    self.take()
                self.expect(")")
                node = Call(t.column, node, args)
            elif t.text in ("++", "--"):
                self.take()
                node = Postfix(t.column, t.text, node)
            else:
                return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "int":
            self.take()
            return Num(t.column, t.value[0], t.value[1])
        if t.kind == "float":
            self.take()
            return Float(t.column, t.text)
        if t.kind == "char":
            self.take()
            return Char(t.column, t.value)
        if t.kind == "string":
            self.take()
            data = t.value
            while self.tok.kind == "string":  # adjacent literals concatenate
                data += self.take().value
            return Str(t.column, data)
        if t.kind == "dollar":
            self.take()
            return Dollar(t.column, t.text)
        if t.kind == "ident":
            self.take()
            if self.at("::"):
                while self.at("::"):
                    self.take()
                    if self.tok.kind == "ident":
                        self.take()
                return Scope(t.column, self.text[t.column : self.tok.column].strip())
            return Name(t.column, t.text)
        if t.kind == "punct" and t.text == "(":
            self.take()
            node = self.expression()
            self.expect(")")
            return node
        if t.kind == "end":
            self.fail("unexpected end of expression")
        self.fail(f'unexpected "{t.text}"')
        raise AssertionError  # unreachable


def parse(text: str, is_typedef: Callable[[str], bool] = lambda name: False) -> Node:
    """The AST of `text`; raises ExprSyntaxError pointing at the offending column."""
    return _Parser(text, is_typedef).parse_top()
