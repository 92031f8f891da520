"""Time: the kernel's HZ, jiffies since boot (uptime), when the kernel crashed and when it booted."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kcrash.debuginfo.types import Kind
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.printk import log_records
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "hz",
    "uptime_jiffies",
    "crash_time",
    "boot_time",
]

_MASK64 = (1 << 64) - 1


def _read_u64(k: Kernel, name: str) -> int | None:
    sym = k.symbols.lookup(name)
    if sym is None:
        return None
    try:
        return int.from_bytes(k.read(sym.address, 8), "little")
    except MemoryReadError:
        return None


@per_kernel
def hz(k: Kernel) -> int:
    """The kernel's HZ. crash takes it from a scheduler constant through gdb; the NTP tick length
    (`tick_nsec`, NSEC_PER_SEC/HZ) gives it directly. Without that symbol, the jiffies elapsed by the
    last log record's time tell it; 1000 (crash's x86_64 default) is the last resort."""
    tick = _read_u64(k, "tick_nsec")
    if tick and 100_000 <= tick <= 100_000_000:
        return round(1_000_000_000 / tick)
    return _hz_from_log(k) or 1000


def _hz_from_log(k: Kernel) -> int | None:
    try:
        records = [r for r in log_records(k) if r.ts_nsec]
    except KcrashError:
        return None
    if not records or records[-1].ts_nsec < 2_000_000_000:
        return None
    seconds = records[-1].ts_nsec / 1e9
    best = None
    for candidate in (100, 250, 300, 1000):
        ticks = uptime_jiffies(k, candidate)
        if ticks is None:
            return None
        error = abs(ticks / candidate - seconds)
        if best is None or error < best[0]:
            best = (error, candidate)
    return best[1] if best else None


def uptime_jiffies(k: Kernel, hz_value: int | None = None) -> int | None:
    """Jiffies since boot, as crash's get_uptime() derives them from jiffies_64, which starts at
    INITIAL_JIFFIES (-300*HZ as a u32, five minutes before the 32-bit wrap). None if the kernel has
    neither jiffies_64 nor jiffies in the dump."""
    j = _read_u64(k, "jiffies_64")
    if j is None:
        return _read_u64(k, "jiffies")
    h = hz_value or hz(k)
    wrapped = j & 0xFFFFFFFF00000000
    if wrapped:
        wrapped -= 0x100000000
        j = (j & 0xFFFFFFFF) | wrapped
        return (j + 300 * h) & _MASK64
    return (j - ((-300 * h) & 0xFFFFFFFF)) & _MASK64


def crash_time(k: Kernel) -> int | None:
    """When the kernel crashed (seconds since the epoch): VMCOREINFO's CRASHTIME (written by the crash
    kernel path), else the timekeeper's wall-clock seconds as crash reads them (shadow_timekeeper, then
    tk_core), else the kdump header's timestamp."""
    value = k.vmcoreinfo.get("CRASHTIME")
    if value:
        try:
            return int(value)
        except ValueError:
            pass
    tk = k.find_type("struct timekeeper")
    hit = tk.find_member("xtime_sec") if tk is not None else None
    if hit is not None:
        addr = _timekeeper_address(k)
        if addr is not None:
            try:
                return int(struct.unpack("<q", k.read(addr + hit[1] // 8, 8))[0])
            except MemoryReadError:
                pass
    stamp = getattr(k.memory, "timestamp", None)
    return int(stamp) if stamp else None


def _timekeeper_address(k: Kernel) -> int | None:
    """The struct timekeeper crash reads the date from, wherever this kernel keeps it: the shadow copy
    first, then the core one. Up to 6.12 they are the variables shadow_timekeeper and tk_core.timekeeper
    (`timekeeper` before 3.17); 7.x holds both in timekeeper_data[0] (struct tk_data)."""
    places = [
        ("shadow_timekeeper", None),
        ("timekeeper_data", "shadow_timekeeper"),
        ("tk_core", "timekeeper"),
        ("timekeeper_data", "timekeeper"),
        ("timekeeper", None),
    ]
    for name, member in places:
        if k.symbols.lookup(name) is None:
            continue
        try:
            obj = k.object(name)
            if obj.type_.strip().kind is Kind.ARRAY:
                obj = obj[0]
            return obj.member(member).address if member else obj.address
        except KcrashError:
            continue
    return None


def boot_time(k: Kernel) -> int | None:
    """Wall-clock seconds at boot as crash's `log -T` uses it: the crash date less the uptime in whole
    seconds (crash's documentation warns it is approximate)."""
    date = crash_time(k)
    ticks = uptime_jiffies(k)
    if date is None:
        return None
    return date - (ticks // hz(k) if ticks is not None else 0)
