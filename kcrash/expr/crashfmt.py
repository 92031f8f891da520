"""crash's own rewriting of gdb output: struct/union definitions with `SIZE:` and `-o` offsets
(symbols.c do_datatype_declaration, show_member_offset), member selection from a printed struct
(parse_for_member, parse_for_member_extended), `whatis` of a variable and of an enum, and the
`SYMBOL = $N = ` leader of `p`.

These reproduce crash's text processing on the gdb-format text kcrash renders, so the quirks users
know (indentation of anonymous-union members, the `pids[2] =   {` spacing) come out the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kcrash.debuginfo.types import Type
from kcrash.expr.typeprint import ptype, type_name

__all__ = [
    "declaration_text",
    "member_data",
    "whatis_variable",
    "enum_list",
    "p_leader",
    "radix_number",
]


def radix_number(value: int, radix: int) -> str:
    return f"0x{value:x}" if radix == 16 else str(value)


def _leading_spaces(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


# --- struct/union definitions -------------------------------------------------------------------------


def _member_offset(t: Type, name: str) -> int | None:
    hit = t.strip().find_member(name) if name else None
    if hit is None:
        return None
    return hit[1] // 8


def declaration_text(
    t: Type,
    typedef_name: str | None = None,
    offsets: bool = False,
    member: str | None = None,
    vaddr: int | None = None,
    radix: int = 10,
) -> str:
    """`struct NAME` (no address): gdb's ptype body, crash's `SIZE:` line, `-o` offsets.

    `typedef_name`: the definition was asked for through a typedef (`typedef struct {...} name;`).
    `member`: only that member's line, with its offset (`struct task_struct.tasks`).
    `vaddr`: with -o and an address, offsets are printed as addresses.
    """
    text = ptype(t)
    lines = [line + "\n" for line in text.split("\n")]
    out: list[str] = []
    multiline = "{" in lines[0]
    size = t.strip().size or 0
    size_text = radix_number(size, radix)
    state = {"in": None}
    show_offset = offsets or member is not None
    first = lines[0]
    if typedef_name is not None:
        if multiline:
            out.append("typedef " + first)
        else:
            out.append(f"typedef {first.rstrip()} {typedef_name};\n")
    else:
        out.append(first if multiline else f"{first.rstrip()};\n")
    for line in lines[1:]:
        if multiline and line.startswith("}") and typedef_name is not None:
            out.append(f"{line.rstrip()} {typedef_name};\n")
        elif show_offset and line[:1].isspace():
            out.append(_offset_line(t, line, size_text, member, vaddr, radix, state))
        else:
            out.append(line)
    if member is None:
        out.append(f"SIZE: {size_text}\n")
    return "".join(out)


def _offset_line(
    t: Type, line: str, size_text: str, member: str | None, vaddr: int | None, radix: int, state: dict
) -> str:
    """crash's show_member_offset for one line of a ptype body."""
    if not line.startswith("    "):
        return f"rejecting: {line}"
    if line.startswith("    union {"):
        state["in"] = "union"
    if line.startswith("    struct {"):
        state["in"] = "struct"
    end_of_block = line.startswith("    } ")
    width = len(size_text) + 4
    words = line.split()
    target = None
    if ":" in line:
        for i, w in enumerate(words):
            if i and w == ":":
                target = words[i - 1]
                break
    elif words:
        for w in words:
            if "(*" in w:
                body = w[w.index("(*") + 2 :]
                if ")" in body:
                    target = body[: body.index(")")]
                    break
        else:
            target = words[-1] if ";" in words[-1] else None
    name = None
    if target is not None:
        name = re.sub(r"[*\[\];()]", " ", target).strip().split(" ")[0] if target.strip() else ""
    if not name:
        return _empty_offset(line, size_text, member, end_of_block, state)
    if member is not None and name != member:
        if end_of_block:
            state["in"] = None
        return ""
    offset = _member_offset(t, name)
    if offset is None:
        return _empty_offset(line, size_text, member, end_of_block, state)
    out = ""
    if end_of_block and member is not None:
        out += " " * (width + 1)
        if state["in"] == "union":
            out += "union {\n"
        elif state["in"] == "struct":
            out += "struct {\n"
        state["in"] = None
    if vaddr is not None:
        tag = f"  [{offset + vaddr:x}]"
    else:
        tag = f"  [0x{offset:x}]" if radix == 16 else f"  [{offset}]"
    return out + tag.rjust(width) + line[3:]


