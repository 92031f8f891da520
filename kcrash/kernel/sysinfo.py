"""System facts crash's `sys` and start-up banner show: identity (utsname), the dump file's flags, load,
processor speed, memory size, taints, DMI strings and the built-in config, and all of `sys` in one record
(time: kcrash.kernel.time; CPUs: kcrash.kernel.cpus; the panic: kcrash.kernel.panic).

Each fact is read the way crash computes it (the rules are noted where they are not obvious), from
VMCOREINFO and the symbol table when that is enough, so most of it works without debug info.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import cpu_count
from kcrash.kernel.panic import panic_message
from kcrash.kernel.tasks import task_table
from kcrash.kernel.time import crash_time, hz, uptime_jiffies
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "SystemInfo",
    "system_info",
    "DumpFlags",
    "dump_flags",
    "utsname",
    "load_average",
    "cpu_mhz",
    "memory_size",
    "tainted_mask",
    "taint_string",
    "dmi_strings",
    "dmi_field_names",
    "kernel_config",
]

UTS_LEN = 65
_UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")
T = TypeVar("T")


def _sym(k: Kernel, name: str) -> int | None:
    sym = k.symbols.lookup(name)
    return sym.address if sym is not None else None


def _read_int(k: Kernel, name: str, size: int, signed: bool = False) -> int | None:
    addr = _sym(k, name)
    if addr is None:
        return None
    try:
        return int.from_bytes(k.read(addr, size), "little", signed=signed)
    except MemoryReadError:
        return None


def _vmcoreinfo_symbol(k: Kernel, name: str) -> int | None:
    v = k.vmcoreinfo.get(f"SYMBOL({name})")
    if v is not None:
        return int(v, 16)
    return _sym(k, name)


# --- identity ---------------------------------------------------------------------------------------


@per_kernel
def utsname(k: Kernel) -> dict[str, str]:
    """init_uts_ns.name: sysname, nodename, release, version, machine, domainname."""
    base = _vmcoreinfo_symbol(k, "init_uts_ns")
    if base is None:
        raise KcrashError("cannot access utsname information (no init_uts_ns)")
    text = k.vmcoreinfo.get("OFFSET(uts_namespace.name)")
    if text is not None:
        off = int(text)
    else:
        t = k.find_type("struct uts_namespace")
        hit = t.find_member("name") if t is not None else None
        # Before the kref was dropped (and in old kernels) name followed an int-sized counter.
        off = hit[1] // 8 if hit is not None else 4
    raw = k.read(base + off, UTS_LEN * len(_UTS_FIELDS))
    uts = {
        name: raw[i * UTS_LEN : (i + 1) * UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
        for i, name in enumerate(_UTS_FIELDS)
    }
    return uts


# --- time -------------------------------------------------------------------------------------------


# --- load, CPUs, memory ---------------------------------------------------------------------------------

_FSHIFT = 11
_FIXED_1 = 1 << _FSHIFT


def load_average(k: Kernel) -> tuple[tuple[int, int], ...]:
    """The 1, 5 and 15 minute load averages from avenrun[] (the kernel's fixed point), each as (whole,
    hundredths), rounded as /proc/loadavg and crash do."""
    addr = _sym(k, "avenrun")
    if addr is None:
        raise KcrashError("no avenrun symbol")
    values = struct.unpack("<3Q", k.read(addr, 24))
    out = []
    for v in values:
        a = (v + _FIXED_1 // 200) & 0xFFFFFFFF
        out.append((a >> _FSHIFT, ((a & (_FIXED_1 - 1)) * 100) >> _FSHIFT))
    return tuple(out)


def cpu_mhz(k: Kernel) -> int | None:
    """The processor speed crash prints: cpu_khz / 1000 (tsc_khz if cpu_khz is 0)."""
    for name in ("cpu_khz", "tsc_khz"):
        khz = _read_int(k, name, 4)
        if khz:
            return khz // 1000
    return None


def _node_present_offset(k: Kernel) -> int | None:
    t = k.find_type("struct pglist_data")
    if t is not None:
        hit = t.find_member("node_present_pages")
        if hit is not None:
            return hit[1] // 8
    start = k.vmcoreinfo.get("OFFSET(pglist_data.node_start_pfn)")
    # node_present_pages follows node_start_pfn (include/linux/mmzone.h, 2.6.17 on).
    return int(start) + 8 if start is not None else None


@per_kernel
def memory_size(k: Kernel) -> int:
    """Bytes of memory as crash counts them: the present pages of every online node."""
    page_size = int(k.vmcoreinfo.get("PAGESIZE", "4096"))
    present = _node_present_offset(k)
    if present is None:
        raise KcrashError("cannot find pglist_data.node_present_pages")
    pgdats: list[int] = []
    node_data = _vmcoreinfo_symbol(k, "node_data")
    if node_data is not None:
        nodes = _online_nodes(k)
        length = int(k.vmcoreinfo.get("LENGTH(node_data)", "0")) or ((_sym_size(k, "node_data") or 8) // 8)
        ptrs = struct.unpack(f"<{length}Q", k.read(node_data, 8 * length))
        pgdats = [ptrs[n] for n in nodes if n < length and ptrs[n]]
    else:
        contig = _vmcoreinfo_symbol(k, "contig_page_data")
        if contig is not None:
            pgdats = [contig]
    return sum(k.read_u64(p + present) for p in pgdats) * page_size


def _sym_size(k: Kernel, name: str) -> int | None:
    sym = k.symbols.lookup(name)
    return sym.size if sym is not None and sym.size else None


def _online_nodes(k: Kernel) -> list[int]:
    addr = _vmcoreinfo_symbol(k, "node_online_map")
    if addr is None:
        states = _sym(k, "node_states")
        if states is None:
            return [0]
        addr = states + _node_state_index(k, "N_ONLINE") * _nodemask_size(k)
    size = _nodemask_size(k)
    bits = int.from_bytes(k.read(addr, size), "little")
    return [n for n in range(size * 8) if bits >> n & 1] or [0]


def _nodemask_size(k: Kernel) -> int:
    v = k.vmcoreinfo.get("SIZE(nodemask_t)")
    if v is not None:
        return int(v)
    t = k.find_type("nodemask_t")
    return t.sizeof() if t is not None else 8


def _node_state_index(k: Kernel, name: str) -> int:
    t = k.find_type("enum node_states")
    try:
        return t.enumerator_value(name) if t is not None else 1
    except KcrashError:
        return 1


@dataclass(frozen=True)
class DumpFlags:
    """What crash says about the dump file after its name."""

    kdump: bool  # a kdump-compressed (diskdump) file, which crash flags differently from ELF
    split_part: bool  # one file of a split set
    partial: bool  # filtered: makedumpfile's dump level is above 0
    incomplete: bool  # truncated
    excluded_vmemmap: bool  # makedumpfile left out the vmemmap


def dump_flags(k: Kernel) -> DumpFlags:
    """The dump file's flags: filtered (a dump level), truncated, vmemmap excluded, one part of a set."""
    mem = k.memory
    fmt = getattr(mem, "format_name", "") or ""
    kdump = "KDUMP" in fmt or "DISKDUMP" in fmt
    return DumpFlags(
        kdump=kdump,
        split_part=kdump and bool(getattr(mem, "partial", False)),
        partial=(getattr(mem, "dump_level", None) or 0) > 0,
        incomplete=bool(getattr(mem, "incomplete", False)),
        excluded_vmemmap=kdump and bool((getattr(mem, "status", 0) or 0) & 0x10),
    )


