"""Memory counters: the kernel's vm_stat arrays, zones and nodes, and the totals crash's `kmem -i` prints,
all read from the kernel's own counters (never by walking the page array).

Enumerator names and counts (zone_stat_item, node_stat_item, numa_stat_item, vm_event_item, the watermark
indexes) come from the debug info; array lengths from the variables' types.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import possible_cpus
from kcrash.kernel.page import page_layout
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.program import Kernel

__all__ = [
    "VmStat",
    "member_offset",
    "list_nodes",
    "array_length",
    "vm_stat_value",
    "vm_stat",
    "zone_vm_stat",
    "vm_event_states",
    "Zone",
    "node_pgdats",
    "zones",
    "FreeList",
    "free_lists",
    "FreeBlock",
    "find_free_block",
    "HugeState",
    "hstates",
    "SwapTotals",
    "swap_totals",
    "MemInfo",
    "mem_info",
    "pages_to_size",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
SWP_USED = 1


# --- small debug-info helpers ---------------------------------------------------------------------------


def _enumerators(k: Kernel, enum_name: str) -> list[tuple[str, int]]:
    t = k.find_type(f"enum {enum_name}")
    if t is None:
        return []
    return [(e.name, e.value) for e in t.strip().enumerators or ()]


def _enum_value(k: Kernel, enum_name: str, name: str, default: int | None = None) -> int | None:
    for n, v in _enumerators(k, enum_name):
        if n == name:
            return v
    return default


def member_offset(t: Type, path: str) -> int | None:
    """Byte offset of a member path ("a.b.c") in a struct type, or None when a member is missing."""
    offset = 0
    for part in path.split("."):
        hit = t.strip().find_member(part)
        if hit is None:
            return None
        offset += hit[1] // 8
        t = hit[0].type
    return offset


def _offset(k: Kernel, type_name: str, path: str) -> int | None:
    t = k.find_type(type_name)
    return None if t is None else member_offset(t, path)


def _has(k: Kernel, name: str) -> bool:
    return k.symbols.lookup(name) is not None


def _u64(k: Kernel, name: str, default: int = 0) -> int:
    sym = k.symbols.lookup(name)
    if sym is None:
        return default
    try:
        return k.read_u64(sym.address)
    except MemoryReadError:
        return default


def _i32(k: Kernel, name: str, default: int = 0) -> int:
    sym = k.symbols.lookup(name)
    if sym is None:
        return default
    try:
        return int(struct.unpack("<i", k.read(sym.address, 4))[0])
    except MemoryReadError:
        return default


def array_length(k: Kernel, name: str, element: str | int = 8) -> int:
    """The number of elements of a global array: its symbol's size over the element's (`element`: a size or
    a type name), which needs no DWARF; else the length in the variable's debug-info type."""
    sym = k.symbols.lookup(name)
    size = element if isinstance(element, int) else k.type(element).sizeof()
    if sym is not None and sym.size and size:
        return sym.size // size
    try:
        _, t = k.variable_type(name)
    except KcrashError:
        return 0
    t = t.strip()
    return t.length or 0 if t.kind.name == "ARRAY" else 0


def _signed_longs(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 8}q", data))


# --- vm_stat --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmStat:
    """One vm_stat counter: its enumerator name, the array it lives in ("zone", "node", "numa" or
    "vm_stat" before 4.8) and its value (atomic_long_t: may be negative)."""

    name: str
    group: str
    value: int


def _stat_group(k: Kernel, array: str, enum_name: str, count_name: str) -> list[tuple[str, int]]:
    """(name, index) of the counters of one vm_stat array, in enum order, up to its NR_* count."""
    count = _enum_value(k, enum_name, count_name)
    if count is None:
        count = array_length(k, array)
    # Aliases (NR_ZONE_LRU_BASE = NR_ZONE_INACTIVE_ANON): one counter per index, under its last name.
    names = {v: n for n, v in _enumerators(k, enum_name) if n != count_name and 0 <= v < count}
    return [(names[v], v) for v in sorted(names)]


def _read_group(k: Kernel, address: int, items: list[tuple[str, int]], group: str) -> list[VmStat]:
    if not items:
        return []
    n = max(v for _, v in items) + 1
    values = _signed_longs(k.read(address, 8 * n))
    return [VmStat(name, group, values[index]) for name, index in items]


