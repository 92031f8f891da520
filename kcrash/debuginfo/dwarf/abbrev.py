"""DWARF abbreviation tables: parsed once per offset, each abbreviation compiled to precomputed attribute
sizes so that the index pass can step over DIEs without decoding them; the index slot of each tag."""

from __future__ import annotations

import re
from typing import Any

from kcrash.debuginfo.dwarf.constants import (
    FIXED_SIZES,
    SKIP_BLOCK1,
    SKIP_BLOCK2,
    SKIP_BLOCK4,
    SKIP_BLOCK_LEB,
    SKIP_CSTR,
    SKIP_LEB,
    VARIABLE_SIZES,
    AT_abstract_origin,
    AT_declaration,
    AT_location,
    AT_name,
    AT_sibling,
    AT_specification,
    FORM_addr,
    FORM_flag_present,
    FORM_implicit_const,
    FORM_ref1,
    FORM_ref2,
    FORM_ref4,
    FORM_ref_udata,
    FORM_string,
    FORM_strp,
    TAG_base_type,
    TAG_class_type,
    TAG_enumeration_type,
    TAG_structure_type,
    TAG_subprogram,
    TAG_typedef,
    TAG_union_type,
    TAG_variable,
    u16,
    u32,
)
from kcrash.debuginfo.leb128 import sleb128, uleb128
from kcrash.errors import DebugInfoError

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
S_NONE, S_SLOW = 0, -1
(S_STRUCT, S_STRUCT_DECL, S_UNION, S_UNION_DECL, S_ENUM, S_ENUM_DECL, S_TYPEDEF,
 S_VAR, S_VAR_NOLOC, S_VAR_DECL, S_FUNC, S_FUNC_DECL, S_ENUMERATOR) = range(1, 14)  # fmt: skip
N_SLOTS = 14
TAG_SLOTS = {
    TAG_structure_type: (S_STRUCT, S_STRUCT_DECL),
    TAG_class_type: (S_STRUCT, S_STRUCT_DECL),
    TAG_union_type: (S_UNION, S_UNION_DECL),
    TAG_enumeration_type: (S_ENUM, S_ENUM_DECL),
    TAG_typedef: (S_TYPEDEF, S_TYPEDEF),
    TAG_base_type: (S_TYPEDEF, S_TYPEDEF),
    TAG_variable: (S_VAR, S_VAR_DECL),
    TAG_subprogram: (S_FUNC, S_FUNC_DECL),
}

# A compiled abbreviation is a tuple, for speed in the scan loop:
#  0 slot     1 fixed size or -1     2 skip ops ((advance, kind), ...)     3 tail advance
#  4 has children     5 sibling position (-1 none, -2 not at a fixed position)     6 sibling form
#  7 name position (same codes)     8 name form     9 tag     10 attrs ((attr, form, implicit), ...)
Abbrev = tuple[Any, ...]


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
        size = addr_size if form == FORM_addr else FIXED_SIZES.get(form)
        if size is not None:
            pos += size
            continue
        kind = VARIABLE_SIZES.get(form)
        if kind is None:
            raise ValueError(f"unknown DWARF form {form:#x}")
        ops.append((pos, kind))
        pos = 0
        fixed_so_far = False
    slot = S_NONE
    slots = TAG_SLOTS.get(tag)
    if slots is not None:
        slot = slots[1] if declaration else slots[0]
        if tag == TAG_variable and not declaration and not location:
            slot = S_VAR_NOLOC
        if slow or name_pos == -2 or name_form not in (FORM_strp, FORM_string, 0):
            slot = S_SLOW
        if name_pos == -1 and slot != S_SLOW:
            slot = S_NONE  # anonymous: nothing to index
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
    attrs: list[tuple[int, int, int]] = []
    while True:
        at, pos = uleb128(body, pos)
        form, pos = uleb128(body, pos)
        if at == 0 and form == 0:
            return tag, children, tuple(attrs)
        implicit = 0
        if form == FORM_implicit_const:
            implicit, pos = sleb128(body, pos)
        attrs.append((at, form, implicit))


class AbbrevTables:
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


def skip_attributes(mm: Any, pos: int, ops: tuple[tuple[int, int], ...], tail: int, addr_size: int) -> int:
    """Step over a DIE's attributes whose sizes depend on the data."""
    for advance, kind in ops:
        pos += advance
        if kind == SKIP_LEB:
            while mm[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == SKIP_CSTR:
            pos = mm.find(b"\0", pos) + 1
        elif kind == SKIP_BLOCK_LEB:
            n, pos = uleb128(mm, pos)
            pos += n
        elif kind == SKIP_BLOCK1:
            pos += mm[pos] + 1
        elif kind == SKIP_BLOCK2:
            pos += 2 + u16(mm, pos)[0]
        elif kind == SKIP_BLOCK4:
            pos += 4 + u32(mm, pos)[0]
        else:  # DW_FORM_indirect: the form comes first
            form, pos = uleb128(mm, pos)
            size = addr_size if form == FORM_addr else FIXED_SIZES.get(form)
            if size is not None:
                pos += size
            else:
                pos = skip_attributes(mm, pos, ((0, VARIABLE_SIZES[form]),), 0, addr_size)
    return pos + tail
