"""DWARF debug info: a fast index of top-level names over .debug_info (cached on disk by build-id) and a
lazy DIE reader that turns one DIE at a time into kcrash Types.

Nothing here walks all DIEs at start-up. The index pass visits only the direct children of each unit,
jumping over subtrees with DW_AT_sibling and skipping attributes with sizes precomputed per abbreviation;
everything else is read on demand, one DIE (and its children) at a time, straight from an mmap.
"""

from __future__ import annotations

import os
import re
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any

from kcrash.debuginfo import cache
from kcrash.debuginfo.btf import canonical_base_name, parse_type_name
from kcrash.debuginfo.leb128 import sleb128, uleb128
from kcrash.debuginfo.types import Enumerator, Kind, Member, Parameter, Type
from kcrash.errors import DebugInfoError

__all__ = ["DwarfIndex", "Die", "Unit", "INDEX_VERSION"]

INDEX_VERSION = 1

# --- DWARF constants (DWARF 5 §7) --------------------------------------------------------------------
TAG_array_type = 0x01
TAG_class_type = 0x02
TAG_enumeration_type = 0x04
TAG_formal_parameter = 0x05
TAG_member = 0x0D
TAG_pointer_type = 0x0F
TAG_reference_type = 0x10
TAG_compile_unit = 0x11
TAG_structure_type = 0x13
TAG_subroutine_type = 0x15
TAG_typedef = 0x16
TAG_union_type = 0x17
TAG_unspecified_parameters = 0x18
TAG_subrange_type = 0x21
TAG_base_type = 0x24
TAG_const_type = 0x26
TAG_enumerator = 0x28
TAG_subprogram = 0x2E
TAG_variable = 0x34
TAG_volatile_type = 0x35
TAG_restrict_type = 0x37
TAG_unspecified_type = 0x3B
TAG_type_unit = 0x41
TAG_atomic_type = 0x47

AT_sibling = 0x01
AT_location = 0x02
AT_name = 0x03
AT_byte_size = 0x0B
AT_bit_offset = 0x0C
AT_bit_size = 0x0D
AT_stmt_list = 0x10
AT_low_pc = 0x11
AT_high_pc = 0x12
AT_comp_dir = 0x1B
AT_const_value = 0x1C
AT_lower_bound = 0x22
AT_upper_bound = 0x2F
AT_abstract_origin = 0x31
AT_count = 0x37
AT_data_member_location = 0x38
AT_declaration = 0x3C
AT_encoding = 0x3E
AT_specification = 0x47
AT_type = 0x49
AT_ranges = 0x55
AT_data_bit_offset = 0x6B
AT_str_offsets_base = 0x72
AT_addr_base = 0x73
AT_rnglists_base = 0x74

FORM_addr = 0x01
FORM_block2 = 0x03
FORM_block4 = 0x04
FORM_data2 = 0x05
FORM_data4 = 0x06
FORM_data8 = 0x07
FORM_string = 0x08
FORM_block = 0x09
FORM_block1 = 0x0A
FORM_data1 = 0x0B
FORM_flag = 0x0C
FORM_sdata = 0x0D
FORM_strp = 0x0E
FORM_udata = 0x0F
FORM_ref_addr = 0x10
FORM_ref1 = 0x11
FORM_ref2 = 0x12
FORM_ref4 = 0x13
FORM_ref8 = 0x14
FORM_ref_udata = 0x15
FORM_indirect = 0x16
FORM_sec_offset = 0x17
FORM_exprloc = 0x18
FORM_flag_present = 0x19
FORM_strx = 0x1A
FORM_addrx = 0x1B
FORM_ref_sup4 = 0x1C
FORM_strp_sup = 0x1D
FORM_data16 = 0x1E
FORM_line_strp = 0x1F
FORM_ref_sig8 = 0x20
FORM_implicit_const = 0x21
FORM_loclistx = 0x22
FORM_rnglistx = 0x23
FORM_ref_sup8 = 0x24
FORM_strx1 = 0x25
FORM_strx2 = 0x26
FORM_strx3 = 0x27
FORM_strx4 = 0x28
FORM_addrx1 = 0x29
FORM_addrx2 = 0x2A
FORM_addrx3 = 0x2B
FORM_addrx4 = 0x2C
FORM_GNU_addr_index = 0x1F01
FORM_GNU_str_index = 0x1F02
FORM_GNU_ref_alt = 0x1F20
FORM_GNU_strp_alt = 0x1F21

OP_addr = 0x03
OP_plus_uconst = 0x23
OP_addrx = 0xA1
OP_GNU_addr_index = 0xFB

ATE_boolean = 0x02
ATE_complex_float = 0x03
ATE_float = 0x04
ATE_signed = 0x05
ATE_signed_char = 0x06
ATE_UTF = 0x10

UT_type = 0x02
UT_skeleton = 0x04
UT_split_compile = 0x05
UT_split_type = 0x06

