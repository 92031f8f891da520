"""The SLUB allocator: the kmem_cache list, each cache's per-cpu and per-node slabs, object counts as
crash's `kmem -s` computes them, the objects of a slab with their free/allocated state, and which cache
and object an address belongs to.

Works with `struct slab` (5.17+) and with the slab fields of `struct page` before it; the cpu slab is
kmem_cache_cpu.slab or .page. Every list walk is bounded and detects loops; a freelist pointer is
decoded with the cache's random value where the kernel hardens it (CONFIG_SLAB_FREELIST_HARDENED).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import possible_cpus
from kcrash.kernel.meminfo import list_nodes, member_offset, node_pgdats
from kcrash.kernel.page import compound_head, is_page_ptr, page_to_pfn, page_to_virt, virt_to_page
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.program import Kernel

__all__ = [
    "SlabError",
    "CacheInfo",
    "SlabInfo",
    "SlabObject",
    "CpuSlabs",
    "NodeSlabs",
    "slab_caches",
    "find_cache",
    "cache_stats",
    "slab_info",
    "slab_objects",
    "cpu_slabs",
    "node_slabs",
    "SlabHit",
    "find_slab_object",
    "MAX_LIST",
]

MAX_LIST = 1 << 22  # no list in a dump is longer: a longer one is corrupt
SLAB_RED_ZONE = 0x400
SLAB_STORE_USER = 0x10000


class SlabError(KcrashError):
    """A slab structure that cannot be read or makes no sense (a corrupt list, a bad freelist)."""


def _bitfield(t: Type, name: str) -> tuple[int, int, int] | None:
    """(byte offset, bit offset, bit size) of a member that may be a bit field (in anonymous structs)."""
    stack: list[tuple[Type, int]] = [(t.strip(), 0)]
    while stack:
        cur, base = stack.pop()
        for m in cur.members:
            if m.name == name:
                bit = base + m.bit_offset
                size = m.bit_size or m.type.sizeof() * 8
                return bit // 8, bit % 8, size
            if m.name is None or m.name == "":
                inner = m.type.strip()
                if inner.kind.name in ("STRUCT", "UNION"):
                    stack.append((inner, base + m.bit_offset))
    return None


@dataclass(frozen=True)
class _Layout:
    cache_size: int
    name: int
    object_size: int
    size: int
    offset: int
    oo: int | None
    objects_member: int | None
    order_member: int | None
    random: int | None
    red_left_pad: int | None
    flags: int
    cpu_slab: int | None
    node: int | None  # kmem_cache.node[] (array of pointers)
    local_node: int | None
    list: int
    # kmem_cache_cpu
    cpu_freelist: int | None
    cpu_slab_page: int | None
    cpu_partial: int | None
    # struct slab / struct page
    slab_cache: int
    slab_freelist: int
    slab_list: int
    slab_next: int | None
    inuse: tuple[int, int, int]
    objects: tuple[int, int, int]
    # kmem_cache_node
    nr_partial: int
    nr_slabs: int | None
    total_objects: int | None
    partial: int
    full: int | None
    # 6.18+: per-cpu sheaves and per-node barns of cached free objects
    cpu_sheaves: int | None = None
    per_node: int | None = None  # kmem_cache.per_node[] (7.1+: struct kmem_cache_per_node_ptrs)
    per_node_size: int = 8
    per_node_node: int = 0
    per_node_barn: int | None = None
    node_barn: int | None = None  # kmem_cache_node.barn (6.18-7.0)
    pcs_sheaves: tuple[int, ...] = ()  # slub_percpu_sheaves.main, .spare
    sheaf_size: int = 0
    sheaf_objects: int = 0
    sheaf_barn_list: int = 0
    barn_full: int = 0


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> _Layout:
    kc = k.find_type("struct kmem_cache")
    if kc is None or all(kc.find_member(m) is None for m in ("cpu_slab", "node", "per_node")):
        raise SlabError("kmem cache slab subsystem not available (this kernel does not use SLUB)")
    slab = k.find_type("struct slab")
    if slab is None or slab.find_member("slab_cache") is None:
        slab = k.type("struct page")
    cpu = k.find_type("struct kmem_cache_cpu")
    node = k.type("struct kmem_cache_node")

    def need(t: Type, path: str) -> int:
        off = member_offset(t, path)
        if off is None:
            raise SlabError(f"cannot find {t.name}.{path} in the debug info")
        return off

    inuse = _bitfield(slab, "inuse")
    objects = _bitfield(slab, "objects")
    if inuse is None or objects is None:
        raise SlabError("cannot find the slab's inuse/objects counters in the debug info")
    slab_list = member_offset(slab, "slab_list")
    if slab_list is None:
        slab_list = need(slab, "lru")
    cpu_page = None
    if cpu is not None:
        cpu_page = member_offset(cpu, "slab")
        if cpu_page is None:
            cpu_page = member_offset(cpu, "page")
    oo = member_offset(kc, "oo")
    sheaves = _sheaves_layout(k, kc, node)
    return _Layout(
        cache_size=kc.sizeof(),
        name=need(kc, "name"),
        object_size=need(kc, "object_size"),
        size=need(kc, "size"),
        offset=need(kc, "offset"),
        oo=oo,
        objects_member=member_offset(kc, "objects") if oo is None else None,
        order_member=member_offset(kc, "order") if oo is None else None,
        random=member_offset(kc, "random"),
        red_left_pad=member_offset(kc, "red_left_pad"),
        flags=need(kc, "flags"),
        cpu_slab=member_offset(kc, "cpu_slab"),
        node=member_offset(kc, "node"),
        local_node=member_offset(kc, "local_node"),
        list=need(kc, "list"),
        cpu_freelist=None if cpu is None else member_offset(cpu, "freelist"),
        cpu_slab_page=cpu_page,
        cpu_partial=None if cpu is None else member_offset(cpu, "partial"),
        slab_cache=need(slab, "slab_cache"),
        slab_freelist=need(slab, "freelist"),
        slab_list=slab_list,
        slab_next=member_offset(slab, "next"),
        inuse=inuse,
        objects=objects,
        nr_partial=need(node, "nr_partial"),
        nr_slabs=member_offset(node, "nr_slabs"),
        total_objects=member_offset(node, "total_objects"),
        partial=need(node, "partial"),
        full=member_offset(node, "full"),
        **sheaves,
    )


def _sheaves_layout(k: Kernel, kc: Type, node: Type) -> dict[str, Any]:
    """Offsets of the 6.18+ sheaves: kmem_cache.cpu_sheaves, per_node[] (7.1+), the barns' full sheaves."""
    out: dict[str, Any] = {"node_barn": member_offset(node, "barn")}
    per_node = kc.find_member("per_node")
    if per_node is not None:
        elem = per_node[0].type.strip().target
        out["per_node"] = per_node[1] // 8
        out["per_node_size"] = elem.sizeof()
        out["per_node_node"] = member_offset(elem, "node") or 0
        out["per_node_barn"] = member_offset(elem, "barn")
    out["cpu_sheaves"] = member_offset(kc, "cpu_sheaves")
    pcs = k.find_type("struct slub_percpu_sheaves")
    sheaf = k.find_type("struct slab_sheaf")
    barn = k.find_type("struct node_barn")
    if out["cpu_sheaves"] is not None and pcs is not None and sheaf is not None and barn is not None:
        out["pcs_sheaves"] = tuple(
            o for o in (member_offset(pcs, "main"), member_offset(pcs, "spare")) if o is not None
        )
        out["sheaf_size"] = member_offset(sheaf, "size") or 0
        out["sheaf_objects"] = member_offset(sheaf, "objects") or 0
        out["sheaf_barn_list"] = member_offset(sheaf, "barn_list") or 0
        out["barn_full"] = member_offset(barn, "sheaves_full") or 0
    return out


