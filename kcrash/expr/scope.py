"""What names mean to the expression engine: kernel variables, functions, enumerators and types, looked
up through the Kernel (BTF first, DWARF when needed) and cached for the session; C's base types; the
`$N` value history."""

from __future__ import annotations

from typing import Any

from kcrash.debuginfo.btf import canonical_base_name
from kcrash.debuginfo.types import Kind, Type
from kcrash.errors import KcrashError, LookupFailedError
from kcrash.expr.errors import ExprError, Unsupported
from kcrash.expr.parser import TypeSpec
from kcrash.expr.symbolize import Symbolizer

__all__ = ["Scope", "History", "primitive"]

_INT_SIZES = {
    "char": (1, True),
    "signed char": (1, True),
    "unsigned char": (1, False),
    "short int": (2, True),
    "short unsigned int": (2, False),
    "int": (4, True),
    "unsigned int": (4, False),
    "long int": (8, True),
    "long unsigned int": (8, False),
    "long long int": (8, True),
    "long long unsigned int": (8, False),
    "__int128": (16, True),
    "__int128 unsigned": (16, False),
}
_PRIMITIVES: dict[str, Type] = {}
_TEXT_LETTERS = frozenset("TtWw")


def primitive(name: str) -> Type:
    """A C base type by name in any spelling ("unsigned long", "long unsigned int", "_Bool", "void")."""
    words = name.split()
    if "__int128" in words:
        canon = "__int128 unsigned" if "unsigned" in words else "__int128"
    else:
        canon = canonical_base_name(name)
    t = _PRIMITIVES.get(canon)
    if t is not None:
        return t
    if canon == "void":
        t = Type(Kind.VOID, "void")
    elif canon == "_Bool":
        t = Type(Kind.BOOL, "_Bool", 1)
    elif canon in ("float", "double", "long double"):
        t = Type(Kind.FLOAT, canon, {"float": 4, "double": 8}.get(canon, 16), signed=True)
    elif canon in _INT_SIZES:
        size, signed = _INT_SIZES[canon]
        t = Type(Kind.INT, canon, size, signed=signed)
    else:
        raise ExprError(f'no base type "{name}"')
    _PRIMITIVES[canon] = t
    return t


def pointer_to(t: Type) -> Type:
    return Type(Kind.POINTER, None, 8, target=t)