# Attribute sizes that do not depend on the data (32-bit DWARF; FORM_addr is filled in per unit).
_FIXED_SIZES = {
    FORM_data1: 1, FORM_ref1: 1, FORM_flag: 1, FORM_strx1: 1, FORM_addrx1: 1,
    FORM_data2: 2, FORM_ref2: 2, FORM_strx2: 2, FORM_addrx2: 2,
    FORM_strx3: 3, FORM_addrx3: 3,
    FORM_data4: 4, FORM_ref4: 4, FORM_strp: 4, FORM_line_strp: 4, FORM_sec_offset: 4, FORM_ref_addr: 4,
    FORM_strx4: 4, FORM_addrx4: 4, FORM_ref_sup4: 4, FORM_strp_sup: 4, FORM_GNU_ref_alt: 4,
    FORM_GNU_strp_alt: 4,
    FORM_data8: 8, FORM_ref8: 8, FORM_ref_sig8: 8, FORM_ref_sup8: 8,
    FORM_data16: 16, FORM_flag_present: 0, FORM_implicit_const: 0,
}  # fmt: skip
# Variable-size attributes, by how to step over them.
_LEB, _CSTR, _BLOCK1, _BLOCK2, _BLOCK4, _BLOCK_LEB, _INDIRECT = 1, 2, 3, 4, 5, 6, 7
_VARIABLE = {
    FORM_udata: _LEB, FORM_sdata: _LEB, FORM_ref_udata: _LEB, FORM_strx: _LEB, FORM_addrx: _LEB,
    FORM_loclistx: _LEB, FORM_rnglistx: _LEB, FORM_GNU_addr_index: _LEB, FORM_GNU_str_index: _LEB,
    FORM_string: _CSTR, FORM_block1: _BLOCK1, FORM_block2: _BLOCK2, FORM_block4: _BLOCK4,
    FORM_block: _BLOCK_LEB, FORM_exprloc: _BLOCK_LEB, FORM_indirect: _INDIRECT,
}  # fmt: skip
_DATA_FORMS = {FORM_data1: 1, FORM_data2: 2, FORM_data4: 4, FORM_data8: 8}
_CONST_FORMS = {*_DATA_FORMS, FORM_sdata, FORM_udata, FORM_implicit_const}

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from

# An abbreviation table: entries `code tag children (attr form [implicit_const])* 0 0`, ended by code 0.
_ULEB = rb"[\x80-\xff]*[\x00-\x7f]"


def _abbrev_entry_pattern(group: bytes) -> bytes:
    pair = rb"(?:(?!\x00\x00)" + _ULEB + rb"(?:\x21" + _ULEB + rb"|" + _ULEB + rb"))*"
    return rb"(?!\x00)" + group + _ULEB + rb")" + group + _ULEB + rb"[\x00\x01]" + pair + rb"\x00\x00)"


_ABBREV_ENTRY = re.compile(_abbrev_entry_pattern(b"("), re.S)
_ABBREV_TABLE = re.compile(rb"(?:" + _abbrev_entry_pattern(b"(?:") + rb")*\x00", re.S)


def cstring(buf: Any, pos: int) -> str:
    end = buf.find(b"\0", pos)
    return bytes(buf[pos:end]).decode("utf-8", "replace")


# --- abbreviations ---------------------------------------------------------------------------------
# Index slots: which name table a top-level DIE goes to (declarations rank below definitions).
_S_NONE, _S_SLOW = 0, -1
(_S_STRUCT, _S_STRUCT_DECL, _S_UNION, _S_UNION_DECL, _S_ENUM, _S_ENUM_DECL, _S_TYPEDEF,
 _S_VAR, _S_VAR_NOLOC, _S_VAR_DECL, _S_FUNC, _S_FUNC_DECL, _S_ENUMERATOR) = range(1, 14)  # fmt: skip
_N_SLOTS = 14
_TAG_SLOTS = {
    TAG_structure_type: (_S_STRUCT, _S_STRUCT_DECL),
    TAG_class_type: (_S_STRUCT, _S_STRUCT_DECL),
    TAG_union_type: (_S_UNION, _S_UNION_DECL),
    TAG_enumeration_type: (_S_ENUM, _S_ENUM_DECL),
    TAG_typedef: (_S_TYPEDEF, _S_TYPEDEF),
    TAG_base_type: (_S_TYPEDEF, _S_TYPEDEF),
    TAG_variable: (_S_VAR, _S_VAR_DECL),
    TAG_subprogram: (_S_FUNC, _S_FUNC_DECL),
}

# A compiled abbreviation is a tuple, for speed in the scan loop:
#  0 slot     1 fixed size or -1     2 skip ops ((advance, kind), ...)     3 tail advance
#  4 has children     5 sibling position (-1 none, -2 not at a fixed position)     6 sibling form
#  7 name position (same codes)     8 name form     9 tag     10 attrs ((attr, form, implicit), ...)
Abbrev = tuple


def _compile_abbrev(
    tag: int, children: bool, attrs: tuple[tuple[int, int, int], ...], addr_size: int
) -> Abbrev:
    pos = 0
    fixed_so_far = True
    ops: list[tuple[int, int]] = []
    sib_pos = name_pos = -1
    sib_form = name_form = 0
    declaration = location = slow = False
    for at, form, _ in attrs:
        if at == AT_sibling:
            sib_pos, sib_form = (pos if fixed_so_far else -2), form
        elif at == AT_name:
            name_pos, name_form = (pos if fixed_so_far else -2), form
        elif at == AT_declaration:
            declaration = True
            slow |= form != FORM_flag_present
        elif at == AT_location:
            location = True
        elif at in (AT_specification, AT_abstract_origin):
            slow = True
        size = addr_size if form == FORM_addr else _FIXED_SIZES.get(form)
        if size is not None:
            pos += size
            continue
        kind = _VARIABLE.get(form)
        if kind is None:
            raise ValueError(f"unknown DWARF form {form:#x}")
        ops.append((pos, kind))
        pos = 0
        fixed_so_far = False
    slot = _S_NONE
    slots = _TAG_SLOTS.get(tag)
    if slots is not None:
        slot = slots[1] if declaration else slots[0]
        if tag == TAG_variable and not declaration and not location:
            slot = _S_VAR_NOLOC
        if slow or name_pos == -2 or name_form not in (FORM_strp, FORM_string, 0):
            slot = _S_SLOW
        if name_pos == -1 and slot != _S_SLOW:
            slot = _S_NONE  # anonymous: nothing to index
    if sib_form not in (FORM_ref4, FORM_ref2, FORM_ref1, FORM_ref_udata, 0):
        sib_pos = -2
    if sib_form == FORM_ref_udata:
        sib_pos = -2
    fixed = -1 if ops else pos
    return (slot, fixed, tuple(ops), pos, children, sib_pos, sib_form, name_pos, name_form, tag, attrs)


