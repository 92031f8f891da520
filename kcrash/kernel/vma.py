"""Virtual memory areas: an mm_struct's VMAs, from its maple tree (mm->mm_mt, 6.1+) or its vm_area_struct list
(mm->mmap, before), with each VMA's range, flags and mapped file."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.fs import dentry_path
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["Vma", "mt_for_each", "mm_vma_addresses", "read_vma", "mm_vmas", "find_vma", "user_vtop"]

# The maple tree's encoding of a node pointer (include/linux/maple_tree.h): the low byte holds flags, bits
# 3-6 the node type; an internal entry has the low two bits 10b. These are macros, absent from debug info.
_MAPLE_NODE_MASK = 0xFF
_MAPLE_NODE_TYPE_SHIFT = 3
_MAPLE_NODE_TYPE_MASK = 0xF
_XA_ZERO_ENTRY = (257 << 2) | 2
_ULONG_MAX = (1 << 64) - 1
_MAX_VMAS = 1 << 20  # a bound on corrupted lists and trees


def _xa_is_node(entry: int) -> bool:
    return (entry & 3) == 2 and entry > 4096


class _MapleLayout:
    def __init__(self, k: Kernel) -> None:
        node = k.type("struct maple_node")
        kinds = k.type("enum maple_type")
        self.leaf_64 = kinds.enumerator_value("maple_leaf_64")
        self.range_64 = kinds.enumerator_value("maple_range_64")
        self.arange_64 = kinds.enumerator_value("maple_arange_64")
        self.layouts: dict[str, tuple[int, int, int, int, int]] = {}
        for name in ("mr64", "ma64"):
            pivots = node.offsetof(f"{name}.pivot")
            npivots = node.member(name)[0].type.member("pivot")[0].type.strip().length or 0
            slots = node.offsetof(f"{name}.slot")
            nslots = npivots + 1
            end = node.offsetof(f"{name}.meta.end")
            self.layouts[name] = (pivots, npivots, slots, nslots, end)
        self.size = node.sizeof()
        self.mt_root = k.type("struct maple_tree").offsetof("ma_root")


@per_kernel
def _maple(k: Kernel) -> _MapleLayout:
    return _MapleLayout(k)


def mt_for_each(k: Kernel, tree: int) -> Iterator[tuple[int, int, int]]:
    """(first, last, entry) for each non-empty entry of the maple tree at `tree`, in index order."""
    lay = _maple(k)
    root = k.read_u64(tree + lay.mt_root)
    if not _xa_is_node(root):
        if root:
            yield 0, 0, root
        return
    stack = [(root, 0, _ULONG_MAX)]
    visited = 0
    while stack:
        entry, low, high = stack.pop()
        visited += 1
        if visited > _MAX_VMAS:
            raise KcrashError(f"maple tree at {tree:x}: too many nodes (corrupted?)")
        node = entry & ~_MAPLE_NODE_MASK
        kind = (entry >> _MAPLE_NODE_TYPE_SHIFT) & _MAPLE_NODE_TYPE_MASK
        if kind == lay.arange_64:
            pivots_off, npivots, slots_off, nslots, end_off = lay.layouts["ma64"]
        elif kind in (lay.range_64, lay.leaf_64):
            pivots_off, npivots, slots_off, nslots, end_off = lay.layouts["mr64"]
        else:
            raise KcrashError(f"maple tree at {tree:x}: unknown node type {kind}")
        buf = k.read(node, lay.size)
        pivots = struct.unpack_from(f"<{npivots}Q", buf, pivots_off)
        slots = struct.unpack_from(f"<{nslots}Q", buf, slots_off)
        if kind == lay.arange_64:
            end = buf[end_off]
        elif not pivots[-1]:
            end = buf[end_off]
        elif pivots[-1] == high:
            end = npivots - 1
        else:
            end = npivots
        end = min(end, nslots - 1)
        ranges = []
        prev = low
        for i in range(end):
            ranges.append((prev, pivots[i], slots[i]))
            prev = pivots[i] + 1
        ranges.append((prev, high, slots[end]))
        if kind == lay.leaf_64:
            for first, last, slot in ranges:
                if slot and slot != _XA_ZERO_ENTRY:
                    yield first, last, slot
        else:
            for first, last, slot in reversed(ranges):
                stack.append((slot, first, last))


class _VmaLayout:
    def __init__(self, k: Kernel) -> None:
        mm = k.type("struct mm_struct")
        vma = k.type("struct vm_area_struct")
        self.mm_mt = mm.offsetof("mm_mt") if mm.find_member("mm_mt") is not None else None
        self.mmap = mm.offsetof("mmap") if mm.find_member("mmap") is not None else None
        self.vm_next = vma.offsetof("vm_next") if vma.find_member("vm_next") is not None else None
        self.vm_start = vma.offsetof("vm_start")
        self.vm_end = vma.offsetof("vm_end")
        self.vm_flags = vma.offsetof("vm_flags")
        self.vm_file = vma.offsetof("vm_file")
        self.vm_mm = vma.offsetof("vm_mm")
        self.vm_pgoff = vma.offsetof("vm_pgoff")
        self.size = vma.sizeof()
        f = k.type("struct file")
        self.f_dentry = f.offsetof("f_path.dentry")
        self.f_mnt = f.offsetof("f_path.mnt")


@per_kernel
def _vma_layout(k: Kernel) -> _VmaLayout:
    return _VmaLayout(k)


def mm_vma_addresses(k: Kernel, mm: int) -> list[int]:
    """The vm_area_struct addresses of the mm_struct at `mm`, in address order."""
    lay = _vma_layout(k)
    if lay.mmap is None and lay.mm_mt is not None:
        return [entry for _, _, entry in mt_for_each(k, mm + lay.mm_mt)]
    if lay.mmap is None or lay.vm_next is None:
        raise KcrashError("this kernel's mm_struct has neither mm_mt nor mmap")
    out = []
    vma = k.read_u64(mm + lay.mmap)
    while vma:
        out.append(vma)
        if len(out) > _MAX_VMAS:
            raise KcrashError(f"mm_struct {mm:x}: VMA list does not end (corrupted?)")
        vma = k.read_u64(vma + lay.vm_next)
    return out


@dataclass(frozen=True)
class Vma:
    """One VMA: its address, range, flags, page offset, file (0 if anonymous) and the file's path."""

    address: int
    start: int
    end: int
    flags: int
    pgoff: int
    mm: int
    file: int
    dentry: int
    path: str

    def __contains__(self, vaddr: int) -> bool:
        return self.start <= vaddr < self.end


