"""`sym`: translate a symbol to its address or an address to its symbol, in crash's format."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from kcrash.commands import Args, Argument, CommandFailed, Context, Option, command
from kcrash.debuginfo.symbols import Symbol
from kcrash.kernel import module_debug
from kcrash.kernel import modules as kmod
from kcrash.records import hex_field

HELP = """
NAME
  sym - translate a symbol to its virtual address, or vice-versa

SYNOPSIS
  sym [-l] | [-M] | [-m module] | [-p|-n] | [-q string] | [symbol | vaddr]

DESCRIPTION
  This command translates a symbol to its virtual address, or a static kernel virtual address to its
  symbol -- or to a symbol-plus-offset value, if appropriate.  Additionally, the symbol type is shown in
  parentheses, and if the symbol is a known text value, the file and line number are shown.

              -l  dumps all symbols and their values.
              -M  dumps the current set of module symbols.
       -m module  dumps the current set of symbols for a specified module.
              -p  display the target symbol and the previous symbol.
              -n  display the target symbol and the next symbol.
       -q string  searches for all symbols containing "string".
          symbol  a kernel text or data symbol.
           vaddr  a kernel virtual address.

  If the "symbol", "vaddr" or "string" argument resolves to a module symbol, then the module name will
  be displayed in brackets following the symbol value.  Module symbols come from each module's kallsyms
  in the dump.  Offsets are decimal unless the output radix is 16 ("set radix 16").

EXAMPLES
  Translate data symbol jiffies to its value, and vice-versa:

    kcrash> sym jiffies
    ffffffffb00079c0 (D) jiffies

    kcrash> sym ffffffffb00079c0
    ffffffffb00079c0 (D) jiffies

  Translate a text address to its symbolic value and source file:

    kcrash> sym ffffffffaf011500
    ffffffffaf011500 (T) schedule+16 debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c: 6614

  Find all symbols containing the string "vfs_rea":

    kcrash> sym -q vfs_rea
    ffffffffaeb4b720 (t) vfs_readv
    ffffffffaeb4cc50 (T) vfs_read
    ffffffffaeb64c50 (T) vfs_readlink

  Display schedule, along with the next and previous symbols:

    kcrash> sym -np schedule
    ffffffffaf010af0 (t) __schedule debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c: 6465
    ffffffffaf0114f0 (T) schedule debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c: 6654
    ffffffffaf0115c0 (T) yield debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c: 8733

  Translate a module address:

    kcrash> sym ffffffffc03ec010
    ffffffffc03ec010 (t) fw_cfg_sysfs_attr_show+16 [qemu_fw_cfg]
"""


@dataclass(frozen=True)
class SymbolRecord:
    """One `sym` output line."""

    address: int = hex_field()
    type: str = ""
    name: str = ""
    offset: int = 0
    module: str | None = None
    file: str | None = None
    line: int | None = None
    text: str = ""  # the crash-format line

    def __str__(self) -> str:
        return self.text


def parse_hex(word: str) -> int | None:
    """crash's hexadecimal(): optional 0x and hex digits (no sign); None if `word` is not that."""
    digits = word[2:] if word[:2].lower() == "0x" else word
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)


def is_text_address(k, address: int) -> bool:
    """crash's is_kernel_text(): inside an executable vmlinux section, at a text symbol, or in a module's
    text."""
    ks = kmod.kernel_symbols(k)
    if ks.is_code(address):
        return True
    hit = kmod.resolve_any(k, address)
    if hit is not None:
        sym = hit[0]
        if sym.type in "Tt":
            return True
        if sym.type in "Ww" and ks.stext <= sym.address < ks.etext:
            return True
    mod = kmod.module_at(k, address)
    return mod is not None and mod.is_text(address)


