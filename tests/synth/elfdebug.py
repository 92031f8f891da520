"""Builders for small synthetic debug info in tests: an ELF64 image around named sections, BTF blobs
type by type, and DWARF units DIE by DIE (any form, including ones gcc rarely emits).

    btf = BtfBuilder()
    i = btf.int("int", 4, signed=True)
    btf.struct("s", 8, [("a", i, 0), ("b", i, 32)])
    types = BtfTypes(btf.blob())

    dw = DwarfBuilder()
    dw.unit(Die(TAG_compile_unit, [(AT_name, FORM_strp, "a.c")], [...]))
    image = elf_image(dw.sections())

Also `real_vmlinux()`: the Debian vmlinux the real-data tests use, if one is on this machine.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "uleb",
    "sleb",
    "elf_image",
    "gnu_build_id_note",
    "BtfBuilder",
    "Die",
    "DwarfBuilder",
    "real_vmlinux",
]

DEFAULT_VMLINUX = "/tmp/k61/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64"


def real_vmlinux() -> str | None:
    """$KCRASH_VMLINUX, else the vmlinux of a complete fixture set (~/.cache/kcrash/fixtures/*/), else
    the Debian 6.1 cloud vmlinux extracted under /tmp; None when there is none."""
    env = os.environ.get("KCRASH_VMLINUX")
    if env:
        return env
    root = Path(os.environ.get("KCRASH_FIXTURES_DIR") or Path.home() / ".cache" / "kcrash" / "fixtures")
    for manifest_path in sorted(root.glob("*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_text())
            candidate = manifest_path.parent / manifest["vmlinux"]["file"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if manifest.get("kernel_series", "6.1") == "6.1" and candidate.is_file():
            return str(candidate)
    return DEFAULT_VMLINUX if os.path.isfile(DEFAULT_VMLINUX) else None


def uleb(value: int, width: int = 0) -> bytes:
    """ULEB128; `width` pads to a fixed length (a valid, non-minimal encoding)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value or len(out) + 1 < width:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


# --- ELF -------------------------------------------------------------------------------------------
SHT_PROGBITS, SHT_STRTAB, SHT_NOTE = 1, 3, 7


def gnu_build_id_note(build_id: bytes) -> bytes:
    desc = build_id + b"\0" * (-len(build_id) % 4)
    return struct.pack("<III", 4, len(build_id), 3) + b"GNU\0" + desc


def elf_image(sections: dict[str, bytes], e_type: int = 2, notes: dict[str, bytes] | None = None) -> bytes:
    """A little-endian x86-64 ELF64 file holding `sections` (PROGBITS) and `notes` (SHT_NOTE)."""
    all_sections = [(name, SHT_PROGBITS, data) for name, data in sections.items()]
    all_sections += [(name, SHT_NOTE, data) for name, data in (notes or {}).items()]
    shstrtab = bytearray(b"\0")
    name_offsets = []
    for name, _, _ in all_sections + [(".shstrtab", SHT_STRTAB, b"")]:
        name_offsets.append(len(shstrtab))
        shstrtab += name.encode() + b"\0"
    body = bytearray(b"\0" * 64)
    placed = []
    for (_name, sh_type, data), name_off in zip(all_sections, name_offsets, strict=False):
        body += b"\0" * (-len(body) % 8)
        placed.append((name_off, sh_type, len(body), len(data)))
        body += data
    placed.append((name_offsets[-1], SHT_STRTAB, len(body), len(shstrtab)))
    body += shstrtab
    body += b"\0" * (-len(body) % 8)
    shoff = len(body)
    body += b"\0" * 64  # the null section
    for name_off, sh_type, offset, size in placed:
        body += struct.pack("<IIQQQQIIQQ", name_off, sh_type, 0, 0, offset, size, 0, 0, 1, 0)
    header = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header += struct.pack(
        "<HHIQQQIHHHHHH", e_type, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(placed) + 1, len(placed)
    )
    body[:64] = header
    return bytes(body)


# --- BTF -------------------------------------------------------------------------------------------
class BtfBuilder:
    """Type records appended in order; each method returns the new type id (ids start at 1)."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self._string_offsets: dict[str, int] = {"": 0}
        self.records: list[bytes] = []

    def s(self, name: str | None) -> int:
        if not name:
            return 0
        off = self._string_offsets.get(name)
        if off is None:
            off = self._string_offsets[name] = len(self.strings)
            self.strings += name.encode() + b"\0"
        return off

    def add(
        self,
        kind: int,
        name: str | None,
        vlen: int,
        size_or_type: int,
        extra: bytes = b"",
        kflag: bool = False,
    ) -> int:
        info = (int(kflag) << 31) | (kind << 24) | vlen
        self.records.append(struct.pack("<III", self.s(name), info, size_or_type) + extra)
        return len(self.records)

    def int(
        self,
        name: str,
        size: int,
        signed: bool = False,
        char: bool = False,
        bool_: bool = False,
        bits: int | None = None,
        offset: int = 0,
    ) -> int:
        encoding = (1 if signed else 0) | (2 if char else 0) | (4 if bool_ else 0)
        nbits = size * 8 if bits is None else bits
        return self.add(1, name, 0, size, struct.pack("<I", (encoding << 24) | (offset << 16) | nbits))

    def ptr(self, target: int) -> int:
        return self.add(2, None, 0, target)

    def array(self, element: int, index_type: int, nelems: int) -> int:
        return self.add(3, None, 0, 0, struct.pack("<III", element, index_type, nelems))

    def struct(
        self,
        name: str | None,
        size: int,
        members: list[tuple[str | None, int, int] | tuple[str | None, int, int, int]],
        union: bool = False,
    ) -> int:
        """members: (name, type, bit offset[, bit-field size]); any bit-field size sets kind_flag."""
        kflag = any(len(m) == 4 for m in members)
        extra = b""
        for m in members:
            offset = m[2] | ((m[3] if len(m) == 4 else 0) << 24) if kflag else m[2]  # type: ignore[misc]
            extra += struct.pack("<III", self.s(m[0]), m[1], offset)
        return self.add(5 if union else 4, name, len(members), size, extra, kflag)

    def enum(self, name: str | None, size: int, values: list[tuple[str, int]], signed: bool = False) -> int:
        extra = b"".join(struct.pack("<Ii" if signed else "<II", self.s(n), v) for n, v in values)
        return self.add(6, name, len(values), size, extra, signed)

    def enum64(self, name: str | None, size: int, values: list[tuple[str, int]], signed: bool = False) -> int:
        extra = b""
        for n, v in values:
            v &= (1 << 64) - 1
            extra += struct.pack("<III", self.s(n), v & 0xFFFFFFFF, v >> 32)
        return self.add(19, name, len(values), size, extra, signed)

    def fwd(self, name: str, union: bool = False) -> int:
        return self.add(7, name, 0, 0, kflag=union)

    def typedef(self, name: str, target: int) -> int:
        return self.add(8, name, 0, target)

    def qualifier(self, kind: str, target: int) -> int:
        return self.add({"volatile": 9, "const": 10, "restrict": 11}[kind], None, 0, target)

    def func_proto(self, ret: int, params: list[tuple[str | None, int]], variadic: bool = False) -> int:
        items = params + ([(None, 0)] if variadic else [])
        extra = b"".join(struct.pack("<II", self.s(n), t) for n, t in items)
        return self.add(13, None, len(items), ret, extra)

    def func(self, name: str, proto: int, linkage: int = 1) -> int:
        return self.add(12, name, linkage, proto)

    def var(self, name: str, type_: int, linkage: int = 1) -> int:
        return self.add(14, name, 0, type_, struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, entries: list[tuple[int, int, int]]) -> int:
        extra = b"".join(struct.pack("<III", *e) for e in entries)
        return self.add(15, name, len(entries), size, extra)

    def float(self, name: str, size: int) -> int:
        return self.add(16, name, 0, size)

    def decl_tag(self, name: str, target: int, component: int = -1) -> int:
        return self.add(17, name, 0, target, struct.pack("<i", component))

    def type_tag(self, name: str, target: int) -> int:
        return self.add(18, name, 0, target)

    def blob(self) -> bytes:
        types = b"".join(self.records)
        header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings))
        return header + types + bytes(self.strings)


# --- DWARF -----------------------------------------------------------------------------------------
@dataclass
class Die:
    """A DIE to assemble: attributes as (attribute, form, value); `label` names it for references.

    Values by form: strings (strp, line_strp, string, strx*), ints (data*, udata, sdata, addr, addrx*,
    sec_offset, implicit_const), labels (ref4, ref_udata, ref_addr), bytes (exprloc, block1, data16),
    bool (flag), None (flag_present), an int signature (ref_sig8)."""

    tag: int
    attrs: list[tuple[int, int, Any]] = field(default_factory=list)
    children: list[Die] = field(default_factory=list)
    label: str | None = None


class DwarfBuilder:
    """Units of .debug_info with their own abbreviation tables, and the string/address sections."""

    def __init__(self) -> None:
        self.info = bytearray()
        self.abbrev = bytearray()
        self.str = bytearray(b"\0")
        self.line_str = bytearray(b"\0")
        self.str_offsets = bytearray()
        self.addr = bytearray()
        self.labels: dict[str, int] = {}
        self._fixups: list[tuple[int, str, int, int]] = []  # (position, label, width, unit start or -1)

    def string(self, text: str, line: bool = False) -> int:
        table = self.line_str if line else self.str
        off = len(table)
        table += text.encode() + b"\0"
        return off

    def str_index(self, text: str) -> int:
        """Index of `text` in this builder's single .debug_str_offsets table (base 8)."""
        if not self.str_offsets:
            self.str_offsets += b"\0" * 8  # header; patched in sections()
        self.str_offsets += struct.pack("<I", self.string(text))
        return (len(self.str_offsets) - 8) // 4 - 1

    def addr_index(self, address: int) -> int:
        if not self.addr:
            self.addr += b"\0" * 8
        self.addr += struct.pack("<Q", address)
        return (len(self.addr) - 8) // 8 - 1

    def unit(
        self,
        root: Die,
        version: int = 5,
        addr_size: int = 8,
        dwarf64: bool = False,
        signature: int = 0,
        type_label: str | None = None,
    ) -> int:
        """Append a unit (a type unit when `signature` is given); returns its offset in .debug_info."""
        start = len(self.info)
        abbrev_offset = len(self.abbrev)
        if dwarf64:
            self.info += struct.pack("<IQ", 0xFFFFFFFF, 0)  # the rest is never read
            return start
        header_size = 24 if signature else 12 if version >= 5 else 11
        body = bytearray()
        self._emit(root, body, [], start, version, addr_size, header_size)
        self.abbrev += b"\0"
        if signature:
            type_offset = self.labels[type_label] - start if type_label else 0
            header = struct.pack("<HBBIQI", version, 2, addr_size, abbrev_offset, signature, type_offset)
        elif version >= 5:
            header = struct.pack("<HBBI", version, 1, addr_size, abbrev_offset)
        else:
            header = struct.pack("<HIB", version, abbrev_offset, addr_size)
        self.info += struct.pack("<I", len(header) + len(body)) + header + body
        return start

    def _emit(
        self,
        die: Die,
        body: bytearray,
        codes: list[int],
        unit_start: int,
        version: int,
        addr_size: int,
        header_size: int,
    ) -> None:
        here = unit_start + header_size + len(body)
        if die.label:
            self.labels[die.label] = here
        code = len(codes) + 1
        codes.append(code)
        self.abbrev += uleb(code) + uleb(die.tag) + bytes([1 if die.children else 0])
        for at, form, value in die.attrs:
            self.abbrev += uleb(at) + uleb(form)
            if form == 0x21:
                self.abbrev += sleb(value)
        self.abbrev += b"\0\0"
        body += uleb(code)
        for _at, form, value in die.attrs:
            body += self._value(form, value, body, unit_start, header_size, addr_size)
        if die.children:
            for child in die.children:
                self._emit(child, body, codes, unit_start, version, addr_size, header_size)
            body += b"\0"

    def _value(
        self, form: int, value: Any, body: bytearray, unit_start: int, header_size: int, addr_size: int
    ) -> bytes:
        at = unit_start + header_size + len(body)
        if form == 0x0E:  # strp
            return struct.pack("<I", self.string(value))
        if form == 0x1F:  # line_strp
            return struct.pack("<I", self.string(value, line=True))
        if form == 0x08:  # string
            return value.encode() + b"\0"
        if form in (0x25, 0x26, 0x28, 0x1A):  # strx1/2/4, strx
            index = self.str_index(value)
            if form == 0x1A:
                return uleb(index)
            return index.to_bytes({0x25: 1, 0x26: 2, 0x28: 4}[form], "little")
        if form in (0x29, 0x1B):  # addrx1, addrx
            index = self.addr_index(value)
            return bytes([index]) if form == 0x29 else uleb(index)
        if form in (0x0B, 0x05, 0x06, 0x07):
            return (value & ((1 << (8 * {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8}[form])) - 1)).to_bytes(
                {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8}[form], "little"
            )
        if form == 0x0F:
            return uleb(value)
        if form == 0x0D:
            return sleb(value)
        if form == 0x01:
            return value.to_bytes(addr_size, "little")
        if form == 0x17:
            return struct.pack("<I", value)
        if form in (0x21, 0x19):  # implicit_const, flag_present
            return b""
        if form == 0x0C:
            return bytes([1 if value else 0])
        if form == 0x13:  # ref4
            self._fixups.append((at, value, 4, unit_start))
            return b"\0\0\0\0"
        if form == 0x15:  # ref_udata, padded to 5 bytes so it can be patched
            self._fixups.append((at, value, -5, unit_start))
            return b"\x80\x80\x80\x80\x00"
        if form == 0x10:  # ref_addr
            self._fixups.append((at, value, 4, -1))
            return b"\0\0\0\0"
        if form == 0x20:
            return struct.pack("<Q", value)
        if form == 0x18:  # exprloc
            return uleb(len(value)) + value
        if form == 0x0A:
            return bytes([len(value)]) + value
        if form == 0x1E:
            return value
        raise ValueError(f"form {form:#x} not supported by the builder")

    def sections(self) -> dict[str, bytes]:
        info = bytearray(self.info)
        for pos, label, width, unit_start in self._fixups:
            target = self.labels[label] - (unit_start if unit_start >= 0 else 0)
            if width == 4:
                info[pos : pos + 4] = struct.pack("<I", target)
            else:
                info[pos : pos - width] = uleb(target, -width)
        out = {".debug_info": bytes(info), ".debug_abbrev": bytes(self.abbrev), ".debug_str": bytes(self.str)}
        if len(self.line_str) > 1:
            out[".debug_line_str"] = bytes(self.line_str)
        if self.str_offsets:
            out[".debug_str_offsets"] = struct.pack("<IHH", len(self.str_offsets) - 4, 5, 0) + bytes(
                self.str_offsets[8:]
            )
        if self.addr:
            out[".debug_addr"] = struct.pack("<IHBB", len(self.addr) - 4, 5, 8, 0) + bytes(self.addr[8:])
        return out