@lru_cache(maxsize=8)
def _vm_stat_layout(k: Kernel) -> list[tuple[str, str, list[tuple[str, int]]]]:
    """(symbol, group, items) for each global vm_stat array this kernel has."""
    if _has(k, "vm_zone_stat"):
        layout = [
            (
                "vm_zone_stat",
                "zone",
                _stat_group(k, "vm_zone_stat", "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS"),
            )
        ]
        if _has(k, "vm_node_stat"):
            items = _stat_group(k, "vm_node_stat", "node_stat_item", "NR_VM_NODE_STAT_ITEMS")
            layout.append(("vm_node_stat", "node", items))
        if _has(k, "vm_numa_stat") and array_length(k, "vm_numa_stat"):
            items = _stat_group(k, "vm_numa_stat", "numa_stat_item", "NR_VM_NUMA_STAT_ITEMS")
            layout.append(("vm_numa_stat", "numa", items))
        return layout
    if _has(k, "vm_stat"):
        return [("vm_stat", "vm_stat", _stat_group(k, "vm_stat", "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS"))]
    return []


def vm_stat(k: Kernel) -> list[VmStat]:
    """Every global vm_stat counter (vm_zone_stat, vm_node_stat, vm_numa_stat; vm_stat before 4.8)."""
    out: list[VmStat] = []
    for symbol, group, items in _vm_stat_layout(k):
        out += _read_group(k, k.address_of(symbol), items, group)
    return out


def vm_stat_value(k: Kernel, name: str) -> int | None:
    """One global vm_stat counter by enumerator name, or None when this kernel has no such counter."""
    for symbol, _group, items in _vm_stat_layout(k):
        for item, index in items:
            if item == name:
                return int(struct.unpack("<q", k.read(k.address_of(symbol) + 8 * index, 8))[0])
    return None


def zone_vm_stat(k: Kernel, zone: int) -> list[VmStat]:
    """The per-zone counters (zone->vm_stat[]) of the struct zone at `zone`."""
    layout = _vm_stat_layout(k)
    if not layout:
        return []
    off = _offset(k, "struct zone", "vm_stat")
    if off is None:
        return []
    return _read_group(k, zone + off, layout[0][2], "zone")


def vm_event_states(k: Kernel) -> list[VmStat]:
    """The per-cpu vm_event_states counters summed over the possible CPUs (unsigned)."""
    sym = k.symbols.lookup("vm_event_states")
    items = _stat_group(k, "vm_event_states", "vm_event_item", "NR_VM_EVENT_ITEMS")
    if sym is None or not items:
        return []
    n = max(v for _, v in items) + 1
    totals = [0] * n
    for cpu in possible_cpus(k):
        try:
            data = k.read(k.per_cpu_address(sym.address, cpu), 8 * n)
        except (KcrashError, MemoryReadError):
            continue
        for i, v in enumerate(struct.unpack(f"<{n}Q", data)):
            totals[i] += v
    return [VmStat(name, "event", totals[index] & 0xFFFFFFFFFFFFFFFF) for name, index in items]


# --- nodes and zones ------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def node_pgdats(k: Kernel) -> tuple[tuple[int, int], ...]:
    """(node id, pglist_data address) of each memory node: node_data[] on NUMA kernels (the non-NULL
    entries), contig_page_data otherwise. Cached: a dump's nodes do not change."""
    sym = k.symbols.lookup("node_data")
    if sym is not None:
        n = array_length(k, "node_data") or 1
        ptrs = struct.unpack(f"<{n}Q", k.read(sym.address, 8 * n))
        return tuple((i, p) for i, p in enumerate(ptrs) if p)
    return ((0, k.address_of("contig_page_data")),)


@dataclass(frozen=True)
class Zone:
    """A struct zone: where it is, its name and page counts (`kmem -z`, `-n`, `-f`)."""

    node: int
    index: int
    address: int = hex_field()
    name: str = ""
    spanned: int = 0
    present: int = 0
    managed: int = 0
    start_pfn: int = 0
    watermark_min: int = 0
    watermark_low: int = 0
    watermark_high: int = 0
    free_pages: int = 0


