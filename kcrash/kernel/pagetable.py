"""Page tables: translating a kernel or user virtual address with a record of every level the walk reads,
a task's page-table root, the kernel's address-space layout (direct map, vmalloc, vmemmap, modules, kernel
text), the flags of a page-table entry and the swap entry a non-present one holds.

The walk itself is the architecture's (kcrash.arch.x86_64.Translator.walk_trace / .mapped); this module
knows where the kernel keeps the roots and the layout, and what crash's vtop reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.arch.x86_64 import START_KERNEL_MAP, TableEntry
from kcrash.errors import FaultError, KcrashError, MemoryReadError
from kcrash.kernel.page import page_layout

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "PAGE_SIZE",
    "START_KERNEL_MAP",
    "Translation",
    "KernelLayout",
    "kernel_layout",
    "kernel_pgd",
    "task_mm",
    "task_pgd",
    "translate",
    "is_vmalloc_addr",
    "mapped",
    "pte_flag_names",
    "pte_present",
    "swap_entry",
    "TableEntry",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_MASK64 = (1 << 64) - 1
# x86_64 page-table entry bits (arch/x86/include/asm/pgtable_types.h), in crash's order of printing.
_PTE_FLAGS = (
    ("PRESENT", 1 << 0),
    ("RW", 1 << 1),
    ("USER", 1 << 2),
    ("PWT", 1 << 3),
    ("PCD", 1 << 4),
    ("ACCESSED", 1 << 5),
    ("DIRTY", 1 << 6),
)
_PRESENT = 1 << 0
_PSE = 1 << 7
_GLOBAL = 1 << 8
_PROTNONE = _GLOBAL
_NX = 1 << 63
_PHYSICAL_MASK = 0x000FFFFFFFFFF000
# Swap entries (x86_64, 4.18+ with the L1TF inversion): type in the top 5 bits, the inverted offset below
# them from bit 9 (_PAGE_BIT_PROTNONE + 1).
_SWP_TYPE_BITS = 5
_SWP_OFFSET_SHIFT = 9 + _SWP_TYPE_BITS

# Defaults of the 4-level layout without KASLR (Documentation/arch/x86/x86_64/mm.rst).
_VMALLOC_BASE = 0xFFFFC90000000000
_VMALLOC_SIZE = 32 << 40
_VMEMMAP_BASE = 0xFFFFEA0000000000
_VMEMMAP_SIZE = 1 << 40
_VMALLOC_BASE_L5 = 0xFFA0000000000000
_VMALLOC_SIZE_L5 = 12800 << 40
_VMEMMAP_BASE_L5 = 0xFFD4000000000000
_VMEMMAP_SIZE_L5 = 1 << 49
_MODULES_END = 0xFFFFFFFFFF000000
_CPU_ENTRY_AREA = (0xFFFFFE0000000000, 0xFFFFFE8000000000)
_FIXMAP = (0xFFFFFFFFFF000000, 1 << 64)


@dataclass(frozen=True, slots=True)
class Translation:
    """A virtual address translated: how (`direct map`, `kernel text` or `page tables`), the physical
    address (None when not mapped), the page size, and the entries of the walk from `root` (the physical
    address of the top-level table) as crash's vtop prints them."""

    vaddr: int
    user: bool
    method: str
    root: int
    entries: tuple[TableEntry, ...]
    paddr: int | None
    page_size: int

    @property
    def leaf(self) -> TableEntry | None:
        """The last entry the walk read (the PTE, or the PMD/PUD of a huge page, or a non-present one)."""
        return self.entries[-1] if self.entries else None

    @property
    def page(self) -> int | None:
        """Physical address of the page (of `page_size`) holding the address."""
        return None if self.paddr is None else self.paddr & ~(self.page_size - 1)


@dataclass(frozen=True, slots=True)
class KernelLayout:
    """Where this kernel put its address-space regions (KASLR moves the first three)."""

    page_offset: int
    vmalloc_start: int
    vmalloc_end: int
    vmemmap_start: int
    vmemmap_end: int  # the end of the struct pages of the highest page frame
    modules_start: int
    modules_end: int
    text_start: int
    text_end: int  # _end
    high_memory: int  # end of the direct map's RAM
    page_struct_size: int


def _read_variable(k: Kernel, name: str, default: int) -> int:
    sym = k.symbols.lookup(name)
    if sym is None:
        return default
    try:
        return k.read_u64(sym.address)
    except MemoryReadError:
        return default


@lru_cache(maxsize=8)
def kernel_layout(k: Kernel) -> KernelLayout:
    """The kernel's layout: page_offset_base, vmalloc_base, vmemmap_base (CONFIG_RANDOMIZE_MEMORY) or the
    fixed defaults, high_memory and _end; sizes from the kernel's own definitions."""
    l5 = k.translator.l5
    vmalloc = _read_variable(k, "vmalloc_base", _VMALLOC_BASE_L5 if l5 else _VMALLOC_BASE)
    vmemmap = page_layout(k).vmemmap
    high = _read_variable(k, "high_memory", k.translator.page_offset)
    pages = page_layout(k)
    page_size = pages.page_size
    end = k.symbols.lookup("_end")
    max_pfn = pages.max_pfn or (high - k.translator.page_offset) >> PAGE_SHIFT
    return KernelLayout(
        page_offset=k.translator.page_offset,
        vmalloc_start=vmalloc,
        vmalloc_end=vmalloc + (_VMALLOC_SIZE_L5 if l5 else _VMALLOC_SIZE) - 1,
        vmemmap_start=vmemmap,
        vmemmap_end=vmemmap + max_pfn * page_size,
        modules_start=START_KERNEL_MAP + k.translator.kernel_image_size,  # MODULES_VADDR
        modules_end=_MODULES_END,
        text_start=START_KERNEL_MAP,
        text_end=end.address if end is not None else START_KERNEL_MAP + k.translator.kernel_image_size,
        high_memory=high,
        page_struct_size=page_size,
    )


