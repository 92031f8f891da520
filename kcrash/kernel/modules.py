"""Loaded kernel modules and the symbols of the running kernel as crash sees them.

Modules come from the kernel's `modules` list (struct module); each module's own symbol table is read from
its in-memory kallsyms (mod->kallsyms: symtab/strtab/num_symtab).  The vmlinux table here is crash's view of
the ELF symbol table (crash's order, filtering and name stripping), so that `sym`, `rd -s`, `dis` and `bt`
name addresses exactly as crash does; `resolve_any` looks an address up in it and then in the modules.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcrash.arch.x86_64 import START_KERNEL_MAP
from kcrash.debuginfo import cache
from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.objects import list_for_each_entry
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.debuginfo.elffile import ElfImage
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "Module",
    "ModuleRegion",
    "KernelSymbols",
    "modules",
    "find_module",
    "module_at",
    "module_symbols",
    "kernel_symbols",
    "parse_kallsyms",
    "ordered_table",
    "crash_symbol_order",
    "resolve_any",
    "lookup_any",
    "lookup_module_symbol",
    "symbol_string",
    "strip_symbol_end",
    "bfd_letter",
]

_MASK64 = 0xFFFFFFFFFFFFFFFF
_CACHE_NAME = "crash-symbols"
_CACHE_VERSION = 2  # 2: absolute constants past _end dropped

STT_SECTION, STT_FILE, STT_FUNC = 3, 4, 2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHT_NOBITS = 8
_ELF64_SYM = struct.Struct("<IBBHQQ")

# Linux 6.4+ `enum mod_mem_type` (struct module.mem[]); names are crash's words for the regions.
_MOD_MEM_TYPES = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata")


def strip_symbol_end(name: str) -> str:
    """crash drops gcc's clone suffixes `.isra.N` and `.part.N` (and everything after them)."""
    for marker in (".isra.", ".part."):
        pos = name.find(marker)
        if pos >= 0:
            return name[:pos]
    return name


# --- the vmlinux table in crash's order --------------------------------------------------------------


def _bfd_letter(info: int, shndx: int, sections: list[Any]) -> str:
    """nm's (bfd's) type letter of an ELF symbol."""
    bind = info >> 4
    if shndx == SHN_ABS:
        letter = "a"
    elif shndx == SHN_UNDEF or shndx >= len(sections):
        letter = "u"
    else:
        flags = sections[shndx].flags
        if flags & SHF_EXECINSTR:
            letter = "t"
        elif flags & SHF_ALLOC and flags & SHF_WRITE:
            letter = "b" if sections[shndx].type == SHT_NOBITS else "d"
        elif flags & SHF_ALLOC:
            letter = "r"
        else:
            letter = "n"
    if bind == STB_WEAK:
        return "V" if info & 0xF == 1 else "W"
    return letter.upper() if bind == STB_GLOBAL else letter


def bfd_letter(info: int, shndx: int, sections: list[Any]) -> str:
    """nm's type letter of an ELF symbol (st_info, st_shndx) given the file's sections."""
    return _bfd_letter(info, shndx, sections)


def crash_symbol_order(rows: list[tuple[int, str, str, int]]) -> list[tuple[int, str, str, int]]:
    """Keep and order (address, raw name, letter, size) rows as crash's x86_64 symbol table does.

    crash sorts the ELF symbols by (value, name) like `nm -n`, then accepts nothing before `_text` or
    `_stext` except the per-cpu block that starts at `__per_cpu_start` (per_cpu* names, `__per_cpu_end`,
    and V/d/D symbols); from `_text` on everything is kept, except absolute symbols past `_end`: those are
    constants, not addresses (7.x's crypto assembly defines OFFSETOF_FOLD_ACROSS_* as -16, -32, …), and
    relocated they would wrap around and break the table's order.
    """
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    end = max((r[0] for r in rows if r[1] == "_end"), default=None)
    kept = []
    started = percpu = False
    for row in rows:
        name, letter = row[1], row[2]
        if not name or (end is not None and row[0] > end and letter in "Aa"):
            continue
        if not started:
            if name in ("_text", "_stext"):
                started = True
            elif name == "__per_cpu_start":
                percpu = True
            elif not (percpu and (name.startswith("per_cpu") or name == "__per_cpu_end" or letter in "VdD")):
                continue
        kept.append(row)
    return kept


