"""The physical-memory interface every dump format implements, its LRU page cache, and ELF note parsing."""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from kcrash.errors import MemoryReadError, PageExcludedError, PageNotInDumpError

from .source import ByteSource

__all__ = ["Note", "ElfSegment", "PhysicalMemory", "parse_notes", "vmcoreinfo_from_notes"]

NT_PRSTATUS = 1
DEFAULT_CACHE_PAGES = 4096

# ELF e_machine values worth naming in an error message.
ELF_MACHINES = {
    3: "i386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    40: "arm",
    62: "x86_64",
    183: "aarch64",
    243: "riscv64",
    258: "loongarch64",
}


@dataclass(frozen=True)
class Note:
    """One ELF note: the owner name ("CORE", "VMCOREINFO", "QEMU"…), its type and its payload."""

    name: str
    type: int
    desc: bytes


class ElfSegment(NamedTuple):
    """A PT_LOAD program header of an ELF vmcore."""

    paddr: int
    vaddr: int
    filesz: int
    memsz: int
    offset: int


def parse_notes(data: bytes) -> list[Note]:
    """The notes of an ELF note section (Elf64_Nhdr records, 4-byte aligned).

    Stops at zero padding or at a record that runs past the end (kdump pads its note segments),
    rather than rejecting the whole dump for one bad note.
    """
    notes: list[Note] = []
    pos, end = 0, len(data)
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        if namesz == 0 and descsz == 0 and ntype == 0:
            break
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        next_at = desc_at + ((descsz + 3) & ~3)
        if desc_at + descsz > end:
            break
        name = bytes(data[name_at : name_at + namesz]).split(b"\0", 1)[0].decode("ascii", "replace")
        notes.append(Note(name, ntype, bytes(data[desc_at : desc_at + descsz])))
        pos = next_at
    return notes


def vmcoreinfo_from_notes(notes: list[Note]) -> str | None:
    """The text of the first VMCOREINFO note, without trailing NULs."""
    for note in notes:
        if note.name == "VMCOREINFO":
            return vmcoreinfo_text(note.desc)
    return None


def vmcoreinfo_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def prstatus_count(notes: list[Note]) -> int | None:
    count = sum(1 for note in notes if note.name == "CORE" and note.type == NT_PRSTATUS)
    return count or None


class PhysicalMemory:
    """The physical address space of a dump, read by address; subclasses supply `_load_page`.

    `read` raises PageExcludedError for pages the dump filtered out (zeros instead when
    `zero_excluded` is set) and PageNotInDumpError for pages the dump does not have, each carrying
    the first physical address that could not be read.
    """

    path: str
    format_name: str
    page_size: int
    machine: str
    notes: list[Note]
    vmcoreinfo: str | None
    phys_base: int | None = None
    dump_level: int | None = None
    incomplete: bool = False
    partial: bool = False
    cpu_count: int | None = None
    elf_segments: list[ElfSegment]

    def __init__(self, source: ByteSource, path: str, page_size: int, zero_excluded: bool = False) -> None:
        self._source = source
        self.path = path
        self.page_size = page_size
        self._page_shift = page_size.bit_length() - 1
        self._page_mask = page_size - 1
        self._zero_page = bytes(page_size)
        self.zero_excluded = zero_excluded
        self.notes = []
        self.vmcoreinfo = None
        self.elf_segments = []
        self.cache_pages = DEFAULT_CACHE_PAGES
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

    # --- what a format implements -------------------------------------------------------------

    def _load_page(self, pfn: int, fault: int) -> bytes | None:
        """The page frame's bytes; None if the dump excluded it; PageNotInDumpError(fault) if absent."""
        raise NotImplementedError

    def ranges(self) -> list[tuple[int, int]]:
        """Merged physical [start, end) spans the dump describes (excluded pages included)."""
        raise NotImplementedError

    def is_excluded(self, paddr: int) -> bool:
        """Whether the dump format says the page holding `paddr` was filtered out."""
        return False

    # --- reading --------------------------------------------------------------------------------

    def read(self, paddr: int, size: int) -> bytes:
        """`size` bytes of physical memory at `paddr`, across pages and segments as needed."""
        if size <= 0 or paddr < 0:
            if size == 0:
                return b""
            raise ValueError(f"bad physical read: {size} bytes at {paddr:#x}")
        offset = paddr & self._page_mask
        pfn = paddr >> self._page_shift
        if offset + size <= self.page_size:
            page = self._page(pfn, paddr)
            return page if size == self.page_size else page[offset : offset + size]
        parts = []
        fault = paddr
        while size > 0:
            chunk = min(size, self.page_size - offset)
            page = self._page(pfn, fault)
            parts.append(page if chunk == self.page_size else page[offset : offset + chunk])
            size -= chunk
            pfn += 1
            offset = 0
            fault = pfn << self._page_shift
        return b"".join(parts)

    def _page(self, pfn: int, fault: int) -> bytes:
        cache = self._cache
        page = cache.get(pfn)
        if page is not None:
            cache.move_to_end(pfn)  # most recently used goes last
            self.cache_hits += 1
            return page
        self.cache_misses += 1
        page = self._load_page(pfn, fault)
        if page is None:
            if self.zero_excluded:
                return self._zero_page
            raise PageExcludedError(fault)
        if len(cache) >= self.cache_pages:
            if self.cache_pages <= 0:
                return page
            while len(cache) >= self.cache_pages:
                cache.popitem(last=False)
        cache[pfn] = page
        return page

    def _not_in_dump(self, fault: int, why: str = "seek error") -> PageNotInDumpError:
        return PageNotInDumpError(fault, physical=True, why=why)

    def read_chunks(self, start: int, end: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
        """(paddr, bytes) of the readable pages in [start, end) (page-aligned), in address order, in
        pieces of at most `chunk` bytes; pages the dump lacks or excluded are left out (never zeroes),
        and the page cache is neither used nor filled. For scanning memory in bulk (search)."""
        shift, size = self._page_shift, self.page_size
        for lo, hi in self.ranges():
            lo, hi = max(lo, start) >> shift, (min(hi, end) + size - 1) >> shift
            run_start = lo
            parts: list[bytes] = []
            for pfn in range(lo, hi):
                try:
                    page = self._load_page(pfn, pfn << shift)
                except MemoryReadError:
                    page = None
                if page is None or len(parts) * size >= chunk:
                    if parts:
                        yield run_start << shift, b"".join(parts)
                    parts, run_start = [], pfn + 1
                    if page is None:
                        continue
                    run_start = pfn
                parts.append(page)
            if parts:
                yield run_start << shift, b"".join(parts)

    # --- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the dump file."""
        self._cache.clear()
        self._source.close()

    def __enter__(self) -> PhysicalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format_name} {self.path!r}>"
