"""Reading DWARF: units, DIEs and attribute values, one DIE (and its children) at a time from an mmap."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

from kcrash.debuginfo import cache
from kcrash.debuginfo.dwarf.abbrev import Abbrev, AbbrevTables, cstring, skip_attributes
from kcrash.debuginfo.dwarf.constants import (
    DATA_FORMS,
    AT_abstract_origin,
    AT_addr_base,
    AT_name,
    AT_rnglists_base,
    AT_sibling,
    AT_specification,
    AT_str_offsets_base,
    FORM_addr,
    FORM_addrx,
    FORM_addrx1,
    FORM_addrx2,
    FORM_addrx3,
    FORM_addrx4,
    FORM_block,
    FORM_block1,
    FORM_block2,
    FORM_block4,
    FORM_data16,
    FORM_exprloc,
    FORM_flag,
    FORM_flag_present,
    FORM_GNU_addr_index,
    FORM_GNU_ref_alt,
    FORM_GNU_str_index,
    FORM_GNU_strp_alt,
    FORM_implicit_const,
    FORM_indirect,
    FORM_line_strp,
    FORM_loclistx,
    FORM_ref1,
    FORM_ref2,
    FORM_ref4,
    FORM_ref8,
    FORM_ref_addr,
    FORM_ref_sig8,
    FORM_ref_sup4,
    FORM_ref_sup8,
    FORM_ref_udata,
    FORM_rnglistx,
    FORM_sdata,
    FORM_sec_offset,
    FORM_string,
    FORM_strp,
    FORM_strp_sup,
    FORM_strx,
    FORM_strx1,
    FORM_strx2,
    FORM_strx3,
    FORM_strx4,
    FORM_udata,
    UT_skeleton,
    UT_split_compile,
    UT_split_type,
    UT_type,
    u16,
    u32,
    u64,
)
from kcrash.debuginfo.leb128 import sleb128, uleb128
from kcrash.errors import DebugInfoError


class Unit:
    """One unit of .debug_info (offsets relative to the section)."""

    __slots__ = (
        "offset",
        "end",
        "version",
        "addr_size",
        "unit_type",
        "abbrev_offset",
        "first_die",
        "type_signature",
        "type_offset",
        "str_offsets_base",
        "addr_base",
        "rnglists_base",
        "_die",
    )

    def __init__(self, dwarf: Sections, offset: int) -> None:
        mm, base = dwarf.mm, dwarf.info_base
        pos = base + offset
        if offset + 11 > dwarf.info_size:
            raise DebugInfoError(dwarf.path, f"truncated unit header at .debug_info+{offset:#x}")
        length = u32(mm, pos)[0]
        if length >= 0xFFFFFFF0:
            why = "64-bit DWARF is not supported" if length == 0xFFFFFFFF else "bad unit length"
            raise DebugInfoError(dwarf.path, f"{why} (unit at .debug_info+{offset:#x})")
        self.offset = offset
        self.end = offset + 4 + length
        self.version = u16(mm, pos + 4)[0]
        self.type_signature = self.type_offset = 0
        if self.version >= 5:
            self.unit_type = mm[pos + 6]
            self.addr_size = mm[pos + 7]
            self.abbrev_offset = u32(mm, pos + 8)[0]
            self.first_die = offset + 12
            if self.unit_type in (UT_type, UT_split_type):
                self.type_signature = u64(mm, pos + 12)[0]
                self.type_offset = offset + u32(mm, pos + 20)[0]
                self.first_die = offset + 24
            elif self.unit_type in (UT_skeleton, UT_split_compile):
                self.first_die = offset + 20
        else:
            self.unit_type = 1
            self.abbrev_offset = u32(mm, pos + 6)[0]
            self.addr_size = mm[pos + 10]
            self.first_die = offset + 11
        if not 2 <= self.version <= 5:
            raise DebugInfoError(
                dwarf.path, f"unsupported DWARF version {self.version} at .debug_info+{offset:#x}"
            )
        if self.end > dwarf.info_size or self.addr_size not in (4, 8):
            raise DebugInfoError(dwarf.path, f"corrupt unit header at .debug_info+{offset:#x}")
        self.str_offsets_base = 8
        self.addr_base = 8
        self.rnglists_base = 0
        self._die: Die | None = None


class Die:
    """One DIE: its tag, attribute values (references made section-relative) and forms."""

    __slots__ = ("offset", "tag", "attrs", "forms", "children_at", "unit")

    def __init__(
        self,
        offset: int,
        tag: int,
        attrs: dict[int, Any],
        forms: dict[int, int],
        children_at: int,
        unit: Unit,
    ) -> None:
        self.offset = offset
        self.tag = tag
        self.attrs = attrs
        self.forms = forms
        self.children_at = children_at  # offset of the first child, or 0 when none
        self.unit = unit

    def get(self, at: int, default: Any = None) -> Any:
        return self.attrs.get(at, default)

    def __repr__(self) -> str:
        return f"<Die {self.offset:#x} tag={self.tag:#x} {self.attrs.get(AT_name)!r}>"


class Sections:
    """The DWARF sections of one ELF image, addressed in place in its mmap."""

    def __init__(self, path: str, mm: Any, sections: dict[str, cache.Section]) -> None:
        self.path = path
        self.mm = mm
        info = sections.get(".debug_info")
        abbrev = sections.get(".debug_abbrev")
        if info is None or abbrev is None or info.size == 0:
            raise DebugInfoError(path, "no DWARF debug info (.debug_info); install the -dbg vmlinux")
        self.info_base, self.info_size = info.offset, info.size
        self.abbrevs = AbbrevTables(mm, abbrev.offset, abbrev.size, path)
        self.sections = sections

    def section(self, name: str) -> tuple[int, int]:
        """(file offset, size) of a section, or (0, 0) when absent."""
        sec = self.sections.get(name)
        return (sec.offset, sec.size) if sec is not None else (0, 0)


# --- reading DIEs ----------------------------------------------------------------------------------
class Reader:
    """Reads single DIEs (all attributes decoded) and their children, on demand."""

    def __init__(
        self, dwarf: Sections, units: list[int] | None = None, signatures: dict[int, int] | None = None
    ) -> None:
        self.dwarf = dwarf
        self.mm = dwarf.mm
        self.base = dwarf.info_base
        self.units = units or []
        self.signatures = signatures or {}
        self._unit_cache: dict[int, Unit] = {}
        self.str_base, self.str_size = dwarf.section(".debug_str")
        self.line_str_base, _ = dwarf.section(".debug_line_str")
        self.str_offsets_base, _ = dwarf.section(".debug_str_offsets")
        self.addr_section_base, _ = dwarf.section(".debug_addr")

    def unit_at(self, unit_offset: int) -> Unit:
        unit = self._unit_cache.get(unit_offset)
        if unit is None:
            unit = self._unit_cache[unit_offset] = Unit(self.dwarf, unit_offset)
            top = self.die(unit.first_die, unit, bases=False)
            unit._die = top
            unit.str_offsets_base = top.attrs.get(AT_str_offsets_base, 8)
            unit.addr_base = top.attrs.get(AT_addr_base, 8)
            unit.rnglists_base = top.attrs.get(AT_rnglists_base, 0)
        return unit

    def unit_of(self, offset: int) -> Unit:
        i = bisect_right(self.units, offset) - 1
        if i < 0:
            raise DebugInfoError(self.dwarf.path, f"no unit contains .debug_info+{offset:#x}")
        return self.unit_at(self.units[i])

    def unit_die(self, unit_offset: int) -> Die:
        unit = self.unit_at(unit_offset)
        assert unit._die is not None
        return unit._die

    def die(self, offset: int, unit: Unit | None = None, bases: bool = True) -> Die:
        if unit is None:
            unit = self.unit_of(offset)
        mm, base = self.mm, self.base
        code, pos = uleb128(mm, base + offset)
        table = self.dwarf.abbrevs.get(unit.abbrev_offset, unit.addr_size)
        ab = table[code] if code < len(table) else None
        if ab is None:
            raise DebugInfoError(self.dwarf.path, f"bad abbreviation code {code} at .debug_info+{offset:#x}")
        attrs: dict[int, Any] = {}
        forms: dict[int, int] = {}
        for at, form, implicit in ab[10]:
            value, pos, form = self._value(pos, form, implicit, unit)
            attrs[at] = value
            forms[at] = form
        return Die(offset, ab[9], attrs, forms, (pos - base) if ab[4] else 0, unit)

    def children(self, die: Die) -> Iterator[Die]:
        """Direct children of a DIE, skipping grandchildren."""
        if not die.children_at:
            return
        unit = die.unit
        mm, base = self.mm, self.base
        table = self.dwarf.abbrevs.get(unit.abbrev_offset, unit.addr_size)
        pos = base + die.children_at
        end = base + unit.end
        while pos < end:
            code = mm[pos]
            if code == 0:
                return
            child = self.die(pos - base, unit)
            yield child
            sib = child.attrs.get(AT_sibling)
            if sib is not None and sib > child.offset:
                pos = base + sib
                continue
            pos = base + self._end_of(child.offset, unit, table)

    def _end_of(self, offset: int, unit: Unit, table: list[Abbrev | None]) -> int:
        """Offset just past a DIE and all its descendants."""
        mm, base = self.mm, self.base
        pos = base + offset
        depth = 0
        while True:
            code, pos = uleb128(mm, pos)
            if code == 0:
                depth -= 1
                if depth <= 0:
                    return pos - base
                continue
            ab = table[code]
            assert ab is not None
            pos = pos + ab[1] if ab[1] >= 0 else skip_attributes(mm, pos, ab[2], ab[3], unit.addr_size)
            if ab[4]:
                depth += 1
            elif depth == 0:
                return pos - base

    def _value(self, pos: int, form: int, implicit: int, unit: Unit) -> tuple[Any, int, int]:
        mm = self.mm
        if form == FORM_strp:
            return cstring(mm, self.str_base + u32(mm, pos)[0]), pos + 4, form
        if form in (FORM_ref4, FORM_ref1, FORM_ref2, FORM_ref8, FORM_ref_udata):
            if form == FORM_ref4:
                v, pos = u32(mm, pos)[0], pos + 4
            elif form == FORM_ref_udata:
                v, pos = uleb128(mm, pos)
            else:
                n = {FORM_ref1: 1, FORM_ref2: 2, FORM_ref8: 8}[form]
                v, pos = int.from_bytes(mm[pos : pos + n], "little"), pos + n
            return unit.offset + v, pos, form
        size = DATA_FORMS.get(form)
        if size is not None:
            return int.from_bytes(mm[pos : pos + size], "little"), pos + size, form
        if form == FORM_flag_present:
            return True, pos, form
        if form == FORM_implicit_const:
            return implicit, pos, form
        if form == FORM_string:
            end = mm.find(b"\0", pos)
            return bytes(mm[pos:end]).decode("utf-8", "replace"), end + 1, form
        if form == FORM_flag:
            return bool(mm[pos]), pos + 1, form
        if form == FORM_addr:
            return int.from_bytes(mm[pos : pos + unit.addr_size], "little"), pos + unit.addr_size, form
        if form == FORM_sdata:
            v, pos = sleb128(mm, pos)
            return v, pos, form
        if form in (FORM_udata, FORM_loclistx, FORM_rnglistx):
            v, pos = uleb128(mm, pos)
            return v, pos, form
        if form in (
            FORM_sec_offset,
            FORM_ref_addr,
            FORM_GNU_ref_alt,
            FORM_GNU_strp_alt,
            FORM_strp_sup,
            FORM_ref_sup4,
        ):
            size = 4 if form != FORM_ref_addr or unit.version > 2 else unit.addr_size
            return int.from_bytes(mm[pos : pos + size], "little"), pos + size, form
        if form == FORM_line_strp:
            return cstring(mm, self.line_str_base + u32(mm, pos)[0]), pos + 4, form
        if form in (FORM_exprloc, FORM_block):
            n, pos = uleb128(mm, pos)
            return bytes(mm[pos : pos + n]), pos + n, form
        if form in (FORM_block1, FORM_block2, FORM_block4):
            hdr = {FORM_block1: 1, FORM_block2: 2, FORM_block4: 4}[form]
            n = int.from_bytes(mm[pos : pos + hdr], "little")
            pos += hdr
            return bytes(mm[pos : pos + n]), pos + n, form
        if form in (FORM_strx, FORM_strx1, FORM_strx2, FORM_strx3, FORM_strx4, FORM_GNU_str_index):
            index, pos = self._index(pos, form, (FORM_strx, FORM_GNU_str_index), FORM_strx1)
            at = self.str_offsets_base + unit.str_offsets_base + 4 * index
            return cstring(mm, self.str_base + u32(mm, at)[0]), pos, form
        if form in (FORM_addrx, FORM_addrx1, FORM_addrx2, FORM_addrx3, FORM_addrx4, FORM_GNU_addr_index):
            index, pos = self._index(pos, form, (FORM_addrx, FORM_GNU_addr_index), FORM_addrx1)
            return self.address_at(unit, index), pos, FORM_addr
        if form == FORM_ref_sig8:
            sig = u64(mm, pos)[0]
            return self.signatures.get(sig, 0), pos + 8, form
        if form in (FORM_ref_sup8,):
            return u64(mm, pos)[0], pos + 8, form
        if form == FORM_data16:
            return bytes(mm[pos : pos + 16]), pos + 16, form
        if form == FORM_indirect:
            real, pos = uleb128(mm, pos)
            return self._value(pos, real, implicit, unit)
        raise DebugInfoError(self.dwarf.path, f"unknown DWARF form {form:#x}")

    def _index(self, pos: int, form: int, leb_forms: tuple[int, ...], first_sized: int) -> tuple[int, int]:
        if form in leb_forms:
            return uleb128(self.mm, pos)
        n = form - first_sized + 1
        return int.from_bytes(self.mm[pos : pos + n], "little"), pos + n

    def address_at(self, unit: Unit, index: int) -> int:
        at = self.addr_section_base + unit.addr_base + index * unit.addr_size
        return int.from_bytes(self.mm[at : at + unit.addr_size], "little")

    def name(self, die: Die) -> str | None:
        """A DIE's name, following DW_AT_specification / DW_AT_abstract_origin as DWARF intends."""
        for _ in range(8):
            name = die.attrs.get(AT_name)
            if name is not None:
                return str(name)
            ref = die.attrs.get(AT_specification) or die.attrs.get(AT_abstract_origin)
            if not ref:
                return None
            die = self.die(ref)
        return None

    def origin(self, die: Die, at: int) -> Any:
        """An attribute of a DIE or of the declaration it completes."""
        for _ in range(8):
            if at in die.attrs:
                return die.attrs[at]
            ref = die.attrs.get(AT_specification) or die.attrs.get(AT_abstract_origin)
            if not ref:
                return None
            die = self.die(ref)
        return None
