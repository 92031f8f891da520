"""x86_64 ORC unwind tables: lookup of the entry describing an instruction address.

The vmlinux carries `.orc_unwind_ip` (sorted s32 self-relative addresses) and `.orc_unwind` (6-byte entries).
The bit layout of `struct orc_entry` is read from the kernel's own type information when it has one; the
meaning of the type field follows from its width (2 bits: CALL 0 / REGS 1 / REGS_PARTIAL 2 and an `end`
bit, up to 6.3; 3 bits: UNDEFINED 0 / END_OF_STACK 1 / CALL 2 / REGS 3 / REGS_PARTIAL 4, from 6.4).

Linux 7.1 renumbered the base registers (SP 5 → 3, PREV_SP 1 → 8, …) and no type information describes the
numbers. A table's numbering is read from the table itself (see `_register_numbering`), not from the kernel
version or from `.orc_header`'s hash (which only names the formats known when a tool was written), so a
kernel that renumbers the same way again, or a backport, is read right. `OrcEntry` carries the numbers of
4.14–7.0, the canonical ones here, whatever the table used.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcrash.debuginfo.elffile import ElfImage
    from kcrash.debuginfo.types import Type

__all__ = ["OrcEntry", "OrcTable", "ChainedOrc", "REG_PREV_SP", "REG_SP", "REG_BP", "REG_UNDEFINED", "REG_AX"]

# ORC register numbers (arch/x86/include/asm/orc_types.h, 4.14 to 7.0): the canonical numbering here.
REG_UNDEFINED = 0
REG_PREV_SP = 1
REG_DX = 2
REG_DI = 3
REG_BP = 4
REG_SP = 5
REG_R10 = 6
REG_R13 = 7
REG_BP_INDIRECT = 8
REG_SP_INDIRECT = 9
REG_AX = 10  # only in the 7.1 numbering

# 7.1's numbering ("objtool/x86: Reorder ORC register numbering") → the canonical one.
_RENUMBERED_7_1 = {
    0: REG_UNDEFINED,
    1: REG_AX,
    2: REG_DX,
    3: REG_SP,
    4: REG_BP,
    5: REG_DI,
    6: REG_R10,
    7: REG_R13,
    8: REG_PREV_SP,
    9: REG_SP_INDIRECT,
    10: REG_BP_INDIRECT,
}
_NUMBERINGS = {
    "4.14": ({r: r for r in range(10)}, 5, 1),  # map, SP's number, PREV_SP's number
    "7.1": (_RENUMBERED_7_1, 3, 8),
}

# Normalised frame types.
TYPE_UNDEFINED = "undefined"
TYPE_END = "end"
TYPE_CALL = "call"
TYPE_REGS = "regs"
TYPE_REGS_PARTIAL = "regs_partial"

_OLD_TYPES = {0: TYPE_CALL, 1: TYPE_REGS, 2: TYPE_REGS_PARTIAL}
_NEW_TYPES = {0: TYPE_UNDEFINED, 1: TYPE_END, 2: TYPE_CALL, 3: TYPE_REGS, 4: TYPE_REGS_PARTIAL}


@dataclass(frozen=True, slots=True)
class OrcEntry:
    sp_offset: int
    bp_offset: int
    sp_reg: int
    bp_reg: int
    type: str
    signal: bool


class _Bits:
    """Positions of the bit fields in the 16-bit flags word that follows sp_offset and bp_offset."""

    def __init__(self, fields: dict[str, tuple[int, int]]) -> None:
        self.fields = fields

    def get(self, flags: int, name: str) -> int:
        pos = self.fields.get(name)
        if pos is None:
            return 0
        shift, width = pos
        return (flags >> shift) & ((1 << width) - 1)


def _layout_from_type(orc_type: Type | None) -> tuple[_Bits, bool]:
    """(bit positions, new type numbering?) of orc_entry's flag fields."""
    default = {"sp_reg": (0, 4), "bp_reg": (4, 4), "type": (8, 2), "end": (10, 1)}
    if orc_type is None:
        return _Bits(default), False
    fields: dict[str, tuple[int, int]] = {}
    for m in orc_type.strip().members:
        if m.name and m.bit_size and m.bit_offset >= 32:
            fields[m.name] = (m.bit_offset - 32, m.bit_size)
    if "sp_reg" not in fields or "type" not in fields:
        return _Bits(default), False
    return _Bits(fields), fields["type"][1] >= 3


class _SelfRelativeIps(Sequence[int]):
    """The absolute addresses of .orc_unwind_ip's self-relative s32 entries, computed on access: bisect
    needs ~20 of the ~370k per lookup, so nothing is converted up front."""

    def __init__(self, rel: array[int], base: int) -> None:
        self.rel = rel
        self.base = base

    def __len__(self) -> int:
        return len(self.rel)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self.rel)))]
        if i < 0:
            i += len(self.rel)
        return (self.base + 4 * i + self.rel[i]) & 0xFFFFFFFFFFFFFFFF