@lru_cache(maxsize=8)
def _zone_layout(k: Kernel) -> dict[str, int | None]:
    zt = k.type("struct zone")
    wm = "_watermark" if zt.find_member("_watermark") else "watermark"
    nr_free = _enum_value(k, "zone_stat_item", "NR_FREE_PAGES", 0) or 0
    vm_stat_off = member_offset(zt, "vm_stat")
    return {
        "size": zt.sizeof(),
        "name": member_offset(zt, "name"),
        "spanned": member_offset(zt, "spanned_pages"),
        "present": member_offset(zt, "present_pages"),
        "managed": member_offset(zt, "managed_pages"),
        "start_pfn": member_offset(zt, "zone_start_pfn"),
        "watermark": member_offset(zt, wm),
        "free": None if vm_stat_off is None else vm_stat_off + 8 * nr_free,
        "wmark_min": _enum_value(k, "zone_watermarks", "WMARK_MIN", 0),
        "wmark_low": _enum_value(k, "zone_watermarks", "WMARK_LOW", 1),
        "wmark_high": _enum_value(k, "zone_watermarks", "WMARK_HIGH", 2),
        "node_zones": _offset(k, "struct pglist_data", "node_zones"),
        "nr_zones": _array_length_of_member(k, "struct pglist_data", "node_zones"),
    }


def _array_length_of_member(k: Kernel, type_name: str, member: str) -> int:
    t = k.find_type(type_name)
    hit = t.strip().find_member(member) if t is not None else None
    return (hit[0].type.strip().length or 0) if hit else 0


def _field(buf: bytes, off: int | None) -> int:
    return struct.unpack_from("<Q", buf, off)[0] if off is not None else 0


def zones(k: Kernel) -> list[Zone]:
    """Every zone of every node (MAX_NR_ZONES per node, unpopulated ones included), in node order."""
    lay = _zone_layout(k)
    out: list[Zone] = []
    size = lay["size"] or 0
    for node, pgdat in node_pgdats(k):
        base = pgdat + (lay["node_zones"] or 0)
        for i in range(lay["nr_zones"] or 0):
            address = base + i * size
            buf = k.read(address, size)
            wm = lay["watermark"]
            name_ptr = _field(buf, lay["name"])
            try:
                name = k.read_cstring(name_ptr, 64).decode("ascii", "replace") if name_ptr else ""
            except MemoryReadError:
                name = "(unknown)"
            out.append(
                Zone(
                    node=node,
                    index=i,
                    address=address,
                    name=name,
                    spanned=_field(buf, lay["spanned"]),
                    present=_field(buf, lay["present"]),
                    managed=_field(buf, lay["managed"]),
                    start_pfn=_field(buf, lay["start_pfn"]),
                    watermark_min=_field(buf, None if wm is None else wm + 8 * (lay["wmark_min"] or 0)),
                    watermark_low=_field(buf, None if wm is None else wm + 8 * (lay["wmark_low"] or 0)),
                    watermark_high=_field(buf, None if wm is None else wm + 8 * (lay["wmark_high"] or 0)),
                    free_pages=_field(buf, lay["free"]),
                )
            )
    return out


@dataclass(frozen=True)
class FreeList:
    """One buddy free list of a zone: zone->free_area[order].free_list[migratetype] and its length."""

    order: int
    migratetype: int
    address: int = hex_field()
    blocks: int = 0

    @property
    def pages(self) -> int:
        return self.blocks << self.order


def free_lists(k: Kernel, zone: Zone, limit: int = 1 << 24) -> list[FreeList]:
    """Every free list of a zone, each counted by walking it (bounded, loop-checked)."""
    zt = k.type("struct zone")
    hit = zt.find_member("free_area")
    if hit is None:
        return []
    area_type = hit[0].type.strip()
    area_size = area_type.target.sizeof()
    lists = area_type.target.find_member("free_list")
    if lists is None:
        return []
    list_type = lists[0].type.strip()
    nr_types = list_type.length or 1
    base = zone.address + hit[1] // 8 + lists[1] // 8
    out = []
    for order in range(area_type.length or 0):
        for mt in range(nr_types):
            head = base + order * area_size + mt * 16
            count = 0
            seen: set[int] = set()
            node = k.read_u64(head)
            while node != head:
                if not node or node in seen or count >= limit:
                    raise KcrashError(f"corrupted free list {mt} from free_area struct: {head:x}")
                seen.add(node)
                count += 1
                node = k.read_u64(node)
            out.append(FreeList(order, mt, head, count))
    return out


