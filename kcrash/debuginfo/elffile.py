"""Minimal read-only ELF64 access over an mmap: sections by name, build-id, symbols' raw table."""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

from kcrash.errors import DebugInfoError

__all__ = ["ElfImage", "Section"]

EM_X86_64 = 62
SHT_NOBITS = 8


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


class ElfImage:
    """A vmlinux (or any ELF64 little-endian file) mapped read-only."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise DebugInfoError(path, f"cannot open: {e.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size < 64:
                raise DebugInfoError(path, "not an ELF file (too short)")
            self.map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise DebugInfoError(path, f"cannot map: {e.strerror}") from None
        finally:
            os.close(fd)
        self.data = memoryview(self.map)
        ident = bytes(self.data[:16])
        if ident[:4] != b"\x7fELF":
            raise DebugInfoError(path, "not an ELF file")
        if ident[4] != 2 or ident[5] != 1:
            raise DebugInfoError(path, "not a little-endian ELF64 file")
        (self.e_type, self.e_machine) = struct.unpack_from("<HH", self.data, 16)
        (shoff,) = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", self.data, 0x3A)
        if shoff == 0 or shoff + shnum * shentsize > size or shentsize < 64:
            raise DebugInfoError(path, "truncated or corrupt ELF section table")
        raw = [struct.unpack_from("<IIQQQQIIQQ", self.data, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx] if shstrndx < shnum else None
        self.sections: list[Section] = []
        self._by_name: dict[str, Section] = {}
        for name_off, typ, flags, addr, off, sz, link, _info, _align, entsize in raw:
            name = self._cstr(strtab[4] + name_off) if strtab else ""
            sec = Section(name, typ, flags, addr, off, sz, link, entsize)
            self.sections.append(sec)
            self._by_name.setdefault(name, sec)

    def _cstr(self, offset: int) -> str:
        end = self.map.find(b"\0", offset)
        return bytes(self.data[offset:end]).decode("utf-8", "replace")

    def section(self, name: str) -> Section | None:
        return self._by_name.get(name)

    def section_data(self, name: str) -> memoryview | None:
        sec = self._by_name.get(name)
        if sec is None or sec.type == SHT_NOBITS:
            return None
        if sec.offset + sec.size > len(self.data):
            raise DebugInfoError(self.path, f"section {name} lies beyond the end of the file (truncated?)")
        return self.data[sec.offset : sec.offset + sec.size]

    def build_id(self) -> str | None:
        note = self.section_data(".note.gnu.build-id")
        if note is None:
            notes = self.section_data(".notes")
            if notes is None:
                return None
            note = notes
        pos = 0
        while pos + 12 <= len(note):
            namesz, descsz, typ = struct.unpack_from("<III", note, pos)
            name_start = pos + 12
            desc_start = name_start + ((namesz + 3) & ~3)
            if typ == 3 and bytes(note[name_start : name_start + 3]) == b"GNU":
                return bytes(note[desc_start : desc_start + descsz]).hex()
            pos = desc_start + ((descsz + 3) & ~3)
        return None

    def read_at_address(self, addr: int, size: int) -> bytes | None:
        """Bytes of an allocated section at link-time address `addr` (None if not file-backed)."""
        for sec in self.sections:
            if sec.flags & 2 and sec.addr <= addr and addr + size <= sec.addr + sec.size:
                if sec.type == SHT_NOBITS:
                    return None
                start = sec.offset + addr - sec.addr
                return bytes(self.data[start : start + size])
        return None

    def close(self) -> None:
        self.data.release()
        self.map.close()
