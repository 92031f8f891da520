"""`dis`: disassemble kernel (or user) text, printed as crash prints gdb's disassembly."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.arch import x86_64_att as att
from kcrash.arch.x86_64 import START_KERNEL_MAP
from kcrash.commands import Args, Argument, CommandFailed, Context, KcrashError, Option, command
from kcrash.commands.rd import Reader, eval_expression, parse_count
from kcrash.commands.sym import line_text, not_found_lines, parse_hex, symbol_record
from kcrash.errors import MemoryReadError
from kcrash.kernel import disasm, module_debug
from kcrash.kernel import modules as kmod
from kcrash.kernel.pagetable import task_pgd
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.debuginfo.symbols import SymbolTable

HELP = """
NAME
  dis - disassemble

SYNOPSIS
  dis [-rfludx] [address | symbol | (expression)] [count]

DESCRIPTION
  This command disassembles source code instructions starting (or ending) at a text address that may be
  expressed by value, symbol or expression:

            -r  (reverse) displays all instructions from the start of the routine up to and including
                the designated address.
            -f  (forward) displays all instructions from the given address to the end of the routine.
            -l  displays source code line number data in addition to the disassembly output.
            -u  address is a user virtual address in the current context; otherwise the address is
                assumed to be a kernel virtual address.  If this option is used, then -r and -l are
                ignored.
            -x  override default output format with hexadecimal format.
            -d  override default output format with decimal format.
       address  starting hexadecimal text address.
        symbol  symbol of starting text address.
  (expression)  expression evaluating to a starting text address, such as (schedule+0x10); a bare
                symbol+offset (offset decimal unless 0x) works too.
         count  the number of instructions to be disassembled (default is 1).  If no count argument is
                entered, and the starting address is entered as a text symbol, then the whole routine
                will be disassembled.  The count argument is supported when used with the -f option.

  The instructions come from the dump's memory, so run-time patching (alternatives, static calls,
  ftrace) shows as it was; text the dump lacks is read from the vmlinux.  The text is gdb's AT&T syntax,
  as crash prints it: call and jump targets as `0x... <symbol+offset>`, %rip-relative operands followed by
  `# 0x... <symbol>`, and ftrace's 5-byte nop at a function's start marked [FTRACE NOP].

EXAMPLES
  Disassemble a routine:

    kcrash> dis schedule
    0xffffffffaf0114f0 <schedule>:	nopl   0x0(%rax,%rax,1) [FTRACE NOP]
    0xffffffffaf0114f5 <schedule+5>:	push   %rbp
    0xffffffffaf0114f6 <schedule+6>:	push   %rbx
    0xffffffffaf0114f7 <schedule+7>:	mov    %gs:0x1fb80,%rbx
    0xffffffffaf011500 <schedule+16>:	mov    0x18(%rbx),%eax
    ...

  With source line numbers:

    kcrash> dis -l schedule 2
    debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c: 6654
    0xffffffffaf0114f0 <schedule>:	nopl   0x0(%rax,%rax,1) [FTRACE NOP]
    debian/build/build_amd64_none_cloud-amd64/arch/x86/include/asm/current.h: 15
    0xffffffffaf0114f5 <schedule+5>:	push   %rbp

  From the start of the routine up to a return address:

    kcrash> dis -r schedule+16
    ...

  Ten instructions at a user address of the current context:

    kcrash> dis -u 400000 10
