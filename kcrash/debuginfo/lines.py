"""Address → (source file, line) from .debug_line: the unit is found through .debug_aranges (or the units'
own address ranges), and only that unit's line program is run, once."""

from __future__ import annotations

import posixpath
import struct
from bisect import bisect_right
from typing import Any

from kcrash.debuginfo.dwarf import DwarfIndex, Unit
from kcrash.debuginfo.dwarf import constants as D
from kcrash.debuginfo.dwarf.constants import (
    AT_comp_dir,
    AT_high_pc,
    AT_low_pc,
    AT_name,
    AT_ranges,
    AT_stmt_list,
    FORM_addr,
    FORM_rnglistx,
)
from kcrash.debuginfo.leb128 import sleb128, uleb128
from kcrash.errors import DebugInfoError

__all__ = ["LineTable"]

# Line-number program opcodes (DWARF 5 §6.2.5)
_LNS_copy, _LNS_advance_pc, _LNS_advance_line, _LNS_set_file, _LNS_negate_stmt = 1, 2, 3, 4, 6
_LNS_const_add_pc, _LNS_fixed_advance_pc = 8, 9
_LNE_end_sequence, _LNE_set_address, _LNE_set_discriminator = 1, 2, 4
_LNCT_path, _LNCT_directory_index = 1, 2

# Forms a line-table header may use for its directory and file entries, by size.
_FORM_SIZES = {
    D.FORM_data1: 1, D.FORM_data2: 2, D.FORM_data4: 4, D.FORM_data8: 8, D.FORM_data16: 16,
    D.FORM_strp: 4, D.FORM_line_strp: 4, D.FORM_sec_offset: 4,
}  # fmt: skip


class _FileLines:
    """The rows of one source file within a unit, sorted by address (an end marker sorts first)."""

    __slots__ = ("path", "addresses", "lines", "stmts")

    def __init__(self, path: str, rows: list[tuple[int, int, bool]]) -> None:
        rows.sort(key=_row_order)
        self.path = path
        self.addresses = [r[0] for r in rows]
        self.lines = [r[1] for r in rows]
        self.stmts = [r[2] for r in rows]


def _row_order(row: tuple[int, int, bool]) -> tuple[int, bool]:
    return row[0], row[1] != 0


