"""makedumpfile's kdump-compressed format ("KDUMP   ") and the older "DISKDUMP": bitmaps + page_desc[]."""

from __future__ import annotations

import re
import struct
from array import array
from collections.abc import Callable, Iterator

from kcrash.errors import DumpError, MemoryReadError

from .base import PhysicalMemory, parse_notes, prstatus_count, vmcoreinfo_from_notes, vmcoreinfo_text
from .source import ByteSource

__all__ = ["KdumpMemory", "KDUMP_SIGNATURES"]

KDUMP_SIGNATURES = (b"KDUMP   ", b"DISKDUMP")

# disk_dump_header (64-bit layout): signature, header_version, new_utsname (6 x 65 bytes), 6 bytes of
# padding, struct timeval, then the fields below at offset 424; tasks[] follows at 464.
HEADER_SIZE = 464
UTS_LEN = 65
UTS_MACHINE_AT = 12 + 4 * UTS_LEN
HEADER_FIELDS = struct.Struct("<IiiIIIIIIi")  # status … nr_cpus
HEADER_FIELDS_AT = 424
# kdump_sub_header (64-bit): bytes needed by each header_version.
SUB_HEADER = struct.Struct("<QiiQQQQQQQQQQQ")
SUB_HEADER_NEEDS = {1: 16, 2: 32, 3: 48, 4: 64, 5: 80, 6: 104}
PAGE_DESC = struct.Struct("<QIIQ")  # offset, size, flags, page_flags

DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
DUMP_DH_EXCLUDED_VMEMMAP = 0x10
DUMP_DH_COMPRESSED_ZSTD = 0x20
COMPRESSION_MASK = (
    DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD
)
CODEC_NAMES = {
    DUMP_DH_COMPRESSED_ZLIB: "zlib",
    DUMP_DH_COMPRESSED_LZO: "lzo",
    DUMP_DH_COMPRESSED_SNAPPY: "snappy",
    DUMP_DH_COMPRESSED_ZSTD: "zstd",
}

# Prefix popcounts of the dumpable bitmap are kept per block of 4096 pfns (512 bitmap bytes), so a
# pfn's page_desc index costs one table look-up plus one popcount of at most 511 bytes.
PFN_BLOCK_SHIFT = 12
BLOCK_BYTES = (1 << PFN_BLOCK_SHIFT) >> 3

_decoders: dict[int, Callable[[bytes, int], bytes]] = {}


def _decoder(flag: int) -> Callable[[bytes, int], bytes]:
    """The decompressor for one page_desc compression flag; codec modules are imported on first use."""
    decode = _decoders.get(flag)
    if decode is not None:
        return decode
    if flag == DUMP_DH_COMPRESSED_ZLIB:
        import zlib

        def decode(data: bytes, size: int) -> bytes:
            return zlib.decompress(data, bufsize=size)

    elif flag == DUMP_DH_COMPRESSED_LZO:
        from lzallright import LZOCompressor

        def decode(data: bytes, size: int) -> bytes:
            return LZOCompressor.decompress(data, output_size_hint=size)

    elif flag == DUMP_DH_COMPRESSED_SNAPPY:
        import cramjam

        def decode(data: bytes, size: int) -> bytes:
            return bytes(cramjam.snappy.decompress_raw(data, output_len=size))

    else:
        import cramjam

        def decode(data: bytes, size: int) -> bytes:
            return bytes(cramjam.zstd.decompress(data, output_len=size))

    _decoders[flag] = decode
    return decode


_MIXED_OR_FULL = re.compile(rb"\xff+|[^\x00\xff]")
_SCAN_CHUNK = 4096