class History:
    """gdb's value history: `$N`, `$` (last), `$$` (one before), `$$N` (N before the last)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def record(self, value: Any) -> int:
        self.values.append(value)
        return len(self.values)

    def get(self, text: str) -> Any:
        body = text[1:]
        n = len(self.values)
        if body.startswith("$"):
            back = int(body[1:]) if body[1:] else 1
            index = n - back
        elif body == "":
            index = n
        elif body.isdigit():
            index = int(body)
        else:
            raise Unsupported(f"convenience variable {text} (only gdb has these)")
        if n == 0:
            raise ExprError("history is empty")
        if not 1 <= index <= n:
            raise ExprError(f"History has not yet reached ${index}.")
        value = self.values[index - 1]
        if value is None:
            raise ExprError(f"${index} was printed by gdb and cannot be reused")
        return value


class Scope:
    """Names and types of one kernel, with caches; shared by every expression of a session."""

    def __init__(self, kernel: Any, history: History | None = None) -> None:
        self.kernel = kernel
        self.history = history if history is not None else History()
        self._typedef_cache: dict[str, bool] = {}
        self._types: dict[str, Type] = {}
        self._names: dict[str, tuple] = {}
        self._symbolizer: Symbolizer | None = None

    @property
    def symbolizer(self) -> Symbolizer:
        if self._symbolizer is None:
            self._symbolizer = Symbolizer(self.kernel)
        return self._symbolizer

    # --- types ----------------------------------------------------------------------------------------
    def find_type(self, name: str) -> Type | None:
        """A named type: `struct x`, `union x`, `enum x`, a typedef, or a base type."""
        if name in self._types:
            return self._types[name]
        words = name.split()
        t: Type | None = None
        if words and all(
            w
            in (
                "void",
                "char",
                "short",
                "int",
                "long",
                "signed",
                "unsigned",
                "_Bool",
                "float",
                "double",
                "__int128",
            )
            for w in words
        ):
            try:
                t = primitive(name)
            except ExprError:
                t = None
        else:
            try:
                t = self.kernel.find_type(name)
            except KcrashError:
                t = None
            if t is not None and words[0] in ("struct", "union"):
                t = self._with_flexible_arrays(name, t)
        if t is not None:
            self._types[name] = t
        return t

    def _with_flexible_arrays(self, name: str, t: Type) -> Type:
        """BTF writes `x[]` and `x[0]` alike (length 0); gdb prints what DWARF says. For an aggregate
        with such a member, take DWARF's definition when there is one."""
        core = t.strip()
        if not any(m.type.strip().kind is Kind.ARRAY and not m.type.strip().length for m in core.members):
            return t
        dwarf = getattr(self.kernel, "dwarf", None)
        if dwarf is None:
            return t
        try:
            full = dwarf.find_type(name)
        except KcrashError:
            return t
        if full is None or full.strip().size != core.size or len(full.strip().members) != len(core.members):
            return t
        return full

    def is_typedef(self, name: str) -> bool:
        """True if `name` is a typedef (and not also a kernel symbol, which gdb would take first)."""
        hit = self._typedef_cache.get(name)
        if hit is None:
            hit = False
            if self.kernel.symbols.lookup(name) is None:
                t = self.find_type(name)
                hit = t is not None and t.kind is Kind.TYPEDEF
            self._typedef_cache[name] = hit
        return hit

    def resolve(self, spec: TypeSpec) -> Type:
        """The Type a parsed type name stands for."""
        t = self.find_type(spec.base)
        if t is None:
            raise ExprError(self._no_type_message(spec.base))
        t = _qualify(t, spec.quals)
        for op in spec.ops:
            if op[0] == "ptr":
                t = _qualify(pointer_to(t), op[1])
            elif op[0] == "array":
                t = Type(Kind.ARRAY, None, None, target=t, length=op[1])
            else:
                params = [self.resolve(p) for p in op[1]]
                from kcrash.debuginfo.types import Parameter

                t = Type(
                    Kind.FUNCTION,
                    None,
                    None,
                    target=t,
                    params=[Parameter(None, p) for p in params],
                    variadic=op[2],
                )
        return t

    def _no_type_message(self, name: str) -> str:
        tag, _, bare = name.partition(" ")
        if tag in ("struct", "union", "enum"):
            msg = f'no {tag} "{bare}"'
            names = self._type_names(tag)
            if names:
                from kcrash.debuginfo.types import suggest

                near = suggest(bare, [n for n in names if n[:2] == bare[:2]] or names[:5000])
                if near:
                    msg += f'; did you mean "{tag} {near}"?'
            return msg
        return f'no type named "{name}"'

    def _type_names(self, tag: str) -> list[str]:
        btf = getattr(self.kernel, "btf", None)
        if btf is None:
            return []
        prefix = tag + " "
        return [n[len(prefix) :] for n in btf.type_names() if n.startswith(prefix)]

    # --- names ----------------------------------------------------------------------------------------
    def lookup(self, name: str) -> tuple:
        """What an identifier is: ("var", address, type), ("func", address, type|None),
        ("enum", type, value), ("type", type), ("nodebug-data", address)."""
        hit = self._names.get(name)
        if hit is None:
            hit = self._lookup(name)
            self._names[name] = hit
        return hit

    def _lookup(self, name: str) -> tuple:
        kernel = self.kernel
        sym = kernel.symbols.lookup(name)
        if sym is not None and sym.type in _TEXT_LETTERS:
            ftype = self._function_type(name)
            if ftype is not None:
                return ("func", sym.address, ftype)
            # Linker/asm labels the C code declares (`extern char _stext[]`) are variables to gdb.
            try:
                address, vtype = kernel.variable_type(name)
                return ("var", address, vtype)
            except LookupFailedError:
                return ("func", sym.address, None)
        try:
            address, vtype = kernel.variable_type(name)
            if sym is not None and sym.size:
                vtype = _complete_array(vtype, sym.size)
            return ("var", address, vtype)
        except LookupFailedError:
            pass
        if sym is not None:
            return ("nodebug-data", sym.address)
        for extra in getattr(kernel, "module_debuginfo", ()):  # a module function (after `mod -s`)
            ftype = extra.find_function(name)
            msym = extra.symbols.lookup(name) if ftype is not None else None
            if msym is not None:
                return ("func", msym.address, ftype)
        found = self._enumerator(name)
        if found is not None:
            return ("enum", found[0], found[1])
        t = self.find_type(name)
        if t is not None:
            return ("type", t)
        try:
            kernel.symbol(name)
        except LookupFailedError as e:
            raise ExprError(str(e)) from None
        raise ExprError(f'no symbol "{name}"')

    def _function_type(self, name: str) -> Type | None:
        # BTF describes defined functions only; DWARF also has prototypes of asm entry points, which
        # gdb does not treat as functions with debug info. DWARF is the fallback without BTF.
        btf = getattr(self.kernel, "btf", None)
        sources = (btf,) if btf is not None else (getattr(self.kernel, "dwarf", None),)
        for source in sources:
            finder = getattr(source, "find_function", None)
            if finder is not None:
                t = finder(name)
                if t is not None:
                    return t
        return None

    def _enumerator(self, name: str) -> tuple[Type, int] | None:
        for source in (getattr(self.kernel, "btf", None), getattr(self.kernel, "dwarf", None)):
            finder = getattr(source, "find_enumerator", None)
            if finder is not None:
                hit = finder(name)
                if hit is not None:
                    return hit
        return None


def _complete_array(t: Type, size: int) -> Type:
    """`extern char x[]` found in a declaring unit: give it the length the symbol's size implies."""
    quals = []
    core = t
    while core.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
        quals.append(core.kind)
        core = core.target
    if core.kind is not Kind.ARRAY or core.length:
        return t
    elem = core.target.sizeof()
    if not elem or size % elem:
        return t
    out = Type(Kind.ARRAY, None, None, target=core.target, length=size // elem)
    for kind in reversed(quals):
        out = Type(kind, None, None, target=out)
    return out


def _qualify(t: Type, quals: tuple[str, ...]) -> Type:
    for q in quals:
        kind = {"const": Kind.CONST, "volatile": Kind.VOLATILE, "restrict": Kind.RESTRICT}.get(q)
        if kind is not None:
            t = Type(kind, None, None, target=t)
    return t