class LineTable:
    """Source lines of kernel text addresses (link-time addresses, before KASLR)."""

    def __init__(self, elf: Any, dwarf: DwarfIndex) -> None:
        # `elf` (the mapped vmlinux) is accepted for symmetry; the sections are read through `dwarf`,
        # which holds the same mapping (or, for a relocatable object, its relocated copy).
        self.dwarf = dwarf
        self.mm = dwarf.mm
        self.path = dwarf.path
        self._line = dwarf.section(".debug_line")
        self._programs: dict[int, list[_FileLines]] = {}
        self._ranges: tuple[list[int], list[tuple[int, int]]] | None = None

    # --- which unit ------------------------------------------------------------------------------
    def unit_for(self, addr: int) -> int | None:
        """The .debug_info offset of the unit whose code contains `addr`."""
        if self._ranges is None:
            self._ranges = self._build_ranges()
        starts, spans = self._ranges
        i = bisect_right(starts, addr) - 1
        while i >= 0:
            end, unit = spans[i]
            if addr < end:
                return unit
            # Ranges are disjoint in practice; look one back in case a short one follows a long one.
            if starts[i] + (1 << 24) < addr:
                break
            i -= 1
        return None

    def _build_ranges(self) -> tuple[list[int], list[tuple[int, int]]]:
        entries: list[tuple[int, int, int]] = []
        covered: set[int] = set()
        base, size = self.dwarf.section(".debug_aranges")
        mm = self.mm
        pos, end = base, base + size
        while pos + 16 <= end:
            length, version, info_off, addr_size, seg_size = struct.unpack_from("<IHIBB", mm, pos)
            if length >= 0xFFFFFFF0 or addr_size not in (4, 8):
                raise DebugInfoError(self.path, f"unsupported .debug_aranges entry at {pos - base:#x}")
            set_end = pos + 4 + length
            tuple_size = 2 * addr_size
            p = pos + 12
            p += (-(p - pos)) % tuple_size  # tuples are aligned to their size from the set's start
            fmt = "<QQ" if addr_size == 8 else "<II"
            while p + tuple_size <= set_end:
                start, length_ = struct.unpack_from(fmt, mm, p)
                p += tuple_size
                if start == 0 and length_ == 0:
                    break
                if length_:
                    entries.append((start, start + length_, info_off))
            covered.add(info_off)
            pos = set_end
        for unit in self.dwarf.unit_offsets():
            if unit not in covered:
                entries.extend((lo, hi, unit) for lo, hi in self._unit_ranges(unit))
        entries.sort()
        return [e[0] for e in entries], [(e[1], e[2]) for e in entries]

    def _unit_ranges(self, unit_offset: int) -> list[tuple[int, int]]:
        """A unit's code ranges from its DW_AT_low_pc/high_pc or DW_AT_ranges."""
        die = self.dwarf.unit_die(unit_offset)
        low = die.get(AT_low_pc, 0) or 0
        if AT_ranges in die.attrs:
            return self._range_list(die.unit, die.attrs[AT_ranges], die.forms[AT_ranges], low)
        high = die.get(AT_high_pc)
        if high is None:
            return []
        if die.forms.get(AT_high_pc) != FORM_addr:
            high += low  # DWARF 4+: high_pc as a constant is a length
        return [(low, high)] if high > low else []

    def _range_list(self, unit: Unit, value: int, form: int, base_addr: int) -> list[tuple[int, int]]:
        mm = self.mm
        size = unit.addr_size
        out: list[tuple[int, int]] = []
        if unit.version < 5:
            base, _ = self.dwarf.section(".debug_ranges")
            pos = base + value
            while True:
                lo = int.from_bytes(mm[pos : pos + size], "little")
                hi = int.from_bytes(mm[pos + size : pos + 2 * size], "little")
                pos += 2 * size
                if lo == 0 and hi == 0:
                    return out
                if lo == (1 << (8 * size)) - 1:
                    base_addr = hi
                elif hi > lo:
                    out.append((base_addr + lo, base_addr + hi))
        base, _ = self.dwarf.section(".debug_rnglists")
        if form == FORM_rnglistx:
            value = (
                unit.rnglists_base + struct.unpack_from("<I", mm, base + unit.rnglists_base + 4 * value)[0]
            )
        pos = base + value
        read_addr = self.dwarf.reader.address_at
        while True:
            kind = mm[pos]
            pos += 1
            if kind == 0:  # DW_RLE_end_of_list
                return out
            if kind == 1:  # base_addressx
                index, pos = uleb128(mm, pos)
                base_addr = read_addr(unit, index)
            elif kind in (2, 3):  # startx_endx, startx_length
                a, pos = uleb128(mm, pos)
                b, pos = uleb128(mm, pos)
                lo = read_addr(unit, a)
                out.append((lo, read_addr(unit, b) if kind == 2 else lo + b))
            elif kind == 4:  # offset_pair
                a, pos = uleb128(mm, pos)
                b, pos = uleb128(mm, pos)
                out.append((base_addr + a, base_addr + b))
            elif kind == 5:  # base_address
                base_addr = int.from_bytes(mm[pos : pos + size], "little")
                pos += size
            elif kind == 6:  # start_end
                lo = int.from_bytes(mm[pos : pos + size], "little")
                hi = int.from_bytes(mm[pos + size : pos + 2 * size], "little")
                pos += 2 * size
                out.append((lo, hi))
            elif kind == 7:  # start_length
                lo = int.from_bytes(mm[pos : pos + size], "little")
                n, pos = uleb128(mm, pos + size)
                out.append((lo, lo + n))
            else:
                raise DebugInfoError(self.path, f"unknown range list entry kind {kind}")

    # --- the lookup ------------------------------------------------------------------------------
    def lookup(self, addr: int) -> tuple[str, int] | None:
        """(source path, line) of a link-time text address, or None when no line covers it.

        The path is spelt as crash prints it: the file's name if absolute, otherwise its directory and
        name joined under the unit's DW_AT_comp_dir (which this Debian build records relative)."""
        unit = self.unit_for(addr)
        if unit is None:
            return None
        program = self._programs.get(unit)
        if program is None:
            program = self._programs[unit] = self._run(unit)
        if not program:
            return None
        # gdb's choice (find_pc_sect_line), which crash prints: in each file the last row at or before
        # `addr`; across files the highest such address (the first file wins a tie); a row that is not a
        # statement gives way to a statement row at the same address.
        best: _FileLines | None = None
        best_i = -1
        best_addr = -1
        for lines in program:
            i = bisect_right(lines.addresses, addr) - 1
            if i < 0 or lines.lines[i] == 0:
                continue
            if best is None or lines.addresses[i] > best_addr:
                best, best_i, best_addr = lines, i, lines.addresses[i]
        if best is None:
            return None
        if not best.stmts[best_i]:
            j = best_i
            while (
                j > 0 and best.addresses[j - 1] == best_addr and best.lines[j - 1] != 0 and not best.stmts[j]
            ):
                j -= 1
            if best.stmts[j]:
                best_i = j
        return best.path, best.lines[best_i]

    def _run(self, unit_offset: int) -> list[_FileLines]:
        die = self.dwarf.unit_die(unit_offset)
        stmt = die.get(AT_stmt_list)
        if stmt is None:
            return []
        comp_dir = die.get(AT_comp_dir) or ""
        base, size = self._line
        if stmt >= size:
            raise DebugInfoError(self.path, f"DW_AT_stmt_list {stmt:#x} lies past the end of .debug_line")
        try:
            return self._parse(base + stmt, comp_dir, die.get(AT_name) or "", die.unit.addr_size)
        except (IndexError, struct.error):
            raise DebugInfoError(self.path, f"truncated line program at .debug_line+{stmt:#x}") from None

    def _parse(self, pos: int, comp_dir: str, unit_name: str, addr_size: int) -> list[_FileLines]:
        mm = self.mm
        start = pos
        length, version = struct.unpack_from("<IH", mm, pos)
        if length >= 0xFFFFFFF0:
            raise DebugInfoError(self.path, "64-bit DWARF line tables are not supported")
        end = pos + 4 + length
        pos += 6
        if version >= 5:
            addr_size = mm[pos]
            pos += 2
        header_length = struct.unpack_from("<I", mm, pos)[0]
        pos += 4
        program_at = pos + header_length
        min_inst = mm[pos]
        pos += 1
        if version >= 4:
            pos += 1  # maximum_operations_per_instruction: VLIW only
        default_is_stmt = bool(mm[pos])
        pos += 1
        line_base = struct.unpack_from("<b", mm, pos)[0]
        line_range, opcode_base = mm[pos + 1], mm[pos + 2]
        pos += 3
        arg_counts = bytes(mm[pos : pos + opcode_base - 1])
        pos += opcode_base - 1
        if line_range == 0:
            raise DebugInfoError(
                self.path, f"line program at .debug_line+{start - self._line[0]:#x}: line_range 0"
            )
        if version >= 5:
            dirs, pos = self._entries_v5(pos)
            files_raw, pos = self._entries_v5(pos)
            dir_names = [d[0] for d in dirs]
            files = []
            for name, dir_index in files_raw:
                directory = dir_names[dir_index] if 0 < dir_index < len(dir_names) else ""
                files.append(self._full_path(comp_dir, directory, name))
        else:
            dir_names = [""]
            while mm[pos]:
                end_s = mm.find(b"\0", pos)
                dir_names.append(bytes(mm[pos:end_s]).decode("utf-8", "replace"))
                pos = end_s + 1
            pos += 1
            files = [self._full_path(comp_dir, "", unit_name)]  # index 0: the unit itself (pre-DWARF 5)
            while mm[pos]:
                end_s = mm.find(b"\0", pos)
                name = bytes(mm[pos:end_s]).decode("utf-8", "replace")
                dir_index, pos = uleb128(mm, end_s + 1)
                _, pos = uleb128(mm, pos)
                _, pos = uleb128(mm, pos)
                directory = dir_names[dir_index] if 0 < dir_index < len(dir_names) else ""
                files.append(self._full_path(comp_dir, directory, name))
        tables = self._execute(
            program_at,
            end,
            files,
            min_inst,
            default_is_stmt,
            line_base,
            line_range,
            opcode_base,
            arg_counts,
            addr_size,
        )
        # Files in gdb's symtab order: the unit's own file first, then the others newest first.
        main = self._full_path(comp_dir, "", unit_name)
        order = sorted(tables, key=lambda path: (path != main, -tables[path][0]))
        return [_FileLines(path, tables[path][1]) for path in order if tables[path][1]]

    @staticmethod
    def _full_path(comp_dir: str, directory: str, name: str) -> str:
        path = posixpath.join(directory, name) if directory else name
        if not path.startswith("/") and comp_dir:
            path = posixpath.join(comp_dir, path)
        return path

    def _entries_v5(self, pos: int) -> tuple[list[tuple[str, int]], int]:
        """A DWARF 5 directory or file-name table: [(path, directory index)]."""
        mm = self.mm
        count = mm[pos]
        pos += 1
        formats = []
        for _ in range(count):
            content, pos = uleb128(mm, pos)
            form, pos = uleb128(mm, pos)
            formats.append((content, form))
        n, pos = uleb128(mm, pos)
        str_base, _ = self.dwarf.section(".debug_str")
        line_str_base, _ = self.dwarf.section(".debug_line_str")
        out = []
        for _ in range(n):
            path, dir_index = "", 0
            for content, form in formats:
                value: Any = None
                if form == D.FORM_line_strp or form == D.FORM_strp:
                    off = struct.unpack_from("<I", mm, pos)[0]
                    pos += 4
                    at = (line_str_base if form == D.FORM_line_strp else str_base) + off
                    value = bytes(mm[at : mm.find(b"\0", at)]).decode("utf-8", "replace")
                elif form == D.FORM_string:
                    end = mm.find(b"\0", pos)
                    value = bytes(mm[pos:end]).decode("utf-8", "replace")
                    pos = end + 1
                elif form == D.FORM_udata:
                    value, pos = uleb128(mm, pos)
                elif form == D.FORM_block:
                    n_bytes, pos = uleb128(mm, pos)
                    pos += n_bytes
                elif form in _FORM_SIZES:
                    width = _FORM_SIZES[form]
                    value = int.from_bytes(mm[pos : pos + width], "little")
                    pos += width
                else:
                    raise DebugInfoError(self.path, f"unsupported form {form:#x} in a line table header")
                if content == _LNCT_path:
                    path = value
                elif content == _LNCT_directory_index:
                    dir_index = value
            out.append((path, dir_index))
        return out, pos

    def _execute(
        self,
        pos: int,
        end: int,
        files: list[str],
        min_inst: int,
        default_is_stmt: bool,
        line_base: int,
        line_range: int,
        opcode_base: int,
        arg_counts: bytes,
        addr_size: int,
    ) -> dict[str, tuple[int, list[tuple[int, int, bool]]]]:
        """Run the line-number state machine, recording rows per source file as gdb's DWARF reader does
        (so that lookups agree with gdb's, hence crash's): a row that changes file at an address that
        already has a statement row is dropped, and a change of file ends the previous file's range
        there with a line-0 marker that replaces that file's rows at the same address."""
        mm = self.mm
        tables: dict[str, tuple[int, list[tuple[int, int, bool]]]] = {}
        n_files = len(files)

        def rows_of(index: int) -> list[tuple[int, int, bool]]:
            path = files[index] if 0 <= index < n_files else f"<file {index}>"
            entry = tables.get(path)
            if entry is None:
                entry = tables[path] = (len(tables), [])
            return entry[1]

        while pos < end:
            # One sequence: a fresh state machine.
            address, file, line, is_stmt = 0, 1, 1, default_is_stmt
            current = rows_of(file)
            last: list[tuple[int, int, bool]] | None = None
            last_line = 0
            last_address = -1
            stmt_at_address = False
            discriminator = 0
            line_has_discriminator = False
            end_sequence = False
            while pos < end and not end_sequence:
                op = mm[pos]
                pos += 1
                record = False
                if op >= opcode_base:
                    adjusted = op - opcode_base
                    address += (adjusted // line_range) * min_inst
                    delta = line_base + adjusted % line_range
                    line += delta
                    if delta:
                        line_has_discriminator = discriminator != 0
                    record = True
                elif op == 0:
                    n, pos = uleb128(mm, pos)
                    sub = mm[pos]
                    if sub == _LNE_end_sequence:
                        end_sequence = record = True
                    elif sub == _LNE_set_address:
                        address = int.from_bytes(mm[pos + 1 : pos + 1 + addr_size], "little")
                    elif sub == _LNE_set_discriminator:
                        discriminator = uleb128(mm, pos + 1)[0]
                    pos += n
                elif op == _LNS_copy:
                    record = True
                elif op == _LNS_advance_pc:
                    n, pos = uleb128(mm, pos)
                    address += n * min_inst
                elif op == _LNS_advance_line:
                    n, pos = sleb128(mm, pos)
                    line += n
                    if n:
                        line_has_discriminator = discriminator != 0
                elif op == _LNS_set_file:
                    file, pos = uleb128(mm, pos)
                    current = rows_of(file)
                elif op == _LNS_negate_stmt:
                    is_stmt = not is_stmt
                elif op == _LNS_const_add_pc:
                    address += ((255 - opcode_base) // line_range) * min_inst
                elif op == _LNS_fixed_advance_pc:
                    address += struct.unpack_from("<H", mm, pos)[0]
                    pos += 2
                else:  # no effect on address/file/line: step over the ULEB arguments
                    for _ in range(arg_counts[op - 1]):
                        _, pos = uleb128(mm, pos)
                if not record:
                    continue
                file_changed = last is not current
                ignore = (
                    file_changed
                    and not end_sequence
                    and last_address == address
                    and not is_stmt
                    and stmt_at_address
                ) or (not end_sequence and line == 0)
                if ((file_changed and not ignore) or end_sequence) and last is not None:
                    _end_marker(last, address)
                if not end_sequence and not ignore:
                    if file_changed or line != last_line or not line_has_discriminator:
                        current.append((address, line, is_stmt))
                    last = current
                    last_line = line
                if last_address != address:
                    stmt_at_address = False
                    last_address = address
                stmt_at_address |= is_stmt
                discriminator = 0
        return tables


def _end_marker(rows: list[tuple[int, int, bool]], address: int) -> None:
    """End a file's range at `address` (gdb's buildsym record_line with line 0)."""
    last_line = None
    while rows:
        last_line = rows[-1][1]
        if rows[-1][0] != address:
            break
        rows.pop()
    if last_line is None or last_line == 0:
        return  # an empty range needs no end
    rows.append((address, 0, True))