@dataclass(frozen=True)
class FreeBlock:
    """A free buddy block holding a page: the zone, the free list it is on, its first struct page and the
    page's index in it."""

    zone: Zone
    free_list: FreeList
    head: int = hex_field()
    index: int = 0


def find_free_block(k: Kernel, pfn: int, limit: int = 1 << 24) -> FreeBlock | None:
    """The free block (on some zone's free list) containing page frame `pfn`, or None if it is not free."""
    lay = page_layout(k)
    page_size, vmemmap = lay.page_size, lay.vmemmap
    lru = member_offset(k.type("struct page"), "lru") or 0
    for zone in zones(k):
        if not zone.free_pages or not zone.start_pfn <= pfn < zone.start_pfn + zone.spanned:
            continue
        for fl in free_lists(k, zone, limit):
            if not fl.blocks:
                continue
            node = k.read_u64(fl.address)
            seen = 0
            while node != fl.address and seen < limit:
                head = node - lru
                first = (head - vmemmap) // page_size
                if first <= pfn < first + (1 << fl.order):
                    return FreeBlock(zone, fl, head, pfn - first)
                node = k.read_u64(node)
                seen += 1
    return None


# --- hugetlb and swap -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HugeState:
    """A struct hstate in hstates[] (`kmem -h`): its page order and counts of huge pages."""

    address: int = hex_field()
    order: int = 0
    nr_huge_pages: int = 0
    free_huge_pages: int = 0
    name: str = ""

    @property
    def size(self) -> int:
        return PAGE_SIZE << self.order


def hstates(k: Kernel, active_only: bool = False) -> list[HugeState]:
    """The entries of hstates[] (every slot; with `active_only`, the first hugetlb_max_hstate)."""
    sym = k.symbols.lookup("hstates")
    t = k.find_type("struct hstate")
    if sym is None or t is None:
        return []
    n = array_length(k, "hstates", "struct hstate")
    if active_only and _has(k, "hugetlb_max_hstate"):
        n = min(n, _i32(k, "hugetlb_max_hstate"))
    size = t.sizeof()
    order_off = member_offset(t, "order")
    nr_off = member_offset(t, "nr_huge_pages")
    free_off = member_offset(t, "free_huge_pages")
    name_off = member_offset(t, "name")
    out = []
    for i in range(n):
        address = sym.address + i * size
        buf = k.read(address, size)
        name = buf[name_off : name_off + 32].split(b"\0", 1)[0].decode() if name_off is not None else ""
        out.append(
            HugeState(
                address=address,
                order=struct.unpack_from("<I", buf, order_off)[0] if order_off is not None else 0,
                nr_huge_pages=_field(buf, nr_off),
                free_huge_pages=_field(buf, free_off),
                name=name,
            )
        )
    return out


@dataclass(frozen=True)
class SwapTotals:
    """Pages of swap configured and in use, over every swap_info_struct in use."""

    total: int
    used: int


def swap_totals(k: Kernel) -> SwapTotals:
    """The sums of swap_info[i]->pages and ->inuse_pages over the swap areas marked SWP_USED."""
    sym = k.symbols.lookup("swap_info")
    t = k.find_type("struct swap_info_struct")
    if sym is None or t is None:
        return SwapTotals(0, 0)
    nr = _i32(k, "nr_swapfiles")
    flags_hit = t.strip().find_member("flags")
    flags_size = flags_hit[0].type.sizeof() if flags_hit else 8
    flags_off = member_offset(t, "flags")
    pages_off = member_offset(t, "pages")
    inuse_hit = t.strip().find_member("inuse_pages")
    inuse_off = member_offset(t, "inuse_pages")
    total = used = 0
    for i in range(max(nr, 0)):
        try:
            ptr = k.read_u64(sym.address + 8 * i)
            if not ptr:
                continue
            buf = k.read(ptr, t.sizeof())
        except MemoryReadError:
            continue
        flags = (
            int.from_bytes(buf[flags_off : flags_off + flags_size], "little") if flags_off is not None else 0
        )
        if not flags & SWP_USED:
            continue
        total += struct.unpack_from("<i", buf, pages_off)[0] if pages_off is not None else 0
        if inuse_off is not None and inuse_hit is not None:
            size = inuse_hit[0].type.sizeof()
            used += int.from_bytes(buf[inuse_off : inuse_off + size], "little")
    return SwapTotals(total, used)


