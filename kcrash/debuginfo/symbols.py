"""The kernel's ELF symbol table: name <-> address with nm-style type letters, relocated for KASLR."""

from __future__ import annotations

import bisect
import struct
from array import array
from dataclasses import dataclass

from kcrash.debuginfo.elffile import ElfImage

__all__ = ["Symbol", "SymbolTable", "KERNEL_TEXT_MAP"]

KERNEL_TEXT_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map: only symbols above it move with KASLR

STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 1, 2, 3, 4
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHT_NOBITS = 8


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    address: int
    size: int
    type: str  # nm letter: T t D d B b R r A a W w V v
    module: str | None = None

    @property
    def is_function(self) -> bool:
        return self.type in "TtWw"

    @property
    def is_global(self) -> bool:
        return self.type.isupper()


def _nm_letter(info: int, shndx: int, sections: list) -> str:
    bind, typ = info >> 4, info & 0xF
    if shndx == SHN_ABS:
        letter = "a"
    elif shndx == SHN_UNDEF or shndx >= len(sections):
        letter = "u"
    else:
        sec = sections[shndx]
        if sec.flags & SHF_EXECINSTR:
            letter = "t"
        elif sec.flags & SHF_ALLOC and sec.flags & SHF_WRITE:
            letter = "b" if sec.type == SHT_NOBITS else "d"
        elif sec.flags & SHF_ALLOC:
            letter = "r"
        else:
            letter = "n"
    if bind == STB_WEAK:
        return "V" if typ == STT_OBJECT else "W"
    return letter.upper() if bind == STB_GLOBAL else letter


class SymbolTable:
    """Sorted symbols of the vmlinux (or of one module); addresses are the run-time ones."""

    def __init__(self, symbols: list[Symbol]) -> None:
        # Sort by address; at equal addresses prefer global, then typed (function/object) names.
        symbols.sort(key=lambda s: (s.address, not s.is_global, s.name))
        self.symbols = symbols
        self.addresses = array("Q", (s.address for s in symbols))
        self.by_name: dict[str, Symbol] = {}
        for s in symbols:
            prev = self.by_name.get(s.name)
            if prev is None or (s.is_global and not prev.is_global):
                self.by_name[s.name] = s

    @classmethod
    def from_elf(cls, elf: ElfImage, kaslr_offset: int = 0) -> SymbolTable:
        symtab = elf.section(".symtab")
        if symtab is None:
            return cls([])
        data = elf.section_data(".symtab")
        strsec = elf.sections[symtab.link]
        strtab = elf.map
        str_base = strsec.offset
        sections = elf.sections
        letters: dict[tuple[int, int], str] = {}
        out: list[Symbol] = []
        find = strtab.find
        for name_off, info, _other, shndx, value, size in struct.iter_unpack("<IBBHQQ", data):
            typ = info & 0xF
            if name_off == 0 or typ == STT_SECTION or typ == STT_FILE or shndx == SHN_UNDEF:
                continue
            start = str_base + name_off
            name = strtab[start : find(b"\0", start)].decode("utf-8", "replace")
            key = (info, shndx)
            letter = letters.get(key)
            if letter is None:
                letter = letters[key] = _nm_letter(info, shndx, sections)
            if value >= KERNEL_TEXT_MAP and shndx != SHN_ABS:
                value = (value + kaslr_offset) & 0xFFFFFFFFFFFFFFFF
            out.append(Symbol(name, value, size, letter))
        return cls(out)

    def __len__(self) -> int:
        return len(self.symbols)

    def lookup(self, name: str) -> Symbol | None:
        return self.by_name.get(name)

    def resolve(self, address: int) -> tuple[Symbol, int] | None:
        """The symbol at or below `address` and the offset into it (crash's `sym ADDR`)."""
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0:
            return None
        sym = self.symbols[i]
        # Several names may share an address: report the preferred one (first in sort order).
        while i > 0 and self.addresses[i - 1] == sym.address:
            i -= 1
        sym = self.symbols[i]
        return sym, address - sym.address

    def index_of(self, sym: Symbol) -> int:
        i = bisect.bisect_left(self.addresses, sym.address)
        while i < len(self.symbols) and self.symbols[i] is not sym:
            i += 1
        return i

    def next(self, sym: Symbol) -> Symbol | None:
        i = bisect.bisect_right(self.addresses, sym.address)
        return self.symbols[i] if i < len(self.symbols) else None

    def previous(self, sym: Symbol) -> Symbol | None:
        i = bisect.bisect_left(self.addresses, sym.address) - 1
        return self.symbols[i] if i >= 0 else None

    def search(self, text: str) -> list[Symbol]:
        return [s for s in self.symbols if text in s.name]

    def names(self) -> list[str]:
        return list(self.by_name)
