"""ELF64 ET_CORE vmcores (/proc/vmcore, makedumpfile -E, QEMU dump-guest-memory): PT_LOADs by p_paddr."""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Iterator

from kcrash.errors import DumpError

from .base import ELF_MACHINES, ElfSegment, PhysicalMemory, parse_notes, prstatus_count, vmcoreinfo_from_notes
from .source import ByteSource

__all__ = ["ElfMemory", "ELF_MAGIC"]

ELF_MAGIC = b"\x7fELF"
ET_CORE = 4
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF
EHDR64_SIZE = 64
PHDR64_SIZE = 56
ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

# Kinds of piece in the physical map.
_FILE, _ZERO, _TRUNCATED = 0, 1, 2


class ElfMemory(PhysicalMemory):
    """Physical memory of an ELF vmcore.

    Segments are flattened into sorted, non-overlapping pieces (file-backed, zero-filled
    p_filesz..p_memsz tails, and ranges lost to a truncated file) so a read is one bisect.
    /proc/vmcore maps kernel text twice (its own PT_LOAD and the direct-map one); the first piece
    of an address wins, which is harmless because both hold the same bytes.
    """

    def __init__(
        self, source: ByteSource, path: str, zero_excluded: bool = False, flattened: bool = False
    ) -> None:
        head = source.pread(0, EHDR64_SIZE)
        if len(head) < 20:
            raise DumpError(path, "truncated ELF header")
        ei_class, ei_data = head[4], head[5]
        if ei_data not in (1, 2):
            raise DumpError(path, f"corrupt ELF header (EI_DATA {ei_data})")
        endian = "<" if ei_data == 1 else ">"
        e_type, e_machine = struct.unpack_from(endian + "HH", head, 16)
        machine = ELF_MACHINES.get(e_machine, f"e_machine {e_machine}")
        if e_type != ET_CORE:
            raise DumpError(
                path, f"not a crash dump (ELF {ET_NAMES.get(e_type, f'type {e_type}')}, not ET_CORE)"
            )
        if e_machine != EM_X86_64:
            raise DumpError(path, f"unsupported machine {machine} (kcrash supports x86_64)")
        if ei_class != 2 or ei_data != 1:
            raise DumpError(path, "unsupported ELF vmcore (x86_64 dumps are little-endian ELF64)")
        if len(head) < EHDR64_SIZE:
            raise DumpError(path, "truncated ELF header")
        super().__init__(source, path, 4096, zero_excluded)
        self.machine = "x86_64"
        self.format_name = "flattened ELF" if flattened else "ELF"

        e_phoff, e_shoff = struct.unpack_from("<QQ", head, 32)
        e_phentsize, e_phnum, e_shentsize = struct.unpack_from("<HHH", head, 54)
        if e_phnum == PN_XNUM:
            # More program headers than e_phnum holds: the count is sh_info of section header 0.
            shdr0 = source.pread(e_shoff, 64) if e_shoff else b""
            if len(shdr0) < 48:
                raise DumpError(path, "truncated ELF header: PN_XNUM without section header 0")
            e_phnum = struct.unpack_from("<I", shdr0, 44)[0]
        if e_phnum == 0:
            raise DumpError(path, "corrupt ELF vmcore: no program headers")
        if e_phentsize < PHDR64_SIZE:
            raise DumpError(path, f"corrupt ELF header: e_phentsize {e_phentsize}")
        table = source.pread(e_phoff, e_phnum * e_phentsize)
        if len(table) < e_phnum * e_phentsize:
            raise DumpError(path, "truncated ELF header: program headers beyond end of file")

        segments: list[ElfSegment] = []
        note_data = []
        for i in range(e_phnum):
            p_type, _flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz = struct.unpack_from(
                "<IIQQQQQ", table, i * e_phentsize
            )
            if p_type == PT_LOAD:
                segments.append(ElfSegment(p_paddr, p_vaddr, p_filesz, max(p_memsz, p_filesz), p_offset))
            elif p_type == PT_NOTE and p_filesz:
                data = source.pread(p_offset, p_filesz)
                if len(data) < p_filesz:
                    raise DumpError(path, "truncated ELF vmcore: notes beyond end of file")
                note_data.append(data)
        if not segments:
            raise DumpError(path, "corrupt ELF vmcore: no PT_LOAD segments")
        self.elf_segments = segments
        for data in note_data:
            self.notes.extend(parse_notes(data))
        self.vmcoreinfo = vmcoreinfo_from_notes(self.notes)
        self.cpu_count = prstatus_count(self.notes)
        self._build_map(segments, source.size)

    def _build_map(self, segments: list[ElfSegment], file_size: int) -> None:
        pieces: list[tuple[int, int, int, int]] = []  # (start, end, kind, file offset)
        mask = self._page_mask
        for seg in segments:
            file_end = seg.paddr + seg.filesz
            if seg.filesz:
                available = max(0, min(seg.filesz, file_size - seg.offset))
                if available < seg.filesz:
                    self.incomplete = True
                    # A page only partly in the file counts as missing: round the cut down to a page.
                    cut = max(seg.paddr, (seg.paddr + available) & ~mask)
                    if cut > seg.paddr:
                        pieces.append((seg.paddr, cut, _FILE, seg.offset))
                    pieces.append((cut, file_end, _TRUNCATED, 0))
                else:
                    pieces.append((seg.paddr, file_end, _FILE, seg.offset))
            if seg.memsz > seg.filesz:
                pieces.append((file_end, seg.paddr + seg.memsz, _ZERO, 0))
        # Sort by start, file-backed before zero/truncated at the same start; clip overlaps.
        pieces.sort(key=lambda p: (p[0], p[2]))
        starts: list[int] = []
        ends: list[int] = []
        kinds: list[int] = []
        offsets: list[int] = []
        covered = -1
        for start, end, kind, offset in pieces:
            if end <= covered:
                continue
            if start < covered:
                if kind == _FILE:
                    offset += covered - start
                start = covered
            starts.append(start)
            ends.append(end)
            kinds.append(kind)
            offsets.append(offset)
            covered = end
        self._starts, self._ends, self._kinds, self._offsets = starts, ends, kinds, offsets

    def read(self, paddr: int, size: int) -> bytes:
        if size > 0 and paddr >= 0:
            i = bisect_right(self._starts, paddr) - 1
            if i >= 0 and paddr + size <= self._ends[i]:
                kind = self._kinds[i]
                if kind == _FILE:
                    return self._source.pread(self._offsets[i] + paddr - self._starts[i], size)
                if kind == _ZERO:
                    return bytes(size)
        elif size == 0:
            return b""
        return self._read_pieces(paddr, size)

    def _read_pieces(self, paddr: int, size: int) -> bytes:
        if size < 0 or paddr < 0:
            raise ValueError(f"bad physical read: {size} bytes at {paddr:#x}")
        parts = []
        i = bisect_right(self._starts, paddr) - 1
        while size > 0:
            if i < 0 or paddr >= self._ends[i]:
                raise self._not_in_dump(paddr)
            start, end, kind = self._starts[i], self._ends[i], self._kinds[i]
            chunk = min(size, end - paddr)
            if kind == _FILE:
                data = self._source.pread(self._offsets[i] + paddr - start, chunk)
                if len(data) < chunk:
                    raise self._not_in_dump(paddr + len(data), "beyond end of truncated dump file")
                parts.append(data)
            elif kind == _ZERO:
                parts.append(bytes(chunk))
            else:
                raise self._not_in_dump(paddr, "beyond end of truncated dump file")
            paddr += chunk
            size -= chunk
            i += 1
            if size > 0 and (i >= len(self._starts) or self._starts[i] != paddr):
                raise self._not_in_dump(paddr)
        return b"".join(parts)

    def _load_page(self, pfn: int, fault: int) -> bytes | None:
        return self._read_pieces(pfn << self._page_shift, self.page_size)

    def read_chunks(self, start: int, end: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
        mask = self._page_mask
        start &= ~mask
        end = (end + mask) & ~mask
        i = max(bisect_right(self._starts, start) - 1, 0)
        for lo, hi, kind, offset in zip(
            self._starts[i:], self._ends[i:], self._kinds[i:], self._offsets[i:], strict=True
        ):
            if lo >= end:
                return
            a, b = max(lo, start), min(hi, end)
            if a >= b or kind == _TRUNCATED:
                continue
            for pos in range(a, b, chunk):
                n = min(chunk, b - pos)
                if kind == _ZERO:
                    yield pos, bytes(n)
                    continue
                data = self._source.pread(offset + pos - lo, n)
                n = len(data) & ~mask
                if n:
                    yield pos, data[:n] if n < len(data) else data
                if n < min(chunk, b - pos):
                    break  # the file ends early

    def ranges(self) -> list[tuple[int, int]]:
        merged: list[tuple[int, int]] = []
        for start, end, kind in zip(self._starts, self._ends, self._kinds, strict=True):
            if kind == _TRUNCATED:
                continue
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged
