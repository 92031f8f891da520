"""Which addresses gdb names in disassembly (`<symbol>` after an address in crash's `dis`): gdb's minimal
symbols over the vmlinux's sections, and the loaded modules' symbols crash hands to gdb. The AT&T printer
itself is kcrash.arch.x86_64_att."""

from __future__ import annotations

import bisect
import struct
from typing import TYPE_CHECKING

from kcrash.arch.x86_64 import START_KERNEL_MAP
from kcrash.debuginfo import cache
from kcrash.kernel.modules import module_at, resolve_any
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.debuginfo.elffile import ElfImage
    from kcrash.program import Kernel

__all__ = ["GdbSymbols", "gdb_symbols"]

_CACHE_NAME = "gdb-msymbols"
_CACHE_VERSION = 2


class GdbSymbols:
    """Whether gdb (inside crash) prints `<symbol>` after an address in disassembly.

    crash replaces the name gdb prints with its own, but only where gdb printed one, so this decides
    whether there is a name at all.  gdb's minimal symbols are the ELF symbols less section, file,
    absolute and undefined ones.  An address gets a name when it lies in an allocated
    section and, walking down through that section's symbols, the first sized one met covers it or no
    unsized one was passed on the way (crash's gdb does not insist on the size); otherwise the unsized
    one is used, which gdb's build_address_symbolic drops unless it is a text symbol.
    Module addresses are named when crash knows a module symbol there (crash hands module kallsyms to
    gdb).
    """

    def __init__(self, k: Kernel) -> None:
        self.kernel = k
        bid = k.elf.build_id()
        raw = cache.load(bid, _CACHE_NAME, _CACHE_VERSION) if bid else None
        if raw is None:
            raw = _read_msymbols(k.elf)
            if bid:
                cache.store(bid, _CACHE_NAME, _CACHE_VERSION, raw)
        link, sizes, shndx = raw
        self.sizes: list[int] = sizes
        self.shndx: list[int] = shndx
        off = k.kaslr_offset
        self.addresses = [a + off for a in link]
        self.sections = sorted(
            (sec.addr + off, sec.addr + sec.size + off, i, bool(sec.flags & 4))
            for i, sec in enumerate(k.elf.sections)
            if sec.flags & 2 and sec.addr >= START_KERNEL_MAP and sec.size
        )
        self._starts = [s[0] for s in self.sections]

    def _section(self, address: int) -> tuple[int, int, bool] | None:
        j = bisect.bisect_right(self._starts, address) - 1
        while j >= 0:
            lo, hi, index, code = self.sections[j]
            if address < hi:
                return lo, index, code
            j -= 1
            if j >= 0 and self.sections[j][1] <= lo:
                break
        return None

    def names(self, address: int) -> bool:
        found = self._section(address)
        if found is None:
            k = self.kernel
            return module_at(k, address) is not None and resolve_any(k, address) is not None
        lo, index, code = found
        addrs, sizes, shndx = self.addresses, self.sizes, self.shndx
        i = bisect.bisect_right(addrs, address) - 1
        zero_sized = False
        while i >= 0 and addrs[i] >= lo:
            if shndx[i] == index:
                if sizes[i]:
                    if address < addrs[i] + sizes[i] or not zero_sized:
                        return True  # crash's gdb keeps a sized symbol even past its end
                    break
                zero_sized = True
            i -= 1
        # gdb falls back to the unsized symbol, then drops it unless it is a text symbol.
        return zero_sized and code

    def function_end(self, address: int) -> int | None:
        """Where gdb ends the routine holding a kernel text address (its find_pc_partial_function from
        minimal symbols): the covering sized symbol's end; else, past an unsized label, the next symbol
        in the section (or the section's end).  None outside the vmlinux's sections."""
        j = bisect.bisect_right(self._starts, address) - 1
        if j < 0 or address >= self.sections[j][1]:
            return None
        lo, hi, index, _code = self.sections[j]
        addrs, sizes, shndx = self.addresses, self.sizes, self.shndx
        i = bisect.bisect_right(addrs, address) - 1
        label = None
        while i >= 0 and addrs[i] >= lo:
            if shndx[i] == index:
                if sizes[i]:
                    if address < addrs[i] + sizes[i]:
                        return addrs[i] + sizes[i]
                    break
                if label is None:
                    label = addrs[i]
            i -= 1
        if label is None:
            return None
        i = bisect.bisect_right(addrs, label)
        while i < len(addrs) and addrs[i] < hi:
            if shndx[i] == index:
                return addrs[i]
            i += 1
        return hi


@per_kernel
def gdb_symbols(k: Kernel) -> GdbSymbols:
    """The kernel's GdbSymbols, built once per Kernel."""
    return GdbSymbols(k)


def _read_msymbols(elf: ElfImage) -> tuple[list[int], list[int], list[int]]:
    """Link-time (addresses, sizes, section indexes) of gdb's minimal symbols, sorted by address."""
    data = elf.section_data(".symtab")
    if data is None:
        return [], [], []
    rows = []
    for name_off, info, _other, shndx, value, size in struct.iter_unpack("<IBBHQQ", data):
        if info & 0xF in (3, 4) or shndx in (0, 0xFFF1) or shndx >= 0xFF00 or name_off == 0:
            continue
        if value < START_KERNEL_MAP:
            continue  # per-cpu offsets: never inside a relocated section
        rows.append((value, size, shndx))
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