def _u64(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<Q", buf, off)[0])


def _u32(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", buf, off)[0])


def _bits(buf: bytes, where: tuple[int, int, int]) -> int:
    byte, bit, size = where
    nbytes = (bit + size + 7) // 8
    return (int.from_bytes(buf[byte : byte + nbytes], "little") >> bit) & ((1 << size) - 1)


# --- caches -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    """A struct kmem_cache: its name and geometry."""

    address: int = hex_field()
    name: str = ""
    object_size: int = 0
    size: int = 0  # object stride in the slab
    offset: int = 0  # of the free pointer in an object
    objects: int = 0  # per slab (kmem_cache.oo)
    order: int = 0
    flags: int = hex_field(default=0)
    random: int = hex_field(default=0)
    red_left_pad: int = 0
    cpu_slab: int = hex_field(default=0)
    nodes: tuple[int, ...] = hex_field(default=())
    cpu_sheaves: int = hex_field(default=0)
    barns: tuple[int, ...] = hex_field(default=())

    @property
    def slab_size(self) -> int:
        return 4096 << self.order


def _cache_list(k: Kernel) -> list[int]:
    lay = _layout(k)
    try:
        nodes = list_nodes(k, k.address_of("slab_caches"), "slab_caches list", MAX_LIST)
    except KcrashError as e:
        raise SlabError(str(e)) from None
    return [node - lay.list for node in nodes]


@lru_cache(maxsize=8)
def _cache_read_size(k: Kernel) -> int:
    """The bytes of a kmem_cache that are read: up to the last node pointer in use, not the whole
    MAX_NUMNODES-long node[] array (less to read, and less to miss in a filtered dump)."""
    lay = _layout(k)
    kc = k.type("struct kmem_cache")
    last = max(m.bit_offset // 8 + m.type.sizeof() for m in kc.members if m.name not in ("node", "per_node"))
    nodes = max((nid for nid, _ in node_pgdats(k)), default=0) + 1
    for off, size in ((lay.node, 8), (lay.per_node, lay.per_node_size)):
        if off is not None:
            last = max(last, off + nodes * size)
    return min(last, lay.cache_size)


def _read_cache(k: Kernel, address: int) -> CacheInfo:
    lay = _layout(k)
    buf = k.read(address, _cache_read_size(k))
    try:
        name = k.read_cstring(_u64(buf, lay.name), 256).decode("utf-8", "replace")
    except MemoryReadError:
        name = "(unknown)"
    if lay.oo is not None:
        oo = _u32(buf, lay.oo)
        objects, order = oo & 0xFFFF, oo >> 16
    else:
        objects = _u32(buf, lay.objects_member or 0)
        order = _u32(buf, lay.order_member or 0)
    flags = _u64(buf, lay.flags) if lay.flags + 8 <= len(buf) else _u32(buf, lay.flags)
    nodes: tuple[int, ...] = ()
    if lay.node is not None:
        n = len(node_pgdats(k))
        ids = [nid for nid, _ in node_pgdats(k)]
        nodes = tuple(_u64(buf, lay.node + 8 * nid) for nid in ids[:n])
    elif lay.local_node is not None:
        nodes = (address + lay.local_node,)
    barns: tuple[int, ...] = ()
    if lay.per_node is not None:
        ids = [nid for nid, _ in node_pgdats(k)]
        bases = [lay.per_node + nid * lay.per_node_size for nid in ids]
        nodes = tuple(_u64(buf, b + lay.per_node_node) for b in bases)
        if lay.per_node_barn is not None:
            barns = tuple(_u64(buf, b + lay.per_node_barn) for b in bases)
    if lay.node_barn is not None:
        barns = tuple(k.read_u64(n + lay.node_barn) if n else 0 for n in nodes)
    return CacheInfo(
        address=address,
        name=name,
        object_size=_u32(buf, lay.object_size),
        size=_u32(buf, lay.size),
        offset=_u32(buf, lay.offset),
        objects=objects,
        order=order,
        flags=flags,
        random=_u64(buf, lay.random) if lay.random is not None else 0,
        red_left_pad=_u32(buf, lay.red_left_pad) if lay.red_left_pad is not None else 0,
        cpu_slab=_u64(buf, lay.cpu_slab) if lay.cpu_slab is not None else 0,
        nodes=nodes,
        cpu_sheaves=_u64(buf, lay.cpu_sheaves) if lay.cpu_sheaves is not None else 0,
        barns=barns,
    )


def slab_caches(k: Kernel, errors: list[str] | None = None) -> list[CacheInfo]:
    """Every cache on the slab_caches list, newest first (the list's order, as crash prints it). A cache
    whose kmem_cache cannot be read is left out, and why is appended to `errors` when given."""
    out = []
    for address in _cache_list(k):
        try:
            out.append(_read_cache(k, address))
        except MemoryReadError as e:
            if errors is not None:
                errors.append(f"kmem_cache at {address:x}: {e}")
    return out


def find_cache(k: Kernel, name_or_address: str | int) -> CacheInfo | None:
    """The cache with this name, or at this kmem_cache address."""
    for address in _cache_list(k):
        if isinstance(name_or_address, int):
            if address == name_or_address:
                return _read_cache(k, address)
            continue
        cache = _read_cache(k, address)
        if cache.name == name_or_address:
            return cache
    return None


# --- slabs and freelists --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlabInfo:
    """One slab: its struct slab (struct page before 5.17), first object, node and counters."""

    slab: int = hex_field()
    memory: int = hex_field()
    node: int = 0
    objects: int = 0
    inuse: int = 0
    freelist: int = hex_field(default=0)

    @property
    def free(self) -> int:
        return self.objects - self.inuse


def _node_of_pfn(k: Kernel, pfn: int) -> int:
    pgdats = node_pgdats(k)
    if len(pgdats) == 1:
        return pgdats[0][0]
    t = k.type("struct pglist_data")
    start = member_offset(t, "node_start_pfn")
    spanned = member_offset(t, "node_spanned_pages")
    for nid, pgdat in pgdats:
        s = k.read_u64(pgdat + (start or 0))
        n = k.read_u64(pgdat + (spanned or 0))
        if s <= pfn < s + n:
            return nid
    return -1


def slab_info(k: Kernel, slab: int) -> SlabInfo:
    lay = _layout(k)
    end = max(lay.inuse[0], lay.objects[0], lay.slab_freelist) + 8
    buf = k.read(slab, end)
    return SlabInfo(
        slab=slab,
        memory=page_to_virt(k, slab),
        node=_node_of_pfn(k, page_to_pfn(k, slab)),
        objects=_bits(buf, lay.objects),
        inuse=_bits(buf, lay.inuse),
        freelist=_u64(buf, lay.slab_freelist),
    )


def freelist(k: Kernel, cache: CacheInfo, head: int, limit: int | None = None) -> list[int]:
    """The objects on a freelist starting at `head`, in order; stops at a loop or a bad pointer. The
    slab holding the first object is read once (a freelist stays inside its slab)."""
    out: list[int] = []
    seen: set[int] = set()
    limit = limit if limit is not None else 1 << 16
    hardened = _layout(k).random is not None
    base, data = 0, b""
    if head and not head & 1:
        page = virt_to_page(k, head)
        if page is not None:
            base = page_to_virt(k, compound_head(k, page))
            try:
                data = k.read(base, cache.slab_size)
            except MemoryReadError:
                base, data = 0, b""
    obj = head
    while obj and not obj & 1:
        if obj in seen:
            raise SlabError(f"{cache.name}: duplicate freelist object: {obj:x}")
        if len(out) >= limit:
            break
        seen.add(obj)
        out.append(obj)
        where = obj + cache.offset
        try:
            if base <= where and where + 8 <= base + len(data):
                stored = struct.unpack_from("<Q", data, where - base)[0]
            else:
                stored = k.read_u64(where)
        except MemoryReadError:
            raise SlabError(f"{cache.name}: invalid freepointer: {where:x}") from None
        if hardened:
            stored ^= cache.random ^ int.from_bytes(where.to_bytes(8, "little"), "big")
        obj = stored
    return out


@dataclass(frozen=True)
class CpuSlabs:
    """A CPU's share of a cache: its kmem_cache_cpu, the active slab and its lockless freelist, the
    per-cpu partial slabs, and (6.18+) the free objects cached in its main and spare sheaves."""

    cpu: int
    kmem_cache_cpu: int = hex_field()
    slab: int = hex_field(default=0)
    freelist: int = hex_field(default=0)
    partial: list[int] = hex_field(default_factory=list)
    sheaves: list[int] = hex_field(default_factory=list)


def _sheaf_objects(k: Kernel, sheaf: int) -> list[int]:
    lay = _layout(k)
    size = k.read_u32(sheaf + lay.sheaf_size)
    if size > 1 << 16:
        raise SlabError(f"invalid slab_sheaf size {size} at {sheaf:x}")
    data = k.read(sheaf + lay.sheaf_objects, 8 * size)
    return list(struct.unpack(f"<{size}Q", data))


def _cpu_sheaves(k: Kernel, cache: CacheInfo, cpu: int) -> list[int]:
    lay = _layout(k)
    if not cache.cpu_sheaves:
        return []
    pcs = k.per_cpu_address(cache.cpu_sheaves, cpu)
    out: list[int] = []
    for off in lay.pcs_sheaves:
        sheaf = k.read_u64(pcs + off)
        if sheaf:
            out += _sheaf_objects(k, sheaf)
    return out


def barn_objects(k: Kernel, cache: CacheInfo) -> list[int]:
    """The free objects cached in the full sheaves of the cache's per-node barns (6.18+)."""
    lay = _layout(k)
    out: list[int] = []
    for barn in cache.barns:
        if not barn:
            continue
        head = barn + lay.barn_full
        node = k.read_u64(head)
        seen: set[int] = set()
        while node != head:
            if not node or node in seen or len(seen) >= MAX_LIST:
                raise SlabError(f"{cache.name}: corrupt barn sheaf list at {head:x}")
            seen.add(node)
            out += _sheaf_objects(k, node - lay.sheaf_barn_list)
            node = k.read_u64(node)
    return out


def cpu_slabs(k: Kernel, cache: CacheInfo) -> list[CpuSlabs]:
    lay = _layout(k)
    if not cache.cpu_slab or lay.cpu_slab_page is None:
        if not cache.cpu_sheaves:
            return []
        return [CpuSlabs(cpu, 0, sheaves=_cpu_sheaves(k, cache, cpu)) for cpu in possible_cpus(k)]
    out = []
    for cpu in possible_cpus(k):
        kcc = k.per_cpu_address(cache.cpu_slab, cpu)
        try:
            slab = k.read_u64(kcc + lay.cpu_slab_page)
            free = k.read_u64(kcc + lay.cpu_freelist) if lay.cpu_freelist is not None else 0
            partial_head = k.read_u64(kcc + lay.cpu_partial) if lay.cpu_partial is not None else 0
        except MemoryReadError:
            continue
        partial: list[int] = []
        seen: set[int] = set()
        while partial_head and lay.slab_next is not None:
            if partial_head in seen or len(partial) >= MAX_LIST or not is_page_ptr(k, partial_head):
                raise SlabError(f"{cache.name}: invalid partial list slab pointer: {partial_head:x}")
            seen.add(partial_head)
            partial.append(partial_head)
            partial_head = k.read_u64(partial_head + lay.slab_next)
        out.append(CpuSlabs(cpu, kcc, slab, free, partial, _cpu_sheaves(k, cache, cpu)))
    return out


@dataclass(frozen=True)
class NodeSlabs:
    """A cache's struct kmem_cache_node: its counters and the slabs on its partial (and, with
    SLAB_STORE_USER, full) list."""

    node: int
    address: int = hex_field()
    nr_slabs: int = 0
    nr_partial: int = 0
    total_objects: int = 0
    partial: list[int] = hex_field(default_factory=list)
    full: list[int] | None = hex_field(default=None)  # None: not tracked


def _slab_list(k: Kernel, cache: CacheInfo, head: int, what: str) -> list[int]:
    lay = _layout(k)
    out: list[int] = []
    seen: set[int] = set()
    node = k.read_u64(head)
    while node != head:
        slab = node - lay.slab_list
        if not node or node in seen or len(out) >= MAX_LIST or not is_page_ptr(k, slab):
            raise SlabError(f"{cache.name}: invalid {what} list slab pointer: {slab:x}")
        seen.add(node)
        out.append(slab)
        node = k.read_u64(node)
    return out


def node_slabs(k: Kernel, cache: CacheInfo, lists: bool = True) -> list[NodeSlabs]:
    lay = _layout(k)
    out = []
    ids = [nid for nid, _ in node_pgdats(k)]
    for nid, address in zip(ids, cache.nodes, strict=False):
        if not address:
            continue
        size = max(lay.nr_partial, lay.nr_slabs or 0, lay.total_objects or 0, lay.partial) + 16
        buf = k.read(address, size)
        full: list[int] | None = None
        partial: list[int] = []
        if lists:
            partial = _slab_list(k, cache, address + lay.partial, "partial")
            if lay.full is not None and cache.flags & SLAB_STORE_USER:
                full = _slab_list(k, cache, address + lay.full, "full")
        out.append(
            NodeSlabs(
                node=nid,
                address=address,
                nr_slabs=_u64(buf, lay.nr_slabs) if lay.nr_slabs is not None else 0,
                nr_partial=_u64(buf, lay.nr_partial),
                total_objects=_u64(buf, lay.total_objects) if lay.total_objects is not None else 0,
                partial=partial,
                full=full,
            )
        )
    return out


# --- counts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheStats:
    """A cache's line in `kmem -s`."""

    cache: int = hex_field()
    name: str = ""
    object_size: int = 0
    allocated: int = 0
    total: int = 0
    slabs: int = 0
    slab_size: int = 0
    error: str | None = None


def cache_stats(k: Kernel, cache: CacheInfo) -> CacheStats:
    """ALLOCATED, TOTAL and SLABS as crash counts them (slub.c's slab_objects()): the nodes' nr_slabs and
    total_objects, less the free objects of the cpu slabs (their lockless freelists too), of the per-cpu
    partial slabs and of the nodes' partial slabs."""
    try:
        free = 0
        for cs in cpu_slabs(k, cache):
            if cs.slab:
                info = slab_info(k, cs.slab)
                free += info.objects - info.inuse + len(freelist(k, cache, cs.freelist))
            for slab in cs.partial:
                info = slab_info(k, slab)
                free += info.objects - info.inuse
            free += len(cs.sheaves)
        free += len(barn_objects(k, cache))
        slabs = total = 0
        for node in node_slabs(k, cache):
            slabs += node.nr_slabs
            total += node.total_objects
            for slab in node.partial:
                info = slab_info(k, slab)
                free += info.objects - info.inuse
    except (SlabError, MemoryReadError) as e:
        return CacheStats(cache.address, cache.name, cache.object_size, 0, 0, 0, cache.slab_size, str(e))
    return CacheStats(
        cache.address, cache.name, cache.object_size, total - free, total, slabs, cache.slab_size
    )


# --- objects ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlabObject:
    """One object of a slab: its address (after any left red zone) and whether it is free; `cpu` is the
    CPU whose active slab holds it when free there (crash's "(cpu N cache)")."""

    address: int = hex_field()
    free: bool = False
    cpu: int | None = None


def slab_objects(
    k: Kernel, cache: CacheInfo, slab: int, cpus: list[CpuSlabs] | None = None
) -> tuple[SlabInfo, list[SlabObject]]:
    """A slab's counters (for a cpu slab, corrected by its lockless freelist) and every object in it."""
    info = slab_info(k, slab)
    cpus = cpus if cpus is not None else cpu_slabs(k, cache)
    owner = next((cs for cs in cpus if cs.slab == slab), None)
    free = set(freelist(k, cache, info.freelist, info.objects + 1))
    if cache.cpu_sheaves:
        # Objects cached in sheaves count as in use in their slab; they are free to the cache's users.
        cached = {o for cs in cpus for o in cs.sheaves} | set(barn_objects(k, cache))
        free |= {o for o in cached if info.memory <= o < info.memory + info.objects * cache.size}
    if owner is not None:
        cpu_free = freelist(k, cache, owner.freelist, info.objects + 1)
        n_free = len(cpu_free) + (info.objects - info.inuse if info.freelist else 0)
        info = SlabInfo(info.slab, info.memory, info.node, info.objects, info.objects - n_free, info.freelist)
        free |= set(cpu_free)
    pad = cache.red_left_pad if cache.flags & SLAB_RED_ZONE else 0
    objects = []
    for i in range(info.objects):
        address = info.memory + i * cache.size + pad
        is_free = address in free
        objects.append(SlabObject(address, is_free, owner.cpu if owner is not None and is_free else None))
    return info, objects


@dataclass(frozen=True)
class SlabHit:
    """Where an address falls in the slab allocator: cache, slab, and the object containing it."""

    cache: CacheInfo
    slab: SlabInfo
    object: SlabObject | None
    cpus: list[CpuSlabs] = field(default_factory=list)


def slab_of_page(k: Kernel, page: int) -> tuple[CacheInfo, int] | None:
    """(cache, head page) when the struct page `page` belongs to a slab of a cache on the list."""
    lay = _layout(k)
    head = compound_head(k, page)
    try:
        cache_addr = k.read_u64(head + lay.slab_cache)
    except MemoryReadError:
        return None
    if not cache_addr or cache_addr not in set(_cache_list(k)):
        return None
    return _read_cache(k, cache_addr), head


def find_slab_object(k: Kernel, address: int) -> SlabHit | None:
    """The cache, slab and object an address belongs to, or None when it is not in a slab."""
    page = virt_to_page(k, address)
    if page is None:
        return None
    found = slab_of_page(k, page)
    if found is None:
        return None
    cache, head = found
    cpus = cpu_slabs(k, cache)
    info, objects = slab_objects(k, cache, head, cpus)
    hit = None
    for obj in objects:
        base = obj.address - (cache.red_left_pad if cache.flags & SLAB_RED_ZONE else 0)
        if base <= address < base + cache.size:
            hit = obj
            break
    return SlabHit(cache, info, hit, cpus)


def iter_caches_stats(k: Kernel) -> Iterator[CacheStats]:
    for cache in slab_caches(k):
        yield cache_stats(k, cache)
