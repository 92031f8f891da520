"""One type model for BTF and DWARF: kernel C types, resolved lazily, named as gdb names them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from kcrash.errors import LookupFailedError

__all__ = [
    "Kind",
    "Type",
    "Member",
    "Enumerator",
    "Parameter",
    "TypeRef",
    "type_name",
    "declaration",
    "suggest",
]


class Kind(Enum):
    VOID = "void"
    INT = "int"
    BOOL = "bool"
    FLOAT = "float"
    POINTER = "pointer"
    ARRAY = "array"
    STRUCT = "struct"
    UNION = "union"
    ENUM = "enum"
    TYPEDEF = "typedef"
    FUNCTION = "function"
    CONST = "const"
    VOLATILE = "volatile"
    RESTRICT = "restrict"


QUALIFIERS = (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT)

# A reference to another type: the Type itself, or a thunk that resolves it on first use (DWARF/BTF ids).
TypeRef = "Type | Callable[[], Type]"


def _resolve(ref: Type | Callable[[], Type] | None) -> Type | None:
    if ref is None or isinstance(ref, Type):
        return ref
    return ref()


class _LazyTarget:
    """Mixin for records whose `type` is resolved on first access."""

    __slots__ = ("_type",)

    def __init__(self, type: Type | Callable[[], Type]) -> None:
        self._type = type

    @property
    def type(self) -> Type:
        ref = self._type
        if not isinstance(ref, Type):
            ref = ref()
            self._type = ref
        return ref


class Member(_LazyTarget):
    """A struct/union member; `bit_offset` from the start of the enclosing aggregate."""

    __slots__ = ("name", "bit_offset", "bit_size")

    def __init__(
        self,
        name: str | None,
        type: Type | Callable[[], Type],
        bit_offset: int,
        bit_size: int = 0,
    ) -> None:
        super().__init__(type)
        self.name = name
        self.bit_offset = bit_offset
        self.bit_size = bit_size

    @property
    def offset(self) -> int:
        return self.bit_offset // 8

    def __repr__(self) -> str:
        return f"Member({self.name!r}, bit_offset={self.bit_offset}, bit_size={self.bit_size})"


class Parameter(_LazyTarget):
    __slots__ = ("name",)

    def __init__(self, name: str | None, type: Type | Callable[[], Type]) -> None:
        super().__init__(type)
        self.name = name


@dataclass(frozen=True, slots=True)
class Enumerator:
    name: str
    value: int


class Type:
    """A C type. Targets, members and parameters may be thunks resolved on first access.

    `size` is None for incomplete types (declarations, void, functions).
    """

    __slots__ = (
        "kind",
        "name",
        "size",
        "signed",
        "length",
        "_target",
        "_members",
        "enumerators",
        "_params",
        "variadic",
        "__weakref__",
    )

    def __init__(
        self,
        kind: Kind,
        name: str | None = None,
        size: int | None = None,
        *,
        signed: bool = False,
        target: Type | Callable[[], Type] | None = None,
        length: int | None = None,
        members: list[Member] | Callable[[], list[Member]] | None = None,
        enumerators: list[Enumerator] | None = None,
        params: list[Parameter] | Callable[[], list[Parameter]] | None = None,
        variadic: bool = False,
    ) -> None:
        self.kind = kind
        self.name = name
        self.size = size
        self.signed = signed
        self._target = target
        self.length = length
        self._members = members
        self.enumerators = enumerators
        self._params = params
        self.variadic = variadic

    # --- lazy parts -------------------------------------------------------------------------------
    @property
    def target(self) -> Type:
        """Pointee, element, typedef'd, qualified or return type."""
        ref = self._target
        if ref is None:
            raise LookupFailedError(f"{type_name(self)} has no target type")
        if not isinstance(ref, Type):
            ref = ref()
            self._target = ref
        return ref

    @property
    def members(self) -> list[Member]:
        ref = self._members
        if ref is None:
            return []
        if callable(ref):
            ref = ref()
            self._members = ref
        return ref

    @property
    def params(self) -> list[Parameter]:
        ref = self._params
        if ref is None:
            return []
        if callable(ref):
            ref = ref()
            self._params = ref
        return ref

    # --- classification ---------------------------------------------------------------------------
    def strip(self) -> Type:
        """This type without typedefs and qualifiers."""
        t = self
        while t.kind is Kind.TYPEDEF or t.kind in QUALIFIERS:
            t = t.target
        return t

    def unqualified(self) -> Type:
        t = self
        while t.kind in QUALIFIERS:
            t = t.target
        return t

    @property
    def is_complete(self) -> bool:
        t = self.strip()
        return t.size is not None or t.kind is Kind.ARRAY

    def sizeof(self) -> int:
        """Size in bytes, following typedefs; arrays multiply out."""
        t = self.strip()
        if t.kind is Kind.ARRAY:
            return (t.length or 0) * t.target.sizeof()
        if t.size is None:
            if t.kind is Kind.VOID or t.kind is Kind.FUNCTION:
                return 1  # gdb's answer for sizeof(void) and functions
            raise LookupFailedError(f"{type_name(self)} is an incomplete type")
        return t.size

    @property
    def is_integer(self) -> bool:
        return self.strip().kind in (Kind.INT, Kind.BOOL, Kind.ENUM)

    @property
    def is_pointer(self) -> bool:
        return self.strip().kind is Kind.POINTER

    @property
    def is_aggregate(self) -> bool:
        return self.strip().kind in (Kind.STRUCT, Kind.UNION)

    # --- members ----------------------------------------------------------------------------------
    def find_member(self, name: str) -> tuple[Member, int] | None:
        """Member `name` and its bit offset from the start of this aggregate, looking
        through anonymous structs/unions as C does."""
        t = self.strip()
        for m in t.members:
            if m.name == name:
                return m, m.bit_offset
        for m in t.members:
            if m.name is None and m.type.is_aggregate:
                hit = m.type.find_member(name)
                if hit is not None:
                    return hit[0], m.bit_offset + hit[1]
        return None

    def member(self, name: str) -> tuple[Member, int]:
        hit = self.find_member(name)
        if hit is None:
            raise LookupFailedError(self._no_member_message(name))
        return hit

    def find_offset(self, path: str) -> int | None:
        """The byte offset of a member path such as "idr.idr_rt.xa_head" (a member of a member, looking
        through anonymous structs/unions), or None if a member on the way is missing."""
        t: Type = self
        bits = 0
        for part in path.split("."):
            hit = t.find_member(part)
            if hit is None:
                return None
            bits += hit[1]
            t = hit[0].type
        return bits // 8

    def offsetof(self, path: str) -> int:
        """The byte offset of a member path, as C's offsetof(type, a.b.c); raises naming a missing member."""
        t: Type = self
        bits = 0
        for part in path.split("."):
            member, offset = t.member(part)
            bits += offset
            t = member.type
        return bits // 8

    def member_names(self) -> Iterator[str]:
        for m in self.strip().members:
            if m.name is not None:
                yield m.name
            elif m.type.is_aggregate:
                yield from m.type.member_names()

    def _no_member_message(self, name: str) -> str:
        msg = f'no member "{name}" in {type_name(self)}'
        near = suggest(name, self.member_names())
        if near:
            msg += f'; did you mean "{near}"?'
        return msg

    def enumerator_value(self, name: str) -> int:
        for e in self.strip().enumerators or ():
            if e.name == name:
                return e.value
        raise LookupFailedError(f'no enumerator "{name}" in {type_name(self)}')

    # --- naming -----------------------------------------------------------------------------------
    def __str__(self) -> str:
        return type_name(self)

    def __repr__(self) -> str:
        return f"<Type {type_name(self)}>"


