"""System facts crash's `sys` and start-up banner show: identity (utsname), time (date, uptime, HZ), load,
CPUs, memory, the panic message and the task that panicked, taints, DMI strings and the built-in config.

Each fact is read the way crash computes it (the rules are noted where they are not obvious), from
VMCOREINFO and the symbol table when that is enough, so most of it works without debug info.
"""

from __future__ import annotations

import re
import struct
import time
import weakref
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcrash.debuginfo.types import Kind
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import cpu_curr, cpumask_cpus, online_cpus, panic_cpu

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "SysInfo",
    "PanicInfo",
    "sys_info",
    "sys_lines",
    "banner_lines",
    "context_lines",
    "panic_info",
    "panic_task",
    "panic_message",
    "utsname",
    "hz",
    "uptime_jiffies",
    "format_uptime",
    "crash_time",
    "boot_time",
    "ctime_tz",
    "load_average",
    "cpu_count",
    "cpu_mhz",
    "memory_size",
    "format_memory",
    "dumpfile_suffix",
    "task_state_name",
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


def hz(k: Kernel) -> int:
    """The kernel's HZ. crash takes it from a scheduler constant through gdb; the NTP tick length
    (`tick_nsec`, NSEC_PER_SEC/HZ) gives it directly. Without that symbol, the jiffies elapsed by the
    last log record's time tell it; 1000 (crash's default) is the last resort."""
    c = _cache(k)
    if "hz" in c:
        return c["hz"]
    value = None
    tick = _read_int(k, "tick_nsec", 8)
    if tick and 100_000 <= tick <= 100_000_000:
        value = round(1_000_000_000 / tick)
    if value is None:
        value = _hz_from_log(k)
    c["hz"] = value or 1000
    return c["hz"]


def _hz_from_log(k: Kernel) -> int | None:
    from kcrash.kernel.printk import log_records

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
    """Jiffies since boot, as crash counts them: jiffies_64 less INITIAL_JIFFIES (-300*HZ as a u32)."""
    j = _read_int(k, "jiffies_64", 8)
    if j is None:
        return _read_int(k, "jiffies", 8)
    h = hz_value or hz(k)
    wrapped = j & 0xFFFFFFFF00000000
    if wrapped:
        wrapped -= 0x100000000
        j = (j & 0xFFFFFFFF) | wrapped
        return j + 300 * h
    return (j & 0xFFFFFFFFFFFFFFFF) - ((-300 * h) & 0xFFFFFFFF)


