"""x86_64 translation over synthetic page tables built in synthetic physical memory."""

from __future__ import annotations

import struct

import pytest

from kcrash.arch.x86_64 import (
    REGISTER_NAMES,
    START_KERNEL_MAP,
    Translator,
    parse_prstatus,
    parse_qemu_cpu_state,
)
from kcrash.errors import FaultError, PageExcludedError, PageNotInDumpError

PAGE = 4096


class PhysMem:
    """Sparse physical memory: pages allocated on write; reads of absent pages raise like a dump."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.excluded: set[int] = set()
        self.next_free = 0x100000

    def alloc(self) -> int:
        p = self.next_free
        self.next_free += PAGE
        self.pages[p] = bytearray(PAGE)
        return p

    def write(self, paddr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            a = paddr + i
            self.pages.setdefault(a & ~(PAGE - 1), bytearray(PAGE))[a & (PAGE - 1)] = b

    def read(self, paddr: int, size: int) -> bytes:
        out = bytearray()
        while size:
            base = paddr & ~(PAGE - 1)
            if base in self.excluded:
                raise PageExcludedError(paddr)
            page = self.pages.get(base)
            if page is None:
                raise PageNotInDumpError(paddr)
            n = min(size, PAGE - (paddr - base))
            out += page[paddr - base : paddr - base + n]
            paddr += n
            size -= n
        return bytes(out)


class PageTables:
    def __init__(self, mem: PhysMem, l5: bool = False) -> None:
        self.mem = mem
        self.l5 = l5
        self.root = mem.alloc()

    def _table(self, table: int, index: int) -> int:
        (e,) = struct.unpack_from("<Q", self.mem.pages[table], index * 8)
        if e & 1:
            return e & 0x000FFFFFFFFFF000
        new = self.mem.alloc()
        self.mem.write(table + index * 8, struct.pack("<Q", new | 0x63))
        return new

    def map(self, vaddr: int, paddr: int, size: str = "4k") -> None:
        t = self.root
        if self.l5:
            t = self._table(t, (vaddr >> 48) & 511)
        t = self._table(t, (vaddr >> 39) & 511)
        if size == "1g":
            self.mem.write(t + ((vaddr >> 30) & 511) * 8, struct.pack("<Q", paddr | 0xE3))
            return
        t = self._table(t, (vaddr >> 30) & 511)
        if size == "2m":
            self.mem.write(t + ((vaddr >> 21) & 511) * 8, struct.pack("<Q", paddr | 0xE3))
            return
        t = self._table(t, (vaddr >> 21) & 511)
        self.mem.write(t + ((vaddr >> 12) & 511) * 8, struct.pack("<Q", paddr | 0x63))


@pytest.mark.parametrize("l5", [False, True])
def test_walk_4k_2m_1g(l5: bool) -> None:
    mem = PhysMem()
    pt = PageTables(mem, l5=l5)
    v4k = 0xFFFFC90000123000
    v2m = 0xFFFFC90000400000
    v1g = 0xFFFFC90040000000
    if l5:
        v4k, v2m, v1g = 0xFFA0000000123000, 0xFFA0000000400000, 0xFFA0000040000000
    pt.map(v4k, 0x7000)
    pt.map(v2m, 0x20000000, "2m")
    pt.map(v1g, 0x80000000, "1g")
    mem.write(0x7000 + 0x10, b"hello")
    mem.write(0x20000000 + 0x1234, b"two-meg")
    mem.write(0x80000000 + 0x234567, b"one-gig")
    tr = Translator(mem.read, phys_base=0, kaslr_offset=0, pgd_paddr=pt.root, l5=l5)
    assert tr.vtop(v4k + 0x10) == 0x7010
    assert tr.read(v4k + 0x10, 5) == b"hello"
    assert tr.vtop(v2m + 0x1234) == 0x20001234
    assert tr.read(v2m + 0x1234, 7) == b"two-meg"
    assert tr.read(v1g + 0x234567, 7) == b"one-gig"
    with pytest.raises(FaultError):
        tr.vtop(v4k + 0x10000)


def test_read_spans_discontiguous_pages() -> None:
    mem = PhysMem()
    pt = PageTables(mem)
    v = 0xFFFFC90000000000
    pt.map(v, 0x9000)
    pt.map(v + PAGE, 0x3000)
    mem.write(0x9000 + PAGE - 3, b"abc")
    mem.write(0x3000, b"def")
    tr = Translator(mem.read, 0, 0, pt.root)
    assert tr.read(v + PAGE - 3, 6) == b"abcdef"


def test_fast_paths_need_no_page_tables() -> None:
    mem = PhysMem()
    mem.write(0x1000000 + 0x2000, b"text")
    mem.write(0x5000, b"direct")
    tr = Translator(
        mem.read, phys_base=0x1000000, kaslr_offset=0, pgd_paddr=None, page_offset=0xFFFF888000000000
    )
    assert tr.read(START_KERNEL_MAP + 0x2000, 4) == b"text"
    assert tr.read(0xFFFF888000005000, 6) == b"direct"
    with pytest.raises(FaultError):
        tr.read(0xFFFFC90000000000, 8)


def test_excluded_page_reports_virtual_address() -> None:
    mem = PhysMem()
    mem.write(0x5000, b"x")
    mem.excluded.add(0x5000)
    tr = Translator(mem.read, 0, 0, None, page_offset=0xFFFF888000000000)
    with pytest.raises(PageExcludedError) as e:
        tr.read(0xFFFF888000005010, 8)
    assert str(e.value) == "page excluded: kernel virtual address: ffff888000005010"
    with pytest.raises(PageNotInDumpError) as e:
        tr.read(0xFFFF888000009000, 8)
    assert str(e.value) == "seek error: kernel virtual address: ffff888000009000"


def test_missing_page_table_page_is_a_fault() -> None:
    mem = PhysMem()
    pt = PageTables(mem)
    v = 0xFFFFC90000000000
    pt.map(v, 0x9000)
    # Point the PTE table somewhere that is not in the dump.
    root = pt.root
    (pgd,) = struct.unpack_from("<Q", mem.pages[root], ((v >> 39) & 511) * 8)
    pud_t = pgd & 0x000FFFFFFFFFF000
    mem.write(pud_t + ((v >> 30) & 511) * 8, struct.pack("<Q", 0x7FFFF000 | 0x63))
    tr = Translator(mem.read, 0, 0, root)
    with pytest.raises(FaultError):
        tr.vtop(v)


@pytest.mark.parametrize("l5", [False, True])
def test_find_kernel_text_from_cr3(l5: bool) -> None:
    mem = PhysMem()
    pt = PageTables(mem, l5=l5)
    kaslr = 0x2E000000
    text_v = START_KERNEL_MAP + 0x1000000 + kaslr
    pt.map(text_v, 0x5A000000, "2m")
    pt.map(text_v + (1 << 21), 0x5A200000, "2m")
    found = Translator.find_kernel_text(mem.read, pt.root, l5=l5)
    assert found == (text_v, 0x5A000000)


def test_find_kernel_text_none_when_unmapped() -> None:
    mem = PhysMem()
    pt = PageTables(mem)
    assert Translator.find_kernel_text(mem.read, pt.root) is None


def test_parse_prstatus() -> None:
    regs = list(range(1, len(REGISTER_NAMES) + 1))
    desc = bytearray(336)
    struct.pack_into("<i", desc, 32, 4242)
    struct.pack_into(f"<{len(regs)}Q", desc, 112, *regs)
    r = parse_prstatus(bytes(desc))
    assert r.pid == 4242
    assert r["r15"] == 1 and r["rip"] == REGISTER_NAMES.index("rip") + 1
    assert r["rsp"] == REGISTER_NAMES.index("rsp") + 1
    assert parse_prstatus(b"short") is None


def test_parse_qemu_cpu_state() -> None:
    desc = bytearray(8 + 18 * 8 + 10 * 24 + 6 * 8)
    struct.pack_into("<II", desc, 0, 1, len(desc))
    gprs = [0x1000 + i for i in range(18)]
    struct.pack_into("<18Q", desc, 8, *gprs)
    seg_base = 8 + 18 * 8
    struct.pack_into("<IIIIQ", desc, seg_base, 0x10, 0, 0, 0, 0)  # cs
    struct.pack_into("<IIIIQ", desc, seg_base + 4 * 24, 0, 0, 0, 0, 0xFFFF888077C00000)  # gs
    struct.pack_into("<5Q", desc, seg_base + 10 * 24, 0x80050033, 0, 0x1234, 0x5A000000, 0x1000)
    r = parse_qemu_cpu_state(bytes(desc))
    assert r["rax"] == 0x1000 and r["rsp"] == 0x1006 and r["rip"] == 0x1000 + 16
    assert r["cs"] == 0x10 and r["gs_base"] == 0xFFFF888077C00000
    assert r.control["cr3"] == 0x5A000000 and r.control["cr4"] == 0x1000


def test_negative_phys_base() -> None:
    """KASLR may load the kernel below its link address: phys_base is then negative (seen on a real dump)."""
    mem = PhysMem()
    mem.write(0x800000 + 0x2000, b"low")
    tr = Translator(mem.read, phys_base=0x800000 - 0x1000000, kaslr_offset=0, pgd_paddr=None)
    assert tr.vtop(START_KERNEL_MAP + 0x1000000 + 0x2000) == 0x802000
    assert tr.read(START_KERNEL_MAP + 0x1002000, 3) == b"low"