def read_vma(k: Kernel, address: int) -> Vma:
    """The vm_area_struct at `address`, with the full path of its file (crash's get_pathname)."""
    lay = _vma_layout(k)
    buf = k.read(address, lay.size)

    def word(offset: int) -> int:
        return int(struct.unpack_from("<Q", buf, offset)[0])

    file = word(lay.vm_file)
    dentry = path = None
    if file:
        try:  # the file's dentry may be missing from a filtered dump: the VMA itself still counts
            dentry = k.read_u64(file + lay.f_dentry)
            if dentry:
                path = dentry_path(k, dentry, k.read_u64(file + lay.f_mnt))
        except MemoryReadError:
            path = None
    return Vma(
        address,
        word(lay.vm_start),
        word(lay.vm_end),
        word(lay.vm_flags),
        word(lay.vm_pgoff),
        word(lay.vm_mm),
        file,
        dentry or 0,
        path or "",
    )


def mm_vmas(k: Kernel, mm: int) -> list[Vma]:
    """Every VMA of the mm_struct at `mm`, in address order."""
    return [read_vma(k, address) for address in mm_vma_addresses(k, mm)]


def find_vma(k: Kernel, mm: int, vaddr: int) -> Vma | None:
    """The VMA of `mm` that holds `vaddr`, or None (also when the VMAs cannot be read)."""
    try:
        vmas = mm_vmas(k, mm)
    except MemoryReadError:
        return None
    return next((v for v in vmas if vaddr in v), None)


def user_vtop(k: Kernel, pgd: int, vaddr: int) -> int | None:
    """The physical address of user `vaddr` through the page tables at kernel virtual `pgd` (an mm's pgd),
    None when no present page maps it (or its page tables are not in the dump)."""
    try:
        return k.translator.vtop(vaddr, k.vtop(pgd))
    except MemoryReadError:
        return None