def suggest(name: str, candidates: Iterator[str] | list[str]) -> str | None:
    """The closest candidate to a misspelt name, if one is close enough to be worth saying."""
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return close[0] if close else None


# --- C declarator formatting (as gdb's whatis/ptype print it) ---------------------------------------


def _base_name(t: Type) -> str:
    k = t.kind
    if k in (Kind.STRUCT, Kind.UNION, Kind.ENUM):
        return f"{k.value} {t.name}" if t.name else f"{k.value} {{...}}"
    if k is Kind.VOID:
        return "void"
    return t.name or "<anonymous>"


def declaration(t: Type, inner: str = "") -> str:
    """The C declaration of `inner` (a name, or "" for an abstract declarator) with type `t`."""
    quals: list[str] = []
    while t.kind in QUALIFIERS:
        quals.append(t.kind.value)
        t = t.target
    k = t.kind
    if k is Kind.POINTER:
        q = " ".join(quals)
        ptr = "*" + (" " + q if q else "")
        if q and inner:
            ptr += " "
        return declaration(t.target, ptr + inner)
    if k is Kind.ARRAY:
        dims = f"[{t.length}]" if t.length is not None else "[]"
        if inner.startswith("*"):
            inner = f"({inner})"
        return declaration(t.target, f"{inner}{dims}" if inner else dims)
    if k is Kind.FUNCTION:
        params = ", ".join(type_name(p.type) for p in t.params)
        if t.variadic:
            params = f"{params}, ..." if params else "..."
        elif not t.params:
            params = "void"
        if inner.startswith("*"):
            inner = f"({inner})"
        ret = t._target
        ret_type = _resolve(ret) if ret is not None else None
        ret_type = ret_type if ret_type is not None else Type(Kind.VOID)
        return declaration(ret_type, f"{inner}({params})")
    base = _base_name(t)
    if quals:
        base = " ".join(quals) + " " + base
    if not inner:
        return base
    if inner.startswith("[") or inner.startswith("("):
        return f"{base} {inner}"
    return f"{base} {inner}"


def type_name(t: Type) -> str:
    """gdb's spelling of a type: `char *`, `struct list_head *`, `char [16]`, `int (*)(void)`."""
    return declaration(t, "")
