"""`search`: find values or strings in kernel, user or physical memory, as crash's search prints them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kcrash.commands import Argument, KcrashError, Option, UsageError, command
from kcrash.commands._crashtext import task_header
from kcrash.commands.rd import Reader, eval_expression, format_items
from kcrash.commands.sym import parse_hex
from kcrash.errors import MemoryReadError
from kcrash.kernel import memsearch as ms
from kcrash.kernel import modules as kmod
from kcrash.kernel import pagetable as pt
from kcrash.kernel.cpus import active_tasks
from kcrash.kernel.page import page_layout
from kcrash.kernel.stack import thread_size
from kcrash.kernel.tasks import task_table
from kcrash.kernel.vma import mm_vmas
from kcrash.records import hex_field

HELP = """
NAME
  search - search memory

SYNOPSIS
  search [-s start] [ -[kKV] | -u | -p | -t | -T ] [-e end | -l length] [-m mask]
         [-x count] -[cwh] [value | (expression) | symbol | string] ...

DESCRIPTION
  This command searches for a given value within a range of user virtual, kernel virtual, or physical
  memory space.  If no end nor length value is entered, then the search stops at the end of user virtual,
  kernel virtual, or physical address space, whichever is appropriate.

  An optional mask value may be entered to mask off "don't care" bits.

    -s start  Start the search at this hexadecimal user or kernel virtual address, physical address, or
              kernel symbol.  The start address must be appropriate for the memory type specified.
        -k    If no start address is specified, start the search at the base of kernel virtual address
              space.  This option is the default.
        -K    Same as -k, except that mapped kernel virtual memory that is beyond the kernel's direct
              map (vmalloc, modules and vmemmap space) is not searched.
        -V    Same as -k, except that the direct map and the kernel text map are not searched.
        -u    If no start address is specified, start the search at the base of the current context's
              user virtual address space.
        -p    If no start address is specified, start the search at the base of physical address space.
        -t    Search only the kernel stack pages of every task.  If one or more matches are found in a
              task's kernel stack, precede the output with a task-identifying header.
        -T    Same as -t, except only the active task(s) are considered.
    -e end    Stop the search at this hexadecimal user or kernel virtual address, kernel symbol, or
              physical address.
 -l length    Length in bytes of address range to search.
   -m mask    Ignore the bits that are set in the hexadecimal mask value.
        -c    Search for character string values instead of unsigned longs.  If the string contains any
              space(s), it must be encompassed by double quotes.
        -w    Search for unsigned hexadecimal ints instead of unsigned longs.
        -h    Search for unsigned hexadecimal shorts instead of unsigned longs.
  -x count    Display the memory contents before and after any found value; the before and after memory
              context is displayed in the same format as the "rd" command, as many entries as count.

  If -k, -K, -V, -u, -p or -t are not used, the search defaults to kernel virtual address space.
  Pages the dump does not hold (filtered out or absent) are skipped; a search can be stopped at once with
  Ctrl-C.

EXAMPLES
  Search the current context's address space for all instances of 0xdeadbeef:

    kcrash> search -u deadbeef
    81aba5c: deadbeef
    81abaa8: deadbeef

  Search for the string "Linux version" in kernel memory:

    kcrash> search -k -c "Linux version"
    ffff8ba9816003a0: Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.deb
    ffffffffadd1ffe0: Linux version 6.1.0-57-cloud-amd

  Search the first 0x3000 bytes after init_task for pointers to it, showing 2 words around each:

    kcrash> search -s init_task -l 0x3000 -x 2 init_task