# --- kmem -i ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemInfo:
    """The figures of crash's `kmem -i`, in pages (None: this kernel does not have the counter, and crash
    leaves the line out)."""

    total: int
    free: int
    used: int
    buffers: int
    cached: int
    slab: int
    total_huge: int | None = None
    huge_free: int | None = None
    total_high: int | None = None
    free_high: int | None = None
    total_swap: int | None = None
    swap_used: int | None = None
    commit_limit: int | None = None
    committed: int | None = None
    warnings: list[str] = field(default_factory=list)


def _slab_pages(k: Kernel) -> int:
    for names in (
        ("NR_SLAB",),
        ("NR_SLAB_RECLAIMABLE", "NR_SLAB_UNRECLAIMABLE"),
        ("NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B"),
    ):
        first = vm_stat_value(k, names[0])
        if first is not None:
            return first + sum(vm_stat_value(k, n) or 0 for n in names[1:])
    return 0


def list_nodes(k: Kernel, head: int, what: str = "list", limit: int = 1 << 22) -> list[int]:
    """The list_head addresses of a circular list after `head`, in order. Raises KcrashError naming
    `what` on a NULL link, a loop, or more than `limit` entries (a corrupt list)."""
    out: list[int] = []
    seen: set[int] = set()
    node = k.read_u64(head)
    while node != head:
        if not node or node in seen or len(out) >= limit:
            raise KcrashError(f"{what} at {head:x} is corrupt at {node:x}")
        seen.add(node)
        out.append(node)
        node = k.read_u64(node)
    return out


def blockdev_pages(k: Kernel) -> int:
    """nr_blockdev_pages(): the page-cache pages of the block devices' inodes (5.9+: the inodes of the
    blockdev superblock; before that the all_bdevs list)."""
    i_mapping = _offset(k, "struct inode", "i_mapping")
    nrpages = _offset(k, "struct address_space", "nrpages")
    if i_mapping is None or nrpages is None:
        return 0
    total = 0
    if _has(k, "all_bdevs"):
        bd_list = _offset(k, "struct block_device", "bd_list")
        bd_inode = _offset(k, "struct block_device", "bd_inode")
        if bd_list is None or bd_inode is None:
            return 0
        for node in list_nodes(k, k.address_of("all_bdevs")):
            inode = k.read_u64(node - bd_list + bd_inode)
            total += k.read_u64(k.read_u64(inode + i_mapping) + nrpages)
        return total
    sb = _u64(k, "blockdev_superblock")
    s_inodes = _offset(k, "struct super_block", "s_inodes")
    i_sb_list = _offset(k, "struct inode", "i_sb_list")
    if not sb or s_inodes is None or i_sb_list is None:
        return 0
    for node in list_nodes(k, sb + s_inodes):
        inode = node - i_sb_list
        try:
            total += k.read_u64(k.read_u64(inode + i_mapping) + nrpages)
        except MemoryReadError:
            continue
    return total


def _swapper_space_pages(k: Kernel) -> int:
    """Pages in the swap cache: NR_SWAPCACHE (5.13+), else the nrpages of every swapper address space."""
    value = vm_stat_value(k, "NR_SWAPCACHE")
    if value is not None:
        return value
    nrpages = _offset(k, "struct address_space", "nrpages")
    space_size = k.type("struct address_space").sizeof()
    if nrpages is None:
        return 0
    total = 0
    n = array_length(k, "nr_swapper_spaces", 4)
    if n and _has(k, "swapper_spaces"):
        banks = struct.unpack(f"<{n}I", k.read(k.address_of("nr_swapper_spaces"), 4 * n))
        spaces = struct.unpack(f"<{n}Q", k.read(k.address_of("swapper_spaces"), 8 * n))
        for count, base in zip(banks, spaces, strict=True):
            if not count or not base:
                continue
            for j in range(count):
                total += k.read_u64(base + j * space_size + nrpages)
    return total


