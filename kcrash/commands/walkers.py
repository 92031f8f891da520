"""`list` and `tree`: crash's walks over linked lists, red-black trees, XArrays and maple trees.

The walks are kcrash.kernel.walk's (loop-checked and bounded); this module parses crash's arguments and
prints what crash prints, including where a walk met a loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.commands.struct import find_aggregate, member_type_offset, parse_struct_spec, show_struct_spec
from kcrash.debuginfo.types import Kind
from kcrash.errors import MemoryReadError
from kcrash.expr.errors import ExprError
from kcrash.expr.session import expr_session
from kcrash.kernel.modules import resolve_any
from kcrash.kernel.walk import (
    BrentLoopError,
    WalkError,
    WalkLoopError,
    brent_walk,
    linked_walk,
    maple_walk,
    rbtree_walk,
    xarray_walk,
)
from kcrash.records import hex_field

__all__ = ["ListEntryRecord", "TreeEntryRecord"]

_MASK64 = 0xFFFFFFFFFFFFFFFF
_KERNEL_SPACE = 0xFFFF800000000000


@dataclass(frozen=True)
class ListEntryRecord:
    """One entry of `list`: the structure's address (the link's, without -h/-H/-o)."""

    address: int = hex_field()


@dataclass(frozen=True)
class TreeEntryRecord:
    """One entry of `tree`: the entry's address; `position` and `index` as -p shows them."""

    address: int = hex_field()
    position: str | None = None
    index: int | None = None


# --- shared argument handling ---------------------------------------------------------------------------


def _is_number(word: str) -> bool:
    return re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", word) is not None


def _number(word: str) -> int:
    """crash's stol: 0x-prefixed hexadecimal, else decimal, else hexadecimal."""
    if word.lower().startswith("0x"):
        return int(word, 16)
    try:
        return int(word)
    except ValueError:
        return int(word, 16)


def _member_offset(ctx: Context, spec: str) -> int | None:
    """The byte offset of a "struct.member[.member]" argument, or None if it names no member."""
    name, dot, path = spec.partition(".")
    if not dot or not path:
        return None
    try:
        t, _, _ = find_aggregate(ctx, name, ("struct", "union"))
    except KcrashError:
        return None
    hit = member_type_offset(t, path)
    return None if hit is None else hit[1]


def _offset_option(ctx: Context, value: str, option: str) -> int:
    """-o/-l/-O/-r/-o: a number of bytes or "struct.member"."""
    if _is_number(value) or re.fullmatch(r"\d+", value):
        return _number(value)
    off = _member_offset(ctx, value)
    if off is None:
        raise KcrashError(f"invalid {option} argument: {value}")
    return off


def _eval_address(ctx: Context, word: str) -> int | None:
    """A symbol's address, or an expression's kernel address; None if it is neither."""
    sym = ctx.kernel.symbols.lookup(word)
    if sym is not None:
        return sym.address
    if _is_number(word):
        return None
    try:
        value = expr_session(ctx).evaluate(word)
        t = value.type_.strip()
        if t.kind in (Kind.ARRAY, Kind.STRUCT, Kind.UNION) and value.address is not None:
            result = value.address
        else:
            result = int(value.value()) & _MASK64
    except (ExprError, MemoryReadError, TypeError, ValueError):
        return None
    return result if result >= _KERNEL_SPACE else None


def _radix(ctx: Context, args: Args) -> int:
    if args.x and args.d:
        raise KcrashError("-d and -x are mutually exclusive")
    return 16 if args.x else 10 if args.d else ctx.settings.radix


def _struct_specs(ctx: Context, args: Args) -> tuple[list, bool]:
    if args.s and args.S:
        raise KcrashError("-S and -s options are mutually exclusive")
    specs = args.s or args.S or []
    return [(spec, parse_struct_spec(ctx, spec)) for spec in specs], bool(args.S)


def _show_structs(ctx: Context, specs: list, raw: bool, address: int, radix: int) -> None:
    for _spec, parsed in specs:
        if raw and parsed[4]:
            _show_members_fast(ctx, parsed, address, radix)
        else:
            show_struct_spec(ctx, parsed, address, radix)


