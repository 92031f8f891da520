"""The DWARF name index: a fast pass over the top-level DIEs of every unit (cached on disk by build-id), and
DwarfIndex, the lookup of types, variables, functions and enumerators by name."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any

from kcrash.debuginfo import cache
from kcrash.debuginfo.btf import canonical_base_name, parse_type_name
from kcrash.debuginfo.dwarf.abbrev import (
    N_SLOTS,
    S_ENUM,
    S_ENUM_DECL,
    S_ENUMERATOR,
    S_FUNC,
    S_FUNC_DECL,
    S_SLOW,
    S_STRUCT,
    S_STRUCT_DECL,
    S_TYPEDEF,
    S_UNION,
    S_UNION_DECL,
    S_VAR,
    S_VAR_DECL,
    S_VAR_NOLOC,
    TAG_SLOTS,
    cstring,
    skip_attributes,
)
from kcrash.debuginfo.dwarf.constants import (
    AT_declaration,
    AT_location,
    AT_name,
    AT_type,
    FORM_ref2,
    FORM_ref4,
    FORM_string,
    FORM_strp,
    OP_addr,
    OP_addrx,
    OP_GNU_addr_index,
    TAG_enumeration_type,
    TAG_enumerator,
    TAG_variable,
    u16,
    u32,
    u64,
)
from kcrash.debuginfo.dwarf.reader import Die, Reader, Sections, Unit
from kcrash.debuginfo.dwarf.typebuilder import TypeBuilder
from kcrash.debuginfo.leb128 import uleb128
from kcrash.debuginfo.types import Type
from kcrash.errors import DebugInfoError

INDEX_VERSION = 1


def _scan(dwarf: Sections) -> dict[str, Any]:
    """One pass over every unit's top-level DIEs (plus enumerators) → the raw name index."""
    mm, base, path = dwarf.mm, dwarf.info_base, dwarf.path
    str_base, _ = dwarf.section(".debug_str")
    slots: list[dict[Any, int]] = [{} for _ in range(N_SLOTS)]
    enumerators = slots[S_ENUMERATOR]
    seen_enums: set[tuple[Any, ...]] = set()
    unit_offsets: list[int] = []
    signatures: dict[int, int] = {}
    unit_off = 0
    info_size = dwarf.info_size
    read_u32 = u32
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
            ab: Any = table[code]  # None for a bad code: the TypeError is caught below
            if ab is None:
                raise IndexError
            pos = pos + ab[1] if ab[1] >= 0 else skip_attributes(mm, pos, ab[2], ab[3], addr_size)
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
                            key: Any = read_u32(mm, npos)[0]
                        else:
                            key = bytes(mm[npos : find(b"\0", npos)])
                        d = slots[slot]
                        if key not in d:
                            d[key] = at - base
                    elif slot == S_SLOW:
                        pending.append((at - base, slot))
                    if ab[4]:
                        sib = ab[5]
                        if ab[9] == TAG_enumeration_type:
                            # The same enum recurs in every unit that includes its header: read its
                            # enumerators once per (name, first enumerator, encoded length).
                            end = (
                                pos + ab[1]
                                if ab[1] >= 0
                                else skip_attributes(mm, pos, ab[2], ab[3], addr_size)
                            )
                            if sib >= 0:
                                sib_at = ubase + read_u32(mm, pos + sib)[0] if ab[6] == FORM_ref4 else -1
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
                                        name_key = read_u32(mm, pos + ab[7])[0]
                                    elif ab[8] == FORM_string:
                                        name_key = bytes(mm[pos + ab[7] : find(b"\0", pos + ab[7])])
                                    else:
                                        name_key = None
                                    sig = (name_key, read_u32(mm, end + 1 + first[7])[0], sib_at - pos)
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
                                pos = ubase + read_u32(mm, pos + sib)[0]
                            elif form == FORM_ref2:
                                pos = ubase + u16(mm, pos + sib)[0]
                            else:
                                pos = ubase + mm[pos + sib]
                            continue
                        depth += 1
                else:
                    if in_enum >= 0 and ab[9] == TAG_enumerator:
                        if ab[8] == FORM_strp and ab[7] >= 0:
                            key = read_u32(mm, pos + ab[7])[0]
                            if key not in enumerators:
                                enumerators[key] = in_enum
                        else:
                            pending.append((at - base, in_enum))
                    if ab[4]:
                        sib = ab[5]
                        if sib >= 0 and ab[6] == FORM_ref4:
                            pos = ubase + read_u32(mm, pos + sib)[0]
                            continue
                        depth += 1
                fixed = ab[1]
                if fixed >= 0:
                    pos += fixed
                else:
                    pos = skip_attributes(mm, pos, ab[2], ab[3], addr_size)
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
        "struct": merge(S_STRUCT_DECL, S_STRUCT),
        "union": merge(S_UNION_DECL, S_UNION),
        "enum": merge(S_ENUM_DECL, S_ENUM),
        "typedef": merge(S_TYPEDEF),
        "var": merge(S_VAR_DECL, S_VAR_NOLOC, S_VAR),
        "func": merge(S_FUNC_DECL, S_FUNC),
        "enumerator": merge(S_ENUMERATOR),
    }


def _scan_slow(
    dwarf: Sections,
    units: list[int],
    unit: Unit,
    pending: list[tuple[int, int]],
    slots: list[dict[Any, int]],
) -> None:
    """Index the DIEs the fast path could not: names not at a fixed position or in an unusual form,
    definitions that take their name from a declaration (DW_AT_specification/abstract_origin)."""
    reader = Reader(dwarf, units)
    unit = reader.unit_at(unit.offset)
    for off, where in pending:
        die = reader.die(off, unit)
        if die.tag == TAG_enumerator:
            name = die.get(AT_name)
            if isinstance(name, str) and name:
                slots[S_ENUMERATOR].setdefault(name, where)
            continue
        name = reader.name(die)
        if not isinstance(name, str) or not name:
            continue  # anonymous, or a name in a dwz alternate file (not supported)
        declaration = bool(die.get(AT_declaration))
        if die.tag == TAG_variable and not declaration:
            slot = S_VAR if AT_location in die.attrs else S_VAR_NOLOC
        else:
            slot = TAG_SLOTS[die.tag][1 if declaration else 0]
        slots[slot].setdefault(name, off)


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
            value = u64(image, symtab.offset + 24 * sym + 8)[0] + addend
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
        self.dwarf = Sections(path, elf, sections)
        self._units: list[int] = raw["units"]
        self._names: dict[str, dict[str, int]] = {
            "struct": raw["struct"], "union": raw["union"], "enum": raw["enum"], "": raw["typedef"],
        }  # fmt: skip
        self._vars: dict[str, int] = raw["var"]
        self._funcs: dict[str, int] = raw["func"]
        self._enumerators: dict[str, int] = raw["enumerator"]
        self.reader = Reader(self.dwarf, self._units, raw["signatures"])
        self.types = TypeBuilder(self.reader, self)

    @classmethod
    def open(cls, path: str, elf: Any) -> DwarfIndex:
        """The index of the vmlinux at `path`: from the cache, or built and cached. `elf` is an mmap of
        the file (or bytes), or an object with the mmap in `.map` (kcrash.debuginfo.elffile.ElfImage)."""
        mm = getattr(elf, "map", elf)
        sections = cache.elf_sections(mm, path)
        if u16(mm, 16)[0] == ET_REL:
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
        return _scan(Sections(path, elf, sections))

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