"""

DIS_ERROR = "gdb unable to disassemble kernel virtual address {:x}"
_SLACK = 16  # bytes read past a range so that its last instruction decodes whole, as gdb reads on


@dataclass
class DisLine:
    """One disassembled instruction (or, with -l, the source line before it)."""

    address: int = hex_field()
    symbol: str = ""
    text: str = ""  # the instruction as gdb prints it
    source: str | None = None  # `file: line` printed before this instruction (-l)
    line: str = ""  # the whole output line

    def __str__(self) -> str:
        return self.line


def read_code(k, address: int, length: int) -> bytes:
    """Text bytes from the dump, page by page; the vmlinux's copy for kernel text the dump lacks.

    Stops at the first page that neither holds (the result may be shorter than asked)."""
    out = bytearray()
    pos = address
    end = address + length
    while pos < end:
        n = min(end - pos, 4096 - (pos & 4095))
        try:
            out += k.read(pos, n)
        except MemoryReadError:
            data = None
            if pos >= START_KERNEL_MAP:
                data = k.elf.read_at_address(pos - k.kaslr_offset, n)
            if data is None:
                break
            out += data
        pos += n
    return bytes(out)


def function_end(k, sym, address: int) -> int:
    """Where the routine holding `address` ends, as crash's gdb finds it: for kernel text, the covering
    sized symbol (or the symbol after an unsized label); for modules, the next module symbol."""
    if not sym.module:
        end = disasm.gdb_symbols(k).function_end(address)
        if end is not None:
            return end
        table: SymbolTable | None = kmod.kernel_symbols(k).table
        limit = address + 1
    else:
        if sym.size and module_debug.loaded_debuginfo(k, sym.module) is not None:
            return sym.address + sym.size  # gdb knows the function's bounds from the module's DWARF
        mod = kmod.find_module(k, sym.module)
        table = mod.symbols if mod else None
        limit = mod.base + mod.text_size if mod else address + 1
    if table is not None:
        i = bisect.bisect_right(table.addresses, sym.address)
        if i < len(table.addresses):
            return table.addresses[i]
    return limit


class Printer:
    """Formats instructions as crash's dis does: crash's `<symbol+offset>` for each address."""

    def __init__(self, k, radix: int, lines: bool) -> None:
        self.k = k
        self.radix = radix
        self.lines = lines
        self.last_source = ""
        self.gdb = disasm.gdb_symbols(k)

    def symbolize(self, address: int) -> str | None:
        if not self.gdb.names(address):
            return None
        return kmod.symbol_string(self.k, address, self.radix)

    def line(self, insn: att.Instruction) -> DisLine:
        k = self.k
        name = kmod.symbol_string(k, insn.address, self.radix)
        text = insn.text(self.symbolize)
        if "nopl   0x0(%rax,%rax,1)" in text:
            hit = kmod.resolve_any(k, insn.address)
            if hit is not None and hit[1] == 0:
                text += " [FTRACE NOP]"  # ftrace's patched-out call at a function's start
        source = None
        out = f"0x{insn.address:x} <{name}>:\t{text}"
        if self.lines:
            where = line_text(k, insn.address)[0]
            if where != self.last_source:
                source = where
                self.last_source = where
                out = f"{where}\n{out}"
        return DisLine(insn.address, name, text, source, out)


def _duplicates(k, name: str) -> list:
    """crash refuses `dis NAME` when several text symbols have that name."""
    text = [s for s in kmod.kernel_symbols(k).all_named(name) if s.type in "tT"]
    return text if len(text) > 1 else []


@command(
    "dis",
    summary="disassemble",
    options=[
        Option("-r", dest="reverse", help="from the start of the routine up to the address."),
        Option("-f", dest="forward", help="from the address to the end of the routine."),
        Option("-l", dest="lines", help="show source file and line numbers."),
        Option("-u", dest="user", help="the address is a user virtual address of the current context."),
        Option("-x", help="show offsets in hexadecimal."),
        Option("-d", help="show offsets in decimal."),
    ],
    arguments=[
        Argument("target", metavar="address | symbol | (expression)", help="what to disassemble."),
        Argument("count", nargs="?", complete="none", help="how many instructions."),
    ],
    help=HELP,
)
def dis_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    radix = 16 if args.x else 10 if args.d else ctx.settings.radix
    word = args.target
    count = parse_count(args.count) if args.count is not None else None
    if count is not None and count <= 0:
        raise KcrashError(f"invalid count request: {count}")

    whole_function = False
    if word.startswith("(") or ("+" in word or "-" in word):
        address = eval_expression(k, word)
    elif (value := parse_hex(word)) is not None:
        address = value
    else:
        sym = kmod.lookup_any(k, word)
        if sym is None:
            for line in not_found_lines(k, word):
                ctx.print(line)
            return
        dups = _duplicates(k, word)
        if dups:
            ctx.warn(f"{word}: duplicate text symbols found:")
            for dup in dups:
                ctx.emit(symbol_record(k, dup, 0, radix))
            raise CommandFailed()
        address = sym.address
        whole_function = True

    if args.user:
        _user(ctx, address, count or 1)
        return
    # With -r a count is ignored (crash says nothing about it either).

    hit = kmod.resolve_any(k, address)
    if hit is None:
        if args.reverse:
            raise KcrashError(f"cannot resolve address: {address:x}")
        ctx.shell.error_line("", f"WARNING: {address:x}: no associated kernel symbol found")
        _raw(ctx, address, count or 1, None)
        return
    sym, _offset = hit
    printer = Printer(k, radix, args.lines)
    # Where decoding starts, and the first address printed: crash decodes -r and -f from the function's
    # start (so an address inside an instruction is never decoded as one), and -f prints from the first
    # instruction at or after the target.
    first = None
    if args.reverse:
        start, stop_at, limit = sym.address, address, None
    elif args.forward:
        start, stop_at, limit, first = sym.address, None, count, address
    elif whole_function and count is None:
        start, stop_at, limit = address, None, None
    else:
        start, stop_at, limit = address, None, count or 1
    end = function_end(k, sym, address) if limit is None and stop_at is None else None
    if stop_at is not None:
        end = max(stop_at, start) + 1
    span = (end - start) if end is not None else (first or start) - start + 16 * (limit or 1)
    code = read_code(k, start, span + _SLACK)
    if not code:
        raise KcrashError(DIS_ERROR.format(start))
    shown = 0
    next_address = start
    for insn in att.disassemble(code, start):
        if first is not None and insn.address < first:
            continue
        if limit is not None and shown >= limit:
            return
        if limit is None and stop_at is None and end is not None and insn.address >= end:
            return
        ctx.emit(printer.line(insn))
        shown += 1
        next_address = insn.address + insn.size
        if stop_at is not None and insn.address >= stop_at:
            return
    if len(code) < span:  # the text ran out before the range did: neither the dump nor the vmlinux has it
        raise KcrashError(DIS_ERROR.format(next_address))


def _raw(ctx, address: int, count: int, pgd: int | None) -> None:
    """gdb's own `x/Ni` lines (no symbols): for user addresses and addresses crash cannot name."""
    k = ctx.kernel
    reader = Reader(k, "UVADDR" if pgd is not None else "KVADDR", pgd)
    code = bytearray()
    error = None
    pos = address
    while pos < address + 16 * count:
        n = min(address + 16 * count - pos, 4096 - (pos & 4095))
        try:
            code += reader.read(pos, n)
        except MemoryReadError as e:
            error = e
            break
        pos += n
    shown = 0
    next_address = address
    for insn in att.disassemble(bytes(code), address, count):
        ctx.emit(DisLine(insn.address, "", insn.text(), None, f"   0x{insn.address:x}:\t{insn.text()}"))
        shown += 1
        next_address = insn.address + insn.size
    if shown < count:
        # gdb has printed the address before it finds it cannot read the bytes; crash's read error
        # then follows on that line.
        ctx.write(f"   0x{next_address:x}:\t")
        if error is None:
            raise KcrashError(DIS_ERROR.format(next_address))
        raise KcrashError(reader.message(error, "gdb_readmem_callback"))


def _user(ctx, address: int, count: int) -> None:
    k = ctx.kernel
    _raw(ctx, address, count, task_pgd(k, ctx.context_task))