def _decode_abbrev_body(body: bytes) -> tuple[int, bool, tuple[tuple[int, int, int], ...]]:
    tag, pos = uleb128(body, 0)
    children = body[pos] == 1
    pos += 1
    attrs = []
    while True:
        at, pos = uleb128(body, pos)
        form, pos = uleb128(body, pos)
        if at == 0 and form == 0:
            return tag, children, tuple(attrs)
        implicit = 0
        if form == FORM_implicit_const:
            implicit, pos = sleb128(body, pos)
        attrs.append((at, form, implicit))


class _AbbrevTables:
    """Abbreviation tables by .debug_abbrev offset, compiled once; identical entries share one tuple."""

    def __init__(self, mm: Any, base: int, size: int, path: str) -> None:
        self.mm, self.base, self.end, self.path = mm, base, base + size, path
        self.tables: dict[tuple[int, int], list[Abbrev | None]] = {}
        self.memos: dict[int, dict[bytes, Abbrev]] = {}

    def get(self, offset: int, addr_size: int) -> list[Abbrev | None]:
        table = self.tables.get((offset, addr_size))
        if table is None:
            table = self.tables[(offset, addr_size)] = self._parse(offset, addr_size)
        return table

    def _parse(self, offset: int, addr_size: int) -> list[Abbrev | None]:
        mm = self.mm
        memo = self.memos.setdefault(addr_size, {})
        start = self.base + offset
        m = _ABBREV_TABLE.match(mm, start, self.end)
        if m is None or start >= self.end:
            raise DebugInfoError(self.path, f"malformed .debug_abbrev table at {offset:#x}")
        table: list[Abbrev | None] = [None]
        for raw_code, body in _ABBREV_ENTRY.findall(mm, start, m.end()):
            code = raw_code[0] if len(raw_code) == 1 else uleb128(raw_code, 0)[0]
            ab = memo.get(body)
            if ab is None:
                tag, children, attrs = _decode_abbrev_body(body)
                try:
                    ab = memo[body] = _compile_abbrev(tag, children, attrs, addr_size)
                except ValueError as err:
                    raise DebugInfoError(self.path, f".debug_abbrev at {offset:#x}: {err}") from None
            if code == len(table):
                table.append(ab)
            else:
                if code > 1_000_000:
                    raise DebugInfoError(self.path, f"implausible abbreviation code {code} at {offset:#x}")
                table.extend([None] * (code + 1 - len(table)))
                table[code] = ab
        return table


