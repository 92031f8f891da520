"""vmalloc space: the busy vmap_area entries (vmap_area_list, or the per-node busy lists of vmap_nodes
from 6.9 on) with their vm_struct, sorted by address, and the area an address falls in."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import MemoryReadError
from kcrash.kernel.meminfo import list_nodes
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["VmapArea", "vmap_areas", "find_vmap_area", "MAX_AREAS"]

MAX_AREAS = 1 << 22
VM_VM_AREA = 0x4


@dataclass(frozen=True)
class VmapArea:
    """A busy vmap_area that has a vm_struct (a vmalloc/vmap/ioremap mapping) as `kmem -v` lists it."""

    vmap_area: int = hex_field()
    vm_struct: int = hex_field()
    start: int = hex_field()
    end: int = hex_field()

    @property
    def size(self) -> int:
        return self.end - self.start


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> dict[str, int | None]:
    t = k.type("struct vmap_area")

    def off(name: str) -> int | None:
        hit = t.find_member(name)
        return None if hit is None else hit[1] // 8

    out = {
        "size": t.sizeof(),
        "va_start": off("va_start"),
        "va_end": off("va_end"),
        "vm": off("vm"),
        "list": off("list"),
        "flags": off("flags") if t.find_member("purge_list") is not None else None,
    }
    node = k.find_type("struct vmap_node")
    if node is not None:
        busy = node.find_member("busy")
        rb_list = k.find_type("struct rb_list")
        head = rb_list.find_member("head") if rb_list is not None else None
        out["node_size"] = node.sizeof()
        out["busy_head"] = None if busy is None or head is None else busy[1] // 8 + head[1] // 8
    return out


def _walk(k: Kernel, head: int, list_off: int, out: list[int]) -> None:
    out += [node - list_off for node in list_nodes(k, head, "vmap_area list", MAX_AREAS)]


def _area_addresses(k: Kernel) -> list[int]:
    lay = _layout(k)
    list_off = lay["list"] or 0
    out: list[int] = []
    nodes = k.symbols.lookup("vmap_nodes")
    if nodes is not None and lay.get("busy_head") is not None:
        base = k.read_u64(nodes.address)
        count = k.read_u32(k.address_of("nr_vmap_nodes"))
        for i in range(count):
            _walk(k, base + i * (lay["node_size"] or 0) + (lay["busy_head"] or 0), list_off, out)
        return out
    _walk(k, k.address_of("vmap_area_list"), list_off, out)
    return out


def vmap_areas(k: Kernel) -> list[VmapArea]:
    """Every busy vmap_area with a vm_struct, by start address."""
    lay = _layout(k)
    size = lay["size"] or 0
    areas = []
    for address in _area_addresses(k):
        try:
            buf = k.read(address, size)
        except MemoryReadError:
            continue
        start, end = struct.unpack_from("<QQ", buf, lay["va_start"] or 0)
        if lay["va_end"] is not None:
            end = struct.unpack_from("<Q", buf, lay["va_end"])[0]
        vm = struct.unpack_from("<Q", buf, lay["vm"])[0] if lay["vm"] is not None else 0
        if lay["flags"] is not None:
            if struct.unpack_from("<Q", buf, lay["flags"])[0] != VM_VM_AREA:
                continue
        elif not vm:
            continue
        areas.append(VmapArea(address, vm, start, end))
    areas.sort(key=lambda a: a.start)
    return areas


def find_vmap_area(k: Kernel, address: int) -> VmapArea | None:
    """The vmalloc area that contains `address`, or None."""
    for area in vmap_areas(k):
        if area.start <= address < area.end:
            return area
    return None
