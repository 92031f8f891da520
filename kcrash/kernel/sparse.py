"""The sparse memory model: the mem_section table (each present section, its encoded and decoded
mem_map and state bits) and the memory blocks of the memory bus (/sys/devices/system/memory)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.meminfo import list_nodes, member_offset
from kcrash.kernel.page import page_layout
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "section_pfn_shift",
    "MemSection",
    "mem_sections",
    "MemoryBlock",
    "memory_blocks",
    "SECTION_STATE_LETTERS",
]

PAGE_SHIFT = 12
# The section_mem_map flag bits crash shows, by the kernel's names (enum *_BIT since 5.12, #defines before).
SECTION_STATE_LETTERS = (
    ("SECTION_MARKED_PRESENT", "P"),
    ("SECTION_HAS_MEM_MAP", "M"),
    ("SECTION_IS_ONLINE", "O"),
    ("SECTION_IS_EARLY", "E"),
    ("SECTION_TAINT_ZONE_DEVICE", "D"),
)
_DEFINE_BITS = {
    "SECTION_MARKED_PRESENT": 0,
    "SECTION_HAS_MEM_MAP": 1,
    "SECTION_IS_ONLINE": 2,
    "SECTION_IS_EARLY": 3,
}


@dataclass(frozen=True)
class MemSection:
    """A present struct mem_section: number, address, section_mem_map as stored (coded) and decoded, the
    state letters (crash's P, M, O, E, D) and the first pfn."""

    nr: int
    address: int = hex_field()
    coded_mem_map: int = hex_field(default=0)
    mem_map: int = hex_field(default=0)
    state: str = ""
    pfn: int = 0


@lru_cache(maxsize=8)
def _section_layout(k: Kernel) -> tuple[int, int, int, int, dict[str, int]]:
    """(sizeof mem_section, PFN_SECTION_SHIFT, sections per root, map mask, flag bits)."""
    t = k.type("struct mem_section")
    size = t.sizeof()
    bits = int(k.vmcoreinfo.get("NUMBER(SECTION_SIZE_BITS)", "27"))
    flags: dict[str, int] = {}
    for name, _ in SECTION_STATE_LETTERS:
        hit = _enumerator(k, name + "_BIT")
        if hit is not None:
            flags[name] = hit
    last = _enumerator(k, "SECTION_MAP_LAST_BIT")
    if not flags:  # before 5.12: #defines, not in the debug info
        flags = dict(_DEFINE_BITS)
        last = 4
    mask = ~((1 << (last if last is not None else 4)) - 1) & 0xFFFFFFFFFFFFFFFF
    return size, bits - PAGE_SHIFT, 4096 // size, mask, flags


def section_pfn_shift(k: Kernel) -> int:
    """PFN_SECTION_SHIFT: log2 of the page frames per memory section."""
    return _section_layout(k)[1]


def _enumerator(k: Kernel, name: str) -> int | None:
    """The value of an enumerator of an anonymous enum (BTF keeps them; the DWARF index has them too)."""
    btf = k.btf
    if btf is not None:
        hit = btf.find_enumerator(name)
        if hit is not None:
            return hit[1]
    dwarf = k.dwarf
    finder = getattr(dwarf, "find_enumerator", None) if dwarf is not None else None
    if finder is not None:
        hit = finder(name)
        if hit is not None:
            return int(hit[1])
    return None


def mem_sections(k: Kernel) -> list[MemSection]:
    """Every present section of mem_section[] (SPARSEMEM_EXTREME's roots, or the static array)."""
    size, pfn_shift, per_root, mask, flags = _section_layout(k)
    address, vtype = k.variable_type("mem_section")
    vt = vtype.strip()
    roots: list[int]
    if vt.kind.name == "POINTER":  # struct mem_section **mem_section
        base = k.read_u64(address)
        n = int(k.vmcoreinfo.get("LENGTH(mem_section)", "0")) or _nr_roots(k, pfn_shift, per_root)
        roots = list(struct.unpack(f"<{n}Q", k.read(base, 8 * n))) if base else []
    else:  # struct mem_section mem_section[NR_SECTION_ROOTS][SECTIONS_PER_ROOT]
        n = vt.length or 0
        roots = [address + i * per_root * size for i in range(n)]
    out = []
    for r, root in enumerate(roots):
        if not root:
            continue
        try:
            data = k.read(root, per_root * size)
        except MemoryReadError:
            continue
        for i in range(per_root):
            value = struct.unpack_from("<Q", data, i * size)[0]
            present = value & (1 << flags["SECTION_MARKED_PRESENT"])
            coded = value & mask
            if not present or not coded:
                continue
            nr = r * per_root + i
            pfn = nr << pfn_shift
            state = "".join(
                letter for name, letter in SECTION_STATE_LETTERS if name in flags and value >> flags[name] & 1
            )
            mem_map = (coded + pfn * page_layout(k).page_size) & 0xFFFFFFFFFFFFFFFF
            out.append(MemSection(nr, root + i * size, coded, mem_map, state, pfn))
    return out


def _nr_roots(k: Kernel, pfn_shift: int, per_root: int) -> int:
    bits = int(k.vmcoreinfo.get("NUMBER(MAX_PHYSMEM_BITS)", "46"))
    sections = 1 << (bits - PAGE_SHIFT - pfn_shift)
    return -(-sections // per_root)


@dataclass(frozen=True)
class MemoryBlock:
    """A struct memory_block of the memory bus: name (memoryN), physical range, node, state."""

    address: int = hex_field()
    name: str = ""
    start: int = hex_field(default=0)
    end: int | None = hex_field(default=None)  # None: the kernel does not say where the block ends
    node: int | None = None
    state: str = ""
    start_section: int = 0


_STATES = {
    1: "ONLINE",
    2: "GOING_OFFLINE",
    4: "OFFLINE",
    8: "GOING_ONLINE",
    16: "CANCEL_ONLINE",
    32: "CANCEL_OFFLINE",
}


def _memory_subsys_private(k: Kernel) -> int:
    """The subsys_private of the memory bus: memory_subsys.p before 6.3, else the bus_kset entry whose
    kobject is named "memory"."""
    bus = k.type("struct bus_type")
    if bus.find_member("p") is not None:
        return k.read_u64(k.address_of("memory_subsys") + bus.member("p")[1] // 8)
    kset = k.read_u64(k.address_of("bus_kset"))
    kset_t = k.type("struct kset")
    kobj_t = k.type("struct kobject")
    sp_t = k.type("struct subsys_private")
    list_off = kset_t.member("list")[1] // 8
    entry_off = kobj_t.member("entry")[1] // 8
    name_off = kobj_t.member("name")[1] // 8
    subsys_kobj = (member_offset(sp_t, "subsys") or 0) + (member_offset(kset_t, "kobj") or 0)
    for node in list_nodes(k, kset + list_off):
        kobj = node - entry_off
        name = k.read_cstring(k.read_u64(kobj + name_off), 64)
        if name == b"memory":
            return kobj - subsys_kobj
    raise KcrashError("cannot determine subsys_private for memory")


def memory_blocks(k: Kernel) -> list[MemoryBlock]:
    """The memory blocks on the memory bus's device list, in list order (crash's `kmem -n` table)."""
    mb = k.find_type("struct memory_block")
    if mb is None or k.symbols.lookup("memory_subsys") is None:
        return []
    private = _memory_subsys_private(k)
    sp_t = k.type("struct subsys_private")
    head = private + (member_offset(sp_t, "klist_devices.k_list") or 0)
    dp_t = k.type("struct device_private")
    knode = (member_offset(dp_t, "knode_bus") or 0) + (
        member_offset(k.type("struct klist_node"), "n_node") or 0
    )
    dev_in_dp = member_offset(dp_t, "device") or 0
    dev_off = member_offset(mb, "dev") or 0
    name_off = (member_offset(k.type("struct device"), "kobj") or 0) + (
        member_offset(k.type("struct kobject"), "name") or 0
    )
    start_off = member_offset(mb, "start_section_nr") or 0
    end_off = member_offset(mb, "end_section_nr")
    state_off = member_offset(mb, "state") or 0
    state_hit = mb.find_member("state")
    state_type = state_hit[0].type.strip() if state_hit else None
    state_size = state_type.sizeof() if state_type is not None else 8
    # An enum memory_block_state (6.12's backport and later, MEM_ONLINE = 0) names its values; before, the
    # state was an unsigned long of MEM_* bits.
    names = dict(_STATES)
    if state_type is not None and state_type.kind.name == "ENUM":
        names = {e.value: e.name.removeprefix("MEM_") for e in state_type.enumerators or ()}
    nid_off = member_offset(mb, "nid")
    _, pfn_shift, *_ = _section_layout(k)
    probed = k.symbols.lookup("memory_block_size_probed")
    size = k.read_u64(probed.address) if probed is not None else None
    out = []
    for node in list_nodes(k, head):
        device = k.read_u64(node - knode + dev_in_dp)
        block = device - dev_off
        start_sec = k.read_u64(block + start_off)
        start = start_sec << (pfn_shift + PAGE_SHIFT)
        end = None
        if size:
            end = start + size - 1
        elif end_off is not None:
            end = ((k.read_u64(block + end_off) + 1) << (pfn_shift + PAGE_SHIFT)) - 1
        state = int.from_bytes(k.read(block + state_off, state_size), "little")
        out.append(
            MemoryBlock(
                address=block,
                name=k.read_cstring(k.read_u64(device + name_off), 64).decode("ascii", "replace"),
                start=start,
                end=end,
                node=struct.unpack("<i", k.read(block + nid_off, 4))[0] if nid_off is not None else None,
                state=names.get(state, "UNKNOWN"),
                start_section=start_sec,
            )
        )
    return out