def _skip(mm: Any, pos: int, ops: tuple[tuple[int, int], ...], tail: int, addr_size: int) -> int:
    """Step over a DIE's attributes whose sizes depend on the data."""
    for advance, kind in ops:
        pos += advance
        if kind == _LEB:
            while mm[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _CSTR:
            pos = mm.find(b"\0", pos) + 1
        elif kind == _BLOCK_LEB:
            n, pos = uleb128(mm, pos)
            pos += n
        elif kind == _BLOCK1:
            pos += mm[pos] + 1
        elif kind == _BLOCK2:
            pos += 2 + _u16(mm, pos)[0]
        elif kind == _BLOCK4:
            pos += 4 + _u32(mm, pos)[0]
        else:  # DW_FORM_indirect: the form comes first
            form, pos = uleb128(mm, pos)
            size = addr_size if form == FORM_addr else _FIXED_SIZES.get(form)
            if size is not None:
                pos += size
            else:
                pos = _skip(mm, pos, ((0, _VARIABLE[form]),), 0, addr_size)
    return pos + tail


# --- units -----------------------------------------------------------------------------------------
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

    def __init__(self, dwarf: _Sections, offset: int) -> None:
        mm, base = dwarf.mm, dwarf.info_base
        pos = base + offset
        if offset + 11 > dwarf.info_size:
            raise DebugInfoError(dwarf.path, f"truncated unit header at .debug_info+{offset:#x}")
        length = _u32(mm, pos)[0]
        if length >= 0xFFFFFFF0:
            why = "64-bit DWARF is not supported" if length == 0xFFFFFFFF else "bad unit length"
            raise DebugInfoError(dwarf.path, f"{why} (unit at .debug_info+{offset:#x})")
        self.offset = offset
        self.end = offset + 4 + length
        self.version = _u16(mm, pos + 4)[0]
        self.type_signature = self.type_offset = 0
        if self.version >= 5:
            self.unit_type = mm[pos + 6]
            self.addr_size = mm[pos + 7]
            self.abbrev_offset = _u32(mm, pos + 8)[0]
            self.first_die = offset + 12
            if self.unit_type in (UT_type, UT_split_type):
                self.type_signature = _u64(mm, pos + 12)[0]
                self.type_offset = offset + _u32(mm, pos + 20)[0]
                self.first_die = offset + 24
            elif self.unit_type in (UT_skeleton, UT_split_compile):
                self.first_die = offset + 20
        else:
            self.unit_type = 1
            self.abbrev_offset = _u32(mm, pos + 6)[0]
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


class _Sections:
    """The DWARF sections of one ELF image, addressed in place in its mmap."""

    def __init__(self, path: str, mm: Any, sections: dict[str, cache.Section]) -> None:
        self.path = path
        self.mm = mm
        info = sections.get(".debug_info")
        abbrev = sections.get(".debug_abbrev")
        if info is None or abbrev is None or info.size == 0:
            raise DebugInfoError(path, "no DWARF debug info (.debug_info); install the -dbg vmlinux")
        self.info_base, self.info_size = info.offset, info.size
        self.abbrevs = _AbbrevTables(mm, abbrev.offset, abbrev.size, path)
        self.sections = sections

    def section(self, name: str) -> tuple[int, int]:
        """(file offset, size) of a section, or (0, 0) when absent."""
        sec = self.sections.get(name)
        return (sec.offset, sec.size) if sec is not None else (0, 0)


# --- the scan --------------------------------------------------------------------------------------
def _scan(dwarf: _Sections) -> dict[str, Any]:
    """One pass over every unit's top-level DIEs (plus enumerators) → the raw name index."""
    mm, base, path = dwarf.mm, dwarf.info_base, dwarf.path
    str_base, _ = dwarf.section(".debug_str")
    slots: list[dict[Any, int]] = [{} for _ in range(_N_SLOTS)]
    enumerators = slots[_S_ENUMERATOR]
    seen_enums: set[tuple[Any, ...]] = set()
    unit_offsets: list[int] = []
    signatures: dict[int, int] = {}
    unit_off = 0
    info_size = dwarf.info_size
    u32 = _u32
    find = mm.find
    while unit_off < info_size:
        unit = Unit(dwarf, unit_off)
        unit_offsets.append(unit_off)
        if unit.type_signature:
            signatures[unit.type_signature] = unit.type_offset
        table = dwarf.abbrevs.get(unit.abbrev_offset, unit.addr_size)
        addr_size = unit.addr_size
        ubase = base + unit_off
        uend = base + unit.end
        pos = base + unit.first_die
        pending: list[tuple[int, int]] = []  # (DIE offset, slot or parent enum) for the generic path
        try:
            code, pos = uleb128(mm, pos)
            ab = table[code]
            if ab is None:
                raise IndexError
            pos = pos + ab[1] if ab[1] >= 0 else _skip(mm, pos, ab[2], ab[3], addr_size)
            depth = 1 if ab[4] else 0
            in_enum = -1
            while depth and pos < uend:
                at = pos
                code = mm[pos]
                if code & 0x80:
                    code, pos = uleb128(mm, pos)
                else:
                    pos += 1
                if code == 0:
                    depth -= 1
                    in_enum = -1
                    continue
                ab = table[code]
                if depth == 1:
                    slot = ab[0]
                    if slot > 0:
                        npos = pos + ab[7]
                        if ab[8] == FORM_strp:
                            key: Any = u32(mm, npos)[0]
                        else:
                            key = bytes(mm[npos : find(b"\0", npos)])
                        d = slots[slot]
                        if key not in d:
                            d[key] = at - base
                    elif slot == _S_SLOW:
                        pending.append((at - base, slot))
                    if ab[4]:
                        sib = ab[5]
                        if ab[9] == TAG_enumeration_type:
                            # The same enum recurs in every unit that includes its header: read its
                            # enumerators once per (name, first enumerator, encoded length).
                            end = pos + ab[1] if ab[1] >= 0 else _skip(mm, pos, ab[2], ab[3], addr_size)
                            if sib >= 0:
                                sib_at = ubase + u32(mm, pos + sib)[0] if ab[6] == FORM_ref4 else -1
                                first = table[mm[end]] if mm[end] and mm[end] < 0x80 else None
                                if (
                                    sib_at > 0
                                    and ab[7] != -2
                                    and first is not None
                                    and first[7] >= 0
                                    and first[8] == FORM_strp
                                ):
                                    if ab[7] < 0:
                                        name_key: Any = None  # anonymous
                                    elif ab[8] == FORM_strp:
                                        name_key = u32(mm, pos + ab[7])[0]
                                    elif ab[8] == FORM_string:
                                        name_key = bytes(mm[pos + ab[7] : find(b"\0", pos + ab[7])])
                                    else:
                                        name_key = None
                                    sig = (name_key, u32(mm, end + 1 + first[7])[0], sib_at - pos)
                                    if sig in seen_enums:
                                        pos = sib_at
                                        continue
                                    seen_enums.add(sig)
                            in_enum = at - base
                            depth += 1
                            pos = end
                            continue
                        if sib >= 0:
                            form = ab[6]
                            if form == FORM_ref4:
                                pos = ubase + u32(mm, pos + sib)[0]
                            elif form == FORM_ref2:
                                pos = ubase + _u16(mm, pos + sib)[0]
                            else:
                                pos = ubase + mm[pos + sib]
                            continue
                        depth += 1
                else:
                    if in_enum >= 0 and ab[9] == TAG_enumerator:
                        if ab[8] == FORM_strp and ab[7] >= 0:
                            key = u32(mm, pos + ab[7])[0]
                            if key not in enumerators:
                                enumerators[key] = in_enum
                        else:
                            pending.append((at - base, in_enum))
                    if ab[4]:
                        sib = ab[5]
                        if sib >= 0 and ab[6] == FORM_ref4:
                            pos = ubase + u32(mm, pos + sib)[0]
                            continue
                        depth += 1
                fixed = ab[1]
                if fixed >= 0:
                    pos += fixed
                else:
                    pos = _skip(mm, pos, ab[2], ab[3], addr_size)
        except (IndexError, TypeError, ValueError, struct.error):
            raise DebugInfoError(path, f"corrupt DIE near .debug_info+{pos - base:#x}") from None
        if pending:
            _scan_slow(dwarf, unit_offsets, unit, pending, slots)
        unit_off = unit.end

    # Keys are .debug_str offsets (int) or inline names (bytes); turn them into str once each.
    names: dict[Any, str] = {}

    def text(key: Any) -> str:
        name = names.get(key)
        if name is None:
            if isinstance(key, int):
                name = cstring(mm, str_base + key)
            elif isinstance(key, str):
                name = key
            else:
                name = bytes(key).decode("utf-8", "replace")
            names[key] = name
        return name

    def merge(*ranked: int) -> dict[str, int]:
        """Later slots rank higher: a definition replaces a declaration of the same name."""
        out: dict[str, int] = {}
        for slot in ranked:
            for key, off in slots[slot].items():
                out[text(key)] = off
        return out

    return {
        "units": unit_offsets,
        "signatures": signatures,
        "struct": merge(_S_STRUCT_DECL, _S_STRUCT),
        "union": merge(_S_UNION_DECL, _S_UNION),
        "enum": merge(_S_ENUM_DECL, _S_ENUM),
        "typedef": merge(_S_TYPEDEF),
        "var": merge(_S_VAR_DECL, _S_VAR_NOLOC, _S_VAR),
        "func": merge(_S_FUNC_DECL, _S_FUNC),
        "enumerator": merge(_S_ENUMERATOR),
    }


def _scan_slow(
    dwarf: _Sections,
    units: list[int],
    unit: Unit,
    pending: list[tuple[int, int]],
    slots: list[dict[Any, int]],
) -> None:
    """Index the DIEs the fast path could not: names not at a fixed position or in an unusual form,
    definitions that take their name from a declaration (DW_AT_specification/abstract_origin)."""
    reader = _Reader(dwarf, units)
    unit = reader.unit_at(unit.offset)
    for off, where in pending:
        die = reader.die(off, unit)
        if die.tag == TAG_enumerator:
            name = die.get(AT_name)
            if isinstance(name, str) and name:
                slots[_S_ENUMERATOR].setdefault(name, where)
            continue
        name = reader.name(die)
        if not isinstance(name, str) or not name:
            continue  # anonymous, or a name in a dwz alternate file (not supported)
        declaration = bool(die.get(AT_declaration))
        if die.tag == TAG_variable and not declaration:
            slot = _S_VAR if AT_location in die.attrs else _S_VAR_NOLOC
        else:
            slot = _TAG_SLOTS[die.tag][1 if declaration else 0]
        slots[slot].setdefault(name, off)


# --- reading DIEs ----------------------------------------------------------------------------------
class _Reader:
    """Reads single DIEs (all attributes decoded) and their children, on demand."""

    def __init__(
        self, dwarf: _Sections, units: list[int] | None = None, signatures: dict[int, int] | None = None
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
            pos = pos + ab[1] if ab[1] >= 0 else _skip(mm, pos, ab[2], ab[3], unit.addr_size)
            if ab[4]:
                depth += 1
            elif depth == 0:
                return pos - base

    def _value(self, pos: int, form: int, implicit: int, unit: Unit) -> tuple[Any, int, int]:
        mm = self.mm
        if form == FORM_strp:
            return cstring(mm, self.str_base + _u32(mm, pos)[0]), pos + 4, form
        if form in (FORM_ref4, FORM_ref1, FORM_ref2, FORM_ref8, FORM_ref_udata):
            if form == FORM_ref4:
                v, pos = _u32(mm, pos)[0], pos + 4
            elif form == FORM_ref_udata:
                v, pos = uleb128(mm, pos)
            else:
                n = {FORM_ref1: 1, FORM_ref2: 2, FORM_ref8: 8}[form]
                v, pos = int.from_bytes(mm[pos : pos + n], "little"), pos + n
            return unit.offset + v, pos, form
        size = _DATA_FORMS.get(form)
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
            return cstring(mm, self.line_str_base + _u32(mm, pos)[0]), pos + 4, form
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
            return cstring(mm, self.str_base + _u32(mm, at)[0]), pos, form
        if form in (FORM_addrx, FORM_addrx1, FORM_addrx2, FORM_addrx3, FORM_addrx4, FORM_GNU_addr_index):
            index, pos = self._index(pos, form, (FORM_addrx, FORM_GNU_addr_index), FORM_addrx1)
            return self.address_at(unit, index), pos, FORM_addr
        if form == FORM_ref_sig8:
            sig = _u64(mm, pos)[0]
            return self.signatures.get(sig, 0), pos + 8, form
        if form in (FORM_ref_sup8,):
            return _u64(mm, pos)[0], pos + 8, form
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
                return name
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


# --- DIEs → Types ----------------------------------------------------------------------------------
_QUALIFIER_TAGS = {
    TAG_const_type: Kind.CONST,
    TAG_volatile_type: Kind.VOLATILE,
    TAG_restrict_type: Kind.RESTRICT,
}
_AGGREGATE_TAGS = {TAG_structure_type: Kind.STRUCT, TAG_class_type: Kind.STRUCT, TAG_union_type: Kind.UNION}


def _member_location(die: Die) -> int:
    """DW_AT_data_member_location in bytes: a constant, or (DWARF 2) DW_OP_plus_uconst N."""
    loc = die.attrs.get(AT_data_member_location, 0)
    if isinstance(loc, bytes):
        if loc and loc[0] == OP_plus_uconst:
            return uleb128(loc, 1)[0]
        return 0
    return loc


class _TypeBuilder:
    """Builds Types from DIE offsets, each once; references become thunks resolved on first use."""

    def __init__(self, reader: _Reader, index: DwarfIndex) -> None:
        self.reader = reader
        self.index = index
        self.built: dict[int, Type] = {}
        self.void = Type(Kind.VOID, "void")

    def ref(self, offset: int | None) -> Type | Callable[[], Type]:
        if not offset:
            return self.void
        t = self.built.get(offset)
        return t if t is not None else lambda: self.type(offset)

    def type(self, offset: int) -> Type:
        t = self.built.get(offset)
        if t is None:
            t = self._make(self.reader.die(offset))
            self.built[offset] = t
        return t

    def _make(self, die: Die) -> Type:
        tag = die.tag
        attrs = die.attrs
        name = attrs.get(AT_name)
        if tag == TAG_pointer_type or tag == TAG_reference_type:
            size = attrs.get(AT_byte_size) or die.unit.addr_size
            return Type(Kind.POINTER, None, size, target=self.ref(attrs.get(AT_type)))
        if tag in _QUALIFIER_TAGS:
            return Type(_QUALIFIER_TAGS[tag], None, None, target=self.ref(attrs.get(AT_type)))
        if tag == TAG_typedef:
            return Type(Kind.TYPEDEF, name, None, target=self.ref(attrs.get(AT_type)))
        if tag == TAG_base_type:
            return self._base(die)
        if tag in _AGGREGATE_TAGS:
            if attrs.get(AT_declaration):
                full = self._definition("union" if tag == TAG_union_type else "struct", name, die.offset)
                if full is not None:
                    return full
                return Type(_AGGREGATE_TAGS[tag], name, None)
            return Type(
                _AGGREGATE_TAGS[tag], name, attrs.get(AT_byte_size), members=lambda: self._members(die)
            )
        if tag == TAG_enumeration_type:
            if attrs.get(AT_declaration):
                full = self._definition("enum", name, die.offset)
                if full is not None:
                    return full
            return self._enum(die)
        if tag == TAG_array_type:
            return self._array(die)
        if tag == TAG_subroutine_type or tag == TAG_subprogram:
            return self._function(die)
        if tag == TAG_atomic_type:
            return self.type(attrs[AT_type]) if attrs.get(AT_type) else self.void
        if tag == TAG_variable or tag == TAG_formal_parameter or tag == TAG_member:
            ref = self.reader.origin(die, AT_type)
            return self.type(ref) if ref else self.void
        if tag == TAG_unspecified_type:
            return Type(Kind.VOID, name or "void")
        raise DebugInfoError(
            self.reader.dwarf.path, f"DIE at .debug_info+{die.offset:#x} (tag {tag:#x}) is not a type"
        )

    def _definition(self, namespace: str, name: str | None, offset: int) -> Type | None:
        if not name:
            return None
        full = self.index._names[namespace].get(name)
        if full is None or full == offset:
            return None
        die = self.reader.die(full)
        if die.attrs.get(AT_declaration):
            return None
        return self.type(full)

    def _base(self, die: Die) -> Type:
        attrs = die.attrs
        encoding = attrs.get(AT_encoding, 0)
        size = attrs.get(AT_byte_size)
        name = attrs.get(AT_name)
        if encoding == ATE_boolean:
            return Type(Kind.BOOL, name, size)
        if encoding in (ATE_float, ATE_complex_float):
            return Type(Kind.FLOAT, name, size, signed=True)
        return Type(Kind.INT, name, size, signed=encoding in (ATE_signed, ATE_signed_char))

    def _members(self, die: Die) -> list[Member]:
        members = []
        for child in self.reader.children(die):
            if child.tag != TAG_member:
                continue
            attrs = child.attrs
            bit_size = attrs.get(AT_bit_size, 0)
            if AT_data_bit_offset in attrs:
                bit_offset = attrs[AT_data_bit_offset]
            else:
                bit_offset = _member_location(child) * 8
                if bit_size and AT_bit_offset in attrs:
                    # DWARF 2/3 bit fields count from the most significant bit of the storage unit.
                    storage = attrs.get(AT_byte_size) or self.type(attrs[AT_type]).sizeof()
                    bit_offset += storage * 8 - attrs[AT_bit_offset] - bit_size
            members.append(Member(attrs.get(AT_name), self.ref(attrs.get(AT_type)), bit_offset, bit_size))
        return members

    def _enum(self, die: Die) -> Type:
        attrs = die.attrs
        size = attrs.get(AT_byte_size)
        signed = False
        if attrs.get(AT_type):
            signed = self.type(attrs[AT_type]).strip().signed
        values = []
        for child in self.reader.children(die):
            if child.tag != TAG_enumerator:
                continue
            value = child.attrs.get(AT_const_value, 0)
            if signed and child.forms.get(AT_const_value) == FORM_data8 and value >= 1 << 63:
                value -= 1 << 64  # as gdb reads it: dataN is unsigned, but 64 bits wrap to negative
            values.append(Enumerator(child.attrs.get(AT_name, ""), value))
        if not attrs.get(AT_type):
            signed = any(e.value < 0 for e in values)
        return Type(Kind.ENUM, attrs.get(AT_name), size, signed=signed, enumerators=values)

    def _array(self, die: Die) -> Type:
        lengths: list[int | None] = []
        for child in self.reader.children(die):
            if child.tag != TAG_subrange_type:
                continue
            attrs, forms = child.attrs, child.forms
            count = None
            if AT_count in attrs:
                if forms[AT_count] in _CONST_FORMS:
                    count = attrs[AT_count]
            elif forms.get(AT_upper_bound) in _CONST_FORMS:
                upper = attrs[AT_upper_bound]
                if forms[AT_upper_bound] == FORM_data8 and upper == (1 << 64) - 1:
                    upper = -1  # older gcc's "[0]": an upper bound of -1 in a sign-less form
                lower = attrs.get(AT_lower_bound, 0) if forms.get(AT_lower_bound) in _CONST_FORMS else 0
                count = upper - lower + 1
            lengths.append(count)
        if not lengths:
            lengths = [None]
        element: Type | Callable[[], Type] = self.ref(die.attrs.get(AT_type))
        for length in reversed(lengths[1:]):
            element = Type(Kind.ARRAY, None, None, target=element, length=length)
        return Type(Kind.ARRAY, None, None, target=element, length=lengths[0])

    def _function(self, die: Die) -> Type:
        if die.tag == TAG_subprogram and AT_type not in die.attrs:
            origin = die.attrs.get(AT_specification) or die.attrs.get(AT_abstract_origin)
            if origin:
                return self._function(self.reader.die(origin))
        params: list[Parameter] = []
        variadic = False
        for child in self.reader.children(die):
            if child.tag == TAG_formal_parameter:
                params.append(
                    Parameter(self.reader.name(child), self.ref(self.reader.origin(child, AT_type)))
                )
            elif child.tag == TAG_unspecified_parameters:
                variadic = True
        return Type(
            Kind.FUNCTION,
            None,
            None,
            target=self.ref(die.attrs.get(AT_type)),
            params=params,
            variadic=variadic,
        )


# --- relocatable objects ---------------------------------------------------------------------------
ET_REL = 1
_SHT_RELA = 4
_R_X86_64_64, _R_X86_64_32, _R_X86_64_32S = 1, 10, 11


def _relocated(elf: Any, sections: dict[str, cache.Section], path: str) -> bytearray:
    """A copy of a relocatable object (a .o or a kernel module) with its .rela.debug_* applied.

    Unlike a linked vmlinux, an object's debug sections hold zeros where relocations put the string
    offsets and addresses; sections sit at address 0, so an address becomes a section offset."""
    image = bytearray(elf)
    by_index = {sec.index: sec for sec in sections.values()}
    for rela in sections.values():
        target = by_index.get(rela.info)
        if rela.type != _SHT_RELA or target is None or not target.name.startswith(".debug"):
            continue
        symtab = by_index.get(rela.link)
        if symtab is None:
            raise DebugInfoError(path, f"{rela.name}: no symbol table")
        for pos in range(rela.offset, rela.offset + rela.size - 23, 24):
            r_offset, r_info, addend = struct.unpack_from("<QQq", image, pos)
            kind, sym = r_info & 0xFFFFFFFF, r_info >> 32
            value = _u64(image, symtab.offset + 24 * sym + 8)[0] + addend
            at = target.offset + r_offset
            if kind == _R_X86_64_64:
                struct.pack_into("<Q", image, at, value & 0xFFFFFFFFFFFFFFFF)
            elif kind in (_R_X86_64_32, _R_X86_64_32S):
                struct.pack_into("<I", image, at, value & 0xFFFFFFFF)
    return image


# --- the index -------------------------------------------------------------------------------------
class DwarfIndex:
    """Names of a vmlinux's top-level DWARF entities → DIE offsets, and Types read from them lazily."""

    def __init__(self, path: str, elf: Any, sections: dict[str, cache.Section], raw: dict[str, Any]) -> None:
        self.path = path
        self.dwarf = _Sections(path, elf, sections)
        self._units: list[int] = raw["units"]
        self._names: dict[str, dict[str, int]] = {
            "struct": raw["struct"], "union": raw["union"], "enum": raw["enum"], "": raw["typedef"],
        }  # fmt: skip
        self._vars: dict[str, int] = raw["var"]
        self._funcs: dict[str, int] = raw["func"]
        self._enumerators: dict[str, int] = raw["enumerator"]
        self.reader = _Reader(self.dwarf, self._units, raw["signatures"])
        self.types = _TypeBuilder(self.reader, self)

    @classmethod
    def open(cls, path: str, elf: Any) -> DwarfIndex:
        """The index of the vmlinux at `path`: from the cache, or built and cached. `elf` is an mmap of
        the file (or bytes), or an object with the mmap in `.map` (kcrash.debuginfo.elffile.ElfImage)."""
        mm = getattr(elf, "map", elf)
        sections = cache.elf_sections(mm, path)
        if _u16(mm, 16)[0] == ET_REL:
            mm = _relocated(mm, sections, path)
        key = cache.build_id(mm, sections)
        if key is None:
            st = os.stat(path)
            key = f"nobuildid-{st.st_size}-{st.st_mtime_ns}"
        raw = cache.load(key, "dwarf-index", INDEX_VERSION)
        if raw is None and cache.builder_running(key, "dwarf-index"):
            cache.wait_for_builder(key, "dwarf-index")  # a background build started at kernel open
            raw = cache.load(key, "dwarf-index", INDEX_VERSION)
        if raw is None:
            raw = cls.build(path, mm, sections)
            cache.store(key, "dwarf-index", INDEX_VERSION, raw)
        return cls(path, mm, sections, raw)

    @staticmethod
    def build_in_background(path: str, elf: Any) -> bool:
        """Start building the index cache in a child process when it is missing, so that the first
        expression that needs DWARF finds it ready. True if a build was started."""
        import subprocess
        import sys

        mm = getattr(elf, "map", elf)
        sections = cache.elf_sections(mm, path)
        key = cache.build_id(mm, sections)
        if key is None or cache.exists(key, "dwarf-index") or cache.builder_running(key, "dwarf-index"):
            return False
        try:
            subprocess.Popen(
                [sys.executable, "-m", "kcrash.debuginfo.dwarf", path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return False
        return True

    @staticmethod
    def build(path: str, elf: Any, sections: dict[str, cache.Section]) -> dict[str, Any]:
        """Scan .debug_info (no cache): the raw index as plain dicts and lists."""
        return _scan(_Sections(path, elf, sections))

    # --- lookups ----------------------------------------------------------------------------------
    def find_type(self, name: str) -> Type | None:
        """A type by C name, as BtfTypes.find_type spells it."""
        off = self.find_type_offset(name)
        return None if off is None else self.types.type(off)

    def find_type_offset(self, name: str) -> int | None:
        namespace, bare = parse_type_name(name)
        table = self._names[namespace]
        off = table.get(bare)
        if off is None and not namespace:
            off = table.get(canonical_base_name(bare))
        return off

    def find_variable(self, name: str) -> tuple[int | None, Type] | None:
        """(link-time address or None, type) of a global or static variable."""
        off = self._vars.get(name)
        if off is None:
            return None
        die = self.reader.die(off)
        type_off = self.reader.origin(die, AT_type)
        vtype = self.types.type(type_off) if type_off else self.types.void
        return self._address(die), vtype

    def _address(self, die: Die) -> int | None:
        loc = die.attrs.get(AT_location)
        if not isinstance(loc, bytes) or not loc:
            return None
        op = loc[0]
        size = die.unit.addr_size
        if op == OP_addr and len(loc) == 1 + size:
            return int.from_bytes(loc[1:], "little")
        if op in (OP_addrx, OP_GNU_addr_index):
            index, end = uleb128(loc, 1)
            if end == len(loc):
                return self.reader.address_at(self.reader.unit_at(die.unit.offset), index)
        return None

    def find_function(self, name: str) -> Type | None:
        """The Kind.FUNCTION type of a function (a definition, an inline abstract instance or a prototype)."""
        off = self._funcs.get(name)
        return None if off is None else self.types.type(off)

    def find_enumerator(self, name: str) -> tuple[Type, int] | None:
        """(enum type, value) of an enumerator name."""
        off = self._enumerators.get(name)
        if off is None:
            return None
        enum = self.types.type(off)
        for e in enum.strip().enumerators or ():
            if e.name == name:
                return enum, e.value
        return None

    def variable_names(self) -> Iterator[str]:
        return iter(self._vars)

    def function_names(self) -> Iterator[str]:
        return iter(self._funcs)

    def type_names(self) -> Iterator[str]:
        for namespace, table in self._names.items():
            for name in table:
                yield f"{namespace} {name}" if namespace else name

    # --- for the line table and other readers of the same DWARF ----------------------------------------
    @property
    def mm(self) -> Any:
        """The mapped vmlinux the DWARF is read from."""
        return self.dwarf.mm

    def section(self, name: str) -> tuple[int, int]:
        """(file offset, size) of an ELF section, or (0, 0) when absent."""
        return self.dwarf.section(name)

    def unit_offsets(self) -> list[int]:
        return self._units

    def unit_die(self, unit_offset: int) -> Die:
        """The unit's top DIE (DW_TAG_compile_unit) with its attributes decoded."""
        return self.reader.unit_die(unit_offset)

    def die(self, offset: int) -> Die:
        return self.reader.die(offset)


def _main(argv: list[str]) -> int:
    """`python -m kcrash.debuginfo.dwarf VMLINUX`: build the index cache (what build_in_background runs)."""
    import mmap

    path = argv[0]
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sections = cache.elf_sections(mm, path)
    key = cache.build_id(mm, sections)
    if key is None or cache.exists(key, "dwarf-index"):
        return 0
    lock = cache.mark_building(key, "dwarf-index")
    if lock is None:
        return 0
    try:
        os.nice(10)
        cache.store(key, "dwarf-index", INDEX_VERSION, DwarfIndex.build(path, mm, sections))
    finally:
        lock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