def line_text(k, address: int) -> tuple[str, str | None, int | None]:
    """crash's get_line_number(): `file: line` of a kernel text address ("" without line data)."""
    try:
        if kmod.module_at(k, address) is not None:
            # Only modules whose object file `mod -s` loaded have line data (as in crash).
            found = module_debug.source_line(k, address)
        else:
            found = k.source_line(address)
    except Exception:  # noqa: BLE001 - line tables are optional; a broken one must not break `sym`
        found = None
    if not found:
        return "", None, None
    path, line = found
    while "//" in path:
        path = path.replace("//", "/")
    return f"{path}: {line}", path, line


def symbol_record(
    k, sym: Symbol, offset: int = 0, radix: int = 10, *, lines: bool = True, module: bool = True
) -> SymbolRecord:
    """crash's show_symbol(): `ADDR (T) name[+off][ [module]][ file: line]`.

    With `lines`, text addresses get a space and their `file: line` (just the space when there is none,
    as crash prints it)."""
    address = sym.address + offset
    text = f"{sym.address + offset:x} ({sym.type}) {sym.name}"
    if offset:
        text += f"+0x{offset:x}" if radix == 16 else f"+{offset}"
    if module and sym.module:
        text += f" [{sym.module}]"
    path = line = None
    if lines and is_text_address(k, address):
        where, path, line = line_text(k, address)
        text += " " + where
    return SymbolRecord(address, sym.type, sym.name, offset, sym.module, path, line, text)


def _table_records(table, module: str | None = None, match: str | None = None):
    """SymbolRecords of a symbol table's rows (JSON of `sym -l` and `sym -q`), those whose name contains
    `match` if given; `text` is crash's line."""
    t = table
    for i, name in enumerate(t.names):
        if match is not None and match not in name:
            continue
        text = f"{t.addresses[i]:x} ({t.types[i]}) {name}" + (f" [{module}]" if module and match else "")
        yield SymbolRecord(t.addresses[i], t.types[i], name, module=module, text=text)


def _symbol_lines(table) -> list[str]:
    t = table
    return [f"{t.addresses[i]:x} ({t.types[i]}) {t.names[i]}" for i in range(len(t))]


def _module_listing(mod: kmod.Module) -> list[str]:
    """crash's `sym -m`: the module's symbols between MODULE START and MODULE END lines; on Linux 6.4+,
    whose modules have separate text, data, rodata... blocks, one START/END pair per block (END at the
    block's last byte, as crash 9 prints it)."""
    t = mod.symbols
    if not mod.split_layout:
        return [
            f"{mod.base:x} MODULE START: {mod.name}",
            *_symbol_lines(t),
            f"{mod.end:x} MODULE END: {mod.name}",
        ]
    lines = []
    for region in mod.regions:
        kind = region.kind.upper()
        lines.append(f"{region.base:x} MODULE {kind} START: {mod.name}")
        lo = bisect.bisect_left(t.addresses, region.base)
        hi = bisect.bisect_left(t.addresses, region.base + region.size)
        lines.extend(f"{t.addresses[i]:x} ({t.types[i]}) {t.names[i]}" for i in range(lo, hi))
        # crash's end pseudo-symbol of a 6.4+ region is its last byte (base + size - 1).
        lines.append(f"{region.base + region.size - 1:x} MODULE {kind} END: {mod.name}")
    return lines


def query(k, text: str, pad: str = "") -> list[str]:
    """crash's symbol_query(): every kernel then module symbol whose name contains `text`."""
    out = []
    t = kmod.kernel_symbols(k).table
    for i, name in enumerate(t.names):
        if text in name:
            out.append(f"{pad}{t.addresses[i]:x} ({t.types[i]}) {name}")
    for mod in kmod.modules(k):
        mt = mod.symbols
        for i, name in enumerate(mt.names):
            if text in name:
                out.append(f"{pad}{mt.addresses[i]:x} ({mt.types[i]}) {name} [{mod.name}]")
    return out