def _empty_offset(line: str, size_text: str, member: str | None, end_of_block: bool, state: dict) -> str:
    if end_of_block:
        state["in"] = None
    if member is not None:
        return ""
    return " " * (len(size_text) + 1) + line


# --- member data from a printed struct -----------------------------------------------------------------


def member_data(struct_text: str, member: str) -> str | None:
    """The lines crash prints for `struct NAME.member ADDR`, cut from the full struct text (which starts
    with the `struct NAME {` line). None when the member is not found (crash's "invalid data structure
    member reference")."""
    lines = [line + "\n" for line in struct_text.rstrip("\n").split("\n")]
    if "." in member or "[" in member:
        return _member_extended(lines, member)
    return _member_simple(lines, member)


def _member_simple(lines: list[str], name: str) -> str | None:
    look1 = f"  {name} "
    look2 = f"  {name}["
    out: list[str] = []
    indent = 0
    on = 0
    embed = 0
    array = False
    i = 0
    while True:
        while i < len(lines):
            buf = lines[i]
            i += 1
            if embed and _leading_spaces(buf) == embed:
                embed = 0
            if not on and not embed and "= {" in buf and look1 not in buf:
                embed = _leading_spaces(buf)
            if embed:
                continue
            if look1 in buf or look2 in buf:
                on += 1
                if "= {" in buf:
                    indent = _leading_spaces(buf)
                if "[" in buf:
                    array = True
            if on:
                if (indent and on > 1 and _leading_spaces(buf) == indent and "}" not in buf) or buf[
                    :1
                ] == "}":
                    break
                if not indent:
                    out.append(buf.replace(", \n", "\n", 1))
                    break
                if "}" in buf and _leading_spaces(buf) == indent:
                    out.append(buf.replace("}, \n", "}\n", 1))
                    break
                out.append(buf)
                on += 1
        if array:
            on = 0
            array = False
            if i < len(lines):
                continue
        break
    return "".join(out) if out else None


@dataclass(eq=False)
class _Elem:
    parent: _Elem | None = None
    field_name: str = ""
    value: str = ""
    is_array_root: bool = False
    inner: _Elem | None = None
    next: _Elem | None = None


def _is_right_brace(b: str) -> int:
    b = b.lstrip(" ")
    if not b.startswith("}"):
        return 0
    r = 1
    b = b[1:]
    if b.startswith("}"):
        r = 2
        b = b[1:]
    if b.startswith(","):
        b = b[1:]
    return r if b == "" else 0


def _member_extended(lines: list[str], member: str) -> str | None:
    root = _Elem()
    current: _Elem | None = _Elem(parent=root)
    root.inner = current

    def alloc_inner(cur: _Elem) -> _Elem:
        new = _Elem(parent=cur)
        cur.inner = new
        return new

    def alloc_next(cur: _Elem) -> _Elem:
        new = _Elem(parent=cur.parent)
        cur.next = new
        return new

    for raw in lines:
        buf = raw.rstrip()
        trailing_comma = buf.endswith(",")
        if trailing_comma:
            buf = buf[:-1]
        braces = _is_right_brace(buf)
        if braces:
            while braces and current is not None:
                current = current.parent
                braces -= 1
            if current is None:
                return None
            if current.parent is root or trailing_comma:
                current = alloc_next(current)
            continue
        if current is None:
            return None
        p1 = buf.lstrip(" ")
        eq = buf.find(" = ")
        s_e = buf[eq + 3 :] if eq >= 0 else p1
        if eq >= 0:
            current.field_name = buf[len(buf) - len(p1) : eq]
        if eq >= 0 and (not s_e.startswith("{") or buf.endswith("}")):
            current.value = s_e
            if trailing_comma:
                current = alloc_next(current)
        elif s_e.startswith("{"):
            current = alloc_inner(current)
            if s_e[1:2] == "{":
                assert current.parent is not None
                current.parent.is_array_root = True
                current = alloc_inner(current)
        elif "}, {" in s_e:
            assert current.parent is not None
            current = current.parent
            current = alloc_next(current)
            current = alloc_inner(current)
        elif buf.startswith("struct ") or buf.startswith("union "):
            words = buf.split(" ")
            current.field_name = words[1] if len(words) > 1 else ""
            current = alloc_inner(current)
    node: _Elem | None = root.inner
    while node is not None:
        found = _find_node(node.inner, member)
        if found is not None:
            out: list[str] = []
            _dump_node(found, member, 0, False, out)
            return "".join(out)
        node = node.next
    return None


