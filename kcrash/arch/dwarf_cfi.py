"""DWARF call-frame information from the vmlinux's .debug_frame, for code ORC leaves undefined.

Only FDE headers are scanned up front (address -> entry offset); an FDE's instructions are interpreted when
an unwind needs that function.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from dataclasses import dataclass

from kcrash.debuginfo.leb128 import sleb128, uleb128

__all__ = ["CfiTable", "CfaRow", "DWARF_REGS"]

# DWARF register numbers on x86_64 -> our register names.
DWARF_REGS = {
    0: "rax",
    1: "rdx",
    2: "rcx",
    3: "rbx",
    4: "rsi",
    5: "rdi",
    6: "rbp",
    7: "rsp",
    8: "r8",
    9: "r9",
    10: "r10",
    11: "r11",
    12: "r12",
    13: "r13",
    14: "r14",
    15: "r15",
    16: "rip",
}


@dataclass
class CfaRow:
    cfa_reg: int
    cfa_offset: int
    saved: dict[int, int]  # DWARF register -> offset from the CFA where it is saved
    ra_reg: int = 16


@dataclass
class _Cie:
    code_align: int
    data_align: int
    ra_reg: int
    initial: bytes


class CfiTable:
    def __init__(
        self, data: bytes | memoryview, bias: int, index: tuple[bytes, bytes, bytes] | None = None
    ) -> None:
        """`data`: the .debug_frame bytes; `bias`: added to link-time addresses (the KASLR offset);
        `index`: the FDE index as `index_bytes()` returned it earlier (e.g. from a cache)."""
        data = bytes(data)  # 2-3 MB; slicing bytes is simpler and faster than a memoryview here
        self.data = data
        self.bias = bias
        self._cies: dict[int, _Cie] = {}
        if index is not None:
            self.locs, self.ranges, self.offsets = (array("Q", part) for part in index)
            return
        starts: list[tuple[int, int, int]] = []
        pos, end = 0, len(data)
        while pos + 4 <= end:
            (length,) = struct.unpack_from("<I", data, pos)
            if length == 0xFFFFFFFF or length == 0:
                break  # 64-bit DWARF is not used by the kernel; a zero length ends the section
            body = pos + 4
            (cie_id,) = struct.unpack_from("<I", data, body)
            if cie_id != 0xFFFFFFFF and body + 20 <= end:
                loc, rng = struct.unpack_from("<QQ", data, body + 4)
                starts.append((loc, rng, pos))
            pos = body + length
        starts.sort()
        self.locs = array("Q", (s[0] for s in starts))
        self.ranges = array("Q", (s[1] for s in starts))
        self.offsets = array("Q", (s[2] for s in starts))

    def index_bytes(self) -> tuple[bytes, bytes, bytes]:
        """The FDE index in a form marshal can store."""
        return self.locs.tobytes(), self.ranges.tobytes(), self.offsets.tobytes()

    def _cie(self, offset: int) -> _Cie:
        cie = self._cies.get(offset)
        if cie is not None:
            return cie
        data = self.data
        (length,) = struct.unpack_from("<I", data, offset)
        end = offset + 4 + length
        pos = offset + 8
        version = data[pos]
        pos += 1
        aug_end = data.index(b"\0", pos)
        augmentation = data[pos:aug_end]
        pos = aug_end + 1
        if version >= 4:
            pos += 2  # address_size, segment_selector_size
        code_align, pos = uleb128(data, pos)
        data_align, pos = sleb128(data, pos)
        if version == 1:
            ra_reg = data[pos]
            pos += 1
        else:
            ra_reg, pos = uleb128(data, pos)
        if augmentation.startswith(b"z"):
            aug_len, pos = uleb128(data, pos)
            pos += aug_len
        cie = _Cie(code_align, data_align, ra_reg, bytes(data[pos:end]))
        self._cies[offset] = cie
        return cie

    def row(self, address: int) -> CfaRow | None:
        """The CFA rule in force at run-time `address`, or None if no FDE covers it."""
        link = address - self.bias
        i = bisect.bisect_right(self.locs, link) - 1
        if i < 0 or link >= self.locs[i] + self.ranges[i]:
            return None
        off = self.offsets[i]
        data = self.data
        (length,) = struct.unpack_from("<I", data, off)
        (cie_ptr,) = struct.unpack_from("<I", data, off + 4)
        cie = self._cie(cie_ptr)
        instructions = bytes(data[off + 4 + 4 + 16 : off + 4 + length])
        row = CfaRow(7, 8, {}, cie.ra_reg)
        initial = self._run(cie, cie.initial, row, None, self.locs[i], link)
        return self._run(cie, instructions, initial, initial, self.locs[i], link)

    def _run(
        self, cie: _Cie, ins: bytes, row: CfaRow, initial: CfaRow | None, loc: int, target: int
    ) -> CfaRow:
        row = CfaRow(row.cfa_reg, row.cfa_offset, dict(row.saved), row.ra_reg)
        stack: list[CfaRow] = []
        pos, end = 0, len(ins)
        while pos < end:
            op = ins[pos]
            pos += 1
            high, low = op >> 6, op & 0x3F
            if high == 1:  # advance_loc
                loc += low * cie.code_align
                if loc > target:
                    break
                continue
            if high == 2:  # offset
                off, pos = uleb128(ins, pos)
                row.saved[low] = off * cie.data_align
                continue
            if high == 3:  # restore
                if initial is not None and low in initial.saved:
                    row.saved[low] = initial.saved[low]
                else:
                    row.saved.pop(low, None)
                continue
            if op == 0x00:  # nop
                continue
            if op in (0x02, 0x03, 0x04):  # advance_loc1/2/4
                size = {0x02: 1, 0x03: 2, 0x04: 4}[op]
                delta = int.from_bytes(ins[pos : pos + size], "little")
                pos += size
                loc += delta * cie.code_align
                if loc > target:
                    break
            elif op == 0x01:  # set_loc
                loc = struct.unpack_from("<Q", ins, pos)[0]
                pos += 8
                if loc > target:
                    break
            elif op == 0x05:  # offset_extended
                reg, pos = uleb128(ins, pos)
                off, pos = uleb128(ins, pos)
                row.saved[reg] = off * cie.data_align
            elif op in (0x06, 0x08):  # restore_extended, same_value
                reg, pos = uleb128(ins, pos)
                row.saved.pop(reg, None)
            elif op == 0x07:  # undefined
                reg, pos = uleb128(ins, pos)
                row.saved.pop(reg, None)
            elif op == 0x09:  # register
                _, pos = uleb128(ins, pos)
                _, pos = uleb128(ins, pos)
            elif op == 0x0A:  # remember_state
                stack.append(CfaRow(row.cfa_reg, row.cfa_offset, dict(row.saved), row.ra_reg))
            elif op == 0x0B:  # restore_state
                if stack:
                    saved = stack.pop()
                    row.cfa_reg, row.cfa_offset, row.saved = saved.cfa_reg, saved.cfa_offset, saved.saved
            elif op == 0x0C:  # def_cfa
                row.cfa_reg, pos = uleb128(ins, pos)
                row.cfa_offset, pos = uleb128(ins, pos)
            elif op == 0x0D:  # def_cfa_register
                row.cfa_reg, pos = uleb128(ins, pos)
            elif op == 0x0E:  # def_cfa_offset
                row.cfa_offset, pos = uleb128(ins, pos)
            elif op == 0x11:  # offset_extended_sf
                reg, pos = uleb128(ins, pos)
                off, pos = sleb128(ins, pos)
                row.saved[reg] = off * cie.data_align
            elif op == 0x12:  # def_cfa_sf
                row.cfa_reg, pos = uleb128(ins, pos)
                off, pos = sleb128(ins, pos)
                row.cfa_offset = off * cie.data_align
            elif op == 0x13:  # def_cfa_offset_sf
                off, pos = sleb128(ins, pos)
                row.cfa_offset = off * cie.data_align
            elif op in (0x0F, 0x10, 0x16):  # def_cfa_expression, expression, val_expression
                if op != 0x0F:
                    _, pos = uleb128(ins, pos)
                size, pos = uleb128(ins, pos)
                pos += size
                if op == 0x0F:
                    row.cfa_reg = -1  # an expression we do not evaluate: unusable row
            elif op == 0x2E:  # GNU_args_size
                _, pos = uleb128(ins, pos)
            else:
                row.cfa_reg = -1
                break
        return row
