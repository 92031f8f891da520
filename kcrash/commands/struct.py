"""`struct`, `union`, `*`, `whatis` and `ptype`: type definitions and typed memory, in crash's formats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.commands.p import _context_task, context_cpus, read_error
from kcrash.debuginfo.types import Kind, Type
from kcrash.errors import MemoryReadError
from kcrash.expr.crashfmt import declaration_text, enum_list, member_data, whatis_variable
from kcrash.expr.errors import ExprError, Unsupported
from kcrash.expr.session import expr_session
from kcrash.expr.typeprint import ptype, type_name
from kcrash.kernel.modules import lookup_module_symbol
from kcrash.records import hex_field

__all__ = ["find_aggregate", "StructRecord", "parse_struct_spec", "show_struct_spec", "member_type_offset"]


@dataclass(frozen=True)
class StructRecord:
    """The text crash prints for one struct/union (or member list) at an address."""

    type: str
    address: int | None = hex_field()
    text: str = ""


def find_aggregate(ctx, name: str, kinds: tuple[str, ...]) -> tuple[Type, str, str | None]:
    """(type, "struct"|"union", typedef name or None) for a struct/union name or a typedef of one."""
    scope = expr_session(ctx).scope
    for kind in kinds:
        t = scope.find_type(f"{kind} {name}")
        if t is not None and t.strip().members is not None:
            return t, kind, None
    t = scope.find_type(name)
    if t is not None and t.kind is Kind.TYPEDEF:
        core = t.strip()
        kind = core.kind.value
        if kind in kinds:
            return core, kind, name
    raise KcrashError(f"invalid data structure reference: {name}")


def parse_struct_spec(ctx: Context, spec: str) -> tuple[Type, str, str, str | None, list[str]]:
    """A "struct[.member[,member]]" argument (of list -s, tree -s): (type, kind, name, typedef, members);
    an unknown structure or member is crash's "invalid data structure reference"."""
    name, dot, member_text = spec.partition(".")
    if dot and not member_text:
        raise KcrashError(f"invalid data structure reference: {spec}")
    t, kind, typedef = find_aggregate(ctx, name, ("struct", "union"))
    members = [m for m in member_text.split(",") if m] if dot else []
    for m in members:
        if member_type_offset(t, m) is None:
            raise KcrashError(f"invalid data structure reference: {name}.{m}")
    return t, kind, name, typedef, members


def member_type_offset(t: Type, path: str) -> tuple[Type, int] | None:
    """The type and byte offset of "member.member[index]" inside `t`, or None if it names nothing."""
    offset = 0
    for part in path.split("."):
        base, bracket, rest = part.partition("[")
        hit = t.strip().find_member(base)
        if hit is None:
            return None
        offset += hit[1] // 8
        t = hit[0].type
        if bracket:
            arr = t.strip()
            if arr.kind is not Kind.ARRAY or not rest.endswith("]"):
                return None
            try:
                index = int(rest[:-1], 0)
            except ValueError:
                return None
            t = arr.target
            offset += index * t.sizeof()
    return t, offset


def show_struct_spec(
    ctx: Context, parsed: tuple[Type, str, str, str | None, list[str]], address: int, radix: int
) -> None:
    """`struct SPEC ADDRESS` as list -s and tree -s print it, from parse_struct_spec's answer."""
    t, kind, name, typedef, members = parsed
    _show_one(ctx, t, kind, name, typedef, members, address, radix, False)


def _address_of(ctx, word: str) -> int:
    """A struct address argument: hex (crash's default), a symbol, or an expression."""
    k = ctx.kernel
    if re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", word):
        return int(word, 16)
    sym = k.symbols.lookup(word)
    if sym is not None:
        return sym.address
    session = expr_session(ctx)
    try:
        value = session.evaluate(word)
        t = value.type_.strip()
        if t.kind in (Kind.ARRAY, Kind.STRUCT, Kind.UNION) and value.address is not None:
            return value.address
        return int(value.value()) & 0xFFFFFFFFFFFFFFFF
    except (ExprError, MemoryReadError, TypeError, ValueError):
        raise KcrashError(f"invalid address or symbol: {word}") from None


