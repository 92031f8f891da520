"""x86_64: kernel virtual -> physical translation (KASLR, direct map, 4/5-level page tables) and CPU notes."""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kcrash.errors import FaultError, MemoryReadError, PageExcludedError, PageNotInDumpError

__all__ = [
    "START_KERNEL_MAP",
    "Registers",
    "TableEntry",
    "Translator",
    "parse_prstatus",
    "parse_qemu_cpu_state",
    "REGISTER_NAMES",
]

START_KERNEL_MAP = 0xFFFFFFFF80000000
PAGE_SIZE = 4096
PAGE_MASK = ~(PAGE_SIZE - 1) & 0xFFFFFFFFFFFFFFFF
DEFAULT_PAGE_OFFSET = 0xFFFF888000000000  # 4-level direct map without KASLR (4.20+)
DEFAULT_PAGE_OFFSET_L5 = 0xFF11000000000000
_PRESENT = 1
_PSE = 1 << 7
_PROTNONE = 1 << 8  # _PAGE_GLOBAL's bit: PROT_NONE in a non-present user entry
_ADDR_MASK = 0x000FFFFFFFFFF000  # bits 12..51
_MASK_1G = 0x000FFFFFC0000000
_MASK_2M = 0x000FFFFFFFE00000
NT_PRSTATUS = 1
_LEVELS_4 = (("PGD", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12))
_LEVELS_5 = (("PGD", 48), ("P4D", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12))

# user_regs_struct order, as pr_reg in NT_PRSTATUS holds it (and as struct pt_regs lays out the first 21).
REGISTER_NAMES = (
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
    "fs_base gs_base ds es fs gs"
).split()
PRSTATUS_PID_OFFSET = 32
PRSTATUS_REG_OFFSET = 112


@dataclass
class Registers:
    """One CPU's saved registers (by name) and where they came from."""

    values: dict[str, int]
    pid: int | None = None
    source: str = "NT_PRSTATUS"
    control: dict[str, int] = field(default_factory=dict)  # cr0..cr4 when the dump has them (QEMU)

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def get(self, name: str, default: int | None = None) -> int | None:
        return self.values.get(name, default)


def parse_prstatus(desc: bytes) -> Registers | None:
    if len(desc) < PRSTATUS_REG_OFFSET + 8 * len(REGISTER_NAMES):
        return None
    (pid,) = struct.unpack_from("<i", desc, PRSTATUS_PID_OFFSET)
    regs = struct.unpack_from(f"<{len(REGISTER_NAMES)}Q", desc, PRSTATUS_REG_OFFSET)
    return Registers(dict(zip(REGISTER_NAMES, regs, strict=True)), pid=pid)


# QEMU's "QEMU" note (QEMUCPUState, target/i386/arch_dump.c): version, size, 16 GPRs, rip, rflags,
# 10 segment descriptors of 24 bytes (cs ds es fs gs ss ldt tr gdt idt), cr[5], kernel_gs_base.
_QEMU_GPRS = "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip eflags".split()
_QEMU_SEGS = "cs ds es fs gs ss ldt tr gdt idt".split()


def parse_qemu_cpu_state(desc: bytes) -> Registers | None:
    need = 8 + 18 * 8 + 10 * 24 + 5 * 8
    if len(desc) < need:
        return None
    gprs = struct.unpack_from("<18Q", desc, 8)
    values = dict(zip(_QEMU_GPRS, gprs, strict=True))
    pos = 8 + 18 * 8
    for seg in _QEMU_SEGS:
        selector, _limit, _flags, _pad, base = struct.unpack_from("<IIIIQ", desc, pos)
        if seg in ("cs", "ds", "es", "fs", "gs", "ss"):
            values[seg] = selector
        if seg in ("fs", "gs"):
            values[f"{seg}_base"] = base
        pos += 24
    crs = struct.unpack_from("<5Q", desc, pos)
    control = {f"cr{i}": v for i, v in enumerate(crs)}
    return Registers(values, pid=None, source="QEMU", control=control)