def _register_numbering(entries: bytes, layout: _Bits) -> str:
    """Which register numbering a table uses, from what compilers emit everywhere: at a function's first
    instruction the previous frame is 8 bytes above SP (sp_reg = SP, sp_offset 8), and after `push %rbp`
    the caller's rbp is 16 bytes below the previous frame (bp_reg = PREV_SP, bp_offset -16). Counted over a
    sample of the table, the numbering whose SP and PREV_SP explain most entries wins; the two schemes give
    those registers different numbers, so a real table is never ambiguous."""
    words = array("h")
    words.frombytes(entries[: len(entries) - len(entries) % 6])
    stride = 3 * 32  # every 32nd entry: ~11,000 samples on a vmlinux, ~4 ms; thousands of votes
    sp_offs, bp_offs, flags = words[0::stride], words[1::stride], words[2::stride]
    votes = dict.fromkeys(_NUMBERINGS, 0)
    for sp_off, bp_off, flag in zip(sp_offs, bp_offs, flags, strict=True):
        flag &= 0xFFFF
        for name, (_, sp_reg, prev_sp) in _NUMBERINGS.items():
            if sp_off == 8 and layout.get(flag, "sp_reg") == sp_reg:
                votes[name] += 1
            if bp_off == -16 and layout.get(flag, "bp_reg") == prev_sp:
                votes[name] += 1
    return max(votes, key=lambda name: (votes[name], name == "4.14"))


class OrcTable:
    """ORC entries for a range of kernel text (the vmlinux, or one module), at run-time addresses."""

    def __init__(
        self, ips: Sequence[int], entries: bytes, layout: _Bits, new_types: bool, numbering: str | None = None
    ) -> None:
        self.ips = ips  # sorted run-time addresses (a sequence: computed on access for the vmlinux)
        self.entries = entries
        self.layout = layout
        self.new_types = new_types
        self.numbering = numbering or _register_numbering(entries, layout)
        self._registers = _NUMBERINGS[self.numbering][0]
        self._cache: dict[int, OrcEntry | None] = {}

    @classmethod
    def from_vmlinux(cls, elf: ElfImage, kaslr_offset: int, orc_type: Type | None) -> OrcTable | None:
        ip_sec = elf.section(".orc_unwind_ip")
        ip_data = elf.section_data(".orc_unwind_ip")
        entries = elf.section_data(".orc_unwind")
        if ip_sec is None or ip_data is None or entries is None:
            return None
        rel = array("i")
        rel.frombytes(bytes(ip_data))
        layout, new = _layout_from_type(orc_type)
        return cls(_SelfRelativeIps(rel, ip_sec.addr + kaslr_offset), bytes(entries), layout, new)

    def sibling(self, ip_base: int, ip_data: bytes, entries: bytes) -> OrcTable:
        """A table of the same kernel from another pair of arrays (a module's, read from the dump):
        `.orc_unwind_ip`'s self-relative s32 values as they lie at `ip_base`, and the 6-byte entries. The
        format is this table's; the entries are ordered by address as the kernel sorted them at load."""
        rel = array("i")
        rel.frombytes(ip_data[: len(ip_data) - len(ip_data) % 4])
        ips = [(ip_base + 4 * i + r) & 0xFFFFFFFFFFFFFFFF for i, r in enumerate(rel)]
        return OrcTable(ips, entries, self.layout, self.new_types, self.numbering)

    def find(self, ip: int) -> OrcEntry | None:
        """The entry that covers `ip` (the last one at or below it), or None outside the table."""
        i = bisect.bisect_right(self.ips, ip) - 1
        if i < 0:
            return None
        if i in self._cache:
            return self._cache[i]
        sp_off, bp_off, flags = struct.unpack_from("<hhH", self.entries, 6 * i)
        lay = self.layout
        raw_type = lay.get(flags, "type")
        if self.new_types:
            typ = _NEW_TYPES.get(raw_type, TYPE_UNDEFINED)
        else:
            typ = _OLD_TYPES.get(raw_type, TYPE_UNDEFINED)
            if lay.get(flags, "end"):
                typ = TYPE_END
        regs = self._registers
        sp_reg = regs.get(lay.get(flags, "sp_reg"), REG_UNDEFINED)
        if not self.new_types and sp_reg == REG_UNDEFINED and typ == TYPE_CALL:
            typ = TYPE_UNDEFINED  # old format: an all-zero entry means "no unwind data here"
        bp_reg = regs.get(lay.get(flags, "bp_reg"), REG_UNDEFINED)
        entry = OrcEntry(sp_off, bp_off, sp_reg, bp_reg, typ, bool(lay.get(flags, "signal")))
        self._cache[i] = entry
        return entry


class ChainedOrc:
    """The vmlinux's table for its own text; for any other address, the table `other(ip)` gives (a module's
    table for module text), or none. Has OrcTable's `find`, so the unwinder takes either."""

    def __init__(
        self, main: OrcTable, in_main: Callable[[int], bool], other: Callable[[int], OrcTable | None]
    ):
        self.main = main
        self.in_main = in_main
        self.other = other

    @property
    def numbering(self) -> str:
        """The register numbering of the tables (one kernel's tables share the vmlinux's)."""
        return self.main.numbering

    def find(self, ip: int) -> OrcEntry | None:
        if self.in_main(ip):
            return self.main.find(ip)
        table = self.other(ip)
        return table.find(ip) if table is not None else None