def _read_crash_rows(elf: ElfImage) -> tuple[list[int], list[str], str, list[int]]:
    """Link-time (addresses, stripped names, letters, sizes) of the vmlinux, in crash's order."""
    symtab = elf.section(".symtab")
    if symtab is None:
        return [], [], "", []
    data = elf.section_data(".symtab")
    if data is None:
        return [], [], "", []
    strsec = elf.sections[symtab.link]
    strtab = bytes(elf.data[strsec.offset : strsec.offset + strsec.size])
    sections = elf.sections
    letters: dict[tuple[int, int], str] = {}
    rows: list[tuple[int, str, str, int]] = []
    find = strtab.find
    for name_off, info, _other, shndx, value, size in _ELF64_SYM.iter_unpack(data):
        typ = info & 0xF
        if typ == STT_FILE or shndx == SHN_UNDEF:
            continue
        if typ == STT_SECTION:
            # bfd names a section symbol after its section; non-allocated ones sit at 0 and drop out.
            if shndx >= len(sections) or not sections[shndx].flags & SHF_ALLOC:
                continue
            name = sections[shndx].name
        elif name_off == 0:
            continue
        else:
            name = strtab[name_off : find(b"\0", name_off)].decode("utf-8", "replace")
        key = (info, shndx)
        letter = letters.get(key)
        if letter is None:
            letter = letters[key] = _bfd_letter(info, shndx, sections)
        rows.append((value, name, letter, size))
    kept = crash_symbol_order(rows)
    return (
        [r[0] for r in kept],
        [strip_symbol_end(r[1]) for r in kept],
        "".join(r[2] for r in kept),
        [r[3] for r in kept],
    )


@dataclass
class KernelSymbols:
    """crash's vmlinux symbol table (run-time addresses) and what it needs to answer lookups."""

    table: SymbolTable
    first_text: int  # crash's first_ksymbol: addresses below it (per-cpu offsets) are not looked up
    code_ranges: list[tuple[int, int]]  # executable sections, relocated
    stext: int
    etext: int
    _repeated: dict[str, list[int]] | None = field(default=None, repr=False)

    def in_range(self, address: int) -> bool:
        addrs = self.table.addresses
        return bool(addrs) and self.first_text <= address <= addrs[-1]

    def is_code(self, address: int) -> bool:
        return any(lo <= address < hi for lo, hi in self.code_ranges)

    def all_named(self, name: str) -> list[Symbol]:
        """Every symbol with this name, in table order (static functions may share a name)."""
        if self._repeated is None:
            first: dict[str, int] = {}
            repeated: dict[str, list[int]] = {}
            for i, n in enumerate(self.table.names):
                j = first.setdefault(n, i)
                if j != i:
                    repeated.setdefault(n, [j]).append(i)
            self._repeated = repeated
        indexes = self._repeated.get(name)
        if indexes is None:
            only = self.table.by_name.get(name)
            return [] if only is None else [self.table.at(only)]
        return [self.table.at(i) for i in indexes]


@per_kernel
def kernel_symbols(k: Kernel) -> KernelSymbols:
    """The vmlinux symbols as crash lists them (`sym -l`), relocated for KASLR; built once per kernel."""
    bid = k.elf.build_id()
    raw = cache.load(bid, _CACHE_NAME, _CACHE_VERSION) if bid else None
    if raw is None:
        raw = _read_crash_rows(k.elf)
        if bid:
            cache.store(bid, _CACHE_NAME, _CACHE_VERSION, raw)
    link, names, types, sizes = raw
    offset = k.kaslr_offset
    addresses = [(a + offset) & _MASK64 if a >= START_KERNEL_MAP else a for a in link]
    by_name: dict[str, int] = {}
    for i in range(len(names) - 1, -1, -1):
        by_name[names[i]] = i  # crash's symbol_search: the first in table order
    table = SymbolTable(addresses, names, sizes, types, by_name=by_name)
    first_text = next((addresses[i] for i, n in enumerate(names) if n in ("_text", "_stext")), 0)
    code = [
        ((s.addr + offset) & _MASK64, (s.addr + s.size + offset) & _MASK64)
        for s in k.elf.sections
        if s.flags & SHF_EXECINSTR and s.flags & SHF_ALLOC and s.addr >= START_KERNEL_MAP
    ]

    def at(name: str, default: int) -> int:
        i = by_name.get(name)
        return addresses[i] if i is not None else default

    result = KernelSymbols(table, first_text, code, at("_stext", first_text), at("_etext", 0))
    return result