def _member_offset(ctx, spec: str, default_type: Type) -> int:
    """-l: a number of bytes or "struct.member"."""
    if re.fullmatch(r"(0[xX])?[0-9a-fA-F]+|\d+", spec):
        return int(spec, 0) if spec.lower().startswith("0x") else int(spec)
    name, dot, member = spec.partition(".")
    if not dot:
        raise KcrashError(f"invalid -l option: {spec}")
    t, _, _ = find_aggregate(ctx, name, ("struct", "union"))
    hit = t.find_member(member)
    if hit is None:
        raise KcrashError(f"invalid -l option: {spec}")
    return hit[1] // 8


def _datatype(ctx, args, kinds: tuple[str, ...], cmd: str) -> None:
    words = list(args.words)
    if not words:
        raise UsageError("missing structure name")
    spec = words.pop(0)
    name, dot, member_text = spec.partition(".")
    if dot and not member_text:
        raise KcrashError(f"invalid data structure reference: {spec}")
    t, kind, typedef = find_aggregate(ctx, name, kinds)
    members = [m for m in member_text.split(",") if m] if dot else []
    for m in members:
        first = re.split(r"[.\[]", m, maxsplit=1)[0]
        if t.find_member(first) is None:
            raise KcrashError(f"invalid data structure reference: {name}.{m}")
    radix = 16 if args.x else 10 if args.d else ctx.settings.radix
    count = 1
    if args.c is not None:
        try:
            count = int(args.c, 0)
        except ValueError:
            raise UsageError(f"invalid count: {args.c}") from None
    address_word = None
    if words:
        address_word = words.pop(0)
    if words:
        last = words.pop(0)
        if not re.fullmatch(r"-?\d+", last):
            raise UsageError(f"invalid count: {last}")
        count = int(last)
    if words:
        raise UsageError(f"unexpected argument: {words[0]}")
    if args.r and len(members) > 1:
        raise KcrashError("only one structure member allowed with -r")
    if address_word is None:
        if len(members) > 1:
            raise KcrashError("multiple member format not supported in this syntax")
        if members and "." in members[0]:
            raise KcrashError(f"invalid data structure reference: {name}.{members[0]}")
        text = declaration_text(
            t, typedef, offsets=args.o, member=members[0] if members else None, radix=radix
        )
        ctx.emit(StructRecord(f"{kind} {name}", None, text), text=text)
        return
    cpuspec = None
    if ":" in address_word:
        address_word, _, cpuspec = address_word.rpartition(":")
    address = _address_of(ctx, address_word)
    if args.l:
        address -= _member_offset(ctx, args.l, t)
    targets: list[tuple[str | None, int]] = []
    if cpuspec is not None:
        k = ctx.kernel
        for cpu in context_cpus(ctx, cpuspec):
            a = k.per_cpu_address(address, cpu)
            targets.append((f"[{cpu}]: {a:x}", a))
    else:
        targets.append((None, address))
    size = t.strip().size or 0
    for header, base in targets:
        first = True  # crash separates the objects of a count by blank lines, not each CPU's block
        if header is not None:
            ctx.write(header + "\n")
        start = base if count >= 0 else base - (abs(count) - 1) * size
        for i in range(abs(count)):
            where = (start + i * size) & 0xFFFFFFFFFFFFFFFF
            if not first:
                ctx.write("\n")
            first = False
            _show_one(ctx, t, kind, name, typedef, members, where, radix, args.o, args.r)


