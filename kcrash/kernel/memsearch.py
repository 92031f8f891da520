"""Searching memory in bulk: the kernel's virtual ranges as crash's search walks them, each mapped onto
physical memory (arithmetic for the direct map and the kernel text map, page tables for vmalloc, modules
and vmemmap, a task's tables for user space), read in large chunks of the pages the dump holds, and
scanned for values (aligned words, with a don't-care mask) or strings.

Everything is a generator, so a caller sees matches as they are found and a KeyboardInterrupt stops the
scan between chunks (a chunk is at most 1 MiB: milliseconds of work).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.kernel import pagetable as pt
from kcrash.kernel.page import page_layout

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "SearchRange",
    "kernel_ranges",
    "kernel_segments",
    "user_segments",
    "physical_segments",
    "read_segments",
    "find_values",
    "find_strings",
    "StringMatch",
    "ValueMatch",
    "CHARS_CONTEXT",
]

CHARS_CONTEXT = 56  # crash's CHARS_CTX: the characters shown from the start of a string match
_CHUNK = 1 << 20
_PAGE = pt.PAGE_SIZE


@dataclass(frozen=True, slots=True)
class SearchRange:
    """One region of the kernel's address space, in the order crash searches them."""

    kind: str  # unity, vmalloc, modules, vmemmap, text
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ValueMatch:
    address: int
    value: int
    index: int  # which of the searched values matched


@dataclass(frozen=True, slots=True)
class StringMatch:
    address: int
    context: bytes  # the bytes crash shows: from the match, CHARS_CONTEXT at most, cut at the page end
    index: int


def kernel_ranges(k: Kernel) -> list[SearchRange]:
    """The kernel's regions as crash's x86_64 search visits them: the direct map up to high_memory, the
    vmalloc area and then module space (crash's vmalloc range runs to the last module), vmemmap up to the
    last page frame's struct page, and the kernel text map up to _end."""
    lay = pt.kernel_layout(k)
    return [
        SearchRange("unity", lay.page_offset, lay.high_memory),
        SearchRange("vmalloc", lay.vmalloc_start, lay.vmalloc_end + 1),
        SearchRange("modules", lay.modules_start, lay.modules_end),
        SearchRange("vmemmap", lay.vmemmap_start, lay.vmemmap_end),
        SearchRange("text", lay.text_start, lay.text_end),
    ]