# --- modules ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleRegion:
    """One block of a module's memory: "core"/"init" before Linux 6.4, "text", "data", ... after."""

    kind: str
    base: int
    size: int

    def __contains__(self, address: int) -> bool:
        return self.base <= address < self.base + self.size


@dataclass
class Module:
    """A loaded module (one `struct module`)."""

    address: int  # of the struct module
    name: str
    base: int  # crash's mod_base: core_layout.base (mem[MOD_TEXT].base on 6.4+)
    size: int  # core_layout.size (mem[MOD_TEXT].size on 6.4+)
    text_size: int  # bytes of text from `base` (crash's mod_etext_guess - mod_base)
    regions: tuple[ModuleRegion, ...]
    init_base: int = 0
    init_size: int = 0
    percpu: int = 0
    percpu_size: int = 0
    _symbols: SymbolTable | None = field(default=None, repr=False)
    _kernel: Kernel | None = field(default=None, repr=False)

    @property
    def end(self) -> int:
        return self.base + self.size

    def __contains__(self, address: int) -> bool:
        if any(address in r for r in self.regions):
            return True
        return bool(self.percpu_size) and self.percpu <= address < self.percpu + self.percpu_size

    def region_at(self, address: int) -> ModuleRegion | None:
        return next((r for r in self.regions if address in r), None)

    @property
    def split_layout(self) -> bool:
        """Linux 6.4+: text, data, rodata... allocated separately (struct module.mem[])."""
        return bool(self.regions) and self.regions[0].kind != "core"

    def is_text(self, address: int) -> bool:
        if self.split_layout:  # 6.4+: the text regions are exact
            return any(address in r for r in self.regions if r.kind.endswith("text"))
        if self.base <= address < self.base + self.text_size:
            return True
        return bool(self.init_size) and self.init_base <= address < self.init_base + self.init_size

    def replace_symbols(self, table: SymbolTable | None) -> None:
        """Use `table` for this module's symbols (an object file's, after `mod -s`); None goes back to the
        module's kallsyms."""
        self._symbols = table

    @property
    def symbols(self) -> SymbolTable:
        """The module's own symbols from its kallsyms (empty when they cannot be read)."""
        if self._symbols is None:
            try:
                self._symbols = _module_symbol_table(self._kernel, self) if self._kernel else None
            except (KcrashError, MemoryReadError):
                self._symbols = None
            if self._symbols is None:
                self._symbols = SymbolTable([], [], [], "", module=self.name, by_name={})
        return self._symbols


def _int(obj: Object, name: str, default: int = 0) -> int:
    try:
        return int(obj.member(name))
    except (KcrashError, MemoryReadError, LookupError):
        return default


def _read_module(k: Kernel, mod: Object) -> Module:
    name = mod.member("name").string()
    t = mod.type_.strip()
    regions: list[ModuleRegion] = []
    init_base = init_size = 0
    if t.find_member("mem") is not None:  # Linux 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES]
        mem = mod.member("mem")
        count = mem.type_.strip().length or 0
        for i in range(count):
            kind = _MOD_MEM_TYPES[i] if i < len(_MOD_MEM_TYPES) else f"mem{i}"
            region = mem[i]
            base, size = _int(region, "base"), _int(region, "size")
            if base and size:
                regions.append(ModuleRegion(kind, base, size))
        text = next((r for r in regions if r.kind == "text"), None)
        base = text.base if text else (regions[0].base if regions else 0)
        size = text.size if text else (regions[0].size if regions else 0)
        text_size = size if text else 0
        init = next((r for r in regions if r.kind == "init_text"), None)
        if init is not None:
            init_base, init_size = init.base, init.size
    else:
        core = mod.member("core_layout") if t.find_member("core_layout") else None
        if core is not None:
            base, size, text_size = _int(core, "base"), _int(core, "size"), _int(core, "text_size")
            init_layout = mod.member("init_layout")
            init_base, init_size = _int(init_layout, "base"), _int(init_layout, "size")
        else:  # before 4.5: module_core / core_size / core_text_size
            base, size = _int(mod, "module_core"), _int(mod, "core_size")
            text_size = _int(mod, "core_text_size")
            init_base, init_size = _int(mod, "module_init"), _int(mod, "init_size")
        if base and size:
            regions.append(ModuleRegion("core", base, size))
        if init_base and init_size:
            regions.append(ModuleRegion("init", init_base, init_size))
    percpu = _int(mod, "percpu") if t.find_member("percpu") else 0
    percpu_size = _int(mod, "percpu_size") if t.find_member("percpu_size") else 0
    return Module(
        address=mod.require_address(),
        name=name,
        base=base,
        size=size,
        text_size=text_size,
        regions=tuple(regions),
        init_base=init_base,
        init_size=init_size,
        percpu=percpu,
        percpu_size=percpu_size,
        _kernel=k,
    )