def _show_members_fast(ctx: Context, parsed, address: int, radix: int) -> None:
    """-S: members of up to 8 bytes read straight from memory (crash's print_value); others as -s."""
    t, kind, name, typedef, members = parsed
    k = ctx.kernel
    for m in members:
        hit = member_type_offset(t, m)
        assert hit is not None  # parse_struct_spec checked it
        mtype, off = hit
        core = mtype.strip()
        where = (address + off) & _MASK64
        is_char = core.kind is Kind.INT and core.size == 1
        if core.kind is Kind.ARRAY and core.target.strip().kind is Kind.INT and core.target.strip().size == 1:
            text = k.read_cstring(where, core.length or 0).decode("latin-1")
            ctx.write(f'  {m} = "{text}"\n')
            continue
        size = core.size or 0
        if core.kind not in (Kind.INT, Kind.ENUM, Kind.POINTER, Kind.BOOL) or not 0 < size <= 8:
            show_struct_spec(ctx, (t, kind, name, typedef, [m]), address, radix)
            continue
        try:
            value = int.from_bytes(k.read(where, size), "little")
        except MemoryReadError:
            ctx.warn(f"cannot access member: {m} at {where:x}")
            continue
        r = 16 if core.kind is Kind.POINTER else radix
        line = f"  {m} = " + (f"0x{value:x}" if r == 16 else f"{value}")
        target = core.target.strip() if core.kind is Kind.POINTER else None
        if target is not None and target.kind is Kind.INT and target.size == 1 and value:
            try:
                line += f'  "{k.read_cstring(value).decode("latin-1")}"'
            except MemoryReadError:
                line += '  ""'
        elif not is_char:
            hit_sym = resolve_any(k, value) if value >= _KERNEL_SPACE else None
            if hit_sym is not None and hit_sym[0].type in ("t", "T"):  # crash names any text address
                line += f" <{hit_sym[0].name}>"
        ctx.write(line + "\n")


def _walk_failed(ctx: Context, e: KcrashError) -> KcrashError:
    """crash puts a blank line before a broken walk's message: the output so far ends there."""
    if not ctx.json:
        ctx.write("\n")
    return KcrashError(str(e))


# --- list -----------------------------------------------------------------------------------------------


@command(
    "list",
    summary="linked list",
    options=[
        Option("-o", metavar="offset", help='offset of the "next" pointer: bytes or "struct.member".'),
        Option("-e", metavar="end", help="an explicit ending address."),
        Option("-s", metavar="struct", multiple=True, help='print each entry as "struct[.member[,member]]".'),
        Option("-S", metavar="struct", multiple=True, help="as -s, members read straight from memory."),
        Option("-O", metavar="offset", help="with -h: offset of the head's list_head in its structure."),
        Option("-l", metavar="offset", help="with -s: start is an embedded list_head at this offset."),
        Option("-x", help="hexadecimal output."),
        Option("-d", help="decimal output."),
        Option("-r", help="list_head lists: walk backwards through the prev pointers."),
        Option("-B", help="R. P. Brent's loop detection instead of a hash table."),
        Option("-h", dest="h", help="start is a structure containing an embedded list_head."),
        Option("-H", dest="H", help="start is a list_head (such as a standalone LIST_HEAD())."),
    ],
    arguments=[Argument("args", nargs="*", metavar="[offset|struct.member] start")],
    help="""
    SYNOPSIS
    list [[-o] offset][-e end][-[s|S] struct[.member[,member] [-l offset]] -[x|d]]
         [-r|-B] [-h [-O head_offset]|-H] start

    DESCRIPTION
    Dump the addresses of the entries of a linked list: either structures
    chained by a "next" pointer at an offset (ending at NULL or back at the
    start), or structures tied by embedded list_head structures.

     [-o] offset  offset of the "next" pointer (default 0): "struct.member"
                  (no -o needed) or a number of bytes.
          -e end  an explicit ending address.
       -s struct  print each entry as this structure, or "struct.member[,member]".
       -S struct  as -s, members of up to 8 bytes read straight from memory.
       -O offset  with -h: offset of the head's list_head within its structure.
       -l offset  with -s: start points to an embedded list_head at this offset.
           -x/-d  hexadecimal/decimal output.
              -r  list_head lists: follow the prev pointers.
              -B  Brent's loop detection: prints the loop length, the distance
                  from the start to the loop, and the first duplicate.
        -H start  start is a list_head, such as a standalone LIST_HEAD().
        -h start  start is a structure containing the embedded list_head.

    A node met twice ends the walk with "duplicate list entry: ADDRESS".

    EXAMPLES
      kcrash> list task_struct.tasks -h init_task
      kcrash> list -H modules module.list -s module.name
      kcrash> list task_struct.tasks -s task_struct.pid,comm -h init_task
    """,
)
def list_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    radix = _radix(ctx, args)
    specs, raw = _struct_specs(ctx, args)
    head_format = bool(args.h or args.H or args.r)
    offset: int | None = None
    if args.o is not None:
        offset = _offset_option(ctx, args.o, "-o")
    struct_list_offset = 0
    if args.l is not None:
        if not specs:
            raise UsageError("-l option can only be used with -s or -S option")
        struct_list_offset = _offset_option(ctx, args.l, "-l")
    end = 0
    if args.e is not None:
        if not _is_number(args.e):
            raise KcrashError(f'invalid input: "{args.e}"')
        end = int(args.e, 16)
    words = list(args.args)
    if len(words) > 2:
        raise UsageError("too many arguments")
    start: int | None = None
    for i, word in enumerate(words):
        rest = words[i + 1 :]
        if "." in word and (off := _member_offset(ctx, word)) is not None:
            if offset is not None:
                raise KcrashError(f"offset value {offset} (0x{offset:x}) already entered")
            offset = off
            continue
        if not _is_number(word):
            address = _eval_address(ctx, word)
            if address is None:
                raise KcrashError(f"invalid argument: {word}")
            if start is not None:
                raise KcrashError("list start already entered")
            start = address
            continue
        if start is not None:
            offset = _number(word)
            continue
        if offset is not None or not rest:
            value = int(word, 16)
            if value < _KERNEL_SPACE:
                raise KcrashError(f"invalid kernel virtual address: {word}")
            start = value
            continue
        if k.symbols.lookup(rest[0]) is not None:
            offset = _number(word)
            continue
        value = int(word, 16)
        if value >= _KERNEL_SPACE:
            start = value
        else:
            offset = _number(word)
    if start is None:
        raise UsageError("starting address required")
    if args.o is not None and struct_list_offset:
        raise UsageError("-l and -o are mutually exclusive")
    member_offset = offset or 0
    list_head_offset = 0
    if head_format:
        list_head_offset = member_offset
        member_offset = k.type("struct list_head").offsetof("prev" if args.r else "next")
        head = None
        if args.H:
            head = start
        elif args.O is not None:
            head = start + _offset_option(ctx, args.O, "-O")
        if head is not None:
            if not end:
                end = head
            try:
                start = k.read_u64(head + member_offset)
            except MemoryReadError as e:
                raise KcrashError(str(e)) from None
            if start == end:
                ctx.write("(empty)\n")
                return
        else:
            start = (start + list_head_offset) & _MASK64
    struct_offset = list_head_offset + struct_list_offset

    def show(link: int) -> None:
        entry = (link - list_head_offset) & _MASK64
        ctx.emit(ListEntryRecord(entry), text=f"{entry:x}")
        if specs:
            _show_structs(ctx, specs, raw, (link - struct_offset) & _MASK64, radix)

    walker = brent_walk if args.B else linked_walk
    try:
        for link in walker(k, start, member_offset, end=end, null_is_error=head_format):
            show(link)
    except BrentLoopError as e:
        ctx.warn(f"loop detected, loop length: {e.length}")
        ctx.warn(f"length from start to loop: {e.distance:x}")
        raise KcrashError(str(e)) from None
    except WalkLoopError as e:
        show(e.address)  # crash prints the entry met again, then says so
        raise _walk_failed(ctx, e) from None
    except WalkError as e:
        raise _walk_failed(ctx, e) from None
    except MemoryReadError as e:
        raise KcrashError(f'{e}  type: "list entry"') from None


