"""Page-table walks and bulk memory scans on synthetic page tables and buffers: every level recorded, huge
pages, non-present entries, PROT_NONE user entries, 5-level tables, whole-region skipping in `mapped`; the
search scans' alignment, masks, overlapping and page-crossing string matches and chunk boundaries."""

from __future__ import annotations

import struct

import pytest

from kcrash.arch.x86_64 import Translator
from kcrash.errors import FaultError, PageNotInDumpError
from kcrash.kernel import memsearch as ms

P, RW, USER, PSE, GLOBAL, NX = 1, 2, 4, 0x80, 0x100, 1 << 63


class Phys:
    """Physical memory as a dict of page-table pages (each a dict index -> entry)."""

    def __init__(self) -> None:
        self.tables: dict[int, dict[int, int]] = {}

    def table(self, paddr: int) -> dict[int, int]:
        return self.tables.setdefault(paddr, {})

    def read(self, paddr: int, size: int) -> bytes:
        base = paddr & ~0xFFF
        if base not in self.tables:
            raise PageNotInDumpError(paddr, physical=True)
        entries = self.tables[base]
        page = b"".join(struct.pack("<Q", entries.get(i, 0)) for i in range(512))
        return page[paddr - base : paddr - base + size]


def idx(vaddr: int, shift: int) -> int:
    return (vaddr >> shift) & 511


def four_level() -> tuple[Phys, int]:
    """A kernel-half tree: one 4K page, one 2M page, one 1G page, a PROT_NONE PTE and a swap-like PTE."""
    m = Phys()
    root, pud, pmd, pte = 0x1000, 0x2000, 0x3000, 0x4000
    va = 0xFFFFC90000000000
    m.table(root)[idx(va, 39)] = pud | P | RW
    m.table(pud)[idx(va, 30)] = pmd | P | RW
    m.table(pud)[idx(va, 30) + 1] = 0x40000000 | P | RW | PSE | GLOBAL  # 1 GiB page
    m.table(pmd)[idx(va, 21)] = pte | P | RW
    m.table(pmd)[idx(va, 21) + 1] = 0x200000 | P | RW | PSE  # 2 MiB page
    m.table(pte)[0] = 0x7000 | P | RW | NX
    m.table(pte)[1] = 0x8000 | GLOBAL  # PROT_NONE (present for a user walk)
    m.table(pte)[2] = 0x7FFFFFFFFFE00  # non-present, non-zero
    return m, root


def test_walk_records_every_level():
    m, root = four_level()
    t = Translator(m.read, 0, 0, root)
    va = 0xFFFFC90000000000
    entries, paddr, size = t.walk_trace(va + 0x123, root)
    assert [e.level for e in entries] == ["PGD", "PUD", "PMD", "PTE"]
    assert entries[0].address == root + idx(va, 39) * 8 and entries[-1].value == 0x7000 | P | RW | NX
    assert (paddr, size) == (0x7123, 4096)
    entries, paddr, size = t.walk_trace(va + (1 << 21) + 0x1234, root)
    assert [e.level for e in entries] == ["PGD", "PUD", "PMD"] and (paddr, size) == (0x201234, 1 << 21)
    entries, paddr, size = t.walk_trace(va + (1 << 30) + 0x5000, root)
    assert [e.level for e in entries] == ["PGD", "PUD"] and (paddr, size) == (0x40005000, 1 << 30)
    # PROT_NONE: not present for the kernel, present in a user walk; a swap entry is never present
    assert t.walk_trace(va + 0x1000, root)[1] is None
    assert t.walk_trace(va + 0x1000, root, user=True)[1] == 0x8000
    entries, paddr, _ = t.walk_trace(va + 0x2000, root, user=True)
    assert paddr is None and entries[-1].value == 0x7FFFFFFFFFE00
    # an empty PGD slot ends the walk at the first level
    entries, paddr, _ = t.walk_trace(0xFFFF888000000000, root)
    assert len(entries) == 1 and paddr is None
    with pytest.raises(FaultError):
        t.walk(0xFFFF888000000000, root)