@per_kernel
def modules(k: Kernel) -> list[Module]:
    """The loaded modules, ordered by base address as crash keeps them (empty without a module list)."""
    result: list[Module] = []
    head_sym = k.symbols.lookup("modules")
    mtype = k.find_type("struct module")
    if head_sym is not None and mtype is not None:
        try:
            head = k.object_at("struct list_head", head_sym.address)
            for mod in list_for_each_entry(mtype, head, "list"):
                result.append(_read_module(k, mod))
        except (KcrashError, MemoryReadError) as e:
            k.warnings.append(f"cannot read the module list: {e}")
    result.sort(key=lambda m: m.base)
    return result


def find_module(k: Kernel, name: str) -> Module | None:
    """The loaded module called `name`, or None."""
    return next((m for m in modules(k) if m.name == name), None)


def module_at(k: Kernel, address: int) -> Module | None:
    """The module whose memory holds `address`."""
    for m in modules(k):
        if address in m:
            return m
    return None


def module_symbols(k: Kernel) -> dict[str, SymbolTable]:
    """Each loaded module's symbol table (Symbol.module is the module's name), by module name."""
    return {m.name: m.symbols for m in modules(k)}


def parse_kallsyms(
    symtab: bytes,
    strtab: bytes,
    regions: list[tuple[int, int]],
) -> list[Symbol]:
    """Symbols from a module's kallsyms copy: Elf64_Sym entries and their string table.  Entry 0, undefined
    and unnamed symbols, and values outside the module's memory are left out.  Letters are crash's: t/T
    for functions by binding, `?` for everything else (crash ignores the kernel's typetab)."""
    result: list[Symbol] = []
    count = len(symtab) // _ELF64_SYM.size
    for i in range(1, count):
        name_off, info, _other, shndx, value, size = _ELF64_SYM.unpack_from(symtab, i * _ELF64_SYM.size)
        if shndx == SHN_UNDEF or name_off >= len(strtab):
            continue
        if not any(lo <= value <= hi for lo, hi in regions):
            continue
        end = strtab.find(b"\0", name_off)
        name = strtab[name_off : end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        if not name:
            continue
        if 0x41 <= info <= 0x7A and chr(info).isalpha():
            letter = chr(info)  # before Linux 4.x-5.x the kernel kept the type letter in st_info
        elif info & 0xF == STT_FUNC:
            letter = "T" if info >> 4 in (STB_GLOBAL, STB_WEAK) else "t"
        else:
            letter = "?"
        result.append(Symbol(strip_symbol_end(name), value, size, letter))
    return result


def _module_symbol_table(k: Kernel, mod: Module) -> SymbolTable | None:
    obj = k.object_at("struct module", mod.address)
    kallsyms = obj.member("kallsyms")
    if int(kallsyms) == 0:
        return None
    ks = kallsyms.deref()
    num = _int(ks, "num_symtab")
    symtab_addr = _int(ks, "symtab")
    strtab_addr = _int(ks, "strtab")
    if not num or not symtab_addr or not strtab_addr or num > 1 << 20:
        return None
    symtab = k.read(symtab_addr, num * _ELF64_SYM.size)
    # The string table ends where the largest name ends; read up to the end of its region.
    max_name = max((_ELF64_SYM.unpack_from(symtab, i * _ELF64_SYM.size)[0] for i in range(num)), default=0)
    region_end = next((r.base + r.size for r in mod.regions if r.base <= strtab_addr < r.base + r.size), 0)
    length = max(min(max_name + 512, region_end - strtab_addr) if region_end else max_name + 512, 1)
    strtab = _read_partial(k, strtab_addr, length)
    spans = [(r.base, r.base + r.size) for r in mod.regions]
    symbols = parse_kallsyms(symtab, strtab, spans)
    return ordered_table(symbols, mod.name)


def ordered_table(symbols: list[Symbol], module: str | None = None) -> SymbolTable:
    """A SymbolTable sorted by address only, keeping the given order among equal addresses (crash's
    stable sort of a module's kallsyms); names index to their first occurrence."""
    symbols = sorted(symbols, key=lambda s: s.address)
    names = [s.name for s in symbols]
    by_name: dict[str, int] = {}
    for i in range(len(names) - 1, -1, -1):
        by_name[names[i]] = i
    return SymbolTable(
        [s.address for s in symbols],
        names,
        [s.size for s in symbols],
        "".join(s.type for s in symbols),
        module=module,
        by_name=by_name,
    )


def _read_partial(k: Kernel, address: int, length: int) -> bytes:
    """Up to `length` bytes at `address`, stopping at the first unreadable page."""
    out = bytearray()
    while len(out) < length:
        chunk = min(length - len(out), 4096 - ((address + len(out)) & 4095))
        try:
            out += k.read(address + len(out), chunk)
        except MemoryReadError:
            break
    return bytes(out)


# --- lookups ------------------------------------------------------------------------------------------


def _kernel_resolve(ks: KernelSymbols, address: int) -> tuple[Symbol, int] | None:
    table = ks.table
    addrs = table.addresses
    if not ks.in_range(address):
        return None
    i = bisect.bisect_right(addrs, address) - 1
    if i < 0:
        return None
    if addrs[i] != address:
        return table.at(i), address - addrs[i]  # the last of several names at that address
    i = bisect.bisect_left(addrs, address)
    names = table.names
    # crash's value_search prefers the real name over these aliases at the same address.
    name = names[i]
    if i + 1 < len(names) and addrs[i + 1] == address:
        if name.startswith((".text.", "SyS_", "compat_SyS_")) or "_text_start" in name:
            i += 1
    return table.at(i), 0


def _module_resolve(mod: Module, address: int) -> tuple[Symbol, int] | None:
    if address == mod.end or address not in mod:
        return None
    region = mod.region_at(address)
    floor = region.base if region is not None else mod.base
    table = mod.symbols
    addrs = table.addresses
    i = bisect.bisect_right(addrs, address) - 1
    if i < 0 or addrs[i] < floor:
        return None  # nothing of this module's memory block lies at or below the address
    if addrs[i] != address:
        return table.at(i), address - addrs[i]
    i = bisect.bisect_left(addrs, address)
    if table.names[i].startswith(".") and i + 1 < len(addrs) and addrs[i + 1] == address:
        i += 1
    return table.at(i), 0


def resolve_any(k: Kernel, address: int) -> tuple[Symbol, int] | None:
    """The symbol at or before `address` and the offset into it, as crash's value_search finds it:
    the vmlinux table first (only for addresses from `_text` to its last symbol), then the module whose
    memory holds the address.  Module symbols have Symbol.module set (crash shows ` [module]`)."""
    hit = _kernel_resolve(kernel_symbols(k), address)
    if hit is not None:
        return hit
    mod = module_at(k, address)
    return _module_resolve(mod, address) if mod is not None else None


def lookup_any(k: Kernel, name: str) -> Symbol | None:
    """A symbol by name: the vmlinux first (the first of equal names, as crash), then each module."""
    sym = kernel_symbols(k).table.lookup(name)
    return sym if sym is not None else lookup_module_symbol(k, name)


def lookup_module_symbol(k: Kernel, name: str) -> Symbol | None:
    """A module's symbol by name (the first module, in crash's order, that has it)."""
    for mod in modules(k):
        sym = mod.symbols.lookup(name)
        if sym is not None:
            return sym
    return None


def symbol_string(k: Kernel, address: int, radix: int = 10) -> str:
    """crash's value_to_symstr: `name`, `name+off` (decimal, or hex with radix 16), or "" if none."""
    hit = resolve_any(k, address)
    if hit is None:
        return ""
    sym, offset = hit
    if not offset:
        return sym.name
    return f"{sym.name}+0x{offset:x}" if radix == 16 else f"{sym.name}+{offset}"