def _hugetlb_totals(k: Kernel) -> tuple[int, int]:
    total = free = 0
    for h in hstates(k):
        if not h.order:
            continue
        total += h.nr_huge_pages << h.order
        free += h.free_huge_pages << h.order
    if not _has(k, "hstates") and _has(k, "nr_huge_pages"):
        per = (1 << 21) // PAGE_SIZE
        total, free = _u64(k, "nr_huge_pages") * per, _u64(k, "free_huge_pages") * per
    return total, free


def _committed(k: Kernel) -> int:
    sym = k.symbols.lookup("vm_committed_as")
    if sym is not None:
        off = _offset(k, "struct percpu_counter", "count") or 0
        return int(max(struct.unpack("<q", k.read(sym.address + off, 8))[0], 0))
    return _i32(k, "vm_committed_space")


def mem_info(k: Kernel) -> MemInfo:
    """crash 9's `kmem -i` from the kernel's counters: totalram_pages, the zones' NR_FREE_PAGES, the
    block devices' page cache, NR_FILE_PAGES less the swap cache and buffers, the slab counters, hugetlb
    pages, swap, and the overcommit limit."""
    warnings: list[str] = []
    total = 0
    for name in ("_totalram_pages", "totalram_pages"):
        if _has(k, name):
            total = _u64(k, name)
            break
    if not total:
        raise KcrashError("cannot determine totalram_pages")
    free = sum(z.free_pages for z in zones(k))
    buffers = blockdev_pages(k)
    file_pages = vm_stat_value(k, "NR_FILE_PAGES")
    cached = 0
    if file_pages is not None:
        cached = file_pages - _swapper_space_pages(k) - buffers
    if cached < 0:
        warnings.append(f"page_cache_size went negative ({cached}), setting to 0")
        cached = 0
    info: dict[str, int | None] = {}
    if _has(k, "totalhigh_pages") or _has(k, "_totalhigh_pages"):
        high = _u64(k, "_totalhigh_pages") or _u64(k, "totalhigh_pages")
        info["total_high"] = high
        info["free_high"] = sum(z.free_pages for z in zones(k) if z.name == "HighMem")
    huge_total, huge_free = _hugetlb_totals(k)
    hugetlb = _has(k, "hstates") or _has(k, "nr_huge_pages")
    if hugetlb:
        info["total_huge"], info["huge_free"] = huge_total, huge_free
    swap = swap_totals(k)
    if _has(k, "swapper_space") or _has(k, "swapper_spaces"):
        info["total_swap"], info["swap_used"] = swap.total, swap.used
    if _has(k, "sysctl_overcommit_memory"):
        kbytes = _u64(k, "sysctl_overcommit_kbytes")
        allowed: int | None
        if kbytes:
            allowed = kbytes >> (PAGE_SHIFT - 10)
        elif hugetlb:
            allowed = (total - huge_total) * _i32(k, "sysctl_overcommit_ratio") // 100
        else:
            allowed = None
        if allowed is not None:
            info["commit_limit"] = allowed + swap.total
            info["committed"] = _committed(k)
    return MemInfo(
        total=total,
        free=free,
        used=total - free,
        buffers=buffers,
        cached=cached,
        slab=_slab_pages(k),
        warnings=warnings,
        **info,
    )


def pages_to_size(pages: int, page_size: int = PAGE_SIZE) -> str:
    """crash's pages_to_size(): "0", "N KB", "N.N MB" or "N.N GB" with a ".0" dropped."""
    if pages == 0:
        return "0"
    total = float(pages * page_size)
    if total >= 1 << 30:
        text = f"{total / (1 << 30):.1f} GB"
    elif total >= 1 << 20:
        text = f"{total / (1 << 20):.1f} MB"
    else:
        return f"{int(total / 1024)} KB"
    return text.replace(".0 ", " ")