def test_mapped_skips_whole_regions():
    m, root = four_level()
    t = Translator(m.read, 0, 0, root)
    va = 0xFFFFC90000000000
    got = list(t.mapped(root, va, va + (2 << 30)))
    assert got == [
        (va, 0x7000, 4096),
        (va + (1 << 21), 0x200000, 1 << 21),
        (va + (1 << 30), 0x40000000, 1 << 30),
    ]
    assert list(t.mapped(root, va, va + (2 << 30), user=True))[1] == (va + 0x1000, 0x8000, 4096)
    # clipping inside a huge page
    assert list(t.mapped(root, va + (1 << 21) + 0x3000, va + (1 << 21) + 0x5000)) == [
        (va + (1 << 21) + 0x3000, 0x203000, 0x2000)
    ]


def test_five_level_walk():
    m = Phys()
    root, p4d, pud, pmd, pte = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000
    va = 0xFF11000000000000 + 0x1000
    m.table(root)[idx(va, 48)] = p4d | P
    m.table(p4d)[idx(va, 39)] = pud | P
    m.table(pud)[idx(va, 30)] = pmd | P
    m.table(pmd)[idx(va, 21)] = pte | P
    m.table(pte)[idx(va, 12)] = 0x9000 | P
    t = Translator(m.read, 0, 0, root, l5=True)
    entries, paddr, _ = t.walk_trace(va, root)
    assert [e.level for e in entries] == ["PGD", "P4D", "PUD", "PMD", "PTE"] and paddr == 0x9000
    assert list(t.mapped(root, va - 0x1000, va + 0x10000)) == [(va, 0x9000, 4096)]


def page(fill: bytes = b"\0") -> bytes:
    return fill * 4096


def test_find_values_aligned_and_masked():
    data = bytearray(page())
    struct.pack_into("<Q", data, 8, 0x1122334455667788)
    struct.pack_into("<Q", data, 0x103, 0x1122334455667788)  # unaligned: not a match
    struct.pack_into("<Q", data, 0x200, 0x11223344AABBCCDD)
    hits = list(ms.find_values([(0x10000, bytes(data))], [0x1122334455667788], 8))
    assert [(h.address, h.value) for h in hits] == [(0x10008, 0x1122334455667788)]
    hits = list(ms.find_values([(0x10000, bytes(data))], [0x1122334400000000], 8, mask=0xFFFFFFFF))
    assert [h.address for h in hits] == [0x10008, 0x10200]
    hits = list(ms.find_values([(0x10000, bytes(data))], [0x5566, 0x7788], 2))
    assert [(h.address, h.index) for h in hits] == [(0x10008, 1), (0x1000A, 0)]


def test_find_strings_context_and_page_crossing():
    first = bytearray(page(b"."))
    first[100:105] = b"hello"
    first[4093:4096] = b"hel"  # crosses into the next page
    second = bytearray(page(b"-"))
    second[0:2] = b"lo"
    chunks = [(0x20000, bytes(first)), (0x21000, bytes(second))]
    hits = list(ms.find_strings(chunks, [b"hello"]))
    assert [(h.address, h.context) for h in hits] == [
        (0x20064, b"hello" + b"." * 51),
        (0x20FFD, b"hello" + b"-" * 51),
    ]
    # the next page not read (a gap): the crossing match is not one
    hits = list(ms.find_strings([(0x20000, bytes(first)), (0x30000, bytes(second))], [b"hello"]))
    assert [h.address for h in hits] == [0x20064]
    # a match near the end of a page shows the bytes up to the page's end only
    tail = bytearray(page(b"."))
    tail[4090:4095] = b"hello"
    (hit,) = ms.find_strings([(0x40000, bytes(tail))], [b"hello"])
    assert hit.context == b"hello."


def test_find_strings_overlapping_and_chunk_boundary():
    data = bytearray(page(b"."))
    data[10:14] = b"aaaa"
    hits = list(ms.find_strings([(0, bytes(data))], [b"aa"]))
    assert [h.address for h in hits] == [10, 11, 12]
    a = bytearray(page(b".") * 2)
    a[-2:] = b"ab"
    b = bytearray(page(b"."))
    b[:2] = b"cd"
    hits = list(ms.find_strings([(0x100000, bytes(a)), (0x102000, bytes(b))], [b"abcd"]))
    assert [h.address for h in hits] == [0x101FFE]