def not_found_lines(k, word: str) -> list[str]:
    """crash's reply to an unknown symbol name (used by sym, rd and dis)."""
    return [f"symbol not found: {word}", "possible alternatives:"] + (
        query(k, word, pad="  ") or ["  (none found)"]
    )


def _neighbours(k, sym: Symbol) -> tuple[Symbol | None, Symbol | None]:
    """The previous entry in crash's table (same address or not) and the next one at a higher address."""
    if sym.module:
        mod = kmod.find_module(k, sym.module)
        table = mod.symbols if mod else None
    else:
        table = kmod.kernel_symbols(k).table
    if table is None:
        return None, None
    addrs = table.addresses
    names = table.names
    lo = bisect.bisect_left(addrs, sym.address)
    hi = bisect.bisect_right(addrs, sym.address)
    index = next((i for i in range(lo, hi) if names[i] == sym.name), None)
    if index is None:
        return None, None
    prev = table.at(index - 1) if index > 0 else None
    nxt = index + 1
    while nxt < len(addrs) and addrs[nxt] == sym.address:
        nxt += 1
    return prev, (table.at(nxt) if nxt < len(addrs) else None)


@command(
    "sym",
    summary="translate a symbol to its virtual address, or vice-versa",
    options=[
        Option("-l", help="dump all symbols and their values."),
        Option("-M", help="dump the current set of module symbols."),
        Option("-m", metavar="module", dest="module", help="dump the symbols of the given module."),
        Option("-p", help="display the target symbol and the previous symbol."),
        Option("-n", help="display the target symbol and the next symbol."),
        Option("-q", metavar="string", dest="query", help='search for all symbols containing "string".'),
    ],
    arguments=[Argument("target", nargs="*", metavar="symbol | vaddr", help="a symbol or an address.")],
    help=HELP,
)
def sym_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    radix = ctx.settings.radix
    if not (args.l or args.M or args.module or args.query is not None or args.target):
        from kcrash.commands import UsageError

        raise UsageError("a symbol, an address or an option is required")
    if args.l and ctx.json:
        for rec in _table_records(kmod.kernel_symbols(k).table):
            ctx.emit(rec)
        for mod in kmod.modules(k):
            for rec in _table_records(mod.symbols, mod.name):
                ctx.emit(rec)
    elif args.l:
        ks = kmod.kernel_symbols(k)
        ctx.write("\n".join(_symbol_lines(ks.table)) + "\n")
        for mod in kmod.modules(k):
            ctx.write("\n".join(_module_listing(mod)) + "\n")
    if args.M or args.module:
        for mod in kmod.modules(k):
            if args.M or mod.name == args.module:
                ctx.write("\n".join(_module_listing(mod)) + "\n")
    if args.query is not None and ctx.json:
        text = args.query
        for rec in _table_records(kmod.kernel_symbols(k).table, match=text):
            ctx.emit(rec)
        for mod in kmod.modules(k):
            for rec in _table_records(mod.symbols, mod.name, match=text):
                ctx.emit(rec)
    elif args.query is not None:
        found = query(k, args.query)
        ctx.write("\n".join(found or ["(none found)"]) + "\n")
    failed = False
    for word in args.target:
        sym = kmod.lookup_any(k, word)
        if sym is not None:
            offset = 0
        else:
            value = parse_hex(word)
            hit = kmod.resolve_any(k, value) if value is not None else None
            if value is None:
                for line in not_found_lines(k, word):
                    ctx.print(line)
                continue
            if hit is None:
                ctx.warn(f"invalid address: {word}")
                failed = True
                continue
            sym, offset = hit
        prev, nxt = _neighbours(k, sym) if (args.p or args.n) else (None, None)
        if args.p and prev is not None:
            ctx.emit(symbol_record(k, prev, 0, radix))
        ctx.emit(symbol_record(k, sym, offset, radix))
        if args.n and nxt is not None:
            ctx.emit(symbol_record(k, nxt, 0, radix))
    if failed:
        raise CommandFailed()