"""

_MASK64 = (1 << 64) - 1
_SIZES = {"ulong": 8, "uint": 4, "ushort": 2}


@dataclass
class SearchHit:
    """One match: its address and the value (hex) or the string context (text) crash shows."""

    address: int = hex_field()
    value: int | None = hex_field(default=None)
    string: str | None = None
    target: str | None = None  # the value's name as entered (symbol/expression), or the string searched
    task: int | None = hex_field(default=None)  # -t/-T: whose stack
    text: str = ""

    def __str__(self) -> str:
        return self.text


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def _can_eval(word: str) -> bool:
    return word.startswith("(") or any(c in word for c in "+-*/")


def _address(k, word: str) -> int:
    sym = kmod.lookup_any(k, word)
    if sym is not None:
        return sym.address
    value = parse_hex(word)
    if value is None:
        raise KcrashError(f'invalid input: "{word}"')
    return value


def _values(k, words: list[str], mode: str, masked: bool) -> list[tuple[int, str]]:
    """(value, label) per argument: crash shows "(name)" after a value given as a symbol or expression."""
    out = []
    for word in words:
        label = ""
        if _can_eval(word):
            value = eval_expression(k, word)
            label = word
        else:
            sym = kmod.lookup_any(k, word)
            if sym is not None:
                value, label = sym.address, word
            else:
                parsed = parse_hex(word)
                if parsed is None:
                    raise KcrashError(f'invalid input: "{word}"')
                value = parsed
        if masked:
            label = ""
        size = _SIZES[mode]
        if value >> (8 * size):
            opt = "w" if size == 4 else "h"
            shown = _label(label)
            raise KcrashError(f"value too large for -{opt} option: {value:x} {shown}")
        out.append((value, label))
    return out


def _label(label: str) -> str:
    if not label:
        return ""
    return label if label.startswith("(") else f"({label})"


@command(
    "search",
    summary="search memory",
    options=[
        Option("-s", metavar="start", dest="start", help="where to start."),
        Option("-e", metavar="end", dest="end", help="where to stop."),
        Option("-l", metavar="length", dest="length", help="how many bytes to search."),
        Option("-k", help="kernel virtual memory (the default)."),
        Option("-K", dest="unity_only", help="kernel memory, without vmalloc, modules and vmemmap."),
        Option("-V", dest="vmalloc_only", help="kernel memory, without the direct and text maps."),
        Option("-u", help="the current context's user memory."),
        Option("-p", help="physical memory."),
        Option("-t", dest="stacks", help="every task's kernel stack."),
        Option("-T", dest="active_stacks", help="the active tasks' kernel stacks."),
        Option("-m", metavar="mask", dest="mask", help="bits to ignore."),
        Option("-x", metavar="count", dest="context", help="show count entries before and after."),
        Option("-c", dest="chars", help="search for strings."),
        Option("-w", dest="ints", help="search for 32-bit values."),
        Option("-h", dest="shorts", help="search for 16-bit values."),
    ],
    arguments=[Argument("value", nargs="*", complete="symbol", help="values, symbols or strings.")],
    help=HELP,
)
def search_command(ctx, args):
    k = ctx.kernel
    mode = "ulong"
    for token in args.argv:  # the last of -c/-w/-h wins, as with crash's getopt
        mode = {"-c": "chars", "-w": "uint", "-h": "ushort"}.get(token, mode)
    if args.stacks and args.active_stacks:
        raise KcrashError("-t and -T options are mutually exclusive")
    tasks_mode = args.stacks or args.active_stacks
    space = "p" if args.p else "u" if args.u else "k"
    chosen = [
        f
        for f, on in (("k", args.k or args.unity_only or args.vmalloc_only), ("u", args.u), ("p", args.p))
        if on
    ]
    if tasks_mode and (chosen or args.start or args.end or args.length):
        raise KcrashError(
            f"-{'t' if args.stacks else 'T'} option cannot be used with other memory-selection options"
        )
    if (args.end is not None and args.length is not None) or not args.value:
        raise UsageError("")
    words = [w for w in args.value if w] if mode == "chars" else args.value
    if not words:
        raise UsageError("")

    start, end = _bounds(ctx, k, space, args, tasks_mode)
    parsed_mask = parse_hex(args.mask) if args.mask is not None else 0
    if parsed_mask is None:
        raise KcrashError(f'invalid input: "{args.mask}"')
    mask = parsed_mask
    if mask and mode == "chars":
        ctx.warn("mask ignored on string search")
        mask = 0
    context = 0
    if args.context is not None:
        if not args.context.isdigit():
            raise KcrashError(f'invalid input: "{args.context}"')
        context = int(args.context)
        if mode == "chars":
            raise KcrashError("-x option is not allowed with -c")
        limit = 4096 // _SIZES[mode]
        if context > limit:
            raise KcrashError(f"context value {context} is too large: maximum is {limit}")
    if start & 7:
        start &= ~7
        ctx.warn(f"rounding down start address to: {start:x}")

    if mode == "chars":
        targets = [w.encode("latin-1", "replace") for w in words]
        labels = list(words)
    else:
        pairs = _values(k, words, mode, bool(mask))
        labels = [label for _, label in pairs]

    def scan(chunks) -> Iterator:
        if mode == "chars":
            return ms.find_strings(chunks, targets)
        return ms.find_values(chunks, [v for v, _ in pairs], _SIZES[mode], mask)

    reader = Reader(k, "PHYSADDR" if space == "p" else "UVADDR" if space == "u" else "KVADDR")
    if space == "u":
        reader.pgd = pt.task_pgd(k, ctx.context_task)

    def show(match, task=None) -> None:
        if mode == "chars":
            text = f"{match.address:x}: {_printable(match.context)}"
            ctx.emit(
                SearchHit(match.address, None, _printable(match.context), labels[match.index], task, text)
            )
            return
        label = _label(labels[match.index])
        if context:
            text = _with_context(ctx, reader, match, _SIZES[mode], context, label)
        else:
            text = f"{match.address:x}: {match.value:x} {label}"
        ctx.emit(SearchHit(match.address, match.value, None, labels[match.index] or None, task, text))

    if tasks_mode:
        _search_stacks(ctx, k, args.active_stacks, scan, show)
        return
    for segments in _segments(ctx, k, space, args, start, end):
        for match in scan(ms.read_segments(k, segments)):
            show(match)


def _bounds(ctx, k, space: str, args, tasks_mode: bool) -> tuple[int, int]:
    """The start and end of the search (crash's defaults and checks)."""
    if tasks_mode:
        return 0, _MASK64
    lay = pt.kernel_layout(k)
    if args.start is not None:
        start = _address(k, args.start)
    elif space == "u":
        start = _user_start(ctx, k)
    elif space == "p":
        start = 0
    else:
        start = lay.page_offset
    if space == "k" and start < lay.page_offset:
        raise UsageError(f"invalid kernel virtual address: {start:x}")
    user_top = 1 << 56 if k.translator.l5 else 1 << 47
    if space == "u" and start >= user_top:
        raise UsageError(f"invalid user virtual address: {start:x}")
    if args.end is not None:
        end = _address(k, args.end)
        if not end:
            raise KcrashError("invalid ending address: 0")
    elif args.length is not None:
        length = int(args.length) if args.length.isdigit() else parse_hex(args.length)
        if length is None:
            raise KcrashError(f'invalid input: "{args.length}"')
        end = start + length
    elif space == "u":
        end = user_top
    elif space == "p":
        end = page_layout(k).max_pfn << pt.PAGE_SHIFT
    else:
        end = max(r.end for r in ms.kernel_ranges(k))
    if space == "u" and end > user_top:
        raise UsageError(f"ending address {end:x} is in kernel space: {end:x}")
    if end < start:
        raise UsageError(f"ending address {end:x} is below starting address {start:x}")
    return start, end


def _user_start(ctx, k) -> int:
    task = ctx.context_task
    mm = int(task.member("mm"))
    if not mm:
        raise KcrashError("current context has no user address space")
    vmas = mm_vmas(k, mm)
    return vmas[0].start if vmas else 0


def _segments(ctx, k, space: str, args, start: int, end: int):
    """Per region, the (vaddr, paddr, size) segments to read, in crash's order."""
    end &= ~7
    if space == "p":
        yield ms.physical_segments(start, end)
        return
    if space == "u":
        task = ctx.context_task
        mm = int(task.member("mm"))
        if not mm:
            raise KcrashError("current context has no user address space")
        spans = [
            (max(v.start, start), min(v.end, end)) for v in mm_vmas(k, mm) if v.end > start and v.start < end
        ]
        yield ms.user_segments(k, pt.task_pgd(k, task), spans)
        return
    for rng in ms.kernel_ranges(k):
        if args.unity_only and rng.kind not in ("unity", "text"):
            continue
        if args.vmalloc_only and rng.kind in ("unity", "text"):
            continue
        yield ms.kernel_segments(k, rng, start, end)


def _with_context(ctx, reader: Reader, match, size: int, count: int, label: str) -> str:
    """crash's display_with_pre_and_post(): `count` items before (as rd shows them), the match, `count`
    items after, then a blank line."""
    k = ctx.kernel
    lines = _rd_lines(k, reader, match.address - count * size, count, size)
    lines.append(f"{match.address:>16x}:  {match.value:x} {label}")
    lines += _rd_lines(k, reader, match.address + size, count, size)
    return "\n".join(lines) + "\n\n"


def _rd_lines(k, reader: Reader, address: int, count: int, size: int) -> list[str]:
    try:
        data = reader.read(address, count * size)
    except MemoryReadError:
        return []
    lines = format_items(
        k, address, data, size, mode="hex", ascii_column=True, symbolic=False, network=False, radix=16
    )
    return [line.text for line in lines]


def _search_stacks(ctx, k, active_only: bool, scan, show) -> None:
    """-t/-T: each task's kernel stack, a task header before its first match."""
    table = task_table(k)
    active = active_tasks(k) if active_only else None
    size = thread_size(k)
    found = 0
    for info in table.tasks:
        if active is not None and info.address not in active:
            continue
        try:
            base = int(info.object(k).member("stack"))
        except (KcrashError, MemoryReadError):
            continue
        chunks = []
        try:
            chunks.append((base, k.read(base, size)))
        except MemoryReadError:
            continue
        first = True
        for match in scan(chunks):
            if first:
                if not ctx.json:
                    ctx.print(
                        ("\n" if found else "") + task_header(info.pid, info.address, info.cpu, info.comm)
                    )
                found += 1
                first = False
            show(match, info.address)
