"""struct page: the page array (vmemmap), pfn/page/virtual-address conversions, page flags by name, and
one page's fields as crash's `kmem -p` shows them.

Flag names come from the kernel's own pageflag_names[] table in the dump (as /proc/kpageflags and the
tracepoints print them), or from `enum pageflags` in the debug info; never from a list kept here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "PageLayout",
    "page_layout",
    "pfn_to_page",
    "page_to_pfn",
    "is_page_ptr",
    "virt_to_page",
    "page_to_virt",
    "compound_head",
    "PageFlag",
    "page_flag_names",
    "pageflags_enum",
    "PageInfo",
    "page_info",
    "page_infos",
    "decode_page_flags",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
VMEMMAP_DEFAULT = 0xFFFFEA0000000000


@dataclass(frozen=True)
class PageLayout:
    """Where the page array is and the offsets of the struct page members crash shows."""

    vmemmap: int
    page_size: int  # sizeof(struct page)
    max_pfn: int
    flags: int
    mapping: int | None
    index: int | None
    refcount: int | None
    compound_head: int | None


@lru_cache(maxsize=8)
def page_layout(k: Kernel) -> PageLayout:
    t = k.type("struct page")
    vmemmap = VMEMMAP_DEFAULT
    sym = k.symbols.lookup("vmemmap_base")
    if sym is not None:
        try:
            vmemmap = k.read_u64(sym.address)
        except MemoryReadError:
            pass
    max_pfn = 0
    sym = k.symbols.lookup("max_pfn")
    if sym is not None:
        try:
            max_pfn = k.read_u64(sym.address)
        except MemoryReadError:
            pass

    def off(name: str) -> int | None:
        hit = t.find_member(name)
        return None if hit is None else hit[1] // 8

    refcount = off("_refcount")
    if refcount is None:
        refcount = off("_count")
    return PageLayout(
        vmemmap=vmemmap,
        page_size=t.sizeof(),
        max_pfn=max_pfn,
        flags=off("flags") or 0,
        mapping=off("mapping"),
        index=off("index"),
        refcount=refcount,
        compound_head=off("compound_head"),
    )


def pfn_to_page(k: Kernel, pfn: int) -> int:
    lay = page_layout(k)
    return lay.vmemmap + pfn * lay.page_size


def page_to_pfn(k: Kernel, page: int) -> int:
    lay = page_layout(k)
    return (page - lay.vmemmap) // lay.page_size


def is_page_ptr(k: Kernel, address: int) -> bool:
    """True if `address` is the start of a struct page of a pfn below max_pfn."""
    lay = page_layout(k)
    delta = address - lay.vmemmap
    if delta < 0 or delta % lay.page_size:
        return False
    return delta // lay.page_size < (lay.max_pfn or 1 << 40)


def virt_to_page(k: Kernel, vaddr: int) -> int | None:
    """The struct page of a kernel virtual address (direct map or any mapped address), or None."""
    try:
        paddr = k.vtop(vaddr)
    except MemoryReadError:
        return None
    return pfn_to_page(k, paddr >> PAGE_SHIFT)


def page_to_virt(k: Kernel, page: int) -> int:
    """The direct-map address of the page frame a struct page describes."""
    return k.translator.page_offset + (page_to_pfn(k, page) << PAGE_SHIFT)


def compound_head(k: Kernel, page: int) -> int:
    """The head page of the compound page `page` belongs to (itself if it is not a tail page)."""
    lay = page_layout(k)
    if lay.compound_head is None:
        return page
    try:
        head = k.read_u64(page + lay.compound_head)
    except MemoryReadError:
        return page
    return head - 1 if head & 1 else page


# --- flags ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageFlag:
    name: str
    mask: int = hex_field()


@lru_cache(maxsize=8)
def page_flag_names(k: Kernel) -> tuple[PageFlag, ...]:
    """(name, mask) pairs from pageflag_names[] in the dump, else one per `enum pageflags` bit."""
    sym = k.symbols.lookup("pageflag_names")
    t = k.find_type("struct trace_print_flags")
    if sym is not None and t is not None:
        size = t.sizeof()
        n = (sym.size or 0) // size
        mask_off = t.member("mask")[1] // 8
        name_off = t.member("name")[1] // 8
        out = []
        try:
            data = k.read(sym.address, n * size)
            for i in range(n):
                mask = struct.unpack_from("<Q", data, i * size + mask_off)[0]
                name_ptr = struct.unpack_from("<Q", data, i * size + name_off)[0]
                if not name_ptr:
                    break
                out.append(PageFlag(k.read_cstring(name_ptr, 64).decode("ascii", "replace"), mask))
        except MemoryReadError:
            out = []
        if out:
            return tuple(out)
    return tuple(PageFlag(name[3:], 1 << bit) for name, bit in pageflags_enum(k) if bit < 64)


def pageflags_enum(k: Kernel) -> list[tuple[str, int]]:
    """Every enumerator of `enum pageflags` with its bit number (aliases included, in declaration order)."""
    t = k.find_type("enum pageflags")
    if t is None:
        raise KcrashError("enum pageflags does not exist in this kernel")
    return [(e.name, e.value) for e in t.strip().enumerators or () if e.name.startswith("PG_")]


def decode_page_flags(k: Kernel, flags: int) -> list[str]:
    return [f.name for f in page_flag_names(k) if flags & f.mask]


@dataclass(frozen=True)
class PageInfo:
    """One struct page as `kmem -p` shows it."""

    page: int = hex_field()
    paddr: int = hex_field()
    mapping: int = hex_field()
    index: int = hex_field()
    count: int = 0
    flags: int = hex_field(default=0)
    flag_names: list[str] | None = None


def page_info(k: Kernel, page: int) -> PageInfo:
    lay = page_layout(k)
    return _decode(k, lay, page, k.read(page, lay.page_size), 0)


def page_infos(k: Kernel, first_pfn: int, count: int, chunk: int = 4096) -> Iterator[PageInfo]:
    """The struct pages of `count` page frames from `first_pfn`, read `chunk` at a time; a chunk whose
    memory cannot be read is skipped."""
    lay = page_layout(k)
    for start in range(first_pfn, first_pfn + count, chunk):
        n = min(chunk, first_pfn + count - start)
        address = pfn_to_page(k, start)
        try:
            buf = k.read(address, n * lay.page_size)
        except MemoryReadError:
            continue
        for i in range(n):
            yield _decode(k, lay, address + i * lay.page_size, buf, i * lay.page_size)


def _decode(k: Kernel, lay: PageLayout, page: int, buf: bytes, base: int) -> PageInfo:
    def u64(off: int | None) -> int:
        return struct.unpack_from("<Q", buf, base + off)[0] if off is not None else 0

    flags = u64(lay.flags)
    count = struct.unpack_from("<I", buf, base + lay.refcount)[0] if lay.refcount is not None else 0
    return PageInfo(
        page=page,
        paddr=page_to_pfn(k, page) << PAGE_SHIFT,
        mapping=u64(lay.mapping),
        index=u64(lay.index),
        count=count,
        flags=flags,
        flag_names=decode_page_flags(k, flags),
    )
