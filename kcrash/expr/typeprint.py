"""C types spelt as gdb prints them (`whatis`, `ptype`, the `(type *)` prefix of a printed pointer).

gdb names DWARF's base types in their short C form ("long unsigned int" -> "unsigned long") and prints
qualifiers, pointers, arrays and function types with its own spacing rules (c-typeprint.c); this module
reproduces them over kcrash's type model, where qualifiers are wrapper types rather than flags.
"""

from __future__ import annotations

from kcrash.debuginfo.types import QUALIFIERS, Kind, Type

__all__ = ["gdb_base_name", "type_name", "declaration", "ptype", "peel"]

# gdb's spelling of the integer types gcc names in DWARF.
_BASE_NAMES = {
    "long unsigned int": "unsigned long",
    "long int": "long",
    "short int": "short",
    "short unsigned int": "unsigned short",
    "long long int": "long long",
    "long long unsigned int": "unsigned long long",
}
_QUAL_ORDER = (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT)


def gdb_base_name(name: str) -> str:
    return _BASE_NAMES.get(name, name)


def peel(t: Type) -> tuple[frozenset[Kind], Type]:
    """(qualifiers, the unqualified type). Qualifiers of an array apply to its elements, as in gdb."""
    quals: set[Kind] = set()
    while t.kind in QUALIFIERS:
        quals.add(t.kind)
        t = t.target
    if quals and t.kind is Kind.ARRAY:
        element = t.target
        for q in _QUAL_ORDER[::-1]:
            if q in quals:
                element = Type(q, None, None, target=element)
        return frozenset(), Type(Kind.ARRAY, None, None, target=element, length=t.length)
    return frozenset(quals), t


def _modifiers(quals: frozenset[Kind], pre_space: bool, post_space: bool) -> str:
    words = [k.value for k in _QUAL_ORDER if k in quals]
    if not words:
        return ""
    text = " ".join(words)
    return (" " if pre_space else "") + text + (" " if post_space else "")


def _name_of(t: Type) -> str | None:
    """gdb's TYPE_NAME: tags of aggregates, typedef names, base type names."""
    if t.kind is Kind.VOID:
        return t.name or "void"
    if t.kind in (Kind.POINTER, Kind.ARRAY):
        return None
    return t.name  # functions have none, except gdb's "<text variable, no debug info>"


def _tagged(t: Type, name: str) -> str:
    if t.kind is Kind.STRUCT:
        return "struct " + name
    if t.kind is Kind.UNION:
        return "union " + name
    if t.kind is Kind.ENUM:
        return "enum " + name
    if t.kind in (Kind.INT, Kind.BOOL, Kind.FLOAT):
        return gdb_base_name(name)
    return name


def _resolve_typedefs(t: Type, quals: frozenset[Kind]) -> tuple[frozenset[Kind], Type]:
    """check_typedef(): follow typedefs, keeping every qualifier met on the way."""
    while True:
        q, t = peel(t)
        quals = quals | q
        if t.kind is not Kind.TYPEDEF:
            return quals, t
        t = t.target


def _base(t: Type, show: int, level: int, out: list[str]) -> None:
    quals, core = peel(t)
    name = _name_of(core)
    if show <= 0 and name is not None:
        out.append(_modifiers(quals, False, True) + _tagged(core, name))
        return
    quals, core = _resolve_typedefs(core, quals)
    k = core.kind
    if k in (Kind.POINTER, Kind.ARRAY):
        _base(core.target, show, level, out)
    elif k is Kind.FUNCTION:
        _base(_return_type(core), show, level, out)
    elif k in (Kind.STRUCT, Kind.UNION):
        _struct_base(core, quals, show, level, out)
    elif k is Kind.ENUM:
        _enum_base(core, quals, show, out)
    elif k is Kind.VOID:
        out.append(_modifiers(quals, False, True) + (core.name or "void"))
    else:
        out.append(_modifiers(quals, False, True) + gdb_base_name(core.name or "<anonymous>"))


def _return_type(func: Type) -> Type:
    ref = func._target
    if ref is None:
        return Type(Kind.VOID, "void")
    return func.target


