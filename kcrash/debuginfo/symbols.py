"""The kernel's ELF symbol table: name <-> address with nm-style type letters, relocated for KASLR."""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kcrash.debuginfo.elffile import ElfImage

__all__ = ["Symbol", "SymbolTable", "KERNEL_TEXT_MAP"]

KERNEL_TEXT_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map: only symbols above it move with KASLR

STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 1, 2, 3, 4
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHT_NOBITS = 8
_CACHE_VERSION = 2


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


def _nm_letter(info: int, shndx: int, sections: list[Any]) -> str:
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


def _sorted(
    addresses: list[int], names: list[str], sizes: list[int], types: str
) -> tuple[list[int], list[str], list[int], str]:
    """Sort by address; at equal addresses global names first, then by name."""
    order = sorted(range(len(addresses)), key=lambda i: (addresses[i], types[i].islower(), names[i]))
    return (
        [addresses[i] for i in order],
        [names[i] for i in order],
        [sizes[i] for i in order],
        "".join(types[i] for i in order),
    )


def _name_index(names: list[str], types: str) -> dict[str, int]:
    """name -> index; a global definition wins over same-named statics, else the lowest address."""
    by_name: dict[str, int] = {}
    for i in range(len(names) - 1, -1, -1):
        by_name[names[i]] = i
    for i, letter in enumerate(types):
        if letter.isupper() and not types[by_name[names[i]]].isupper():
            by_name[names[i]] = i
    return by_name


class SymbolTable:
    """Sorted symbols of the vmlinux (or of one module); addresses are the run-time ones.

    Held as parallel arrays (the vmlinux has ~120k symbols); Symbol records are made on demand.
    """

    def __init__(
        self,
        addresses: list[int],
        names: list[str],
        sizes: list[int],
        types: str,
        module: str | None = None,
        by_name: dict[str, int] | None = None,
    ) -> None:
        if by_name is None:
            addresses, names, sizes, types = _sorted(addresses, names, sizes, types)
            by_name = _name_index(names, types)
        self.addresses = array("Q", addresses)
        self.names = names
        self.sizes = sizes
        self.types = types
        self.module = module
        self.by_name = by_name

    @classmethod
    def from_symbols(cls, symbols: list[Symbol], module: str | None = None) -> SymbolTable:
        return cls(
            [s.address for s in symbols],
            [s.name for s in symbols],
            [s.size for s in symbols],
            "".join(s.type for s in symbols),
            module,
        )  # unsorted input: __init__ sorts and indexes

    @classmethod
    def from_elf(cls, elf: ElfImage, kaslr_offset: int = 0) -> SymbolTable:
        """The vmlinux's symbols relocated by `kaslr_offset`, through the build-id keyed cache."""
        from kcrash.debuginfo import cache

        bid = elf.build_id()
        raw = cache.load(bid, "symbols", _CACHE_VERSION) if bid else None
        if raw is None:
            raw = cls._read_elf(elf)
            if bid:
                cache.store(bid, "symbols", _CACHE_VERSION, raw)
        addresses, names, sizes, types, by_name = raw
        if kaslr_offset:
            # Everything linked in the kernel image moves with KASLR, absolute symbols too (the only ones
            # there are init_per_cpu__* addresses inside the image); per-cpu offsets and small absolute
            # values do not. The image is one block, so the order by address survives the shift.
            mask = 0xFFFFFFFFFFFFFFFF
            first = bisect.bisect_left(addresses, KERNEL_TEXT_MAP)
            addresses = addresses[:first] + [(a + kaslr_offset) & mask for a in addresses[first:]]
        return cls(addresses, names, sizes, types, by_name=by_name)

    @staticmethod
    def _read_elf(elf: ElfImage) -> tuple[Any, ...]:
        """Link-time symbols, sorted, with the name index."""
        symtab = elf.section(".symtab")
        if symtab is None:
            return [], [], [], ""
        data = elf.section_data(".symtab")
        if data is None:
            return [], [], [], ""
        strsec = elf.sections[symtab.link]
        strtab = bytes(elf.data[strsec.offset : strsec.offset + strsec.size])
        sections = elf.sections
        letters: dict[tuple[int, int], str] = {}
        addresses: list[int] = []
        names: list[str] = []
        sizes: list[int] = []
        types: list[str] = []
        find = strtab.find
        for name_off, info, _other, shndx, value, size in struct.iter_unpack("<IBBHQQ", data):
            typ = info & 0xF
            if name_off == 0 or typ == STT_SECTION or typ == STT_FILE or shndx == SHN_UNDEF:
                continue
            key = (info, shndx)
            letter = letters.get(key)
            if letter is None:
                letter = letters[key] = _nm_letter(info, shndx, sections)
            addresses.append(value)
            names.append(strtab[name_off : find(b"\0", name_off)].decode("utf-8", "replace"))
            sizes.append(size)
            types.append(letter)
        addresses, names, sizes, types_s = _sorted(addresses, names, sizes, "".join(types))
        return addresses, names, sizes, types_s, _name_index(names, types_s)

    def __len__(self) -> int:
        return len(self.names)

    def at(self, i: int) -> Symbol:
        return Symbol(self.names[i], self.addresses[i], self.sizes[i], self.types[i], self.module)

    def lookup(self, name: str) -> Symbol | None:
        i = self.by_name.get(name)
        return None if i is None else self.at(i)

    def resolve(self, address: int) -> tuple[Symbol, int] | None:
        """The symbol at or below `address` and the offset into it (crash's `sym ADDR`)."""
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0:
            return None
        # Several names may share an address: report the preferred one (first in sort order).
        base = self.addresses[i]
        i = bisect.bisect_left(self.addresses, base)
        return self.at(i), address - base

    def has_aliases(self, address: int) -> bool:
        """Whether more than one name sits at exactly `address`."""
        i = bisect.bisect_left(self.addresses, address)
        return i + 1 < len(self.addresses) and self.addresses[i + 1] == address

    def next(self, sym: Symbol) -> Symbol | None:
        i = bisect.bisect_right(self.addresses, sym.address)
        return self.at(i) if i < len(self.names) else None

    def previous(self, sym: Symbol) -> Symbol | None:
        i = bisect.bisect_left(self.addresses, sym.address) - 1
        if i < 0:
            return None
        return self.at(bisect.bisect_left(self.addresses, self.addresses[i]))

    def search(self, text: str) -> list[Symbol]:
        return [self.at(i) for i, n in enumerate(self.names) if text in n]

    def __iter__(self) -> Iterator[Symbol]:
        return (self.at(i) for i in range(len(self.names)))
