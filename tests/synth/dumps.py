"""Builders that write small synthetic crash dumps for tests, from {paddr: bytes} plus notes.

    pages = paginate({0x1000: b"hello", 0x200000: table_bytes})
    write_elf(tmp_path / "vmcore", pages, vmcoreinfo="OSRELEASE=6.1.0\\n")
    write_kdump(tmp_path / "dump", pages, compression="lzo", excluded={0x3000})
    write_flattened(tmp_path / "flat", tmp_path / "dump")

Keys of `pages` are page-aligned physical addresses; values are at most a page (shorter ones are
zero-padded).  Each builder returns a small layout record (file offsets) so a test can corrupt or
truncate a precise part of the file.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PAGE_SIZE",
    "EM_X86_64",
    "EM_AARCH64",
    "X86_64_PRSTATUS_REGS",
    "LoadSegment",
    "ElfLayout",
    "KdumpLayout",
    "paginate",
    "elf_note",
    "prstatus_x86_64",
    "write_elf",
    "write_kdump",
    "write_flattened",
    "compress_page",
    "exclude_kdump_pages",
]

PAGE_SIZE = 4096
EM_X86_64 = 62
EM_AARCH64 = 183
ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4

# elf_gregset_t order of x86_64 (struct user_regs_struct); NT_PRSTATUS puts it at offset 112.
X86_64_PRSTATUS_REGS = (
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
    "rip cs eflags rsp ss fs_base gs_base ds es fs gs"
).split()
PRSTATUS_SIZE = 336
PRSTATUS_PID_AT = 32
PRSTATUS_REG_AT = 112

Pathish = str | os.PathLike[str]


def paginate(chunks: Mapping[int, bytes], page_size: int = PAGE_SIZE) -> dict[int, bytes]:
    """Split {paddr: bytes of any length} into {page paddr: page bytes}; later chunks overwrite."""
    pages: dict[int, bytearray] = {}
    for paddr, data in chunks.items():
        pos = 0
        while pos < len(data):
            addr = paddr + pos
            base = addr - addr % page_size
            page = pages.setdefault(base, bytearray(page_size))
            n = min(len(data) - pos, base + page_size - addr)
            page[addr - base : addr - base + n] = data[pos : pos + n]
            pos += n
    return {paddr: bytes(page) for paddr, page in sorted(pages.items())}


def _page(data: bytes, page_size: int) -> bytes:
    if len(data) > page_size:
        raise ValueError(f"page of {len(data)} bytes (page size {page_size})")
    return data.ljust(page_size, b"\0")


def elf_note(name: str, ntype: int, desc: bytes) -> bytes:
    """One Elf64_Nhdr record (name NUL-terminated, name and desc padded to 4 bytes)."""
    raw_name = name.encode() + b"\0"

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(raw_name), len(desc), ntype) + pad(raw_name) + pad(desc)


def prstatus_x86_64(pid: int = 0, regs: Mapping[str, int] | None = None) -> bytes:
    """The desc of an x86_64 NT_PRSTATUS note: pr_pid and pr_reg filled, the rest zero."""
    desc = bytearray(PRSTATUS_SIZE)
    struct.pack_into("<i", desc, PRSTATUS_PID_AT, pid)
    for name, value in (regs or {}).items():
        struct.pack_into("<Q", desc, PRSTATUS_REG_AT + 8 * X86_64_PRSTATUS_REGS.index(name), value)
    return bytes(desc)


def _notes_blob(notes: Iterable[tuple[str, int, bytes]], vmcoreinfo: str | None) -> bytes:
    blob = b"".join(elf_note(name, ntype, desc) for name, ntype, desc in notes)
    if vmcoreinfo is not None:
        blob += elf_note("VMCOREINFO", 0, vmcoreinfo.encode())
    return blob


# --- ELF ----------------------------------------------------------------------------------------


@dataclass
class LoadSegment:
    """A PT_LOAD to write: `data` at `paddr`, zero tail up to `memsz`, `vaddr` as given (0 = none)."""

    paddr: int
    data: bytes
    memsz: int | None = None
    vaddr: int = 0


@dataclass
class ElfLayout:
    path: Path
    note_offset: int
    segments: list[tuple[LoadSegment, int]] = field(default_factory=list)  # (segment, file offset)
    size: int = 0


def _runs(pages: Mapping[int, bytes], page_size: int) -> list[tuple[int, bytes]]:
    runs: list[tuple[int, list[bytes]]] = []
    for paddr in sorted(pages):
        if paddr % page_size:
            raise ValueError(f"page address {paddr:#x} is not page-aligned")
        if runs and runs[-1][0] + len(runs[-1][1]) * page_size == paddr:
            runs[-1][1].append(_page(pages[paddr], page_size))
        else:
            runs.append((paddr, [_page(pages[paddr], page_size)]))
    return [(start, b"".join(chunks)) for start, chunks in runs]


def write_elf(
    path: Pathish,
    pages: Mapping[int, bytes] | None = None,
    *,
    segments: Sequence[LoadSegment] = (),
    notes: Iterable[tuple[str, int, bytes]] = (),
    vmcoreinfo: str | None = None,
    machine: int = EM_X86_64,
    vaddr_offset: int | None = None,
    truncate_at: int | None = None,
    e_type: int = ET_CORE,
    pn_xnum: bool = False,
    page_size: int = PAGE_SIZE,
) -> ElfLayout:
    """An ELF64 little-endian vmcore.

    Contiguous runs of `pages` become PT_LOADs (p_vaddr = paddr + vaddr_offset when given, as
    /proc/vmcore's direct map; 0 otherwise, as QEMU); `segments` adds explicit ones (zero tails,
    kernel-text aliases).  `truncate_at` cuts the file where the data of that paddr would start.
    `pn_xnum` stores the program header count in section header 0 (as for > 65534 segments).
    """
    loads = [
        LoadSegment(start, data, vaddr=start + vaddr_offset if vaddr_offset is not None else 0)
        for start, data in _runs(pages or {}, page_size)
    ]
    loads.extend(segments)
    note_blob = _notes_blob(notes, vmcoreinfo)
    phnum = len(loads) + (1 if note_blob else 0)
    note_offset = 64 + 56 * phnum
    data_offset = note_offset + len(note_blob)
    data_offset += -data_offset % page_size

    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    shoff = data_offset + sum(len(seg.data) for seg in loads) if pn_xnum else 0
    e_phnum, e_shnum = (0xFFFF, 1) if pn_xnum else (phnum, 0)
    ehdr += struct.pack(
        "<HHIQQQIHHHHHH", e_type, machine, 1, 0, 64, shoff, 0, 64, 56, e_phnum, 64, e_shnum, 0
    )
    phdrs = b""
    if note_blob:
        phdrs += struct.pack("<IIQQQQQQ", PT_NOTE, 0, note_offset, 0, 0, len(note_blob), len(note_blob), 0)
    layout = ElfLayout(Path(path), note_offset)
    body = bytearray()
    offset = data_offset
    for seg in loads:
        memsz = seg.memsz if seg.memsz is not None else len(seg.data)
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 7, offset, seg.vaddr, seg.paddr, len(seg.data), memsz, 0)
        layout.segments.append((seg, offset))
        body += seg.data
        offset += len(seg.data)
    image = ehdr + phdrs + note_blob
    image = image.ljust(data_offset, b"\0") + bytes(body)
    if pn_xnum:  # section header 0: sh_info holds the real e_phnum
        image += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0)
    if truncate_at is not None:
        for seg, seg_offset in layout.segments:
            if seg.paddr <= truncate_at < seg.paddr + len(seg.data):
                image = image[: seg_offset + truncate_at - seg.paddr]
                break
        else:
            raise ValueError(f"truncate_at {truncate_at:#x} is in no file-backed segment")
    Path(path).write_bytes(image)
    layout.size = len(image)
    return layout


# --- kdump-compressed ---------------------------------------------------------------------------

COMPRESSION_FLAGS = {"none": 0, "zlib": 0x1, "lzo": 0x2, "snappy": 0x4, "zstd": 0x20}


def compress_page(page: bytes, compression: str) -> tuple[bytes, int]:
    """(stored bytes, page_desc flags): raw when the codec does not make the page smaller."""
    if compression == "none":
        return page, 0
    if compression == "zlib":
        data = zlib.compress(page)
    elif compression == "lzo":
        from lzallright import LZOCompressor

        data = LZOCompressor().compress(page)
    elif compression == "snappy":
        import cramjam

        data = bytes(cramjam.snappy.compress_raw(page))
    elif compression == "zstd":
        import cramjam

        data = bytes(cramjam.zstd.compress(page))
    else:
        raise ValueError(f"unknown compression {compression!r}")
    if len(data) >= len(page):
        return page, 0
    return data, COMPRESSION_FLAGS[compression]


@dataclass
class KdumpLayout:
    path: Path
    block_size: int
    sub_header_offset: int
    bitmap_offset: int
    bitmap_size: int  # both bitmaps
    desc_offset: int
    data_offset: int
    desc_of: dict[int, int] = field(default_factory=dict)  # pfn -> file offset of its page_desc
    size: int = 0


def write_kdump(
    path: Pathish,
    pages: Mapping[int, bytes],
    *,
    compression: str | Mapping[int, str] = "zlib",
    excluded: Iterable[int] = (),
    ram: Iterable[int] = (),
    max_pfn: int | None = None,
    header_version: int = 6,
    signature: bytes = b"KDUMP   ",
    vmcoreinfo: str | None = None,
    notes: Iterable[tuple[str, int, bytes]] = (),
    vmcoreinfo_in_subheader: bool = True,
    phys_base: int = 0,
    dump_level: int = 31,
    machine: str = "x86_64",
    release: str = "6.1.0-synthetic",
    nr_cpus: int = 1,
    status: int | None = None,
    split: tuple[int, int] | None = None,
    single_bitmap: bool = False,
    max_mapnr32: int | None = None,
    page_size: int = PAGE_SIZE,
) -> KdumpLayout:
    """A makedumpfile kdump-compressed file.

    `compression` names the codec ("zlib", "lzo", "snappy", "zstd", "none"), or maps page paddr →
    codec (default zlib).  `excluded` page addresses are RAM left out (2nd bitmap bit clear; any
    content in `pages` is dropped); `ram` adds RAM pages with no content given (zeros); addresses
    in neither are holes.  All-zero pages share one data block, as makedumpfile writes them.
    `single_bitmap` writes one bitmap (old DISKDUMP layout).  `max_mapnr32` overrides the 32-bit
    header field (v6 readers must use max_mapnr_64).
    """
    excluded_pfns = {paddr // page_size for paddr in excluded}
    dumped = {paddr // page_size: _page(data, page_size) for paddr, data in pages.items()}
    for paddr in ram:
        dumped.setdefault(paddr // page_size, bytes(page_size))
    for pfn in excluded_pfns:
        dumped.pop(pfn, None)
    ram_pfns = set(dumped) | excluded_pfns
    if max_pfn is None:
        max_pfn = max(ram_pfns, default=0) + 1
    elif ram_pfns and max(ram_pfns) >= max_pfn:
        raise ValueError(f"max_pfn {max_pfn} does not cover pfn {max(ram_pfns)}")

    bitmap_bytes = -(-max_pfn // 8)
    bitmap_bytes += -bitmap_bytes % page_size
    bitmap1 = bytearray(bitmap_bytes)
    bitmap2 = bytearray(bitmap_bytes)
    for pfn in ram_pfns:
        bitmap1[pfn >> 3] |= 1 << (pfn & 7)
    for pfn in dumped:
        bitmap2[pfn >> 3] |= 1 << (pfn & 7)
    if single_bitmap:
        bitmap = bytes(bitmap2)
    else:
        bitmap = bytes(bitmap1) + bytes(bitmap2)
    bitmap_blocks = len(bitmap) // page_size

    # Sub-header block(s): the struct, then the notes and VMCOREINFO it points at.
    sub_offset = page_size
    note_blob = _notes_blob(notes, vmcoreinfo)
    vmci_raw = vmcoreinfo.encode() if vmcoreinfo is not None else b""
    notes_at = sub_offset + 104
    vmci_at = notes_at + len(note_blob)
    sub_len = 104 + len(note_blob) + len(vmci_raw)
    sub_hdr_size = -(-sub_len // page_size) if header_version >= 1 and signature == b"KDUMP   " else 0
    start_pfn, end_pfn = split if split else (0, max_pfn)
    sub = struct.pack(
        "<QiiQQQQQQQQQQQ",
        phys_base,
        dump_level,
        1 if split else 0,
        start_pfn,
        end_pfn,
        vmci_at if vmci_raw and vmcoreinfo_in_subheader else 0,
        len(vmci_raw) if vmcoreinfo_in_subheader else 0,
        notes_at if note_blob else 0,
        len(note_blob),
        0,
        0,
        start_pfn,
        end_pfn,
        max_pfn,
    )

    bitmap_offset = (1 + sub_hdr_size) * page_size
    desc_offset = bitmap_offset + len(bitmap)
    data_offset = desc_offset + 24 * len(dumped)
    descs = bytearray()
    data = bytearray()
    desc_of: dict[int, int] = {}
    zero_block: tuple[int, int, int] | None = None
    codecs_used = 0
    for i, pfn in enumerate(sorted(dumped)):
        page = dumped[pfn]
        codec = compression if isinstance(compression, str) else compression.get(pfn * page_size, "zlib")
        if page.count(0) == page_size and zero_block is not None and codec == zero_block[2]:
            offset, size, flags = zero_block[0], zero_block[1], COMPRESSION_FLAGS[codec]
            flags = flags if size < page_size else 0
        else:
            stored, flags = compress_page(page, codec)
            offset, size = data_offset + len(data), len(stored)
            data += stored
            if page.count(0) == page_size:
                zero_block = (offset, size, codec)
        codecs_used |= COMPRESSION_FLAGS[codec]
        desc_of[pfn] = desc_offset + 24 * i
        descs += struct.pack("<QIIQ", offset, size, flags, 0)

    if status is None:
        status = codecs_used
    uts = b"".join(
        s.encode().ljust(65, b"\0") for s in ("Linux", "synthetic", release, "#1 SMP", machine, "(none)")
    )
    mapnr32 = max_mapnr32 if max_mapnr32 is not None else min(max_pfn, 0xFFFFFFFF)
    header = (
        signature + struct.pack("<i", header_version) + uts + bytes(6) + struct.pack("<qq", 1700000000, 0)
    )
    header += struct.pack(
        "<IiiIIIIIIi",
        status,
        page_size,
        sub_hdr_size,
        bitmap_blocks,
        mapnr32,
        len(ram_pfns),
        0,
        0,
        0,
        nr_cpus,
    )
    header += bytes(8 * max(nr_cpus, 0))

    image = bytearray(header.ljust(page_size, b"\0"))
    if sub_hdr_size:
        struct_part = sub[: _sub_len(header_version)].ljust(len(sub), b"\0")
        block = (struct_part + note_blob + vmci_raw).ljust(sub_hdr_size * page_size, b"\0")
        image += block
    image += bitmap + descs + data
    Path(path).write_bytes(image)
    return KdumpLayout(
        Path(path),
        page_size,
        sub_offset,
        bitmap_offset,
        len(bitmap),
        desc_offset,
        data_offset,
        desc_of,
        len(image),
    )


def _sub_len(version: int) -> int:
    return {1: 16, 2: 32, 3: 48, 4: 64, 5: 80}.get(version, 104)


# --- flattened ----------------------------------------------------------------------------------


def write_flattened(
    path: Pathish,
    source: bytes | Pathish,
    *,
    seed: int = 0,
    max_record: int = 5000,
    shuffle: bool = True,
    overwrite: bool = True,
    gaps: bool = True,
) -> Path:
    """Wrap a dump (bytes or a file) in makedumpfile's flattened format.

    Records get odd random sizes (1..max_record bytes) and, with `shuffle`, random order; with
    `overwrite`, garbage records come first and the real data overwrites them later (as
    makedumpfile rewrites its headers); with `gaps`, all-zero records (except the last) are left
    out, so the reader must fill gaps with zeros.
    """
    data = source if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    rng = random.Random(seed)
    records: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        size = min(rng.randint(1, max_record), len(data) - pos)
        records.append((pos, bytes(data[pos : pos + size])))
        pos += size
    last = records[-1] if records else None
    if gaps:
        records = [r for r in records if r is last or r[1].count(0) != len(r[1])]
    # Garbage that later records overwrite: one straddling two adjacent kept records, one at 0.
    garbage: list[tuple[int, bytes]] = []
    if overwrite and records:
        kept = sorted(records, key=lambda r: r[0])
        garbage.append((0, b"\xa5" * len(kept[0][1])) if kept[0][0] == 0 else (kept[0][0], b"\xa5"))
        for first, second in zip(kept[len(kept) // 2 :], kept[len(kept) // 2 + 1 :], strict=False):
            if first[0] + len(first[1]) == second[0]:
                start = first[0] + len(first[1]) // 2
                garbage.append((start, b"\x5a" * (second[0] + len(second[1]) - start)))
                break
    if shuffle:
        rng.shuffle(records)
    records = garbage + records
    out = bytearray(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1))
    out = out.ljust(4096, b"\0")
    for offset, chunk in records:
        out += struct.pack(">qq", offset, len(chunk)) + chunk
    out += struct.pack(">qq", -1, 0)
    Path(path).write_bytes(out)
    return Path(path)


# --- filtering a real kdump-compressed file ------------------------------------------------------

# disk_dump_header of a 64-bit machine: after signature, version, utsname (6×65) and the timeval comes
# status, then block_size, sub_hdr_size, bitmap_blocks (makedumpfile's diskdump_mod.h).
_KDUMP_BLOCKS_AT = 428
_PAGE_DESC_SIZE = 24


def exclude_kdump_pages(source: Pathish, path: Pathish, pfns: Iterable[int]) -> Path:
    """Copy a kdump-compressed file (two bitmaps) with the given page frames excluded, as makedumpfile's
    filter would have left them out: their 2nd-bitmap bits cleared and their page descriptors removed.
    The page data stays where it was (descriptors hold absolute offsets); the descriptor table, one entry
    per page shorter, is padded at its end.  Frames not in the dump raise ValueError."""
    data = bytearray(Path(source).read_bytes())
    if data[:8] != b"KDUMP   ":
        raise ValueError(f"{source}: not a kdump-compressed file")
    block_size, sub_blocks, bitmap_blocks = struct.unpack_from("<iiI", data, _KDUMP_BLOCKS_AT)
    bitmap_at = block_size * (1 + sub_blocks)
    half = bitmap_blocks * block_size // 2
    second = bitmap_at + half
    desc_at = bitmap_at + 2 * half
    total = sum(int(b).bit_count() for b in data[second : second + half])
    for pfn in sorted(set(pfns), reverse=True):
        byte, bit = second + (pfn >> 3), 1 << (pfn & 7)
        if pfn >> 3 >= half or not data[byte] & bit:
            raise ValueError(f"pfn {pfn:#x} is not dumped in {source}")
        index = sum(int(b).bit_count() for b in data[second:byte]) + (data[byte] & (bit - 1)).bit_count()
        data[byte] &= ~bit & 0xFF
        start = desc_at + index * _PAGE_DESC_SIZE
        end = desc_at + total * _PAGE_DESC_SIZE
        data[start : end - _PAGE_DESC_SIZE] = data[start + _PAGE_DESC_SIZE : end]
        data[end - _PAGE_DESC_SIZE : end] = bytes(_PAGE_DESC_SIZE)
        total -= 1
    Path(path).write_bytes(data)
    return Path(path)
