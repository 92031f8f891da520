"""`kmem`: kernel memory — the counters (`-i`, `-V`, `-z`), slab caches (`-s`, `-S`), vmalloc areas (`-v`),
huge pages (`-h`), page flags (`-g`), page structs (`-p`), and what an address is (`kmem ADDRESS`), in
crash 9's formats (memory.c)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kcrash.commands import Argument, CommandFailed, KcrashError, Option, UsageError, command
from kcrash.commands.sym import parse_hex, symbol_record
from kcrash.commands.task import context_record, context_text
from kcrash.errors import MemoryReadError
from kcrash.kernel import meminfo as mi
from kcrash.kernel import modules as kmod
from kcrash.kernel import page as pg
from kcrash.kernel import slab as sl
from kcrash.kernel import sparse
from kcrash.kernel import tasks as th
from kcrash.kernel.stack import thread_size
from kcrash.kernel.vmalloc import VmapArea, find_vmap_area, vmap_areas
from kcrash.records import hex_field

KVADDR_START = 0xFFFF800000000000
CACHE_HDR = "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME"
SLAB_HDR = "  SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE"
FREE_HDR = "  FREE / [ALLOCATED]"
PAGE_HDR = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS"
VMAP_HDR = "   VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE"
MEMINFO_HDR = "                 PAGES        TOTAL      PERCENTAGE"
P_LIMIT = 1 << 20  # `kmem -p` without an address stops after this many pages


@dataclass(frozen=True)
class KmemSlab:
    """`kmem -S`: one slab of a cache, where it was found ("cpu", "cpu_partial", "node_partial",
    "node_full", "address") and its objects."""

    cache: int = hex_field()
    name: str = ""
    where: str = ""
    cpu: int | None = None
    node: int = 0
    slab: int = hex_field(default=0)
    memory: int = hex_field(default=0)
    total: int = 0
    allocated: int = 0
    free: int = 0
    objects: list[sl.SlabObject] = field(default_factory=list)


@dataclass(frozen=True)
class KmemZone:
    """`kmem -z`: a zone and its vm_stat counters."""

    zone: mi.Zone
    vm_stat: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class KmemAddress:
    """`kmem ADDRESS`: what the address is — kernel symbol, vmalloc area, slab object, task, page."""

    address: int = hex_field()
    symbol: str | None = None
    vmap_area: VmapArea | None = None
    cache: str | None = None
    cache_address: int | None = hex_field(default=None)
    slab: int | None = hex_field(default=None)
    object: int | None = hex_field(default=None)
    object_free: bool | None = None
    task: int | None = hex_field(default=None)
    page: pg.PageInfo | None = None


HELP = """
NAME
  kmem - kernel memory

SYNOPSIS
  kmem [-f|-i|-v|-V|-n|-z|-o|-h] [-p] [[-s|-S] [slab]] [-g [flags]] [[-P] address]