@dataclass(frozen=True, slots=True)
class TableEntry:
    """One page-table entry a walk read: its level (PGD, P4D, PUD, PMD, PTE), physical address, value."""

    level: str
    address: int
    value: int


class Translator:
    """Kernel virtual -> physical for one dump.

    `read_phys(paddr, size)` reads physical memory. The layout values come from VMCOREINFO or the
    kernel's variables (page_offset_base etc.); the caller fills them in via `configure`.
    """

    def __init__(
        self,
        read_phys: Callable[[int, int], bytes],
        phys_base: int,
        kaslr_offset: int,
        pgd_paddr: int | None,
        l5: bool = False,
        page_offset: int | None = None,
        max_physmem_bits: int = 46,
        kernel_image_size: int = 1 << 30,
    ) -> None:
        self.read_phys = read_phys
        self.phys_base = phys_base
        self.kaslr_offset = kaslr_offset
        self.pgd_paddr = pgd_paddr
        self.l5 = l5
        self.page_offset = (
            page_offset
            if page_offset is not None
            else (DEFAULT_PAGE_OFFSET_L5 if l5 else DEFAULT_PAGE_OFFSET)
        )
        self.direct_map_size = 1 << max_physmem_bits
        self.kernel_image_size = kernel_image_size
        self.sme_mask = 0
        self._cache: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._cache_limit = 65536

    # --- fast paths ---------------------------------------------------------------------------------
    def kernel_text_to_phys(self, vaddr: int) -> int:
        return vaddr - START_KERNEL_MAP + self.phys_base

    def vtop(self, vaddr: int, pgd_paddr: int | None = None) -> int:
        """Physical address of kernel (or, with `pgd_paddr`, user) virtual address `vaddr`."""
        if pgd_paddr is None:
            if START_KERNEL_MAP <= vaddr < START_KERNEL_MAP + self.kernel_image_size:
                return vaddr - START_KERNEL_MAP + self.phys_base
            po = self.page_offset
            if po <= vaddr < po + self.direct_map_size:
                return vaddr - po
            root = self.pgd_paddr
            if root is None:
                raise FaultError(vaddr, "no page tables to translate")
        else:
            root = pgd_paddr
        key = (root, vaddr & PAGE_MASK)
        cache = self._cache
        hit = cache.get(key)
        if hit is not None:
            return hit | (vaddr & (PAGE_SIZE - 1))
        paddr = self.walk(vaddr, root)
        cache[key] = paddr & PAGE_MASK
        if len(cache) > self._cache_limit:
            cache.popitem(last=False)
        return paddr

    def _entry(self, address: int, vaddr: int) -> int:
        try:
            entry = int.from_bytes(self.read_phys(address, 8), "little")
        except MemoryReadError:
            raise FaultError(vaddr, "page table not in dump for kernel virtual address") from None
        return entry & ~self.sme_mask

    def walk(self, vaddr: int, root: int) -> int:
        """A full page-table walk; large (1 GiB / 2 MiB) pages honoured."""
        _entries, paddr, _size = self.walk_trace(vaddr, root)
        if paddr is None:
            raise FaultError(vaddr)
        return paddr

    def walk_trace(
        self, vaddr: int, root: int, user: bool = False
    ) -> tuple[list[TableEntry], int | None, int]:
        """Every entry a page-table walk of `vaddr` from `root` reads (PGD, P4D when 5-level, PUD, PMD,
        PTE; stopping at a leaf or a non-present entry), the physical address (None when not mapped) and
        the size of the page that maps it. `user` takes PROT_NONE PMDs and PTEs as present, as the
        kernel does for a user address space."""
        present = _PRESENT | _PROTNONE if user else _PRESENT
        entries: list[TableEntry] = []
        table = root & _ADDR_MASK
        levels = _LEVELS_5 if self.l5 else _LEVELS_4
        for name, shift in levels:
            addr = table + ((vaddr >> shift) & 511) * 8
            e = self._entry(addr, vaddr)
            entries.append(TableEntry(name, addr, e))
            if not e & (present if shift <= 21 else _PRESENT):
                return entries, None, 1 << shift
            if shift == 12:
                return entries, (e & _ADDR_MASK) | (vaddr & (PAGE_SIZE - 1)), PAGE_SIZE
            if shift in (30, 21) and e & _PSE:
                size = 1 << shift
                return entries, (e & _ADDR_MASK & ~(size - 1)) | (vaddr & (size - 1)), size
            table = e & _ADDR_MASK
        raise AssertionError("a page-table walk ends at the PTE level")

    def mapped(self, root: int, start: int, end: int, user: bool = False) -> Iterator[tuple[int, int, int]]:
        """(vaddr, paddr, size) of every present leaf mapping in [start, end) (one half of the canonical
        address space), in address order: whole page-table pages are read at once, and a non-present or
        unreadable entry skips everything it would map."""
        bits = 57 if self.l5 else 48
        mask = (1 << bits) - 1
        high = start & ~mask
        top = 48 if self.l5 else 39
        yield from self._mapped(root & _ADDR_MASK, top, 0, start & mask, ((end - 1) & mask) + 1, high, user)

    def _mapped(
        self, table: int, shift: int, base: int, start: int, end: int, high: int, user: bool
    ) -> Iterator[tuple[int, int, int]]:
        try:
            entries = struct.unpack("<512Q", self.read_phys(table, PAGE_SIZE))
        except MemoryReadError:
            return
        span = 1 << shift
        present = _PRESENT | _PROTNONE if user and shift <= 21 else _PRESENT
        sme = ~self.sme_mask
        for index in range((start - base) >> shift, 512):
            vaddr = base + index * span
            if vaddr >= end:
                return
            e = entries[index] & sme
            if not e & present:
                continue
            lo, hi = max(vaddr, start), min(vaddr + span, end)
            if shift == 12 or (shift in (30, 21) and e & _PSE):
                yield high | lo, (e & _ADDR_MASK & ~(span - 1)) + (lo - vaddr), hi - lo
            else:
                yield from self._mapped(e & _ADDR_MASK, shift - 9, vaddr, lo, hi, high, user)

    def read(self, vaddr: int, size: int, pgd_paddr: int | None = None) -> bytes:
        """Read `size` bytes at virtual `vaddr`, page by page (pages need not be contiguous)."""
        end = vaddr + size
        if end > 1 << 64:
            raise FaultError(vaddr, "address range wraps")
        if size <= PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)):
            paddr = self.vtop(vaddr, pgd_paddr)
            return self._read_phys_as_virt(paddr, size, vaddr)
        parts = []
        pos = vaddr
        while pos < end:
            chunk = min(end - pos, PAGE_SIZE - (pos & (PAGE_SIZE - 1)))
            parts.append(self._read_phys_as_virt(self.vtop(pos, pgd_paddr), chunk, pos))
            pos += chunk
        return b"".join(parts)

    def _read_phys_as_virt(self, paddr: int, size: int, vaddr: int) -> bytes:
        try:
            return self.read_phys(paddr, size)
        except (PageExcludedError, PageNotInDumpError) as e:
            # Report the virtual address the user asked for, as crash does.
            bad = vaddr + (e.address - paddr) if paddr <= e.address < paddr + size else vaddr
            raise type(e)(bad, physical=False) from None

    # --- discovery without VMCOREINFO ---------------------------------------------------------------
    @staticmethod
    def find_kernel_text(
        read_phys: Callable[[int, int], bytes], cr3: int, l5: bool = False
    ) -> tuple[int, int] | None:
        """Lowest mapped (vaddr, paddr) of the kernel text map, walking page tables from CR3."""
        root = cr3 & _ADDR_MASK
        probe = Translator(read_phys, 0, 0, root, l5=l5)
        probe.page_offset = 0  # disable fast paths: everything goes through the walk
        probe.direct_map_size = 0
        probe.kernel_image_size = 0
        step = 1 << 21
        vaddr = START_KERNEL_MAP
        while vaddr < START_KERNEL_MAP + (1 << 30):
            try:
                return vaddr, probe.walk(vaddr, root)
            except (FaultError, PageNotInDumpError):
                vaddr += step
        return None
