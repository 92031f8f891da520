"""Address -> `<symbol+offset>` as gdb prints it after a pointer value.

gdb only names an address that lies in one of the vmlinux's allocated sections, takes the nearest
preceding ELF symbol of that section, prefers a symbol with a size that covers the address over
zero-sized labels, and never names a data address after a zero-sized data symbol (minsyms.c
lookup_minimal_symbol_by_pc_section, printcmd.c build_address_symbolic).
"""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["Symbolizer"]

KERNEL_TEXT_MAP = 0xFFFFFFFF80000000
SHF_ALLOC = 2
_TEXT_LETTERS = frozenset("TtWw")


class Symbolizer:
    """gdb's choice of symbol for an address, over a Kernel's symbol table and vmlinux sections."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.symbols = kernel.symbols
        ranges = []
        offset = getattr(kernel, "kaslr_offset", 0) or 0
        elf = getattr(kernel, "elf", None)
        for sec in getattr(elf, "sections", ()) or ():
            if not sec.flags & SHF_ALLOC or not sec.size or sec.addr < KERNEL_TEXT_MAP:
                continue
            start = (sec.addr + offset) & 0xFFFFFFFFFFFFFFFF
            ranges.append((start, start + sec.size))
        ranges.sort()
        self._starts = [r[0] for r in ranges]
        self._ends = [r[1] for r in ranges]
        self._cache: dict[int, tuple[str, int] | None] = {}

    def _section(self, address: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._ends[i]:
            return self._starts[i], self._ends[i]
        return None

    def lookup(self, address: int) -> tuple[str, int] | None:
        """(name, offset) gdb would print for `address`, or None."""
        if address in self._cache:
            return self._cache[address]
        if address < KERNEL_TEXT_MAP or self._section(address) is None:
            module = self._module_lookup(address)
            if module is not None:
                return module  # not cached: `mod -d` may take the module's symbols away again
        found = self._lookup(address)
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[address] = found
        return found

    def _lookup(self, address: int) -> tuple[str, int] | None:
        if not self._starts:
            return self._lookup_plain(address)
        section = self._section(address)
        if section is None:
            return None
        sec_start = section[0]
        table = self.symbols
        addrs, names, sizes, types = table.addresses, table.names, table.sizes, table.types
        i = bisect.bisect_right(addrs, address) - 1
        best_zero: int | None = None
        chosen: int | None = None
        # Walk back from the nearest symbol: at one address gdb orders names and starts from the last.
        while chosen is None and i >= 0 and addrs[i] >= sec_start:
            lo = bisect.bisect_left(addrs, addrs[i])
            for idx in sorted(range(lo, i + 1), key=names.__getitem__, reverse=True):
                if types[idx] in "aA":
                    continue
                if sizes[idx] == 0:
                    if best_zero is None:
                        best_zero = idx
                    continue
                chosen = idx
                break
            i = lo - 1
        if chosen is None:
            chosen = best_zero
        elif sizes[chosen] and address >= addrs[chosen] + sizes[chosen]:
            chosen = best_zero
        if chosen is None:
            return None
        if sizes[chosen] == 0 and types[chosen] not in _TEXT_LETTERS:
            return None  # gdb drops zero-sized data symbols
        return names[chosen], address - addrs[chosen]

    def _module_lookup(self, address: int) -> tuple[str, int] | None:
        """gdb knows a module's symbols once `mod -s` gave it the object file: the covering sized symbol,
        or the label before a text address."""
        for info in getattr(self.kernel, "module_debuginfo", ()):
            if address not in info.module:
                continue
            table = info.symbols
            i = bisect.bisect_right(table.addresses, address) - 1
            while i >= 0 and table.types[i] == "?":
                i -= 1  # kallsyms-only names (.LC labels) are not in gdb's symbol table
            if i < 0:
                return None
            start, size = table.addresses[i], table.sizes[i]
            if (size and address < start + size) or (not size and table.types[i] in _TEXT_LETTERS):
                return table.names[i], address - start
            return None
        return None

    def _lookup_plain(self, address: int) -> tuple[str, int] | None:
        """No section table (synthetic kernels in tests): the covering sized symbol."""
        hit = self.symbols.resolve(address)
        if hit is None:
            return None
        sym, off = hit
        if sym.size and off >= sym.size:
            return None
        return sym.name, off

    def suffix(self, address: int) -> str:
        """ " <name+off>" or "" (the text gdb appends after an address)."""
        found = self.lookup(address)
        if found is None:
            return ""
        name, off = found
        return f" <{name}+{off}>" if off else f" <{name}>"
