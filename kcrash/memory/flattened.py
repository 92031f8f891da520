"""makedumpfile's flattened stream (-F): indexed once into a virtual "rearranged" file read by offset."""

from __future__ import annotations

import struct
from bisect import bisect_right

from kcrash.errors import DumpError

from .source import ByteSource

__all__ = ["FlattenedSource", "FLAT_SIGNATURE", "is_flattened"]

FLAT_SIGNATURE = b"makedumpfile"
FLAT_HEADER_SIZE = 4096
FLAT_HEADER = struct.Struct(">16sqq")  # signature, type, version
FLAT_RECORD = struct.Struct(">qq")  # offset in the rearranged file, size of the data that follows
END_OFFSET = -1


def is_flattened(head: bytes) -> bool:
    return head[:16] == FLAT_SIGNATURE.ljust(16, b"\0")


class FlattenedSource(ByteSource):
    """The rearranged file a flattened stream describes, without writing it out.

    Records are indexed on open into sorted, non-overlapping (rearranged offset, stream offset,
    size) arrays; a later record wins where two overlap (makedumpfile rewrites its headers).
    A read is one bisect; gaps between records read as zeros.
    """

    def __init__(self, stream: ByteSource, path: str) -> None:
        self.name = path
        self._stream = stream
        head = stream.pread(0, FLAT_HEADER.size)
        if len(head) < FLAT_HEADER.size or stream.size < FLAT_HEADER_SIZE:
            raise DumpError(path, "truncated flattened header")
        _sig, ftype, version = FLAT_HEADER.unpack(head)
        if ftype != 1 or version != 1:
            raise DumpError(path, f"unsupported flattened format (type {ftype}, version {version})")
        records = self._scan(stream, path)
        self._index(records)

    @staticmethod
    def _scan(stream: ByteSource, path: str) -> list[tuple[int, int, int]]:
        """(rearranged offset, stream offset of data, size) of every record, in stream order."""
        records = []
        buf = stream.buffer
        end = stream.size
        pos = FLAT_HEADER_SIZE
        unpack = FLAT_RECORD.unpack_from
        while pos + FLAT_RECORD.size <= end:
            if buf is not None:
                offset, size = unpack(buf, pos)
            else:
                offset, size = unpack(stream.pread(pos, FLAT_RECORD.size))
            if offset == END_OFFSET:
                break
            if offset < 0 or size < 0:
                raise DumpError(
                    path, f"corrupt flattened record at offset {pos} (offset {offset}, size {size})"
                )
            pos += FLAT_RECORD.size
            # A stream cut short keeps what arrived; the rest of the rearranged file is missing.
            size = min(size, end - pos)
            if size:
                records.append((offset, pos, size))
            pos += size
        return records

    def _index(self, records: list[tuple[int, int, int]]) -> None:
        ordered = _resolve_overlaps(records)
        self._starts = [r[0] for r in ordered]
        self._flat = [r[1] for r in ordered]
        self._sizes = [r[2] for r in ordered]
        self.size = ordered[-1][0] + ordered[-1][2] if ordered else 0
        self.buffer = None
        self.record_count = len(records)

    def pread(self, offset: int, size: int) -> bytes:
        if size <= 0 or offset >= self.size:
            return b""
        size = min(size, self.size - offset)
        starts, flat, sizes, stream = self._starts, self._flat, self._sizes, self._stream
        i = bisect_right(starts, offset) - 1
        if i >= 0 and offset + size <= starts[i] + sizes[i]:
            return stream.pread(flat[i] + offset - starts[i], size)
        parts = []
        count = len(starts)
        while size > 0:
            if i + 1 < count and starts[i + 1] <= offset:
                i += 1
                continue
            if i >= 0 and offset < starts[i] + sizes[i]:
                chunk = min(size, starts[i] + sizes[i] - offset)
                parts.append(stream.pread(flat[i] + offset - starts[i], chunk))
            else:
                gap_end = starts[i + 1] if i + 1 < count else offset + size
                chunk = min(size, gap_end - offset)
                parts.append(bytes(chunk))
            offset += chunk
            size -= chunk
        return b"".join(parts)

    def close(self) -> None:
        self._stream.close()


def _resolve_overlaps(records: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Sorted, non-overlapping (rearranged offset, stream offset, size), later records winning.

    Records are taken in offset order; the pieces already placed that a record overlaps are
    always a suffix of the output (they end after it starts), and only that suffix is repainted.
    """
    out: list[tuple[int, int, int, int]] = []  # (start, flat, size, stream order)
    for seq, (start, flat, size) in sorted(enumerate(records), key=lambda r: r[1][0]):
        k = len(out)
        while k and out[k - 1][0] + out[k - 1][2] > start:
            k -= 1
        if k == len(out):
            out.append((start, flat, size, seq))
            continue
        group = [*out[k:], (start, flat, size, seq)]
        del out[k:]
        out.extend(_paint(sorted(group, key=lambda p: p[3])))
    return [(start, flat, size) for start, flat, size, _seq in out]


def _paint(records: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Apply a few records in the given order, each overwriting what it covers; sorted result."""
    pieces: list[tuple[int, int, int, int]] = []
    for start, flat, size, seq in records:
        end = start + size
        kept = []
        for p_start, p_flat, p_size, p_seq in pieces:
            p_end = p_start + p_size
            if p_end <= start or p_start >= end:
                kept.append((p_start, p_flat, p_size, p_seq))
                continue
            if p_start < start:
                kept.append((p_start, p_flat, start - p_start, p_seq))
            if p_end > end:
                kept.append((end, p_flat + end - p_start, p_end - end, p_seq))
        kept.append((start, flat, size, seq))
        pieces = sorted(kept)
    return pieces
