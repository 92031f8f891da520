"""The machine: the firmware's physical memory map (x86 e820 table) and each CPU's `cpu_info`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["E820Entry", "e820_map", "cpu_info_address"]


@dataclass(frozen=True)
class E820Entry:
    """One range of the e820 map: [start, end) and the firmware's type number (E820_TYPE_*)."""

    start: int
    end: int
    type: int


def e820_map(k: Kernel) -> list[E820Entry]:
    """The kernel's e820 table (`*e820_table` since 4.12, the `e820` map before), in table order."""
    sym = k.symbols.lookup("e820")
    if sym is not None and k.find_type("struct e820map") is not None:
        address, t = k.variable_type("e820")
        if t.strip().is_pointer:
            address = k.read_u64(address)
        table_t, count_name, entries_name = k.type("struct e820map"), "nr_map", "map"
    elif k.symbols.lookup("e820_table") is not None:
        address = k.read_u64(k.symbol("e820_table").address)
        table_t, count_name, entries_name = k.type("struct e820_table"), "nr_entries", "entries"
    else:
        raise KcrashError("neither e820 or e820_table symbols exist")
    hit = table_t.find_member(entries_name)
    if hit is None:
        raise KcrashError("cannot determine the e820 table layout")
    entry_t = hit[0].type.strip().target
    size = entry_t.sizeof()
    addr_off, size_off, type_off = (
        entry_t.offsetof("addr"),
        entry_t.offsetof("size"),
        entry_t.offsetof("type"),
    )
    count = k.read_u32(address + table_t.offsetof(count_name))
    limit = hit[0].type.strip().length or count
    raw = k.read(address + hit[1] // 8, size * min(count, limit))
    out = []
    for i in range(min(count, limit)):
        base = i * size
        start = int.from_bytes(raw[base + addr_off : base + addr_off + 8], "little")
        length = int.from_bytes(raw[base + size_off : base + size_off + 8], "little")
        kind = int.from_bytes(raw[base + type_off : base + type_off + 4], "little")
        out.append(E820Entry(start, start + length, kind))
    return out


def cpu_info_address(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s `struct cpuinfo_x86` (per-cpu `cpu_info`; `boot_cpu_data` without it)."""
    sym = k.symbols.lookup("cpu_info")
    if sym is not None:
        return k.per_cpu_address(sym.address, cpu)
    if cpu == 0 and k.symbols.lookup("boot_cpu_data") is not None:
        return k.symbol("boot_cpu_data").address
    raise KcrashError("this kernel has no per-cpu cpu_info")