def is_vmalloc_addr(k: Kernel, vaddr: int) -> bool:
    """crash's IS_VMALLOC_ADDR on x86_64: vmalloc, vmemmap, module, cpu-entry-area or fixmap space —
    addresses only page tables translate."""
    t = getattr(k, "translator", None)
    l5 = bool(t is not None and t.l5)
    vmalloc = _read_variable(k, "vmalloc_base", _VMALLOC_BASE_L5 if l5 else _VMALLOC_BASE)
    vmemmap = _read_variable(k, "vmemmap_base", _VMEMMAP_BASE_L5 if l5 else _VMEMMAP_BASE)
    modules = START_KERNEL_MAP + (t.kernel_image_size if t is not None else 1 << 30)
    ranges = (
        (vmalloc, vmalloc + (_VMALLOC_SIZE_L5 if l5 else _VMALLOC_SIZE)),
        (vmemmap, vmemmap + (_VMEMMAP_SIZE_L5 if l5 else _VMEMMAP_SIZE)),
        (modules, _MODULES_END),
        _CPU_ENTRY_AREA,
        _FIXMAP,
    )
    return any(lo <= vaddr < hi for lo, hi in ranges)


def kernel_pgd(k: Kernel) -> int:
    """Virtual address of the kernel's top-level page table (init_top_pgt, swapper_pg_dir before 4.13)."""
    for name in ("init_top_pgt", "init_level4_pgt", "swapper_pg_dir"):
        sym = k.symbols.lookup(name)
        if sym is not None:
            return sym.address
    raise KcrashError("cannot find the kernel's page tables (no init_top_pgt)")


def task_mm(task: Object) -> int:
    """The address space a task runs in: its mm, or for a kernel thread the active_mm it borrowed (0 when
    it has neither)."""
    mm = int(task.member("mm"))
    if not mm:
        try:
            mm = int(task.member("active_mm"))
        except (KcrashError, MemoryReadError):
            mm = 0
    return mm


def task_pgd(k: Kernel, task: Object) -> int:
    """Physical address of a task's page-table root (its mm's pgd; a kernel thread's active_mm's)."""
    mm = task_mm(task)
    if not mm:
        raise KcrashError("the current context task has no user address space")
    pgd = int(k.object_at("struct mm_struct", mm).member("pgd"))
    return k.vtop(pgd)


def translate(k: Kernel, vaddr: int, pgd: int | None = None) -> Translation:
    """Translate `vaddr` as crash's vtop does: with `pgd` (a task's page-table root, physical) a user
    address through the task's tables; without, a kernel address — the direct map and the kernel text
    by arithmetic (the walk from the kernel's tables is recorded as well) and anything else by the walk.
    Raises FaultError when a page table itself is not in the dump."""
    t = k.translator
    user = pgd is not None
    if pgd is None:
        pgd = k.vtop(kernel_pgd(k))
    entries, paddr, size = t.walk_trace(vaddr, pgd, user=user)
    method = "page tables"
    if not user and not is_vmalloc_addr(k, vaddr):
        try:
            paddr = t.vtop(vaddr)
        except FaultError:
            paddr = None
        else:
            method = "kernel text" if START_KERNEL_MAP <= vaddr else "direct map"
            if not entries or paddr != _walked(entries, vaddr, size):
                size = PAGE_SIZE
    return Translation(vaddr, user, method, pgd, tuple(entries), paddr, size)


def _walked(entries: list[TableEntry], vaddr: int, size: int) -> int | None:
    leaf = entries[-1].value
    if not leaf & _PRESENT:
        return None
    return (leaf & _PHYSICAL_MASK & ~(size - 1)) | (vaddr & (size - 1))


def mapped(k: Kernel, start: int, end: int, pgd: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(vaddr, paddr, size) of every present mapping in [start, end) of the kernel's page tables (or, with
    `pgd`, a task's), skipping whole regions at the first non-present level."""
    user = pgd is not None
    root = pgd if pgd is not None else k.vtop(kernel_pgd(k))
    return k.translator.mapped(root, start, min(end, 1 << 64), user=user)


def pte_present(value: int, user: bool = False) -> bool:
    """Whether an entry maps a page (a PROT_NONE user entry does, for the kernel)."""
    return bool(value & (_PRESENT | _PROTNONE)) if user else bool(value & _PRESENT)


def pte_flag_names(value: int) -> list[str]:
    """crash's names for the bits of a page-table entry, in its order (empty for a zero entry)."""
    if not value:
        return []
    names = [name for name, bit in _PTE_FLAGS if value & bit]
    if value & _PSE and value & _PRESENT:
        names.append("PSE")
    if value & _PROTNONE and not value & _PRESENT:
        names.append("PROTNONE")
    if value & _GLOBAL:
        names.append("GLOBAL")
    if value & _NX:
        names.append("NX")
    return names


def swap_entry(value: int) -> tuple[int, int]:
    """(swap type, offset) of a non-present, non-zero entry (x86_64 __swp_type/__swp_offset)."""
    swp_type = value >> (64 - _SWP_TYPE_BITS)
    offset = ((~value & _MASK64) << _SWP_TYPE_BITS & _MASK64) >> _SWP_OFFSET_SHIFT
    return swp_type, offset