def format_uptime(jiffies: int, hz_value: int) -> str:
    """crash's convert_time(): `[N days, ]HH:MM:SS`."""
    total = jiffies // hz_value
    days, total = divmod(total, 86400)
    hours, total = divmod(total, 3600)
    minutes, seconds = divmod(total, 60)
    prefix = f"{days} days, " if days else ""
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}"


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
                return struct.unpack("<q", k.read(addr + hit[1] // 8, 8))[0]
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
        if _sym(k, name) is None:
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


def cpu_count(k: Kernel) -> tuple[int, int]:
    """(CPUs, online CPUs) as crash counts them: CPUs whose per-cpu area was set up, in order (their
    per-cpu `cpu_number` equals their index), and of those the ones in the online mask."""
    c = _cache(k)
    if "cpus" in c:
        return c["cpus"]
    cpus = 0
    load = _sym(k, "__per_cpu_load")
    number_sym = _sym(k, "cpu_number")
    number_off = 0
    if number_sym is None and _sym(k, "pcpu_hot") is not None:
        t = k.find_type("struct pcpu_hot")
        hit = t.find_member("cpu_number") if t is not None else None
        if hit is not None:
            number_sym, number_off = _sym(k, "pcpu_hot"), hit[1] // 8
    try:
        offsets = k.per_cpu_offsets
    except (KcrashError, MemoryReadError):
        offsets = []
    if number_sym is not None and offsets:
        for i, off in enumerate(offsets):
            if load is not None and off == load:
                break
            try:
                value = int.from_bytes(k.read((number_sym + number_off + off) & (2**64 - 1), 4), "little")
            except MemoryReadError:
                break
            if value != i:
                break
            cpus += 1
    if not cpus:
        try:
            cpus = len(cpumask_cpus(k, "__cpu_possible_mask"))
        except (KcrashError, MemoryReadError):
            cpus = max(1, len(k.cpu_registers_raw))
    online = len([cpu for cpu in online_cpus(k) if cpu < cpus])
    c["cpus"] = (cpus, online)
    return c["cpus"]


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


@dataclass
class PanicInfo:
    message: str  # the log line crash shows as PANIC ("" if none)
    sysrq: bool  # crash's SYSRQ flag: a "SysRq : Trigger a crash" style line is in the log
    task: Object | None  # the task that panicked


# Searched in this order, each over the whole log (crash's get_panicmsg()).
_FAULT_LINES = ("general protection fault: ", "double fault: ", "divide error: ", "stack segment: ")
_SYSRQ_LINES = ("SysRq : Netdump", "SysRq : Crash", "SysRq : Trigger a crash")
_OOPS_LINES = (
    "Oops: ",
    "Kernel BUG at",
    "kernel BUG at",
    "Unable to handle kernel paging request",
    "Unable to handle kernel NULL pointer dereference",
    "BUG: unable to handle kernel ",
    "BUG: kernel NULL pointer dereference",
    "BUG: unable to handle page fault",
)
_PANIC_LINES = ("Kernel panic: ", "Kernel panic - ")
_LATE_LINES = ("[Hardware Error]: ", "Bad mode in ")


def _log_lines(k: Kernel) -> list[str]:
    """The log as `log -t` prints it, one string per output line."""
    from kcrash.kernel.printk import log_records

    lines: list[str] = []
    for rec in log_records(k):
        text = rec.text.decode("latin-1")
        lines.extend(text.split("\n"))
    return lines


def panic_message(k: Kernel) -> tuple[str, bool]:
    """(message, sysrq): the log line crash reports as PANIC, and whether the crash was sysrq-triggered."""
    c = _cache(k)
    if "panicmsg" in c:
        return c["panicmsg"]
    try:
        lines = _log_lines(k)
    except KcrashError:
        lines = []
    sysrq = any("SysRq : Crash" in line or "SysRq : Trigger a crash" in line for line in lines)

    def first(patterns: tuple[str, ...]) -> str | None:
        for line in lines:
            if any(p in line for p in patterns):
                return line
        return None

    message = first(_FAULT_LINES)
    if message is None:
        message = first(_SYSRQ_LINES)
        if message is not None:
            sysrq = True
    if message is None:
        message = first(_OOPS_LINES)
    if message is None and _sym(k, "sysrq_pressed") is not None:
        pressed = _read_int(k, "sysrq_pressed", _sym_size(k, "sysrq_pressed") or 4)
        if pressed:
            message = first(("sysrq",))
    if message is None:
        message = first(_PANIC_LINES)
    if message is None:
        message = first(_LATE_LINES)
    c["panicmsg"] = (message or "", sysrq)
    return c["panicmsg"]


_CPU_PID_LINE = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: ")


def panic_task(k: Kernel) -> Object | None:
    """The task that panicked: the current task of `panic_cpu` (set by panic() and crash_kexec()); else an
    active task whose stack holds the panic or kexec path; else the task the log's last "CPU: N PID: M
    Comm:" line names. None if the kernel did not panic."""
    c = _cache(k)
    if "panic_task" in c:
        return c["panic_task"]
    task = None
    try:
        cpu = panic_cpu(k)
        if cpu is not None:
            task = cpu_curr(k, cpu)
    except (KcrashError, MemoryReadError):
        task = None
    if task is None:
        task = _panic_task_from_stacks(k)
    if task is None:
        task = _panic_task_from_log(k)
    c["panic_task"] = task
    return task


_PANIC_FUNCTIONS = ("panic", "__crash_kexec", "crash_kexec", "machine_kexec", "vpanic")


def _panic_task_from_stacks(k: Kernel) -> Object | None:
    from kcrash.kernel.stack import active_cpus, backtrace

    if k.symbols.lookup("runqueues") is None:
        return None  # no per-CPU runqueues: no way to know what each CPU ran
    for cpu in active_cpus(k):
        try:
            task = cpu_curr(k, cpu)
            frames = backtrace(k, task).frames
        except (KcrashError, MemoryReadError):
            continue
        for f in frames:
            hit = k.resolve(f.ip - 1 if f.slot is not None else f.ip)
            if hit is not None and hit[0].name in _PANIC_FUNCTIONS:
                return task
    return None


def _panic_task_from_log(k: Kernel) -> Object | None:
    from kcrash.kernel.tasks import find_task

    try:
        lines = _log_lines(k)
    except KcrashError:
        return None
    for line in reversed(lines):
        m = _CPU_PID_LINE.search(line)
        if m:
            try:
                return find_task(k, int(m.group(2)))
            except (KcrashError, MemoryReadError):
                return None
    return None


def panic_info(k: Kernel) -> PanicInfo:
    message, sysrq = panic_message(k)
    return PanicInfo(message, sysrq, panic_task(k))


# --- tasks ----------------------------------------------------------------------------------------------


def task_state_name(k: Kernel, task: Object) -> str:
    """crash's verbose task state: TASK_RUNNING, or the set bits joined by `|`."""
    from kcrash.kernel.tasks import task_state_value, task_states

    s = task_states(k)
    state = task_state_value(task) | (int(task.exit_state) & 0xFFFFFFFF)
    if state == s.running:
        return "TASK_RUNNING"
    names = []
    for bit, name in (
        (s.interruptible, "TASK_INTERRUPTIBLE"),
        (s.uninterruptible, "TASK_UNINTERRUPTIBLE"),
        (s.stopped, "TASK_STOPPED"),
        (s.traced, "TASK_TRACED"),
    ):
        if state & bit:
            names.append(name)
    if state & s.exit_zombie:
        names.append("EXIT_ZOMBIE")
    if state & s.exit_dead:
        names.append("EXIT_DEAD")
    for bit, name in (
        (s.dead, "TASK_DEAD"),
        (s.wakekill, "TASK_WAKEKILL"),
        (s.waking, "TASK_WAKING"),
        (s.parked, "TASK_PARKED"),
        (s.noload, "TASK_NOLOAD"),
        (s.new, "TASK_NEW"),
    ):
        if state & bit:
            names.append(name)
    return "|".join(names) or f"(unknown: {state:#x})"


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
    from kcrash.kernel.stack import active_task_cpu
    from kcrash.kernel.tasks import task_comm, task_cpu

    panic = panic or panic_info(k)
    pid = int(task.pid)
    same_pid = _tasks_with_pid(k, pid)
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


def _tasks_with_pid(k: Kernel, pid: int) -> int:
    c = _cache(k)
    counts = c.get("pid_counts")
    if counts is None:
        from kcrash.kernel.tasks import for_each_task

        counts = {}
        for t in for_each_task(k):
            p = int(t.pid)
            counts[p] = counts.get(p, 0) + 1
        c["pid_counts"] = counts
        c["tasks"] = sum(counts.values())
    return counts.get(pid, 1)


def task_count(k: Kernel) -> int:
    """Every task crash would list: each CPU's idle task and every thread."""
    c = _cache(k)
    if "tasks" not in c:
        _tasks_with_pid(k, 0)
    return c["tasks"]


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
        uptime=format_uptime(ticks, hz(k)) if ticks is not None else "(unknown)",
        load_average=_field(warnings, "LOAD AVERAGE", lambda: load_average(k), "(unknown)"),
        tasks=_field(warnings, "TASKS", lambda: task_count(k), 0),
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