def _coalesce(pieces: Iterable[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    """Merge (vaddr, paddr, size) pieces contiguous in both spaces."""
    cur: list[int] | None = None
    for v, p, n in pieces:
        if cur is not None and cur[0] + cur[2] == v and cur[1] + cur[2] == p:
            cur[2] += n
            continue
        if cur is not None:
            yield cur[0], cur[1], cur[2]
        cur = [v, p, n]
    if cur is not None:
        yield cur[0], cur[1], cur[2]


def _ram_only(k: Kernel, pieces: Iterable[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    """Keep the physical memory that has struct pages (crash's phys_to_page test): below max_pfn."""
    limit = page_layout(k).max_pfn << pt.PAGE_SHIFT or 1 << 52
    for v, p, n in pieces:
        if p < 0:
            v, n, p = v - p, n + p, 0
        if n > 0 and p < limit:
            yield v, p, min(n, limit - p)


def kernel_segments(k: Kernel, rng: SearchRange, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(vaddr, paddr, size) of the memory of one kernel region within [start, end)."""
    lo, hi = max(rng.start, start), min(rng.end, end)
    if lo >= hi:
        return
    t = k.translator
    if rng.kind == "unity":
        yield from _ram_only(k, [(lo, lo - t.page_offset, hi - lo)])
    elif rng.kind == "text":
        yield from _ram_only(k, [(lo, t.kernel_text_to_phys(lo), hi - lo)])
    else:
        yield from _ram_only(k, _coalesce(pt.mapped(k, lo, hi)))


def user_segments(k: Kernel, pgd: int, spans: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """(vaddr, paddr, size) of the present pages of a task's address space within `spans` (its VMAs)."""
    for lo, hi in spans:
        yield from _ram_only(k, _coalesce(pt.mapped(k, lo, hi, pgd)))


def physical_segments(start: int, end: int) -> Iterator[tuple[int, int, int]]:
    yield start, start, end - start


def read_segments(k: Kernel, segments: Iterable[tuple[int, int, int]]) -> Iterator[tuple[int, bytes]]:
    """(vaddr, bytes) of the readable pages of each segment, in chunks of at most 1 MiB (pages the dump
    does not hold or excluded are left out)."""
    memory = k.memory
    for v, p, n in segments:
        for paddr, data in memory.read_chunks(p, p + n, _CHUNK):
            first = max(paddr, p)
            last = min(paddr + len(data), p + n)
            if first < last:
                yield v + first - p, data[first - paddr : last - paddr]


def find_values(
    chunks: Iterable[tuple[int, bytes]], values: list[int], size: int, mask: int = 0
) -> Iterator[ValueMatch]:
    """Aligned `size`-byte words equal to one of `values` where `mask`'s bits are ignored, in address
    order (several values at one address in the order given)."""
    full = (1 << (8 * size)) - 1
    mask &= full
    fmt = "<" + {2: "H", 4: "I", 8: "Q"}[size]
    if mask:
        pattern = re.compile(
            b"(?=(" + b"|".join(_masked_pattern(v & full, mask, size) for v in values) + b"))", re.DOTALL
        )
    else:
        needles = [struct.pack(fmt, v & full) for v in values]
    for base, data in chunks:
        hits: list[tuple[int, int]] = []
        if mask:
            for m in pattern.finditer(data):
                pos = m.start()
                if (base + pos) % size:
                    continue
                (word,) = struct.unpack_from(fmt, data, pos)
                for i, v in enumerate(values):
                    if word | mask == (v & full) | mask:
                        hits.append((pos, i))
        else:
            for i, needle in enumerate(needles):
                pos = data.find(needle)
                while pos >= 0:
                    if (base + pos) % size == 0:
                        hits.append((pos, i))
                        pos = data.find(needle, pos + size)
                    else:
                        pos = data.find(needle, pos + 1)
            if len(needles) > 1:
                hits.sort()
        for pos, i in hits:
            yield ValueMatch(base + pos, struct.unpack_from(fmt, data, pos)[0], i)


def _masked_pattern(value: int, mask: int, size: int) -> bytes:
    out = b""
    for i in range(size):
        v, m = (value >> (8 * i)) & 0xFF, (mask >> (8 * i)) & 0xFF
        if m == 0xFF:
            out += b"."
        elif m == 0:
            out += re.escape(bytes([v]))
        else:
            allowed = bytes(b for b in range(256) if b | m == v | m)
            out += b"[" + b"".join(re.escape(bytes([b])) for b in allowed) + b"]"
    return out


def find_strings(chunks: Iterable[tuple[int, bytes]], targets: list[bytes]) -> Iterator[StringMatch]:
    """Every occurrence (overlapping ones too) of each target, as crash reports them: a match inside one
    page shows the bytes from it to at most CHARS_CONTEXT, cut at the page's end (or at `end`); a match
    that runs into the next page (read, and next in the address space) shows the target and the bytes
    after it up to CHARS_CONTEXT; one whose next page was not read (or lies past the end of the search)
    is not a match."""
    longest = max(len(t) for t in targets)
    tail = b""
    tail_end = -1
    for base, data in chunks:
        if base == tail_end and tail:
            buf, buf_base, carried = tail + data, base - len(tail), len(tail)
        else:
            buf, buf_base, carried = data, base, 0
        hits: list[tuple[int, int, bytes]] = []
        for i, target in enumerate(targets):
            n = len(target)
            pos = buf.find(target, max(carried - n + 1, 0))
            while pos >= 0:
                if pos + n > len(buf):
                    break  # runs past what was read: the next chunk decides
                if pos < carried and pos + n <= carried:
                    pos = buf.find(target, pos + 1)
                    continue  # wholly in the previous chunk: reported there
                address = buf_base + pos
                page_end = (address | (_PAGE - 1)) + 1 - buf_base
                if pos + n <= page_end:
                    context = buf[pos : min(pos + CHARS_CONTEXT, page_end, len(buf))]
                else:
                    context = target + buf[pos + n : pos + max(CHARS_CONTEXT, n)]
                hits.append((pos, i, context))
                pos = buf.find(target, pos + 1)
        if len(targets) > 1:
            hits.sort(key=lambda h: (h[0], h[1]))
        for pos, i, context in hits:
            yield StringMatch(buf_base + pos, context, i)
        keep = min(longest - 1, len(buf))
        tail = buf[len(buf) - keep :] if keep else b""
        tail_end = base + len(data)