def _struct_base(t: Type, quals: frozenset[Kind], show: int, level: int, out: list[str]) -> None:
    out.append(_modifiers(quals, False, True))
    out.append("union " if t.kind is Kind.UNION else "struct ")
    if t.name:
        out.append(t.name)
        if show > 0:
            out.append(" ")
    if show < 0 and (t.name or level == 0):
        # gdb 10 (crash's) expands anonymous aggregates inside a body at any depth.
        if not t.name:
            out.append("{...}")
        return
    if not (show > 0 or not t.name):
        return
    out.append("{\n")
    members = t.members
    if not members:
        what = "<incomplete type>" if t.size is None else "<no data fields>"
        out.append(" " * (level + 4) + what + "\n")
    for m in members:
        out.append(" " * (level + 4))
        _print_type(m.type, m.name or "", show - 1, level + 4, out)
        if m.bit_size:
            out.append(f" : {m.bit_size}")
        out.append(";\n")
    out.append(" " * level + "}")


def _enum_base(t: Type, quals: frozenset[Kind], show: int, out: list[str]) -> None:
    out.append(_modifiers(quals, False, True) + "enum ")
    if t.name:
        out.append(t.name)
        if show > 0:
            out.append(" ")
    if show < 0:
        if not t.name:
            out.append("{...}")
        return
    if not (show > 0 or not t.name):
        return
    parts = []
    last = 0
    for e in t.enumerators or ():
        if e.value != last:
            parts.append(f"{e.name} = {e.value}")
            last = e.value
        else:
            parts.append(e.name)
        last += 1
    out.append("{" + ", ".join(parts) + "}")


def _prefix(t: Type, show: int, passed_ptr: bool, post_space: bool, out: list[str]) -> None:
    quals, core = peel(t)
    if _name_of(core) is not None and show <= 0:
        return
    k = core.kind
    if k is Kind.POINTER:
        _prefix(core.target, show, True, True, out)
        out.append("*")
        out.append(_modifiers(quals, True, post_space))
    elif k in (Kind.FUNCTION, Kind.ARRAY):
        _prefix(_return_type(core) if k is Kind.FUNCTION else core.target, show, False, False, out)
        if passed_ptr:
            out.append("(")
    elif k is Kind.TYPEDEF:
        _prefix(core.target, show, passed_ptr, False, out)


def _suffix(t: Type, show: int, passed_ptr: bool, out: list[str]) -> None:
    _, core = peel(t)
    if _name_of(core) is not None and show <= 0:
        return
    k = core.kind
    if k is Kind.ARRAY:
        if passed_ptr:
            out.append(")")
        out.append(f"[{core.length}]" if core.length is not None else "[]")
        _suffix(core.target, show, False, out)
    elif k is Kind.POINTER:
        _suffix(core.target, show, True, out)
    elif k is Kind.FUNCTION:
        if passed_ptr:
            out.append(")")
        out.append(_args(core))
        _suffix(_return_type(core), show, passed_ptr, out)
    elif k is Kind.TYPEDEF:
        _suffix(core.target, show, passed_ptr, out)


def _args(func: Type) -> str:
    params = [declaration(p.type, "", show=0) for p in func.params]
    if params and func.variadic:
        params.append("...")
    elif not params:
        params.append("void")
    return "(" + ", ".join(params) + ")"


def _print_type(t: Type, varstring: str, show: int, level: int, out: list[str]) -> None:
    """gdb's c_print_type: base type, then the declarator around `varstring`."""
    _base(t, show, level, out)
    _, core = peel(t)
    code = core.kind
    if varstring or (
        (show > 0 or _name_of(core) is None) and code in (Kind.POINTER, Kind.FUNCTION, Kind.ARRAY)
    ):
        out.append(" ")
    _prefix(t, show, False, bool(varstring), out)
    out.append(varstring)
    _suffix(t, show, False, out)


def declaration(t: Type, name: str = "", show: int = -1, level: int = 0) -> str:
    """`t` declaring `name` (or abstract when ""), as gdb prints it at the given `show` level."""
    out: list[str] = []
    _print_type(t, name, show, level, out)
    return "".join(out)


def type_name(t: Type) -> str:
    """A type's name as gdb's `whatis` and the `(type *)` prefix spell it."""
    return declaration(t, "", -1)


def ptype(t: Type) -> str:
    """gdb's `ptype` text without the "type = " prefix (may span lines)."""
    return declaration(t, "", 1)
