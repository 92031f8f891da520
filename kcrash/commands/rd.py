"""`rd`: display memory (kernel virtual, user virtual or physical) in crash's layout."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.commands.sym import not_found_lines, parse_hex
from kcrash.errors import FaultError, MemoryReadError, PageExcludedError, PageNotInDumpError
from kcrash.kernel import modules as kmod
from kcrash.kernel.pagetable import is_vmalloc_addr, task_pgd
from kcrash.records import hex_field

HELP = """
NAME
  rd - read memory

SYNOPSIS
  rd [-adDsupxNR][-8|-16|-32|-64][-o offs][-e addr][address|symbol] [count]

DESCRIPTION
  This command displays the contents of memory, with the output formatted in several different manners.
  The starting address may be entered either symbolically or by address.  The default output size is the
  size of a long data type, and the default output format is hexadecimal.  When hexadecimal output is
  used, the output will be accompanied by an ASCII translation.

       -p  address argument is a physical address.
       -u  address argument is a user virtual address of the current context task (crash's `set`); an
           address below the kernel's direct map is taken as a user address anyway.
       -d  display output in signed decimal format (default is hexadecimal).
       -D  display output in unsigned decimal format (default is hexadecimal).
       -s  displays output symbolically when appropriate (64-bit display only).
       -x  do not display ASCII translation at end of each line.
       -8  display output in 8-bit values.
      -16  display output in 16-bit values.
      -32  display output in 32-bit values.
      -64  display output in 64-bit values (the default).
       -a  display output in ASCII characters if the memory contains printable ASCII characters; if no
           count argument is entered, stop at the first non-printable character.
       -N  display output in network byte order (only valid for 16- and 32-bit values).
       -R  display memory in reverse order: memory will be displayed up to and including the address
           argument, requiring the count argument to be greater than 1 in order to display memory before
           the specified address.
  -o offs  offset the starting address by offs.
  -e addr  display memory until reaching specified ending hexadecimal address.
  address  starting hexadecimal address, a symbol, or a parenthesised expression such as
           (schedule+0x10).
    count  number of memory locations to display (default 1, or unlimited for -a); decimal, or hex
           when it has hex letters or a 0x prefix.

  A page the dump does not hold stops the display with crash's message, e.g.
  "rd: page excluded: kernel virtual address: ffff8881001d0000  type: "64-bit KVADDR"".

EXAMPLES
  Display the kernel's version string:

    kcrash> rd -a linux_banner
    ffffffffaf91ffe0:  Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debi
    ffffffffaf92001c:  an.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (G
    ffffffffaf920058:  NU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian
    ffffffffaf920094:  6.1.192-2 (2026-11-16)

  Read jiffies in hexadecimal and decimal format:

    kcrash> rd jiffies
    ffffffffb00079c0:  00000000fffede30                    0.......

    kcrash> rd -d jiffies
    ffffffffb00079c0:       4294893104

  Access the same memory in different sizes:

    kcrash> rd -32 linux_banner 4
    ffffffffaf91ffe0:  756e694c 65762078 6f697372 2e36206e   Linux version 6.

    kcrash> rd -8 linux_banner 8
    ffffffffaf91ffe0:  4c 69 6e 75 78 20 76 65                           Linux ve

  Read the range of memory from ffffffffaf91ffe0 to ffffffffaf91fff8:

    kcrash> rd ffffffffaf91ffe0 -e ffffffffaf91fff8
    ffffffffaf91ffe0:  65762078756e694c 2e36206e6f697372   Linux version 6.
    ffffffffaf91fff0:  632d36352d302e31                    1.0-56-c
"""

VADDR_PRLEN = 16
_ENTRIES = {1: 16, 2: 8, 4: 4, 8: 2}
_ASCII_START = {1: 51 + VADDR_PRLEN, 2: 43 + VADDR_PRLEN, 4: 39 + VADDR_PRLEN, 8: 37 + VADDR_PRLEN}
_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED = {1: "b", 2: "h", 4: "i", 8: "q"}
_DECIMAL_WIDTH = {1: 3, 2: 5, 4: 12, 8: 15}
_UDECIMAL_WIDTH = {1: 3, 2: 5, 4: 12, 8: 20}
ASCII_PER_LINE = 60
_SPACE_NAMES = {
    "KVADDR": "kernel virtual address",
    "UVADDR": "user virtual address",
    "PHYSADDR": "physical address",
}


@dataclass
class MemoryLine:
    """One line of `rd` output (JSON: the address, the values as integers or symbols, the text)."""

    address: int = hex_field()
    values: list = hex_field()  # words as "0x…"; symbol names (-s) as they are
    text: str = ""

    def __str__(self) -> str:
        return self.text


# --- addresses --------------------------------------------------------------------------------------


def parse_count(word: str) -> int:
    """crash's stol(): decimal digits, else hexadecimal (with or without 0x)."""
    if word.isdigit():
        return int(word)
    value = parse_hex(word)
    if value is None:
        raise KcrashError(f"invalid count: {word}")
    return value


def eval_expression(k, text: str) -> int:
    """A small subset of crash's expressions: terms (symbols, 0x-hex or decimal numbers, bare hex)
    joined by + and -, optionally in parentheses: `(schedule+0x10)`, `schedule+16`, `ffff8880+8`."""
    expr = text.strip()
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1].strip()
    total = 0
    sign = 1
    term = ""
    for ch in expr + "+":
        if ch in "+-" and term.strip():
            total += sign * _term_value(k, term.strip())
            sign = 1 if ch == "+" else -1
            term = ""
        elif ch in "+-":
            sign = -sign if ch == "-" else sign
        else:
            term += ch
    return total & 0xFFFFFFFFFFFFFFFF


def _term_value(k, term: str) -> int:
    if term[:2].lower() == "0x":
        value = parse_hex(term)
        if value is not None:
            return value
    if term.isdigit():
        return int(term)
    sym = kmod.lookup_any(k, term)
    if sym is not None:
        return sym.address
    value = parse_hex(term)
    if value is not None:
        return value
    raise KcrashError(f"invalid expression: {term}")


def is_kvaddr(k, address: int) -> bool:
    """crash's IS_KVADDR for x86_64: at or above the start of the direct map."""
    return address >= k.translator.page_offset


class Reader:
    """Reads one kind of address space, turning failures into crash's error lines."""

    def __init__(self, k, space: str, pgd: int | None = None) -> None:
        self.k = k
        self.space = space  # "KVADDR", "UVADDR" or "PHYSADDR"
        self.pgd = pgd

    def read(self, address: int, size: int) -> bytes:
        k = self.k
        if self.space == "PHYSADDR":
            return k.read(address, size, physical=True)
        if self.space == "UVADDR":
            return k.translator.read(address, size, pgd_paddr=self.pgd)
        return k.read(address, size)

    def message(self, e: MemoryReadError, what: str) -> str:
        """crash's text for a failed read: `page excluded: kernel virtual address: ...  type: "..."`."""
        space = _SPACE_NAMES[self.space]
        address = e.address
        # crash names a physical address a dump does not hold "seek error" in kdump-compressed files
        # and "read error" in ELF ones.
        missing = "read error" if "ELF" in getattr(self.k.memory, "format_name", "") else "seek error"
        if isinstance(e, PageExcludedError):
            head = f"page excluded: {space}: {address:x}"
        elif isinstance(e, PageNotInDumpError):
            why = str(e).split(":", 1)[0]
            head = f"{missing if why == 'seek error' else why}: {space}: {address:x}"
        elif isinstance(e, FaultError) and self.space == "KVADDR" and not is_vmalloc_addr(self.k, address):
            # crash translates such an address through the direct map and fails reading the result.
            head = f"{missing}: {space}: {address:x}"
        else:
            head = f"invalid {space}: {address:x}"
        return f'{head}  type: "{what}"'


# --- formatting ---------------------------------------------------------------------------------------


def _ascii(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def format_items(
    k,
    address: int,
    data: bytes,
    size: int,
    *,
    mode: str,
    ascii_column: bool,
    symbolic: bool,
    network: bool,
    radix: int,
) -> list[MemoryLine]:
    """crash's display_memory() lines for whole items in `data` read at `address`."""
    per_line = _ENTRIES[size]
    count = len(data) // size
    lines: list[MemoryLine] = []
    for first in range(0, count, per_line):
        n = min(per_line, count - first)
        line_addr = address + first * size
        parts = []
        chars = []
        values = []
        length = VADDR_PRLEN + 3
        for j in range(n):
            raw = data[(first + j) * size : (first + j + 1) * size]
            (value,) = struct.unpack("<" + _UNSIGNED[size], raw)
            if network and size in (2, 4):
                raw = raw[::-1]
                (value,) = struct.unpack("<" + _UNSIGNED[size], raw)
            if symbolic and size == 8 and mode == "hex":
                name = kmod.symbol_string(k, value, radix)
                if name:
                    parts.append(f"{name:<16} ")
                    length += len(name) + 1
                    values.append(name)
                    chars.append(_ascii(raw))
                    continue
            if mode == "hex":
                parts.append(f"{value:0{size * 2}x} ")
                length += size * 2 + 1
            elif mode == "signed":
                (signed,) = struct.unpack("<" + _SIGNED[size], raw)
                if size in (1, 2):
                    signed = value  # crash prints the promoted unsigned byte/short with %d
                parts.append(f"{signed:>{_DECIMAL_WIDTH[size]}} ")
            else:
                parts.append(f"{value:>{_UDECIMAL_WIDTH[size]}} ")
            values.append(value)
            chars.append(_ascii(raw))
        text = f"{line_addr:>{VADDR_PRLEN}x}:  " + "".join(parts)
        if ascii_column:
            text += " " * max(0, _ASCII_START[size] - length) + "  " + "".join(chars)
        lines.append(MemoryLine(line_addr, values, text))
    return lines


# --- the command --------------------------------------------------------------------------------------


@command(
    "rd",
    summary="read memory",
    options=[
        Option("-8", dest="size8", help="display 8-bit values."),
        Option("-16", dest="size16", help="display 16-bit values."),
        Option("-32", dest="size32", help="display 32-bit values."),
        Option("-64", dest="size64", help="display 64-bit values (the default)."),
        Option("-a", help="display ASCII strings."),
        Option("-s", help="display symbols for values that are kernel or module addresses."),
        Option("-d", help="signed decimal."),
        Option("-D", dest="udecimal", help="unsigned decimal."),
        Option("-x", help="no ASCII translation at the end of each line."),
        Option("-p", help="the address is physical."),
        Option("-u", help="the address is a user virtual address of the current context task."),
        Option("-N", dest="network", help="network byte order (16- and 32-bit values)."),
        Option("-R", dest="reverse", help="display memory up to and including the address."),
        Option("-e", metavar="addr", dest="end", help="display memory up to this hexadecimal address."),
        Option("-o", metavar="offs", dest="offset", help="add offs to the starting address."),
    ],
    arguments=[
        Argument("address", metavar="address|symbol", help="where to start."),
        Argument("count", nargs="?", complete="none", help="how many values."),
    ],
    help=HELP,
)
def rd_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    size = 8
    for token in args.argv:  # the last size option on the line wins, as with crash's getopt
        size = {"-8": 1, "-16": 2, "-32": 4, "-64": 8}.get(token, size)
    mode = "signed" if args.d else "unsigned" if args.udecimal else "hex"
    word = args.address
    if word.startswith("("):
        address = eval_expression(k, word)
    else:
        parsed = parse_hex(word)
        if parsed is not None:
            address = parsed
        else:
            sym = kmod.lookup_any(k, word)
            if sym is None:
                if any(c in word for c in "+-"):
                    address = eval_expression(k, word)
                else:
                    for line in not_found_lines(k, word):
                        ctx.print(line)
                    return
            else:
                address = sym.address
    if args.offset is not None:
        address += parse_count(args.offset)
    count = parse_count(args.count) if args.count is not None else None
    if count is not None and count <= 0:
        raise KcrashError(f"invalid count request: {count}")
    item = 1 if args.a else size
    if count is None and args.end is not None:
        end = parse_hex(args.end)
        if end is None:
            raise UsageError(f"invalid ending address: {args.end}")
        if end <= address:
            raise KcrashError(f"invalid ending address: {end:x}")
        count = max(1, (end - address) // item)
    elif count is not None and args.end is not None:
        ctx.shell.error_line("", "WARNING: ending address ignored when count is specified")
    if args.reverse and count is not None:
        address -= (count - 1) * item
    address &= 0xFFFFFFFFFFFFFFFF

    if args.p:
        reader = Reader(k, "PHYSADDR")
    elif args.u or not is_kvaddr(k, address):
        reader = Reader(k, "UVADDR", task_pgd(k, ctx.context_task))
    else:
        reader = Reader(k, "KVADDR")

    if args.a:
        _display_ascii(ctx, reader, address, count)
        return
    what = f"{size * 8}-bit {reader.space}"
    ascii_column = mode == "hex" and not args.s and not args.x
    symbolic = args.s and mode == "hex"
    network = args.network
    total = count if count is not None else 1
    _display(ctx, reader, address, total, size, what, mode, ascii_column, symbolic, network)


def _display(
    ctx,
    reader: Reader,
    address: int,
    count: int,
    size: int,
    what: str,
    mode: str,
    ascii_column: bool,
    symbolic: bool,
    network: bool,
) -> None:
    k = ctx.kernel
    radix = ctx.settings.radix
    per_line = _ENTRIES[size]
    chunk_items = per_line * 256
    done = 0
    while done < count:
        n = min(chunk_items, count - done)
        start = address + done * size
        try:
            data = reader.read(start, n * size)
        except MemoryReadError:
            data, error = _read_until_error(reader, start, n, size)
            opts = dict(mode=mode, symbolic=symbolic, network=network, radix=radix)
            lines = format_items(k, start, data, size, ascii_column=ascii_column, **opts)
            if lines:
                # crash prints a line's ASCII column when it starts the next line, so the last line
                # before the failure goes out without one.
                last = lines[-1]
                tail = data[(last.address - start) :]
                lines[-1] = format_items(k, last.address, tail, size, ascii_column=False, **opts)[0]
            for line in lines[:-1]:
                ctx.emit(line)
            if lines:
                if ctx.json:
                    ctx.emit(lines[-1])
                else:
                    ctx.write(lines[-1].text)  # crash's error message follows on the same line
            raise KcrashError(reader.message(error, what)) from None
        for line in format_items(
            k,
            start,
            data,
            size,
            mode=mode,
            ascii_column=ascii_column,
            symbolic=symbolic,
            network=network,
            radix=radix,
        ):
            ctx.emit(line)
        done += n


def _read_until_error(reader: Reader, start: int, n: int, size: int) -> tuple[bytes, MemoryReadError]:
    """The readable items before the first failing one, and that failure (at the item's address)."""
    out = bytearray()
    for i in range(n):
        try:
            out += reader.read(start + i * size, size)
        except MemoryReadError as e:
            return bytes(out), e
    raise AssertionError("a range that failed to read read in pieces")


def _display_ascii(ctx, reader: Reader, address: int, count: int | None) -> None:
    unlimited = count is None
    remaining = count if count is not None else 1 << 62
    pos = address
    pending = ""
    pending_start = address
    while remaining > 0:
        n = min(remaining, 4096 - (pos & 4095))
        try:
            data = reader.read(pos, n)
        except MemoryReadError as e:
            if pending:
                ctx.print(f"{pending_start:>{VADDR_PRLEN}x}:  {pending}")
            raise KcrashError(reader.message(e, "ascii")) from None
        for i, b in enumerate(data):
            if 0x20 <= b < 0x7F:
                if not pending:
                    pending_start = pos + i
                pending += chr(b)
                if len(pending) == ASCII_PER_LINE:
                    ctx.emit(
                        MemoryLine(pending_start, [pending], f"{pending_start:>{VADDR_PRLEN}x}:  {pending}")
                    )
                    pending = ""
                    pending_start = pos + i + 1
            else:
                if pending:
                    ctx.emit(
                        MemoryLine(pending_start, [pending], f"{pending_start:>{VADDR_PRLEN}x}:  {pending}")
                    )
                    pending = ""
                if unlimited:
                    return
        pos += n
        remaining -= n
    if pending:
        ctx.emit(MemoryLine(pending_start, [pending], f"{pending_start:>{VADDR_PRLEN}x}:  {pending}"))
