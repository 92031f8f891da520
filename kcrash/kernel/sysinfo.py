"""System facts crash's `sys` and start-up banner show: identity (utsname), time (date, uptime, HZ), load,
CPUs, memory, the panic message and the task that panicked, taints, DMI strings and the built-in config.

Each fact is read the way crash computes it (the rules are noted where they are not obvious), from
VMCOREINFO and the symbol table when that is enough, so most of it works without debug info.
"""

from __future__ import annotations

import struct
import time
import weakref
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import active_task_cpu, cpu_count
from kcrash.kernel.panic import PanicInfo, panic_info, panic_message, panic_task
from kcrash.kernel.task_state import task_state_name
from kcrash.kernel.tasks import task_comm, task_cpu, task_table
from kcrash.kernel.time import crash_time, format_jiffies, hz, uptime_jiffies

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "SysInfo",
    "sys_info",
    "sys_lines",
    "banner_lines",
    "context_lines",
    "utsname",
    "ctime_tz",
    "load_average",
    "cpu_mhz",
    "memory_size",
    "format_memory",
    "dumpfile_suffix",
    "tainted_mask",
    "taint_string",
    "dmi_strings",
    "kernel_config",
]

UTS_LEN = 65
_UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")
GIB = 1 << 30
MIB = 1 << 20

_caches: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _cache(k: Kernel) -> dict[str, Any]:
    try:
        return _caches.setdefault(k, {})
    except TypeError:  # an object that cannot be weakly referenced: no caching
        return {}


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