# --- panic ----------------------------------------------------------------------------------------------


# --- tasks ----------------------------------------------------------------------------------------------


# --- the sys block --------------------------------------------------------------------------------------


@dataclass
class SystemInfo:
    """The facts crash's `sys` shows, as read from the dump (None: not readable, see `warnings`)."""

    vmlinux: str
    dump: str
    dump_flags: DumpFlags
    tainted: bool
    livepatch: bool  # a livepatch module tainted the kernel ('K')
    cpus: int
    online: int
    crash_time: int | None  # seconds since the epoch
    uptime_jiffies: int | None
    hz: int
    load_average: tuple[tuple[int, int], ...] | None
    tasks: int
    utsname: dict[str, str]
    mhz: int | None
    memory: int | None  # bytes
    panic: str
    warnings: list[str] = field(default_factory=list)


def _field(warnings: list[str], name: str, fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except (KcrashError, MemoryReadError) as e:
        warnings.append(f"cannot determine {name}: {e}")
        return default


def system_info(k: Kernel) -> SystemInfo:
    """Everything `sys` shows, each field read independently (one unreadable field does not hide the
    others; its problem is listed in `warnings`)."""
    warnings: list[str] = []
    mask = _field(warnings, "taints", lambda: tainted_mask(k), 0)
    livepatch = bool(mask) and "K" in _field(warnings, "taints", lambda: taint_string(k), "")
    uts = _field(warnings, "utsname", lambda: utsname(k), dict.fromkeys(_UTS_FIELDS, ""))
    cpus, online = _field(warnings, "CPUS", lambda: cpu_count(k), (0, 0))
    date = _field(warnings, "DATE", lambda: crash_time(k), None)
    ticks = _field(warnings, "UPTIME", lambda: uptime_jiffies(k), None)
    return SystemInfo(
        vmlinux=k.vmlinux_path,
        dump=k.dump_path,
        dump_flags=dump_flags(k),
        tainted=bool(mask),
        livepatch=livepatch,
        cpus=cpus,
        online=online,
        crash_time=date,
        uptime_jiffies=ticks,
        hz=hz(k) if ticks is not None else 0,
        load_average=_field(warnings, "LOAD AVERAGE", lambda: load_average(k), None),
        tasks=_field(warnings, "TASKS", lambda: len(task_table(k)), 0),
        utsname=uts,
        mhz=_field(warnings, "MACHINE", lambda: cpu_mhz(k), None),
        memory=_field(warnings, "MEMORY", lambda: memory_size(k), None),
        panic=_field(warnings, "PANIC", lambda: panic_message(k)[0], ""),
        warnings=warnings,
    )


# --- taints, DMI, config --------------------------------------------------------------------------------


def tainted_mask(k: Kernel) -> int:
    """The kernel's taint flags (tainted_mask, `tainted` in old kernels)."""
    value = _read_int(k, "tainted_mask", 8)
    if value is None:
        value = _read_int(k, "tainted", 4)
    if value is None:
        raise KcrashError("no tainted_mask in this kernel")
    return value


def taint_string(k: Kernel) -> str:
    """The taint letters crash shows after TAINTED_MASK: each set flag's letter, and each clear flag's
    unless it is ' ', '-' or 'G'."""
    mask = tainted_mask(k)
    sym = k.symbols.lookup("taint_flags")
    if sym is None:
        return ""
    t = k.find_type("struct taint_flag")
    if t is not None:
        size = t.sizeof()
        true_off = (t.find_member("c_true") or t.find_member("true") or (None, 0))[1] // 8
        false_off = (t.find_member("c_false") or t.find_member("false") or (None, 8))[1] // 8
    else:
        size, true_off, false_off = 3, 0, 1  # { char c_true, c_false; bool module; }
    count = (sym.size // size) if sym.size else 0
    raw = k.read(sym.address, count * size)
    out = []
    for i in range(count):
        if mask >> i & 1:
            out.append(chr(raw[i * size + true_off]))
        else:
            ch = chr(raw[i * size + false_off])
            if ch not in " -G":
                out.append(ch)
    return "".join(out)


def dmi_strings(k: Kernel) -> list[tuple[str, str]]:
    """(name, value) of each DMI string the kernel kept (dmi_ident[]), named by enum dmi_field."""
    sym = k.symbols.lookup("dmi_ident")
    if sym is None:
        raise KcrashError("dmi_ident does not exist in this kernel")
    length = (sym.size or 8) // 8
    ptrs = struct.unpack(f"<{length}Q", k.read(sym.address, 8 * length))
    enum = k.find_type("enum dmi_field")
    names: dict[int, str] = {}
    if enum is not None and enum.strip().enumerators:
        for e in enum.strip().enumerators or ():
            if e.value >= length:
                break
            names.setdefault(e.value, e.name)
    out = []
    for i, ptr in enumerate(ptrs):
        if not ptr:
            continue
        value = k.read_cstring(ptr, 1024).decode("utf-8", "replace")
        out.append((names.get(i, f"dmi_ident[{i}]"), value))
    return out


def dmi_field_names(k: Kernel) -> list[str]:
    """The names of the DMI fields dmi_ident[] has room for (enum dmi_field's enumerators in order), empty
    when the debug info does not describe the enum."""
    sym = k.symbols.lookup("dmi_ident")
    enum = k.find_type("enum dmi_field")
    if sym is None or enum is None or not enum.strip().enumerators:
        return []
    length = (sym.size or 8) // 8
    names = []
    for e in enum.strip().enumerators or ():
        if e.value >= length:
            break
        names.append(e.name)
    return names


_IKCFG_START = b"IKCFG_ST"
_IKCFG_END = b"IKCFG_ED"


def kernel_config(k: Kernel) -> str:
    """The kernel's built-in .config (CONFIG_IKCONFIG), decompressed."""
    sym = k.symbols.lookup("kernel_config_data")
    if sym is None:
        raise KcrashError("kernel_config_data does not exist in this kernel")
    end = k.symbols.lookup("kernel_config_data_end")
    size = (end.address - sym.address) if end is not None and end.address > sym.address else sym.size
    if not size:
        size = 1 << 20
    data = k.read(sym.address, size)
    start = data.find(b"\x1f\x8b")
    if data.startswith(_IKCFG_START):
        start = data.find(b"\x1f\x8b", len(_IKCFG_START))
    if start < 0:
        raise KcrashError("kernel_config_data: no compressed configuration found")
    stop = data.find(_IKCFG_END, start)
    blob = data[start : stop if stop > 0 else len(data)]
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob).decode("utf-8", "replace")
    except zlib.error as e:
        raise KcrashError(f"kernel_config_data: cannot decompress: {e}") from None
