"""A process's virtual memory areas (struct vm_area_struct): the mm's VMA list (mm->mmap before 6.1) or
maple tree (mm->mm_mt), each area's range, flags and file."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.fs import file_path
from kcrash.kernel.mapletree import mt_for_each
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.program import Kernel

__all__ = ["Vma", "mm_vmas", "find_vma"]

_MAX_VMAS = 1 << 20


@dataclass(frozen=True)
class Vma:
    """One vm_area_struct."""

    address: int = hex_field()
    start: int = hex_field()
    end: int = hex_field()
    flags: int = hex_field()
    file: int = hex_field()  # struct file *, 0 for anonymous memory
    pgoff: int = 0  # offset in the file, in pages

    def __contains__(self, vaddr: int) -> bool:
        return self.start <= vaddr < self.end

    def path(self, k: Kernel) -> str:
        """The mapped file's path ("" for anonymous memory)."""
        return file_path(k, self.file) if self.file else ""


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> dict[str, int | None]:
    mm = k.type("struct mm_struct")
    vma = k.type("struct vm_area_struct")

    def off(t: Type, *names: str) -> int | None:
        for name in names:
            hit = t.find_member(name)
            if hit is not None:
                return int(hit[1] // 8)
        return None

    return {
        "mmap": off(mm, "mmap"),
        "mm_mt": off(mm, "mm_mt"),
        "size": vma.sizeof(),
        "vm_start": off(vma, "vm_start"),
        "vm_end": off(vma, "vm_end"),
        "vm_flags": off(vma, "vm_flags", "__vm_flags"),
        "vm_file": off(vma, "vm_file"),
        "vm_next": off(vma, "vm_next"),
        "vm_pgoff": off(vma, "vm_pgoff"),
    }


def _read_vma(k: Kernel, address: int, lay: dict[str, int | None]) -> Vma:
    raw = k.read(address, lay["size"] or 0)

    def u64(name: str) -> int:
        at = lay[name]
        return struct.unpack_from("<Q", raw, at)[0] if at is not None else 0

    return Vma(address, u64("vm_start"), u64("vm_end"), u64("vm_flags"), u64("vm_file"), u64("vm_pgoff"))


def mm_vmas(k: Kernel, mm: int) -> list[Vma]:
    """The VMAs of the address space at `mm`, in address order."""
    lay = _layout(k)
    out: list[Vma] = []
    if lay["mm_mt"] is not None and lay["mmap"] is None:
        for _first, _last, entry in mt_for_each(k, mm + lay["mm_mt"]):
            out.append(_read_vma(k, entry, lay))
        return out
    if lay["mmap"] is None or lay["vm_next"] is None:
        raise KcrashError("cannot find the VMAs of an mm_struct in this kernel")
    address = k.read_u64(mm + lay["mmap"])
    while address and len(out) < _MAX_VMAS:
        vma = _read_vma(k, address, lay)
        out.append(vma)
        address = k.read_u64(address + lay["vm_next"])
    return out


def find_vma(k: Kernel, mm: int, vaddr: int) -> Vma | None:
    """The VMA of `mm` that holds `vaddr`, or None."""
    try:
        vmas = mm_vmas(k, mm)
    except MemoryReadError:
        return None
    return next((v for v in vmas if vaddr in v), None)
