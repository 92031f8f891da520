"""struct page: the page array (vmemmap), pfn/page conversions, page flags by name, and one page's fields
as crash's vtop (and `kmem -p`) show them.

Flag names come from the kernel's own pageflag_names[] table in the dump, or from `enum pageflags` in the
debug info; never from a list kept here.
"""

from __future__ import annotations

import struct
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
    "PageFlag",
    "page_flag_names",
    "pageflags_enum",
    "PageInfo",
    "page_info",
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


@lru_cache(maxsize=8)
def page_layout(k: Kernel) -> PageLayout:
    t = k.type("struct page")

    def off(*names: str) -> int | None:
        for name in names:
            hit = t.find_member(name)
            if hit is not None:
                return hit[1] // 8
        return None

    variables = {"vmemmap_base": VMEMMAP_DEFAULT, "max_pfn": 0}
    for name in variables:
        sym = k.symbols.lookup(name)
        if sym is not None:
            try:
                variables[name] = k.read_u64(sym.address)
            except MemoryReadError:
                pass
    return PageLayout(
        vmemmap=variables["vmemmap_base"],
        page_size=t.sizeof(),
        max_pfn=variables["max_pfn"],
        flags=off("flags") or 0,
        mapping=off("mapping"),
        index=off("index", "__folio_index"),
        refcount=off("_refcount", "_count"),
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
        mask_at, name_at = t.find_member("mask"), t.find_member("name")
        size = t.sizeof()
        out = []
        if mask_at is not None and name_at is not None:
            address = sym.address
            try:
                for _ in range(128):  # the table ends with {0, NULL}
                    raw = k.read(address, size)
                    (mask,) = struct.unpack_from("<Q", raw, mask_at[1] // 8)
                    (name_ptr,) = struct.unpack_from("<Q", raw, name_at[1] // 8)
                    if not name_ptr:
                        break
                    out.append(PageFlag(k.read_cstring(name_ptr, 64).decode("ascii", "replace"), mask))
                    address += size
            except MemoryReadError:
                out = []
        if out:
            return tuple(out)
    return tuple(PageFlag(name[3:], 1 << bit) for name, bit in pageflags_enum(k) if bit < 64)


def pageflags_enum(k: Kernel) -> list[tuple[str, int]]:
    """Every enumerator of `enum pageflags` with its bit number (below __NR_PAGEFLAGS, in declaration
    order)."""
    t = k.find_type("enum pageflags")
    if t is None:
        raise KcrashError("enum pageflags does not exist in this kernel")
    out = []
    for e in t.strip().enumerators or ():
        if e.name == "__NR_PAGEFLAGS":
            break
        if e.name.startswith("PG_"):
            out.append((e.name, e.value))
    return out


def decode_page_flags(k: Kernel, flags: int) -> list[str]:
    return [f.name for f in page_flag_names(k) if flags & f.mask]


@dataclass(frozen=True)
class PageInfo:
    """One struct page as crash's page line shows it."""

    page: int = hex_field()
    paddr: int = hex_field()
    mapping: int = hex_field()
    index: int = hex_field()
    count: int = 0
    flags: int = hex_field(default=0)
    flag_names: list[str] | None = None


def page_info(k: Kernel, page: int) -> PageInfo:
    """The fields of the struct page at `page` (raises MemoryReadError if it is not in the dump)."""
    lay = page_layout(k)
    buf = k.read(page, lay.page_size)

    def u64(off: int | None) -> int:
        return struct.unpack_from("<Q", buf, off)[0] if off is not None else 0

    flags = u64(lay.flags)
    count = struct.unpack_from("<i", buf, lay.refcount)[0] if lay.refcount is not None else 0
    return PageInfo(
        page=page,
        paddr=page_to_pfn(k, page) << PAGE_SHIFT,
        mapping=u64(lay.mapping),
        index=u64(lay.index),
        count=count,
        flags=flags,
        flag_names=decode_page_flags(k, flags),
    )