def _find_node(s: _Elem | None, n: str) -> _Elem | None:
    if not n or s is None:
        return s
    dot = n.find(".")
    p = dot if dot >= 0 else len(n)
    b = n.find("[", 0, p)
    if b < 0:
        b = p
    first = s
    while s is not None:
        if s.field_name and s.field_name == n[:b]:
            if s.is_array_root and b == p and p < len(n):
                return None
            if b < p:
                m = re.match(r"\[(\d+)\]", n[b:p])
                if not (s.is_array_root and m):
                    return None
                i = int(m.group(1))
                s = s.inner
                while s is not None and i:
                    s = s.next
                    i -= 1
                if i or s is None:
                    return None
            if p >= len(n):
                return s
            return _find_node(s.inner, n[p + 1 :])
        s = s.next
    s = first
    while s is not None:
        if not s.field_name:
            t = _find_node(s.inner, n)
            if t is not None:
                return t
        s = s.next
    return None


def _dump_node(p: _Elem | None, f: str | None, level: int, is_array: bool, out: list[str]) -> None:
    if p is None:
        return

    def put(m: int, text: str) -> None:
        out.append(" " * (2 + 2 * (m * int(is_array) + level)) + text)

    while True:
        if p.inner is not None:
            opener = "{{" if p.inner.is_array_root else "{"
            if p.field_name:
                put(1, f"{f if f else p.field_name} = {opener}\n")
            else:
                if f:
                    put(1, f"{f} = ")
                put(1, f"{opener}\n")
            _dump_node(p.inner, None, int(is_array) + level + 1, p.inner.is_array_root, out)
            closer = "}}" if p.inner.is_array_root else "}"
            comma = "," if p.next is not None and not p.next.is_array_root else ""
            put(1, f"{closer}{comma}\n")
        else:
            put(
                1, f"{f if f else p.field_name} = {p.value}{',' + chr(10) if p.next is not None else chr(10)}"
            )
        if level:
            p = p.next
            if p is not None and p.is_array_root:
                put(0, "}, {\n")
        if not (p is not None and level):
            break


# --- whatis ---------------------------------------------------------------------------------------------


def whatis_variable(name: str, t: Type) -> str:
    """crash's whatis_variable: gdb's `whatis NAME` with the name put into the declarator."""
    text = type_name(t)
    if "[" in text:
        i = text.index("[")
        return text[:i] + name + text[i:] + ";"
    if "(" in text:
        if text.count("(") == 1:
            i = text.index("(")
        else:
            i = text.index(")")
        return text[:i] + name + text[i:] + ";"
    return f"{text}{'' if text.endswith('*') else ' '}{name};"


def enum_list(t: Type, name: str) -> str:
    """crash's enumerator dump (`whatis enum_type`)."""
    lines = [f"enum {name} {{"]
    for e in t.strip().enumerators or ():
        lines.append(f"  {e.name} = {e.value}")
    lines.append("};")
    return "\n".join(lines) + "\n"


def p_leader(leader: str, text: str) -> str:
    """crash's `SYMBOL = ` in front of gdb's `$N = value`; a brace not ending the first line moves to a
    new line, as crash's process_gdb_output does."""
    first, nl, rest = text.partition("\n")
    brace = first.find("{")
    if brace >= 0 and first[brace:] != "{":
        first = first[:brace] + "\n {" + first[brace + 1 :]
    return f"{leader} = {first}{nl}{rest}"