def bitmap_runs(bitmap: bytes, limit: int) -> list[tuple[int, int]]:
    """Runs [start, end) of set bits (bit i = byte i//8, bit i%8) below `limit`, merged.

    All-zero and all-one chunks are settled by one comparison each; within mixed chunks a regex
    finds 0xff runs, and only bytes that are neither 0x00 nor 0xff are looked at bit by bit.
    """
    runs: list[list[int]] = []

    def add(lo: int, hi: int) -> None:
        if runs and runs[-1][1] == lo:
            runs[-1][1] = hi
        else:
            runs.append([lo, hi])

    zero, full = bytes(_SCAN_CHUNK), b"\xff" * _SCAN_CHUNK
    for base in range(0, min(len(bitmap), (limit + 7) // 8), _SCAN_CHUNK):
        chunk = bitmap[base : base + _SCAN_CHUNK]
        if chunk == zero[: len(chunk)]:
            continue
        if chunk == full[: len(chunk)]:
            add(base * 8, (base + len(chunk)) * 8)
            continue
        for match in _MIXED_OR_FULL.finditer(chunk):
            start, end = match.span()
            byte = chunk[start]
            if byte == 0xFF:
                add((base + start) * 8, (base + end) * 8)
            else:
                for bit in range(8):
                    if byte >> bit & 1:
                        add((base + start) * 8 + bit, (base + start) * 8 + bit + 1)
    result = []
    for lo, hi in runs:
        if lo >= limit:
            break
        result.append((lo, min(hi, limit)))
    return result


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


class KdumpMemory(PhysicalMemory):
    """Physical memory of a kdump-compressed (or old diskdump) file.

    1st bitmap bit clear → not RAM (PageNotInDumpError); 2nd bitmap bit clear → excluded
    (PageExcludedError, or zeros with zero_excluded); otherwise page_desc[popcount of the 2nd bitmap
    below the pfn] locates the page data.
    """

    def __init__(
        self, source: ByteSource, path: str, zero_excluded: bool = False, flattened: bool = False
    ) -> None:
        head = source.pread(0, HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            raise DumpError(path, "truncated kdump header")
        signature = head[:8]
        machine = _cstr(head[UTS_MACHINE_AT : UTS_MACHINE_AT + UTS_LEN])
        if machine and machine != "x86_64":
            raise DumpError(path, f"unsupported machine {machine} (kcrash supports x86_64)")
        (header_version,) = struct.unpack_from("<i", head, 8)
        (
            status,
            block_size,
            sub_hdr_size,
            bitmap_blocks,
            max_mapnr,
            _total_ram,
            _device,
            _written,
            _cur_cpu,
            nr_cpus,
        ) = HEADER_FIELDS.unpack_from(head, HEADER_FIELDS_AT)
        if block_size < 512 or block_size > 1 << 20 or block_size & (block_size - 1):
            raise DumpError(path, f"corrupt kdump header: block_size {block_size}")
        if header_version < 0 or header_version > 64:
            raise DumpError(path, f"corrupt kdump header: header_version {header_version}")
        if sub_hdr_size < 0 or bitmap_blocks == 0:
            raise DumpError(
                path, f"corrupt kdump header: sub_hdr_size {sub_hdr_size}, bitmap_blocks {bitmap_blocks}"
            )
        super().__init__(source, path, block_size, zero_excluded)
        self.uts_release = _cstr(head[12 + 2 * UTS_LEN : 12 + 3 * UTS_LEN])
        self.header_version = header_version
        self.status = status
        self.incomplete = bool(status & DUMP_DH_COMPRESSED_INCOMPLETE)
        self.cpu_count = nr_cpus if nr_cpus > 0 else None
        kind = "DISKDUMP" if signature == b"DISKDUMP" else "KDUMP"
        codecs = [name for flag, name in CODEC_NAMES.items() if status & flag]
        self.format_name = (
            ("flattened " if flattened else "") + kind + (f" ({'/'.join(codecs)})" if codecs else "")
        )

        self._start_pfn = 0
        self._end_pfn = 1 << 64
        if kind == "KDUMP" and header_version >= 1:
            max_mapnr = self._parse_sub_header(source, path, header_version, block_size, max_mapnr)
        if max_mapnr == 0:
            raise DumpError(path, "corrupt kdump header: max_mapnr is 0")
        if not machine:
            # Nothing names the machine: an x86_64 NT_PRSTATUS is 336 bytes.
            if not any(n.name == "CORE" and n.type == 1 and len(n.desc) == 336 for n in self.notes):
                raise DumpError(path, "unsupported machine (the kdump header names none)")
        self.machine = "x86_64"
        self._max_pfn = max_mapnr
        self._read_bitmaps(source, path, block_size, sub_hdr_size, bitmap_blocks, max_mapnr)

    def _parse_sub_header(
        self, source: ByteSource, path: str, version: int, block_size: int, max_mapnr: int
    ) -> int:
        raw = source.pread(block_size, SUB_HEADER.size)
        if len(raw) < SUB_HEADER_NEEDS[min(version, 6)]:
            raise DumpError(path, "truncated kdump header (sub-header)")
        raw = raw.ljust(SUB_HEADER.size, b"\0")
        (phys_base, dump_level, split, start_pfn, end_pfn, off_vmcoreinfo, size_vmcoreinfo,
         off_note, size_note, _off_erase, _size_erase, start_pfn_64, end_pfn_64,
         max_mapnr_64) = SUB_HEADER.unpack(raw)  # fmt: skip
        self.phys_base = phys_base
        self.dump_level = dump_level
        if version >= 6:
            start_pfn, end_pfn = start_pfn_64, end_pfn_64
            max_mapnr = max_mapnr_64 or max_mapnr
        if version >= 2 and split:
            self.partial = True  # one file of a split set: it holds only [start_pfn, end_pfn)
            self._start_pfn, self._end_pfn = start_pfn, end_pfn
        if version >= 4 and size_note:
            self.notes = parse_notes(self._blob(source, path, off_note, size_note, "notes"))
            self.cpu_count = self.cpu_count or prstatus_count(self.notes)
        if version >= 3 and size_vmcoreinfo:
            self.vmcoreinfo = vmcoreinfo_text(
                self._blob(source, path, off_vmcoreinfo, size_vmcoreinfo, "VMCOREINFO")
            )
        else:
            self.vmcoreinfo = vmcoreinfo_from_notes(self.notes)
        return max_mapnr

    @staticmethod
    def _blob(source: ByteSource, path: str, offset: int, size: int, what: str) -> bytes:
        if size > 1 << 30 or offset + size > source.size:
            raise DumpError(
                path, f"truncated kdump header: {what} ({size} bytes at offset {offset}) beyond end of file"
            )
        return source.pread(offset, size)

    def _read_bitmaps(
        self,
        source: ByteSource,
        path: str,
        block_size: int,
        sub_hdr_size: int,
        bitmap_blocks: int,
        max_mapnr: int,
    ) -> None:
        offset = (1 + sub_hdr_size) * block_size
        length = bitmap_blocks * block_size
        if offset + length > source.size:
            raise DumpError(
                path,
                f"corrupt bitmap: {length} bytes at offset {offset} extend past end of file"
                f" ({source.size} bytes)",
            )
        if length * 4 >= max_mapnr:
            # Two bitmaps: RAM pages, then dumped pages.
            half = length // 2
            self._bitmap1 = source.pread(offset, half)
            self._bitmap2 = source.pread(offset + half, half)
        elif length * 8 >= max_mapnr:
            # One bitmap (old diskdump): every RAM page it marks was dumped.
            self._bitmap1 = self._bitmap2 = source.pread(offset, length)
        else:
            raise DumpError(path, f"corrupt bitmap: {length * 8} bits cannot cover max_mapnr {max_mapnr}")
        self._desc_base = offset + length
        if self._desc_base > source.size:
            raise DumpError(path, "corrupt kdump header: page descriptors start past end of file")
        self._max_pfn = min(max_mapnr, len(self._bitmap1) * 8)
        self._limit_pfn = min(self._max_pfn, self._end_pfn)
        self._prefix = array("Q", [0])
        self._dumped: list[tuple[int, int]] | None = None

    # --- page look-up -----------------------------------------------------------------------------

    def _desc_index(self, pfn: int) -> int:
        block = pfn >> PFN_BLOCK_SHIFT
        prefix = self._prefix
        bitmap = self._bitmap2
        if block >= len(prefix):
            total = prefix[-1]
            for k in range(len(prefix) - 1, block):
                total += int.from_bytes(bitmap[k * BLOCK_BYTES : (k + 1) * BLOCK_BYTES], "little").bit_count()
                prefix.append(total)
        byte = pfn >> 3
        count = prefix[block] + int.from_bytes(bitmap[block * BLOCK_BYTES : byte], "little").bit_count()
        return count + (bitmap[byte] & ((1 << (pfn & 7)) - 1)).bit_count()

    def _load_page(self, pfn: int, fault: int) -> bytes | None:
        if pfn >= self._max_pfn or not self._bitmap1[pfn >> 3] >> (pfn & 7) & 1:
            raise self._not_in_dump(fault)
        if pfn < self._start_pfn or pfn >= self._end_pfn:
            raise self._not_in_dump(fault, "page in another file of the split dump")
        if not self._bitmap2[pfn >> 3] >> (pfn & 7) & 1:
            return None
        source = self._source
        at = self._desc_base + PAGE_DESC.size * self._desc_index(pfn)
        raw = source.pread(at, PAGE_DESC.size)
        if len(raw) < PAGE_DESC.size:
            raise self._not_in_dump(fault, "page descriptor beyond end of file (truncated dump)")
        offset, size, flags, _page_flags = PAGE_DESC.unpack(raw)
        if offset == 0 or size == 0:
            raise self._not_in_dump(fault, "page not written (incomplete dump)")
        if size > self.page_size:
            raise MemoryReadError(
                fault, True, f"corrupt page descriptor ({size}-byte page): physical address {fault:x}"
            )
        data = source.pread(offset, size)
        if len(data) < size:
            raise self._not_in_dump(fault, "page data beyond end of file (truncated dump)")
        return self._decode(data, size, flags, fault)

    def _decode(self, data: bytes, size: int, flags: int, fault: int) -> bytes:
        page_size = self.page_size
        codec = flags & COMPRESSION_MASK
        if not codec:
            if size != page_size:
                raise MemoryReadError(
                    fault, True, f"corrupt page descriptor ({size}-byte raw page): physical address {fault:x}"
                )
            return data
        codec &= -codec  # lowest flag, as makedumpfile sets exactly one
        try:
            page = _decoder(codec)(data, page_size)
        except Exception as exc:  # each codec library raises its own error type
            raise MemoryReadError(
                fault, True, f"corrupt {CODEC_NAMES[codec]} page ({exc}): physical address {fault:x}"
            ) from exc
        if len(page) != page_size:
            raise MemoryReadError(
                fault,
                True,
                f"corrupt {CODEC_NAMES[codec]} page ({len(page)} bytes): physical address {fault:x}",
            )
        return page

    def read_chunks(self, start: int, end: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
        """Runs of dumped pages come from the bitmap; their descriptors are consecutive in the file, so a
        run is read with one descriptor read and one data read per piece, then decoded page by page."""
        shift, size = self._page_shift, self.page_size
        lo_pfn = max(start >> shift, self._start_pfn)
        hi_pfn = min((end + size - 1) >> shift, self._limit_pfn)
        per = max(chunk >> shift, 1)
        if self._dumped is None:
            self._dumped = bitmap_runs(self._bitmap2, self._max_pfn)
        for run_lo, run_hi in self._dumped:
            a, b = max(run_lo, lo_pfn), min(run_hi, hi_pfn)
            if a >= b:
                continue
            index = self._desc_index(a)
            for first in range(a, b, per):
                n = min(per, b - first)
                yield from self._read_run(first, n, index)
                index += n

    def _read_run(self, first: int, n: int, index: int) -> Iterator[tuple[int, bytes]]:
        source, shift = self._source, self._page_shift
        raw = source.pread(self._desc_base + PAGE_DESC.size * index, PAGE_DESC.size * n)
        descs = [PAGE_DESC.unpack_from(raw, i * PAGE_DESC.size) for i in range(len(raw) // PAGE_DESC.size)]
        valid = [d for d in descs if d[0] and 0 < d[1] <= self.page_size]
        lo = min((d[0] for d in valid), default=0)
        hi = max((d[0] + d[1] for d in valid), default=0)
        blob = source.pread(lo, hi - lo) if valid and hi - lo <= 4 * n * self.page_size else None
        parts: list[bytes] = []
        run_start = first
        for i in range(n):
            pfn = first + i
            page = None
            if i < len(descs):
                offset, size, flags, _ = descs[i]
                if offset and 0 < size <= self.page_size:
                    data = (
                        blob[offset - lo : offset - lo + size]
                        if blob is not None
                        else source.pread(offset, size)
                    )
                    try:
                        page = self._decode(data, size, flags, pfn << shift) if len(data) == size else None
                    except MemoryReadError:
                        page = None
            if page is None:
                if parts:
                    yield run_start << shift, b"".join(parts)
                parts, run_start = [], pfn + 1
                continue
            parts.append(page)
        if parts:
            yield run_start << shift, b"".join(parts)

    def is_excluded(self, paddr: int) -> bool:
        pfn = paddr >> self._page_shift
        if pfn < self._start_pfn or pfn >= self._limit_pfn:
            return False
        byte, bit = pfn >> 3, 1 << (pfn & 7)
        return bool(self._bitmap1[byte] & bit) and not self._bitmap2[byte] & bit

    def ranges(self) -> list[tuple[int, int]]:
        shift = self._page_shift
        result = []
        for lo, hi in bitmap_runs(self._bitmap1, self._max_pfn):
            lo, hi = max(lo, self._start_pfn), min(hi, self._end_pfn)
            if lo < hi:
                result.append((lo << shift, hi << shift))
        return result