def utsname(k: Kernel) -> dict[str, str]:
    """init_uts_ns.name: sysname, nodename, release, version, machine, domainname."""
    c = _cache(k)
    if "uts" in c:
        return c["uts"]
    base = _vmcoreinfo_symbol(k, "init_uts_ns")
    if base is None:
        raise KcrashError("cannot access utsname information (no init_uts_ns)")
    off = k.vmcoreinfo.get("OFFSET(uts_namespace.name)")
    if off is None:
        t = k.find_type("struct uts_namespace")
        hit = t.find_member("name") if t is not None else None
        # Before the kref was dropped (and in old kernels) name followed an int-sized counter.
        off = hit[1] // 8 if hit is not None else 4
    raw = k.read(base + int(off), UTS_LEN * len(_UTS_FIELDS))
    uts = {
        name: raw[i * UTS_LEN : (i + 1) * UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
        for i, name in enumerate(_UTS_FIELDS)
    }
    c["uts"] = uts
    return uts


# --- time -------------------------------------------------------------------------------------------


def ctime_tz(seconds: int) -> str:
    """crash's ctime_tz(): local time as `%a %b %e %T %Z %Y`."""
    return time.strftime("%a %b %e %T %Z %Y", time.localtime(seconds))


# --- load, CPUs, memory ---------------------------------------------------------------------------------

_FSHIFT = 11
_FIXED_1 = 1 << _FSHIFT


def load_average(k: Kernel) -> str:
    """avenrun[] in the kernel's fixed point, rounded as /proc/loadavg and crash do."""
    addr = _sym(k, "avenrun")
    if addr is None:
        raise KcrashError("no avenrun symbol")
    values = struct.unpack("<3Q", k.read(addr, 24))
    parts = []
    for v in values:
        a = (v + _FIXED_1 // 200) & 0xFFFFFFFF
        parts.append(f"{a >> _FSHIFT}.{((a & (_FIXED_1 - 1)) * 100) >> _FSHIFT:02d}")
    return ", ".join(parts)


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


def memory_size(k: Kernel) -> int:
    """Bytes of memory as crash counts them: the present pages of every online node."""
    c = _cache(k)
    if "memory" in c:
        return c["memory"]
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
    total = sum(struct.unpack("<Q", k.read(p + present, 8))[0] for p in pgdats) * page_size
    c["memory"] = total
    return total


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


def format_memory(total: int, page_size: int = 4096) -> str:
    """crash's get_memory_size(): round up to the next GiB when within 64 MiB of it, then print with one
    decimal in GB, MB or KB, dropping a `.0`."""
    next_gib = -(-total // GIB) * GIB
    if next_gib and next_gib - total <= 64 * MIB:
        total = next_gib
    pages = total // page_size
    if pages == 0:
        return "0"
    size = float(pages * page_size)
    if size >= GIB:
        text = f"{size / GIB:.1f} GB"
    elif size >= MIB:
        text = f"{size / MIB:.1f} MB"
    else:
        return f"{int(size / 1024)} KB"
    return text.replace(".0 ", " ", 1)


def dumpfile_suffix(k: Kernel) -> str:
    """What crash appends to DUMPFILE: `[PARTIAL DUMP]` for a filtered dump (a kdump-compressed file with
    a dump level), `[INCOMPLETE]` for a truncated one, `[EXCLUDED VMEMMAP]`."""
    mem = k.memory
    fmt = getattr(mem, "format_name", "") or ""
    level = getattr(mem, "dump_level", None) or 0
    incomplete = bool(getattr(mem, "incomplete", False))
    if "KDUMP" in fmt or "DISKDUMP" in fmt:
        if getattr(mem, "partial", False):
            return ""  # one file of a split set: crash lists the set instead
        excluded_vmemmap = bool((getattr(mem, "status", 0) or 0) & 0x10)
        if level > 0 or incomplete or excluded_vmemmap:
            return " " + "".join(
                flag
                for flag, on in (
                    (" [PARTIAL DUMP]", level > 0),
                    (" [INCOMPLETE]", incomplete),
                    (" [EXCLUDED VMEMMAP]", excluded_vmemmap),
                )
                if on
            )
        return ""
    out = ""
    if level > 0:
        out += "  [PARTIAL DUMP]"
    if incomplete:
        out += "  [INCOMPLETE]"
    return out


# --- panic ----------------------------------------------------------------------------------------------


# --- tasks ----------------------------------------------------------------------------------------------


def _thread_info_address(task: Object) -> int:
    """THREAD_INFO_IN_TASK kernels embed thread_info at the start of task_struct; older ones keep it at
    the base of the stack."""
    hit = task.type_.find_member("thread_info")
    if hit is not None and hit[0].type.strip().is_aggregate:
        return task.address + hit[1] // 8
    return int(task.stack)


def context_lines(k: Kernel, task: Object, panic: PanicInfo | None = None, width: int = 12) -> list[str]:
    """crash's show_context(): the PID/COMMAND/TASK/CPU/STATE block for `task`. The banner aligns the names
    to 12 columns like the `sys` block; `set` aligns them to 7 (the length of COMMAND)."""
    panic = panic or panic_info(k)
    pid = int(task.pid)
    same_pid = len(task_table(k).with_pid(pid)) or 1
    task_field = f"{task.address:x}  "
    if same_pid > 1:
        task_field += f"(1 of {same_pid})  "
    task_field += f"[THREAD_INFO: {_thread_info_address(task):x}]"
    state = task_state_name(k, task) + " "
    if active_task_cpu(k, task) is not None:
        is_panic = panic.task is not None and panic.task.address == task.address
        if is_panic and panic.sysrq:
            state += "(SYSRQ)"
        elif is_panic:
            state += "(PANIC)"
        else:
            state += "(ACTIVE)"
    return [
        f"{'PID':>{width}}: {pid}",
        f'{"COMMAND":>{width}}: "{task_comm(task)}"',
        f"{'TASK':>{width}}: {task_field}",
        f"{'CPU':>{width}}: {task_cpu(task)}",
        f"{'STATE':>{width}}: {state}",
    ]


# --- the sys block --------------------------------------------------------------------------------------


@dataclass
class SysInfo:
    """The fields of crash's `sys` output."""

    kernel: str
    dumpfile: str
    cpus: int
    offline: int
    date: str
    uptime: str
    load_average: str
    tasks: int
    nodename: str
    release: str
    version: str
    machine: str
    mhz: int | None
    memory: str
    panic: str
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        cpus = str(self.cpus) + (f" [OFFLINE: {self.offline}]" if self.offline else "")
        mhz = f"({self.mhz} Mhz)" if self.mhz else "(unknown Mhz)"
        panic = f'"{self.panic}"' + (" (check log for details)" if "Oops: " in self.panic else "")
        return [
            f"{'KERNEL':>12}: {self.kernel}",
            f"{'DUMPFILE':>12}: {self.dumpfile}",
            f"{'CPUS':>12}: {cpus}",
            f"{'DATE':>12}: {self.date}",
            f"{'UPTIME':>12}: {self.uptime}",
            f"{'LOAD AVERAGE':>12}: {self.load_average}",
            f"{'TASKS':>12}: {self.tasks}",
            f"{'NODENAME':>12}: {self.nodename}",
            f"{'RELEASE':>12}: {self.release}",
            f"{'VERSION':>12}: {self.version}",
            f"{'MACHINE':>12}: {self.machine}  {mhz}",
            f"{'MEMORY':>12}: {self.memory}",
            f"{'PANIC':>12}: {panic}",
        ]


def _field(warnings: list[str], name: str, fn, default):
    try:
        return fn()
    except (KcrashError, MemoryReadError) as e:
        warnings.append(f"cannot determine {name}: {e}")
        return default


def sys_info(k: Kernel) -> SysInfo:
    """Everything `sys` shows, each field read independently (one unreadable field does not hide the
    others; its problem is listed in `warnings`)."""
    warnings: list[str] = []
    kernel = k.vmlinux_path
    mask = _field(warnings, "taints", lambda: tainted_mask(k), 0)
    if mask:
        if "K" in _field(warnings, "taints", lambda: taint_string(k), ""):
            kernel += "  [LIVEPATCH]"
        kernel += "  [TAINTED]"
    uts = _field(warnings, "utsname", lambda: utsname(k), dict.fromkeys(_UTS_FIELDS, ""))
    cpus, online = _field(warnings, "CPUS", lambda: cpu_count(k), (0, 0))
    date = _field(warnings, "DATE", lambda: crash_time(k), None)
    ticks = _field(warnings, "UPTIME", lambda: uptime_jiffies(k), None)
    return SysInfo(
        kernel=kernel,
        dumpfile=k.dump_path + dumpfile_suffix(k),
        cpus=cpus,
        offline=max(0, cpus - online),
        date=ctime_tz(date) if date is not None else "(unknown)",
        uptime=format_jiffies(ticks, hz(k)) if ticks is not None else "(unknown)",
        load_average=_field(warnings, "LOAD AVERAGE", lambda: load_average(k), "(unknown)"),
        tasks=_field(warnings, "TASKS", lambda: len(task_table(k)), 0),
        nodename=uts["nodename"],
        release=uts["release"],
        version=uts["version"],
        machine=uts["machine"],
        mhz=_field(warnings, "MACHINE", lambda: cpu_mhz(k), None),
        memory=_field(warnings, "MEMORY", lambda: format_memory(memory_size(k)), "(unknown)"),
        panic=_field(warnings, "PANIC", lambda: panic_message(k)[0], ""),
        warnings=warnings,
    )


def sys_lines(k: Kernel) -> list[str]:
    """What `sys` prints."""
    return sys_info(k).lines()


def banner_lines(k: Kernel) -> list[str]:
    """crash's start-up block: the `sys` lines, then the context of the task that panicked."""
    lines = sys_lines(k)
    try:
        task = panic_task(k)
        if task is not None:
            lines += context_lines(k, task)
    except (KcrashError, MemoryReadError):
        pass
    return lines


# --- taints, DMI, config --------------------------------------------------------------------------------


def tainted_mask(k: Kernel) -> int:
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
        for e in enum.strip().enumerators:
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


def dmi_lines(k: Kernel) -> list[str]:
    """crash's `sys -i`: names right-aligned to the longest enumerator name, after two spaces."""
    entries = dmi_strings(k)
    enum = k.find_type("enum dmi_field")
    length = (k.symbols.lookup("dmi_ident").size or 8) // 8
    width = 0
    if enum is not None and enum.strip().enumerators:
        for e in enum.strip().enumerators:
            if e.value >= length:
                break
            width = max(width, len(e.name))
        return [f"  {name:>{width}}: {value}" for name, value in entries]
    return [f"  {name}: {value}" for name, value in entries]


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