DESCRIPTION
  This command displays information about the use of kernel memory.

        -i  displays general memory usage information, from the kernel's own
            counters (no page is walked).
        -v  displays the mapped virtual memory regions (vmalloc, vmap, ioremap).
        -V  displays the kernel vm_stat table and the summed per-cpu
            vm_event_states counters.
        -z  displays per-zone memory statistics.
        -o  displays each cpu's offset value that is added to per-cpu symbol
            values to translate them into kernel virtual addresses.
        -f  displays the contents of the system free memory headers and
            verifies that the page count equals nr_free_pages; with an
            address, the free block containing its page.
        -n  displays memory node and zone data.
        -h  displays the address of hugepage hstate array entries, along with
            their hugepage size, total and free counts, and name.
        -p  displays basic information about each page structure in the system
            mem_map[] array (at most the first 1048576 pages), or, with an
            address, about the page containing it.
        -s  displays basic kmalloc() slab data: for each cache its kmem_cache
            address, object size, the objects allocated and in total, the number
            of slabs and the slab size.
        -S  displays the same as -s, then every slab of the cache (the per-cpu
            slabs, their partial lists and each node's partial list) with each
            object, allocated ones in brackets, free ones in the active cpu slab
            marked "(cpu N cache)".
      slab  when used with -s or -S, limits the command to the slab cache of the
            name given, or at the kmem_cache address given.
  -g flags  displays the page flag bits; with a value, those set in it.
        -P  declares that the following address argument is a physical address.
   address  when used without any flag, the address can be a kernel virtual or
            physical address; the command shows which kernel symbol, vmalloc
            area, slab cache and object, task and page the address belongs to.
            With -s or -S the slab cache, slab and object containing it; with
            -v the vmalloc area; with -p the page.

EXAMPLES
  Display memory usage information:

    kcrash> kmem -i
                     PAGES        TOTAL      PERCENTAGE
        TOTAL MEM   199940       781 MB         ----
             FREE   177579     693.7 MB   88% of TOTAL MEM
             USED    22361      87.3 MB   11% of TOTAL MEM
          BUFFERS        0            0    0% of TOTAL MEM
           CACHED     5840      22.8 MB    2% of TOTAL MEM
             SLAB     3947      15.4 MB    1% of TOTAL MEM
    ...

  Find the slab object an address belongs to:

    kcrash> kmem -s ffff8ba982598400
    CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME
    ffff8ba981042b00     1024        252       272     17    16k  kmalloc-1k
      SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE
      fffff297c0096600  ffff8ba982598000     0     16          2    14
      FREE / [ALLOCATED]
      [ffff8ba982598400]
"""


@command(
    "kmem",
    summary="kernel memory",
    options=[
        Option("-i", help="general memory usage information."),
        Option("-v", help="vmalloc areas."),
        Option("-V", dest="vm_stat", help="vm_stat and vm_event_states counters."),
        Option("-z", help="per-zone statistics."),
        Option("-n", help="memory nodes and zones."),
        Option("-h", dest="huge", help="hugepage hstates."),
        Option("-p", help="page structures."),
        Option("-s", help="slab cache summary."),
        Option("-S", dest="slabs", help="slab caches with every slab and object."),
        Option("-g", help="page flag bits."),
        Option("-P", dest="physical", help="the address is physical."),
        Option("-f", help="free lists (zones and their free areas)."),
        Option("-o", dest="offsets", help="per-cpu offsets."),
    ],
    arguments=[
        Argument("target", nargs="*", complete="none", metavar="address|slab", help="address or cache.")
    ],
    help=HELP,
)
def kmem_command(ctx, args):
    flags = [
        f for f in ("i", "v", "vm_stat", "z", "n", "huge", "p", "s", "slabs", "g", "f") if getattr(args, f)
    ]
    if len(flags) > 1:
        raise UsageError("only one flag allowed!")
    k = ctx.kernel
    addresses: list[int] = []
    names: list[str] = []
    for word in args.target:
        value = parse_hex(word)
        if value is None or (args.s or args.slabs) and not _looks_hex(word):
            names.append(word[1:] if word.startswith("\\") else word)
        else:
            addresses.append(value)
    if names and not (args.s or args.slabs):
        raise UsageError(f"invalid address: {names[0]}")
    if len(names) > 1:
        raise KcrashError("only one kmem_cache reference is allowed")
    if addresses and (args.i or args.vm_stat or args.z or args.n or args.huge or args.offsets):
        raise UsageError("no address arguments allowed with this option")
    if args.g:
        _page_flags(ctx, addresses[0] if addresses else 0)
    elif args.i:
        _meminfo(ctx)
    elif args.vm_stat:
        _vm_stat(ctx)
    elif args.z:
        _zones(ctx)
    elif args.huge:
        _hstates(ctx)
    elif args.v:
        _vmalloc(ctx, addresses)
    elif args.s or args.slabs:
        _slab(ctx, names[0] if names else None, addresses, verbose=bool(args.slabs))
    elif args.p:
        _pages(ctx, addresses, args.physical)
    elif args.f and not addresses:
        _free_lists(ctx)
    elif args.n:
        _nodes(ctx)
    elif args.offsets:
        lines = ["PER-CPU OFFSET VALUES:"]
        lines += [f"{f'CPU {cpu}':>7}: {off:x}" for cpu, off in enumerate(k.per_cpu_offsets)]
        ctx.write("\n".join(lines) + "\n")
    elif args.f:
        for address in addresses:
            lines = _free_block_lines(k, address, args.physical)
            if lines:
                ctx.write("\n".join(lines) + "\n")
    elif addresses:
        for i, address in enumerate(addresses):
            if i:
                ctx.print("")
            _search(ctx, k, address, args.physical)
    else:
        raise UsageError("an option or an address is required")


def _looks_hex(word: str) -> bool:
    """A slab argument is an address only when it is long enough to be one (cache names like "bio" or
    "dax" are hex digits too)."""
    digits = word[2:] if word[:2].lower() == "0x" else word
    return word[:2].lower() == "0x" or len(digits) >= 8


# --- -i -------------------------------------------------------------------------------------------------


def _meminfo(ctx) -> None:
    info = mi.mem_info(ctx.kernel)
    for warning in info.warnings:
        ctx.warn(warning)
    if ctx.json:
        ctx.emit(info)
        return

    def row(label: str, pages: int, of: int | None = None, what: str = "TOTAL MEM") -> str:
        size = mi.pages_to_size(pages)
        if of is None:
            return f"{label:>13}  {pages:7d}  {size:>11}         ----"
        pct = pages * 100 // of if of else 0
        return f"{label:>13}  {pages:7d}  {size:>11}  {pct:3d}% of {what}"

    total = info.total
    lines = [
        MEMINFO_HDR,
        row("TOTAL MEM", total),
        row("FREE", info.free, total),
        row("USED", info.used, total),
        row("BUFFERS", info.buffers, total),
        row("CACHED", info.cached, total),
        row("SLAB", info.slab, total),
    ]
    if info.total_high is not None:
        high, free_high = info.total_high, info.free_high or 0
        lines += ["", row("TOTAL HIGH", high, total), row("FREE HIGH", free_high, high, "TOTAL HIGH")]
        lines += [
            row("TOTAL LOW", total - high, total),
            row("FREE LOW", info.free - free_high, total - high, "TOTAL LOW"),
        ]
    if info.total_huge is not None:
        huge = info.total_huge
        lines += ["", row("TOTAL HUGE", huge), row("HUGE FREE", info.huge_free or 0, huge, "TOTAL HUGE")]
    lines.append("")
    if info.total_swap is not None:
        swap, used = info.total_swap, info.swap_used or 0
        lines += [row("TOTAL SWAP", swap), row("SWAP USED", used, swap, "TOTAL SWAP")]
        lines.append(row("SWAP FREE", swap - used, swap, "TOTAL SWAP"))
    if info.commit_limit is not None:
        limit, committed = info.commit_limit, info.committed or 0
        lines += ["", row("COMMIT LIMIT", limit)]
        lines.append(
            row("COMMITTED", committed, limit, "TOTAL LIMIT") if limit else row("COMMITTED", committed)
        )
    ctx.write("\n".join(lines) + "\n")


# --- -V and -z --------------------------------------------------------------------------------------------

_GROUP_TITLES = {"zone": "VM_ZONE_STAT", "node": "VM_NODE_STAT", "numa": "VM_NUMA_STAT", "vm_stat": "VM_STAT"}


def _stat_lines(stats: list[mi.VmStat]) -> list[str]:
    width = max((len(s.name) for s in stats), default=0)
    return [f"{s.name:>{width}}: {s.value}" for s in stats]


def _vm_stat(ctx) -> None:
    k = ctx.kernel
    stats = mi.vm_stat(k)
    events = mi.vm_event_states(k)
    if ctx.json:
        for s in stats + events:
            ctx.emit(s)
        return
    width = max((len(s.name) for s in stats), default=0)
    lines: list[str] = []
    group = None
    for s in stats:
        if s.group != group:
            if group is not None:
                lines.append("")
            lines.append(f"  {_GROUP_TITLES[s.group]}:")
            group = s.group
        lines.append(f"{s.name:>{width}}: {s.value}")
    if events:
        lines += ["", "  VM_EVENT_STATES:"] + _stat_lines(events)
    ctx.write("\n".join(lines) + "\n")


def _zones(ctx) -> None:
    k = ctx.kernel
    lines: list[str] = []
    for zone in mi.zones(k):
        stats = mi.zone_vm_stat(k, zone.address) if zone.spanned else []
        if ctx.json:
            ctx.emit(KmemZone(zone, {s.name: s.value for s in stats}))
            continue
        lines.append(f'NODE: {zone.node}  ZONE: {zone.index}  ADDR: {zone.address:x}  NAME: "{zone.name}"')
        if not zone.spanned:
            lines += ["  [unpopulated]", ""]
            continue
        line = f"  SIZE: {zone.spanned}"
        if zone.present < zone.spanned:
            line += f"  PRESENT: {zone.present}"
        line += f"  MIN/LOW/HIGH: {zone.watermark_min}/{zone.watermark_low}/{zone.watermark_high}"
        lines += [line, "  VM_STAT:"] + _stat_lines(stats) + ["", ""]
    if lines:
        ctx.write("\n".join(lines) + "\n")


def _center(text: str, width: int, rjust: bool = False) -> str:
    """crash's mkstring(CENTER): an odd leftover space goes right (or left with RJUST)."""
    extra = width - len(text)
    if extra <= 0:
        return text
    left = extra // 2 + (extra % 2 if rjust else 0)
    return " " * left + text + " " * (extra - left)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _zone_line(k, zone: mi.Zone, first_page: int) -> str:
    mem_map = pg.pfn_to_page(k, zone.start_pfn) if zone.spanned else 0
    mapnr = (mem_map - first_page) // pg.page_layout(k).page_size if mem_map else 0
    return (
        f"{zone.index:3d}   {zone.name:<9} {zone.spanned:6d}  {zone.free_pages:6d}  "
        + _center(f"{mem_map:x}", 16)
        + "  "
        + _center(f"{zone.start_pfn << 12:x}", 11, rjust=True)
        + "  "
        + _center(str(mapnr), 11, rjust=True)
    )


def _node_first_pages(k) -> dict[int, int]:
    start_off = mi.member_offset(k.type("struct pglist_data"), "node_start_pfn") or 0
    return {node: pg.pfn_to_page(k, k.read_u64(pgdat + start_off)) for node, pgdat in mi.node_pgdats(k)}


FREE_ZONE_HDR = "ZONE  NAME        SIZE    FREE  " + _center("MEM_MAP", 16) + "  START_PADDR  START_MAPNR"


def _free_block_lines(k, address: int, physical: bool) -> list[str]:
    """crash's free-list search: the zone, free area and block holding the page of `address`, if free."""
    if not physical and address >= KVADDR_START and pg.is_page_ptr(k, address):
        pfn = pg.page_to_pfn(k, address)
    else:
        page = _page_of(k, address, physical)
        if page is None:
            return []
        pfn = pg.page_to_pfn(k, page)
    block = mi.find_free_block(k, pfn)
    if block is None:
        return []
    first = _node_first_pages(k)
    fl = block.free_list
    size = f"{(4096 << fl.order) // 1024}k"
    lines = []
    if len(first) > 1:
        lines += ["NODE", f" {block.zone.node:2d}"]
    lines += [FREE_ZONE_HDR, _zone_line(k, block.zone, first.get(block.zone.node, 0))]
    lines += [
        "AREA    SIZE  FREE_AREA_STRUCT",
        f"{fl.order:3d}  {size:>7}  {_center(f'{fl.address:x}', 16)}  ",
    ]
    tail = f"{block.head:x}  "
    if fl.order:
        is_in = "in " if (physical or address < KVADDR_START) and address & 0xFFF else ""
        tail += f"({address:x} is {is_in}{_ordinal(block.index + 1)} of {1 << fl.order} pages)"
    return lines + [tail]


def _free_lists(ctx) -> None:
    """`kmem -f`: each zone's free areas, every free list counted, and the total checked against the
    zones' NR_FREE_PAGES."""
    k = ctx.kernel
    zones = mi.zones(k)
    first_page = _node_first_pages(k)
    lines: list[str] = []
    total = found = 0
    multi = len(first_page) > 1
    for zone in zones:
        if zone.index == 0 and multi:
            lines += ([""] if zone.node else []) + ["NODE", f" {zone.node:2d}"]
        if zone.index:
            lines.append("")
        lines += [FREE_ZONE_HDR, _zone_line(k, zone, first_page.get(zone.node, 0))]
        total += zone.free_pages
        if not zone.free_pages:
            continue
        lists = mi.free_lists(k, zone)
        if ctx.json:
            for fl in lists:
                ctx.emit(fl)
        lines.append("AREA    SIZE  FREE_AREA_STRUCT  BLOCKS  PAGES")
        for fl in lists:
            size = f"{(4096 << fl.order) // 1024}k"
            lines.append(
                f"{fl.order:3d}  {size:>7}  {_center(f'{fl.address:x}', 16)}  {fl.blocks:6d} {fl.pages:6d}"
            )
            found += fl.pages
    lines += ["", f"nr_free_pages: {total}  " + ("(verified)" if total == found else f"(found {found})")]
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _nodes(ctx) -> None:
    """`kmem -n`: each node with its zones, the memory sections, and the memory blocks."""
    k = ctx.kernel
    pgdat_t = k.type("struct pglist_data")
    start_off = mi.member_offset(pgdat_t, "node_start_pfn") or 0
    spanned_off = mi.member_offset(pgdat_t, "node_spanned_pages") or 0
    zones_off = mi.member_offset(pgdat_t, "node_zones") or 0
    bdata_off = mi.member_offset(pgdat_t, "bdata")
    zones = mi.zones(k)
    sections = sparse.mem_sections(k)
    blocks = sparse.memory_blocks(k)
    if ctx.json:
        for z in zones:
            ctx.emit(z)
        for sec in sections:
            ctx.emit(sec)
        for b in blocks:
            ctx.emit(b)
        return
    lines: list[str] = []
    zone_hdr = "ZONE  NAME         SIZE  " + _center("MEM_MAP", 16, rjust=True) + "  START_PADDR  START_MAPNR"
    for n, (node, pgdat) in enumerate(mi.node_pgdats(k)):
        if n:
            lines += ["", "-" * len(zone_hdr), ""]
        start_pfn = k.read_u64(pgdat + start_off)
        size = k.read_u64(pgdat + spanned_off)
        bdata = k.read_u64(pgdat + bdata_off) if bdata_off is not None else None
        node_zones = pgdat + zones_off
        lines.append(
            "NODE  "
            + "  ".join(
                [
                    _center("SIZE", 8),
                    _center("PGLIST_DATA", 16),
                    _center("BOOTMEM_DATA", 16),
                    _center("NODE_ZONES", 16),
                ]
            )
        )
        lines.append(
            f" {node:2d}   "
            + "  ".join(
                [
                    _center(str(size), 8),
                    _center(f"{pgdat:x}", 16),
                    _center("----" if bdata is None else f"{bdata:x}", 16),
                    _center(f"{node_zones:x}", 16),
                ]
            )
        )
        node_zone_list = [z for z in zones if z.node == node]
        lines += [" " * 52 + f"{z.address:x}" for z in node_zone_list[1:]]
        lines.append(_center("MEM_MAP", 16) + "     START_PADDR    START_MAPNR")
        lines.append(
            _center(f"{pg.pfn_to_page(k, start_pfn):x}", 16)
            + "  "
            + _center(f"{start_pfn << 12:x}", 16, rjust=True)
            + "  "
            + _center(str(start_pfn), 11, rjust=True)
        )
        lines += ["", zone_hdr]
        for z in node_zone_list:
            mem_map = pg.pfn_to_page(k, z.start_pfn) if z.spanned else 0
            paddr = z.start_pfn << 12 if z.spanned else 0
            mapnr = z.start_pfn if z.spanned else 0
            lines.append(
                f" {z.index:2d}   {z.name:<9} {z.spanned:7d}  {mem_map:16x}  {paddr:11x}  {mapnr:11d}"
            )
    lines += [
        "",
        "-" * 67,
        "",
        "NR  "
        + "  ".join([_center("SECTION", 16), _center("CODED_MEM_MAP", 16), _center("MEM_MAP", 16), "STATE"])
        + " PFN",
    ]
    for sec in sections:
        lines.append(
            f"{sec.nr:2d}  "
            + "  ".join(
                [
                    _center(f"{sec.address:x}", 16),
                    _center(f"{sec.coded_mem_map:x}", 16, rjust=True),
                    _center(f"{sec.mem_map:x}", 16, rjust=True),
                    _center(sec.state, 5),
                ]
            )
            + f" {sec.pfn:<16d}"
        )
    if blocks:
        ranged = any(b.end is not None for b in blocks)
        title = "PHYSICAL RANGE" if ranged else "PHYSICAL START"
        with_node = any(b.node is not None for b in blocks)
        if with_node:
            lines += [
                "",
                f"{_center('MEM_BLOCK', 16)} {_center('NAME', 10)}   {_center(title, 18)}   NODE  STATE   START_SECTION_NO",
            ]
        else:
            lines += [
                "",
                f"{_center('MEM_BLOCK', 16)} {_center('NAME', 10)}   {_center(title, 16)}    STATE   START_SECTION_NO",
            ]
        for b in blocks:
            rng = f"{b.start:8x} - {b.end:8x}" if b.end is not None else _center(f"{b.start:x}", 19)
            node_col = f"{_center(str(b.node), 4)}  " if b.node is not None else " "
            name = _center(b.name, 12 if with_node else 10)
            lines.append(f" {b.address:<16x} {name} {rng} {node_col}{b.state:<7} {b.start_section:<12d}")
    ctx.write("\n".join(lines) + "\n")


# --- -h and -g --------------------------------------------------------------------------------------------


def _hstates(ctx) -> None:
    states = [h for h in mi.hstates(ctx.kernel, active_only=True)]
    if ctx.json:
        for h in states:
            ctx.emit(h)
        return
    lines = ["     HSTATE        SIZE    FREE   TOTAL  NAME"]
    for h in states:
        size = mi.pages_to_size(1 << h.order).replace(" ", "")
        lines.append(f"{h.address:x}  {size:>5}  {h.free_huge_pages:6d}  {h.nr_huge_pages:6d}  {h.name}")
    ctx.write("\n".join(lines) + "\n")


def _page_flags(ctx, value: int) -> None:
    entries = pg.pageflags_enum(ctx.kernel)
    if ctx.json:
        for name, bit in entries:
            if not value or value >> bit & 1:
                ctx.emit(pg.PageFlag(name, 1 << bit))
        return
    longest = max(len(n) for n, _ in entries)
    digits = (max(b for _, b in entries) + 1) // 4 + 1
    indent = "  " if value else ""
    lines = [f"FLAGS: {value:x}"] if value else []
    lines.append(f"{indent}{'PAGE-FLAG':<{longest}} BIT  VALUE")
    found = 0
    for name, bit in entries:
        if not value or value >> bit & 1:
            lines.append(f"{indent}{name:<{longest}}  {bit:2d}  {1 << bit:0{digits}x}")
            found += bool(value)
    if value and not found:
        lines.append("  (none found)")
    ctx.write("\n".join(lines) + "\n")


# --- -v -------------------------------------------------------------------------------------------------


def _vmap_line(area: VmapArea) -> str:
    return f"{area.vmap_area:x}  {area.vm_struct:x}  {area.start:x} - {area.end:x}  {area.size:7d}"


def _vmalloc(ctx, addresses: list[int]) -> None:
    areas = vmap_areas(ctx.kernel)
    if addresses:
        areas = [a for a in areas if any(a.start <= x < a.end for x in addresses)]
    if ctx.json:
        for a in areas:
            ctx.emit(a)
        return
    if areas:
        ctx.write("\n".join([VMAP_HDR] + [_vmap_line(a) for a in areas]) + "\n")


# --- -s and -S ------------------------------------------------------------------------------------------


def _cache_line(st: sl.CacheStats) -> str:
    if st.error:
        counts = f"{'?':>9}  {'?':>8}  {'?':>5}"
    else:
        counts = f"{st.allocated:9d}  {st.total:8d}  {st.slabs:5d}"
    return f"{st.cache:<16x} {st.object_size:8d}  {counts}  {st.slab_size // 1024:4d}k  {st.name}"


def _slab_line(info: sl.SlabInfo) -> str:
    return f"  {info.slab:<16x}  {info.memory:<16x}  {info.node:4d}  {info.objects:5d}  {info.inuse:9d}  {info.free:4d}"


def _object_line(obj: sl.SlabObject) -> str:
    if not obj.free:
        return f"  [{obj.address:x}]"
    return f"   {obj.address:x}  " + (f"(cpu {obj.cpu} cache)" if obj.cpu is not None else "")


def _slab(ctx, name: str | None, addresses: list[int], verbose: bool) -> None:
    k = ctx.kernel
    if addresses:
        for i, address in enumerate(addresses):
            if i:
                ctx.print("")
            if name is not None and sl.find_cache(k, address) is None:
                ctx.warn(f"ignoring pre-selected {name} cache for address: {address:x}")
            cache = sl.find_cache(k, address)
            if cache is not None:
                _emit_cache(ctx, cache, verbose, header=True)
                continue
            if not _slab_address(ctx, address, verbose):
                ctx.warn(f"address is not allocated in slab subsystem: {address:x}")
        return
    errors: list[str] = []
    caches = sl.slab_caches(k, errors)
    for error in errors:
        ctx.warn(error)
    if name is not None:
        # crash stops at the first cache of that name (merged caches share none).
        caches = [c for c in caches if c.name == name][:1]
        if not caches:
            raise KcrashError(f"invalid kmem_cache: {name}")
    elif not verbose and not ctx.json:
        ctx.print(CACHE_HDR)
    for cache in caches:
        _emit_cache(ctx, cache, verbose, header=verbose or name is not None)


def _emit_cache(ctx, cache: sl.CacheInfo, verbose: bool, header: bool) -> None:
    st = sl.cache_stats(ctx.kernel, cache)
    if st.error and not ctx.json:
        ctx.warn(f"{cache.name}: cannot gather relevant slab data")
    if ctx.json:
        ctx.emit(st)
    else:
        ctx.write((CACHE_HDR + "\n" if header else "") + _cache_line(st) + "\n")
    if verbose:
        _cache_slabs(ctx, cache)


def _slab_record(cache: sl.CacheInfo, where: str, cpu: int | None, info: sl.SlabInfo, objects) -> KmemSlab:
    return KmemSlab(
        cache.address,
        cache.name,
        where,
        cpu,
        info.node,
        info.slab,
        info.memory,
        info.objects,
        info.inuse,
        info.free,
        list(objects),
    )


def _emit_slab(ctx, cache: sl.CacheInfo, where: str, slab: int, cpus, cpu: int | None = None) -> list[str]:
    info, objects = sl.slab_objects(ctx.kernel, cache, slab, cpus)
    if ctx.json:
        ctx.emit(_slab_record(cache, where, cpu, info, objects))
        return []
    return [SLAB_HDR, _slab_line(info), FREE_HDR] + [_object_line(o) for o in objects]


def _cache_slabs(ctx, cache: sl.CacheInfo) -> None:
    """crash's do_kmem_cache_slub(): each CPU's slab and partial slabs, then each node's lists."""
    k = ctx.kernel
    out: list[str] = []
    try:
        cpus = sl.cpu_slabs(k, cache)
        per_node: dict[int, int] = {}
        for cs in cpus:
            if not cs.kmem_cache_cpu:  # 7.0+: no cpu slab, only the sheaves of cached free objects
                out += [f"CPU {cs.cpu} SHEAVES:"] + ([f"   {o:x}" for o in cs.sheaves] or ["  (empty)"])
                continue
            out += [f"CPU {cs.cpu} KMEM_CACHE_CPU:", f"  {cs.kmem_cache_cpu:x}", f"CPU {cs.cpu} SLAB:"]
            if cs.slab:
                info = sl.slab_info(k, cs.slab)
                per_node[info.node] = per_node.get(info.node, 0) + 1
                out += _emit_slab(ctx, cache, "cpu", cs.slab, cpus, cs.cpu)
            else:
                out.append("  (empty)")
            out.append(f"CPU {cs.cpu} PARTIAL:")
            if not cs.partial:
                out.append("  (empty)")
            for slab in cs.partial:
                out += _emit_slab(ctx, cache, "cpu_partial", slab, cpus, cs.cpu)
        for node in sl.node_slabs(k, cache):
            out += ["KMEM_CACHE_NODE   NODE  SLABS  PARTIAL  PER-CPU"]
            out.append(
                f"{node.address:x}  {node.node:4d}  {node.nr_slabs:5d}  {node.nr_partial:7d}  {per_node.get(node.node, 0):7d}"
            )
            out.append(f"NODE {node.node} PARTIAL:")
            out += _list_lines(ctx, cache, node.partial, "node_partial", cpus)
            out.append(f"NODE {node.node} FULL:")
            if node.full is None:
                out.append("  (not tracked)")
            else:
                out += _list_lines(ctx, cache, node.full, "node_full", cpus)
    except sl.SlabError as e:
        if out and not ctx.json:
            ctx.write("\n".join(out) + "\n")
        raise KcrashError(str(e)) from None
    if not ctx.json:
        ctx.write("\n".join(out + [""]) + "\n")


def _list_lines(ctx, cache: sl.CacheInfo, slabs: list[int], where: str, cpus) -> list[str]:
    if not slabs:
        return ["  (empty)"]
    if ctx.json:
        for slab in slabs:
            _emit_slab(ctx, cache, where, slab, cpus)
        return []
    return [SLAB_HDR] + [_slab_line(sl.slab_info(ctx.kernel, s)) for s in slabs]


def _slab_address(ctx, address: int, verbose: bool) -> bool:
    """`kmem -s ADDRESS`: the cache line, the slab, and the object holding the address (every object of
    the slab with -S or when the address is the slab's struct page)."""
    k = ctx.kernel
    if pg.is_page_ptr(k, address):
        found = sl.slab_of_page(k, address)
        if found is None:
            return False
        cache, head = found
        hit = sl.SlabHit(cache, sl.slab_info(k, head), None, sl.cpu_slabs(k, cache))
        verbose = True
    else:
        found_hit = sl.find_slab_object(k, address)
        if found_hit is None:
            return False
        hit = found_hit
    st = sl.cache_stats(k, hit.cache)
    info, objects = sl.slab_objects(k, hit.cache, hit.slab.slab, hit.cpus)
    shown = (
        objects
        if verbose
        else [o for o in objects if hit.object is not None and o.address == hit.object.address]
    )
    if ctx.json:
        ctx.emit(st)
        ctx.emit(_slab_record(hit.cache, "address", None, info, shown))
        return True
    lines = [CACHE_HDR, _cache_line(st), SLAB_HDR, _slab_line(info), FREE_HDR] + [
        _object_line(o) for o in shown
    ]
    ctx.write("\n".join(lines) + "\n")
    return True


# --- -p -------------------------------------------------------------------------------------------------


def _page_line(info: pg.PageInfo) -> str:
    flags = f"{info.flags:x}"
    if info.flags and info.flag_names:
        flags += " " + ",".join(info.flag_names)
    return f"{info.page:<16x} {info.paddr:8x} {info.mapping:16x} {info.index:8x} {info.count:2d} {flags}"


def _pages(ctx, addresses: list[int], physical: bool) -> None:
    k = ctx.kernel
    if not addresses:
        if not ctx.json:
            ctx.print(PAGE_HDR)
        shown = 0
        per_section = 1 << sparse.section_pfn_shift(k)
        for sec in sparse.mem_sections(k):
            for info in pg.page_infos(k, sec.pfn, per_section):
                if ctx.json:
                    ctx.emit(info)
                else:
                    ctx.write(_page_line(info) + "\n")
                shown += 1
                if shown >= P_LIMIT:
                    ctx.warn(f"stopped after {P_LIMIT} pages")
                    return
        return
    for address in addresses:
        page = _page_of(k, address, physical)
        if page is None:
            kind = "physical" if physical or address < KVADDR_START else "kernel virtual"
            ctx.print(f"{address:x}: {kind} address not found in mem map")
            continue
        info = pg.page_info(k, page)
        ctx.emit(info, text=lambda r: PAGE_HDR + "\n" + _page_line(r))


def _page_of(k, address: int, physical: bool) -> int | None:
    """The struct page for an address: itself if it is one, the page of a physical address, or of a
    mapped kernel virtual address."""
    if not physical and address >= KVADDR_START:
        if pg.is_page_ptr(k, address):
            return address
        return pg.virt_to_page(k, address)
    pfn = address >> 12
    lay = pg.page_layout(k)
    if lay.max_pfn and pfn >= lay.max_pfn:
        return None
    return pg.pfn_to_page(k, pfn)


# --- kmem ADDRESS ---------------------------------------------------------------------------------------


def _task_of(k, address: int) -> th.TaskInfo | None:
    """The task whose task_struct or kernel stack holds `address` (crash's vaddr_in_task_struct and
    stkptr_to_task)."""
    table = th.task_table(k)
    size = k.type("struct task_struct").sizeof()
    stack = thread_size(k)
    for task in table:
        if task.address <= address < task.address + size:
            return task
    for task in table:
        if task.stack and task.stack <= address < task.stack + stack:
            return task
    return None


def _search(ctx, k, address: int, physical: bool) -> None:
    record = KmemAddress(address)
    lines: list[str] = []
    vaddr = address
    if physical or address < KVADDR_START:
        vaddr = k.translator.page_offset + address
    ks = kmod.kernel_symbols(k)
    end = k.symbols.lookup("_end")
    in_kernel = ks.stext <= vaddr <= (end.address if end else 0)
    if not physical and address >= KVADDR_START and (in_kernel or kmod.module_at(k, address) is not None):
        hit = kmod.resolve_any(k, address)
        if hit is not None:
            sym = symbol_record(k, hit[0], hit[1], ctx.settings.radix)
            record = _with(record, symbol=sym.text)
            lines += [sym.text, ""]
    area = None
    if not physical and address >= KVADDR_START:
        area = find_vmap_area(k, address)
    task_done = False
    if area is not None:
        task = _task_of(k, address)
        if task is not None:
            lines += [context_text(context_record(k, task)), ""]
            record = _with(record, task=task.address)
            task_done = True
        lines += [VMAP_HDR, _vmap_line(area), ""]
        record = _with(record, vmap_area=area)
    else:
        try:
            slab_hit = sl.find_slab_object(k, vaddr)
        except (sl.SlabError, MemoryReadError):
            slab_hit = None
        if slab_hit is not None:
            st = sl.cache_stats(k, slab_hit.cache)
            obj = slab_hit.object
            lines += [CACHE_HDR, _cache_line(st), SLAB_HDR, _slab_line(slab_hit.slab), FREE_HDR]
            if obj is not None:
                lines.append(_object_line(obj))
            lines.append("")
            record = _with(
                record,
                cache=slab_hit.cache.name,
                cache_address=slab_hit.cache.address,
                slab=slab_hit.slab.slab,
                object=obj.address if obj else None,
                object_free=obj.free if obj else None,
            )
        elif not physical and pg.is_page_ptr(k, address):
            found = sl.slab_of_page(k, address)
            if found is not None:
                cache, head = found
                cpus = sl.cpu_slabs(k, cache)
                info, objects = sl.slab_objects(k, cache, head, cpus)
                lines += [
                    CACHE_HDR,
                    _cache_line(sl.cache_stats(k, cache)),
                    SLAB_HDR,
                    _slab_line(info),
                    FREE_HDR,
                ]
                lines += [_object_line(o) for o in objects] + [""]
                record = _with(record, cache=cache.name, cache_address=cache.address, slab=head)
        free_lines = _free_block_lines(k, address, physical)
        if free_lines:
            lines += free_lines + [""]
        if not task_done:
            task = _task_of(k, vaddr)
            if task is not None:
                lines += [context_text(context_record(k, task)), ""]
                record = _with(record, task=task.address)
    page = _page_of(k, address, physical)
    pinfo = None
    if page is not None:
        try:
            pinfo = pg.page_info(k, page)
        except MemoryReadError:
            pinfo = None
    if pinfo is not None:
        lines += [PAGE_HDR, _page_line(pinfo)]
        record = _with(record, page=pinfo)
    else:
        kind = "physical" if physical or address < KVADDR_START else "kernel virtual"
        lines.append(f"{address:x}: {kind} address not found in mem map")
    if ctx.json:
        ctx.emit(record)
    else:
        ctx.write("\n".join(lines) + "\n")
    if pinfo is None and len(lines) == 1:
        raise CommandFailed()


def _with(record: KmemAddress, **changes) -> KmemAddress:
    return replace(record, **changes)