def raw_dump(kernel, address: int, size: int) -> str:
    """crash's raw_data_dump (`struct -r`): rd's layout, word size from the object's size."""
    width = {1: 1, 2: 2, 4: 4}.get(size, 8)
    count = max(1, -(-size // width))
    data = kernel.read(address, count * width)
    per_line = 16 // width
    lines = []
    for first in range(0, count, per_line):
        words = [
            int.from_bytes(data[(first + i) * width : (first + i + 1) * width], "little")
            for i in range(min(per_line, count - first))
        ]
        chunk = data[first * width : (first + len(words)) * width]
        text = "".join(f"{w:0{width * 2}x} " for w in words)
        text += " " * ((width * 2 + 1) * (per_line - len(words)))
        ascii_text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{address + first * width:x}:  {text}  {ascii_text}")
    return "\n".join(lines) + "\n"


def _show_one(
    ctx,
    t: Type,
    kind: str,
    name: str,
    typedef: str | None,
    members: list[str],
    address: int,
    radix: int,
    offsets: bool,
    raw: bool = False,
) -> None:
    if raw:
        size = t.strip().size or 0
        where = address
        if members:
            hit = t.find_member(members[0])
            if hit is None or "." in members[0] or "[" in members[0]:
                raise KcrashError(f"invalid data structure member reference: {members[0]}")
            where = address + hit[1] // 8
            size = hit[0].type.sizeof()
        try:
            text = raw_dump(ctx.kernel, where, size)
        except MemoryReadError as e:
            raise KcrashError(str(e)) from None
        ctx.emit(StructRecord(f"{kind} {name}", where, text), text=text)
        return
    if offsets:
        text = declaration_text(
            t,
            typedef,
            offsets=True,
            member=members[0] if len(members) == 1 else None,
            vaddr=address,
            radix=radix,
        )
        ctx.emit(StructRecord(f"{kind} {name}", address, text), text=text)
        return
    session = expr_session(ctx)
    formatter = session.formatter(None, radix)
    try:
        data = ctx.kernel.read(address, t.strip().size or 0)
    except MemoryReadError as e:
        raise KcrashError(str(e)) from None
    body = formatter.value(t, data, 0, address, 0)
    full = f"{kind} {name} {body}\n"
    if not members:
        ctx.emit(StructRecord(f"{kind} {name}", address, full), text=full)
        return
    out = []
    for m in members:
        part = member_data(full, m)
        if part is None:
            ctx.warn(f"invalid data structure member reference: {m}")
            continue
        out.append(part)
    text = "".join(out)
    if text:
        ctx.emit(StructRecord(f"{kind} {name}", address, text), text=text)


_STRUCT_OPTIONS = [
    Option("-o", help="show member offsets (or addresses, with an address)."),
    Option("-l", metavar="OFFSET", help='the address points to this member ("struct.member" or bytes).'),
    Option("-r", help="raw dump of the structure data."),
    Option("-f", help="the address is a dumpfile offset (not supported)."),
    Option("-u", help="the address is a user virtual address (not supported)."),
    Option("-x", help="hexadecimal output."),
    Option("-d", help="decimal output."),
    Option("-p", help="dereference pointer members (not supported)."),
    Option("-c", metavar="COUNT", help="number of structures (negative: those leading up to the address)."),
]


def _unsupported_options(args) -> None:
    for letter in ("f", "u", "p"):
        if getattr(args, letter):
            raise KcrashError(f"option -{letter} is not supported by kcrash yet")


def _struct_help(kind: str) -> str:
    return f"""
    SYNOPSIS
    {kind} {kind}_name[.member[,member]][-o][-l offset][-xd]
           [address | symbol][:cpuspec] [count | -c count]

    DESCRIPTION
    Without an address, display the {kind} definition and its size (with -o,
    each member's offset); with a member, that member's offset and declaration.
    With an address or symbol, display the {kind} at that address as gdb prints
    it; with members, only those members ("member.member" and "member[index]"
    reach into embedded structures and arrays). A count shows that many
    consecutive {kind}s. Output follows the radix ("set radix") unless -x or -d.

            -o  show member offsets; with an address, each member's address.
     -l offset  the address points to this member: "struct.member" or bytes.
            -x  hexadecimal output.    -d  decimal output.
      :cpuspec  per-cpu address or symbol: ":" the current CPU, ":a" all, ":1,3".

    EXAMPLES
      kcrash> {kind} list_head
      kcrash> {kind} -o task_struct
      kcrash> struct task_struct.pid,comm ffff888003a2c800
      kcrash> struct list_head ffff888003a2c890 2
      kcrash> struct task_struct -l task_struct.tasks ffff888003a2c890
    """


def _prepare(args) -> None:
    args.words = list(args.args)
    _unsupported_options(args)


@command(
    "struct",
    summary="structure contents",
    options=_STRUCT_OPTIONS,
    arguments=[Argument("args", nargs="*", metavar="name[.member,...] [address|symbol] [count]")],
    help=_struct_help("struct"),
)
def struct_command(ctx: Context, args: Args) -> None:
    _prepare(args)
    _datatype(ctx, args, ("struct",), "struct")


@command(
    "union",
    summary="union contents",
    options=_STRUCT_OPTIONS,
    arguments=[Argument("args", nargs="*", metavar="name[.member,...] [address|symbol] [count]")],
    help=_struct_help("union"),
)
def union_command(ctx: Context, args: Args) -> None:
    _prepare(args)
    _datatype(ctx, args, ("union",), "union")


@command(
    "*",
    summary="pointer-to short-cut",
    options=_STRUCT_OPTIONS,
    arguments=[Argument("args", nargs="*", metavar="name[.member,...] [address|symbol] [count]")],
    help="""
    SYNOPSIS
    * (struct or union command arguments)

    DESCRIPTION
    A short-cut for the "struct" or "union" command, whichever the name is.

    EXAMPLES
      kcrash> * page ffffea0000000040
    """,
)
def pointer_to_command(ctx: Context, args: Args) -> None:
    _prepare(args)
    _datatype(ctx, args, ("struct", "union"), "*")


# --- whatis ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRecord:
    query: str
    text: str


def _whatis_text(ctx, text: str, offsets: bool) -> str:
    session = expr_session(ctx)
    scope = session.scope
    k = ctx.kernel
    words = text.split()
    if words[0] in ("struct", "union", "enum") and len(words) > 1:
        words = words[1:]
    elif k.symbols.lookup(words[0]) is not None or lookup_module_symbol(k, words[0]) is not None:
        name = words[0]
        hit = scope.lookup(name)
        if hit[0] == "var":
            return whatis_variable(name, hit[2]) + "\n"
        if hit[0] == "func":
            if hit[2] is None:
                return f"<text variable, no debug info> {name};\n"
            return whatis_variable(name, hit[2]) + "\n"
        return f"<data variable, no debug info> {name};\n"
    name = words[0]
    base, dot, member = name.partition(".")
    for kind in ("struct", "union"):
        t = scope.find_type(f"{kind} {base}")
        if t is not None:
            if dot and t.find_member(member) is None:
                break
            return declaration_text(t, None, offsets=offsets, member=member or None, radix=ctx.settings.radix)
    t = scope.find_type(f"enum {base}")
    if t is not None:
        return enum_list(t, base)
    enum_hit = scope._enumerator(base)
    if enum_hit is not None:
        etype, value = enum_hit
        ename = etype.strip().name or ""
        return f"enum{' ' if ename else ''}{ename} = {value}\n"
    t = scope.find_type(base)
    if t is not None and t.kind is Kind.TYPEDEF and not dot:
        core = t.strip()
        if core.kind in (Kind.STRUCT, Kind.UNION):
            return declaration_text(core, base, offsets=offsets, radix=ctx.settings.radix)
        if core.kind is Kind.ENUM and not core.name:
            return declaration_text(core, base, radix=ctx.settings.radix)
        if core.kind is Kind.BOOL:
            return type_name(t.target) + "\n"
        return declaration_text(t, base, radix=ctx.settings.radix)
    # Anything else is an expression (or a base type): gdb's whatis.
    try:
        typ, named = session.evaluator.type_of(text)
    except Unsupported as why:
        return _gdb_type_query(ctx, "whatis", text, why)
    except MemoryReadError as e:
        raise read_error(e) from None
    except ExprError as e:
        hint = str(e).partition("; did you mean ")[2]
        raise KcrashError(f"cannot resolve: {text}" + (f"; did you mean {hint}" if hint else "")) from e
    if named and typ.kind is Kind.TYPEDEF:
        typ = typ.target
    return type_name(typ) + "\n"


def _gdb_type_query(ctx, cmd: str, text: str, why: Exception) -> str:
    if not ctx.settings.gdb:
        raise KcrashError(f"{why} (the gdb fallback is off)")
    from kcrash.gdb.mi import GdbError, GdbMissing

    try:
        out = expr_session(ctx).gdb(_context_task(ctx)).console(f"{cmd} {text}")
    except (GdbMissing, GdbError) as e:
        raise KcrashError(str(e)) from None
    return out[len("type = ") :] if cmd == "whatis" and out.startswith("type = ") else out


@command(
    "whatis",
    summary="search symbol table for data or type information",
    options=[
        Option("-o", help="display the offsets of structure/union members."),
        Option("-r", metavar="SIZE", help='structures of this size, or of a range "low-high".'),
        Option("-m", metavar="MEMBER", help="structures with a member of (or pointing to) this type."),
    ],
    arguments=[Argument("name", nargs="*", help="a struct, union, typedef, enum or symbol name.")],
    help="""
    SYNOPSIS
    whatis [[-o] [struct | union | typedef | symbol]] |
           [[-r [size|range]] [-m member]]

    DESCRIPTION
    Display the definition of a structure, union, typedef or enum, or the
    declaration of a kernel symbol (variable or function). Anything else is
    taken as an expression and its type is shown, as gdb's whatis does.

           -o  display the offsets of structure/union members.
      -r size  search for structures of this exact size, or "low-high".
    -m member  search for structures containing a member of this data type,
               or a pointer to it.

    EXAMPLES
      kcrash> whatis list_head
      kcrash> whatis -o task_struct
      kcrash> whatis schedule
      void schedule(void);
      kcrash> whatis jiffies
      volatile unsigned long jiffies;
      kcrash> whatis pid_t
      typedef int pid_t;
      SIZE: 4
      kcrash> whatis -r 16
    """,
)
def whatis_command(ctx: Context, args: Args) -> None:
    if args.r is not None or args.m is not None:
        ctx.write(_search_types(ctx, args.r, args.m))
        return
    if not args.name:
        raise UsageError("missing name")
    text = " ".join(args.name)
    out = _whatis_text(ctx, text, args.o)
    ctx.emit(TypeRecord(text, out), text=out)


def _search_types(ctx, size_spec: str | None, member: str | None) -> str:
    k = ctx.kernel
    btf = getattr(k, "btf", None)
    if btf is None:
        raise KcrashError("whatis -r/-m needs BTF type information")
    low = high = None
    if size_spec is not None:
        lo, dash, hi = size_spec.partition("-")
        try:
            low = int(lo, 0)
            high = int(hi, 0) if dash else low
        except ValueError:
            raise KcrashError(f"invalid size: {size_spec}") from None
    found: dict[str, int] = {}
    for full in btf.type_names():
        kind, _, name = full.partition(" ")
        if kind not in ("struct", "union") or not name:
            continue
        t = btf.find_type(full)
        if t is None or t.size is None:
            continue
        if low is not None and not low <= t.size <= high:
            continue
        if member is not None and not _contains_member_type(t, member, set()):
            continue
        found[name] = t.size
    if not found:
        return "(none found)\n"
    rows = sorted(found.items(), key=lambda kv: (kv[1], kv[0]))
    width = max(len("SIZE"), len(str(rows[-1][1])))
    return f"{'SIZE':>{width}}  TYPE\n" + "".join(f"{size:>{width}}  {name}\n" for name, size in rows)


def _contains_member_type(t: Type, wanted: str, seen: set[int]) -> bool:
    """A member of type `wanted` (or a pointer or array of it), directly or in an embedded named
    structure; function pointers' parameters do not count."""
    if id(t) in seen:
        return False
    seen.add(id(t))
    for m in t.strip().members:
        core = m.type
        while True:
            s = core.strip()
            if s.kind in (Kind.POINTER, Kind.ARRAY):
                core = s.target
                continue
            break
        if s.kind is Kind.FUNCTION:
            continue
        name = core.strip().name if core.kind is not Kind.TYPEDEF else core.name
        if name and wanted in name:
            return True
        embedded = m.type.unqualified()
        while embedded.kind is Kind.ARRAY:
            embedded = embedded.target.unqualified()
        if embedded.kind in (Kind.STRUCT, Kind.UNION) and embedded.name:  # not through typedefs
            if _contains_member_type(embedded, wanted, seen):
                return True
    return False


@command(
    "ptype",
    summary="print a type definition",
    arguments=[Argument("expression", nargs="+", help="a type name or an expression.")],
    raw=True,
    suffix=True,
    help="""
    SYNOPSIS
    ptype [type | expression]

    DESCRIPTION
    Print the definition of a type, or of the type of an expression, as gdb's
    ptype does: typedefs resolved, structures expanded. ptype/o and other gdb
    options are handed to gdb.

    EXAMPLES
      kcrash> ptype struct list_head
      type = struct list_head {
          struct list_head *next;
          struct list_head *prev;
      }
      kcrash> ptype init_task.sched_class
      kcrash> ptype pid_t
      type = int
    """,
)
def ptype_command(ctx: Context, args: Args) -> None:
    text = args.raw.strip()
    if not text:
        raise UsageError("missing type or expression")
    session = expr_session(ctx)
    if args.suffix:
        out = _gdb_type_query(ctx, f"ptype/{args.suffix}", text, ExprError("ptype options"))
        ctx.write(out if out.endswith("\n") else out + "\n")
        return
    try:
        typ, _named = session.evaluator.type_of(text)
        out = "type = " + ptype(typ) + "\n"
    except Unsupported as why:
        out = _gdb_type_query(ctx, "ptype", text, why)
    except MemoryReadError as e:
        raise read_error(e) from None
    except ExprError as e:
        raise KcrashError(str(e)) from None
    ctx.emit(TypeRecord(text, out), text=out)