# --- tree -----------------------------------------------------------------------------------------------

_TREE_TYPES = (("ra", "radix"), ("rb", "rbtree"), ("x", "xarray"), ("m", "maple"))
_TREE_NAMES = {"radix": "radix trees", "rbtree": "rbtrees", "xarray": "Xarrays", "maple": "maple trees"}


def _tree_type(ctx: Context, word: str | None) -> str:
    if word is None:
        return "rbtree"
    for prefix, name in _TREE_TYPES:
        if word.startswith(prefix):
            if name == "radix":
                root = ctx.kernel.find_type("struct radix_tree_root")
                if root is not None and root.strip().find_member("xa_head") is not None:
                    return "xarray"
                if ctx.kernel.find_type("struct radix_tree_node") is None:
                    raise KcrashError("radix trees do not exist or have changed their format")
                raise KcrashError("radix trees from before XArrays (4.20) are not supported by kcrash yet")
            return name
    raise UsageError(f"invalid tree type: {word}")


@command(
    "tree",
    summary="display radix tree, XArray, red-black tree or maple tree",
    options=[
        Option("-t", metavar="type", help='"radix", "rbtree", "xarray" or "maple" ("ra", "rb", "x", "m").'),
        Option(
            "-r",
            metavar="offset",
            help='offset of the root within the start structure: bytes or "struct.member".',
        ),
        Option("-o", metavar="offset", help="rbtrees: offset of the rb_node within its structure."),
        Option("-s", metavar="struct", multiple=True, help='print each entry as "struct[.member[,member]]".'),
        Option("-S", metavar="struct", multiple=True, help="as -s, members read straight from memory."),
        Option("-p", help="show each entry's position (and index) from the root."),
        Option("-l", help="rbtrees: linear order, leftmost first."),
        Option("-N", dest="N", help="start is a node (rb_node, xa_node, maple node), not the root."),
        Option("-x", help="hexadecimal output."),
        Option("-d", help="decimal output."),
        Option("-v", help="maple trees: dump each node (not supported)."),
    ],
    arguments=[Argument("args", nargs="*", metavar="start")],
    help="""
    SYNOPSIS
    tree [-t [radix|xarray|rbtree|maple]] [-r offset] [-[s|S] struct[.member[,member]]]
         -[x|d] [-o offset] [-l] [-p] [-v] [-N] start

    DESCRIPTION
    Dump the entries of a red-black tree (the default), an XArray (or radix
    tree) or a maple tree.

      -t type  "radix", "rbtree", "xarray" or "maple" ("ra", "rb", "x", "m").
    -r offset  start is a structure holding the root at this offset:
               "struct.member" or a number of bytes.
    -o offset  rbtrees: the offset of the rb_node in its containing structure.
    -s struct  print each entry as this structure, or "struct.member[,member]".
    -S struct  as -s, members of up to 8 bytes read straight from memory.
           -l  rbtrees: linear order, from the leftmost node.
           -p  each entry's position: "root/l/r" for rbtrees; index and slot
               path for XArrays and maple trees.
        -x/-d  hexadecimal/decimal output.
     -N start  start is an rb_node, xa_node or maple node, not the root.

    A node met twice ends the walk with "duplicate tree entry: ADDRESS".

    EXAMPLES
      kcrash> tree -t rbtree -o vmap_area.rb_node vmap_area_root
      kcrash> tree -t xarray -r pid_namespace.idr init_pid_ns -p
      kcrash> tree -t maple -r mm_struct.mm_mt ffff8ba981055b00 -x
    """,
)
def tree_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    kind = _tree_type(ctx, args.t)
    radix = _radix(ctx, args)
    specs, raw = _struct_specs(ctx, args)
    if kind != "rbtree":
        for letter in ("l", "o"):
            if getattr(args, letter):
                raise KcrashError(f"-{letter} option is not applicable to {_TREE_NAMES[kind]}")
    if args.v:
        if kind != "maple":
            raise KcrashError(f"-v option is not applicable to {_TREE_NAMES[kind]}")
        raise KcrashError("option -v is not supported by kcrash yet")
    if args.r is not None and args.N:
        raise KcrashError("-r and -N options are mutually exclusive")
    root_offset = _offset_option(ctx, args.r, "-r") if args.r is not None else 0
    node_offset = _offset_option(ctx, args.o, "-o") if args.o is not None else 0
    if not args.args:
        raise UsageError("a starting address is required")
    if len(args.args) > 1:
        raise UsageError("too many arguments entered")
    word = args.args[0]
    start = _eval_address(ctx, word)
    if start is None and _is_number(word) and int(word, 16) >= _KERNEL_SPACE:
        start = int(word, 16)
    if start is None:
        raise KcrashError(f"invalid start argument: {word}")
    if not args.N:
        start = (start + root_offset) & _MASK64

    def show(address: int, position: str | None, index: int | None, text: str) -> None:
        ctx.emit(TreeEntryRecord(address, position if args.p else None, index if args.p else None), text=text)
        if specs:
            _show_structs(ctx, specs, raw, address, radix)

    try:
        if kind == "rbtree":
            node = start if args.N else k.read_u64(start + k.type("struct rb_root").offsetof("rb_node"))
            for rb in rbtree_walk(k, node, inorder=bool(args.l)):
                entry = (rb.node - node_offset) & _MASK64
                text = f"{entry:x}" + (f"\n  position: {rb.position}" if args.p else "")
                show(entry, rb.position, None, text)
        elif kind == "xarray":
            head = start if args.N else k.read_u64(start + k.type("struct xarray").offsetof("xa_head"))
            for xe in xarray_walk(k, head, node_given=bool(args.N)):
                position = f"{xe.position}/{xe.slot}"
                text = f"{xe.entry:x}" + (f"\n  index: {xe.index}  position: {position}" if args.p else "")
                show(xe.entry, position, xe.index, text)
        else:
            root = start if args.N else k.read_u64(start + k.type("struct maple_tree").offsetof("ma_root"))
            out_radix = 16 if args.x else ctx.settings.radix if not args.d else 10
            count = 0
            for me in maple_walk(k, root, node_given=bool(args.N)):
                if not me.entry:
                    continue
                count += 1
                position = f"{me.path}/{me.slot}"
                number = f"{me.entry:x}" if out_radix == 16 else f"{me.entry}"
                index = f"{count:x}" if out_radix == 16 else f"{count}"
                text = number + (f"\n  index: {index}  position: {position}" if args.p else "")
                show(me.entry, position, count, text)
    except WalkError as e:
        raise _walk_failed(ctx, e) from None
    except MemoryReadError as e:
        raise KcrashError(str(e)) from None
