"""Address spaces: an mm_struct's size and resident pages counted as crash's `ps` counts them, the physical
memory size %MEM is relative to, and reading a task's user memory (its argument and environment strings)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import possible_cpus
from kcrash.kernel.task_state import task_states
from kcrash.kernel.tasks import PF_EXITING, TaskInfo, TaskTable, is_kthread
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "MmInfo",
    "mm_info",
    "total_pages",
    "totalram_pages",
    "TaskMemUsage",
    "task_mem_usage",
    "UserReadError",
    "read_user",
    "task_args",
    "task_env",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


def _offset(k: Kernel, type_name: str, path: str) -> int | None:
    t = k.find_type(type_name)
    return t.find_offset(path) if t is not None else None


class _MmLayout:
    """Offsets in this kernel's mm_struct, and which of the RSS counter layouts it uses:
    `rss`/`_rss` (2.4/2.6.early), `_anon_rss`+`_file_rss` (2.6.x), `rss_stat.count[]` atomic longs
    (2.6.34-6.1, plus per-thread task->rss_stat with SPLIT_RSS_COUNTING), `rss_stat[]` percpu_counters (6.2+)."""

    def __init__(self, k: Kernel) -> None:
        t = k.type("struct mm_struct")
        self.size = t.sizeof()

        def off(path: str) -> int | None:
            return _offset(k, "struct mm_struct", path)

        self.total_vm = off("total_vm")
        self.pgd = off("pgd")
        self.arg_start, self.arg_end = off("arg_start"), off("arg_end")
        self.env_start, self.env_end = off("env_start"), off("env_end")
        self.rss = off("rss") if off("rss") is not None else off("_rss")
        self.anon_rss, self.file_rss = off("_anon_rss"), off("_file_rss")
        self.rss_stat = off("rss_stat")
        self.percpu = False
        self.counter_size = 8
        hit = t.find_member("rss_stat")
        if hit is not None:
            rtype = hit[0].type.strip()
            if rtype.kind.name == "ARRAY":  # struct percpu_counter rss_stat[NR_MM_COUNTERS]
                self.percpu = True
                self.counter_size = rtype.target.sizeof()
                self.pc_count = _offset(k, "struct percpu_counter", "count") or 0
                self.pc_counters = _offset(k, "struct percpu_counter", "counters") or 0
            else:
                self.rss_stat = (self.rss_stat or 0) + (_offset(k, "struct mm_rss_stat", "count") or 0)
        # The counters RSS adds up (crash's get_task_mem_usage): file, anon and, where the kernel has it,
        # shmem (a busybox initramfs's binaries are shmem pages). Their indices come from the enum.
        self.rss_counters = [
            v
            for v in (k.enumerator_value(n) for n in ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SHMEMPAGES"))
            if v is not None
        ]
        # SPLIT_RSS_COUNTING: each thread caches deltas in task->rss_stat.count[] (ints), until 6.2.
        self.task_rss_stat = _offset(k, "struct task_struct", "rss_stat")
        if self.task_rss_stat is not None:
            self.task_rss_stat += _offset(k, "struct task_rss_stat", "count") or 0


@per_kernel
def _mm_layout(k: Kernel) -> _MmLayout:
    return _MmLayout(k)


@dataclass(frozen=True, slots=True)
class MmInfo:
    address: int
    total_vm: int  # pages
    rss: int  # pages: file + anon + shmem, each clamped at 0 as crash does (no per-thread deltas)
    pgd: int
    arg_start: int
    arg_end: int
    env_start: int
    env_end: int


def _ulong(buf: bytes, offset: int | None) -> int:
    return struct.unpack_from("<Q", buf, offset)[0] if offset is not None else 0


def _slong(buf: bytes, offset: int | None) -> int:
    return struct.unpack_from("<q", buf, offset)[0] if offset is not None else 0


def _percpu_counter_sum_positive(k: Kernel, address: int, lay: _MmLayout) -> int:
    """percpu_counter_sum_positive(): count plus every possible CPU's s32 delta, clamped at 0."""
    total = int.from_bytes(k.read(address + lay.pc_count, 8), "little", signed=True)
    counters = k.read_u64(address + lay.pc_counters)
    if counters:
        for cpu in possible_cpus(k):
            try:
                total += struct.unpack("<i", k.read(k.per_cpu_address(counters, cpu), 4))[0]
            except (KcrashError, MemoryReadError):
                continue
    return max(total, 0)


def mm_info(k: Kernel, address: int) -> MmInfo:
    """The ps-relevant parts of the mm_struct at `address` (cached: a dump does not change)."""
    cache: dict[int, MmInfo] = k.cache.setdefault("kcrash.kernel.mm.mm_info", {})
    hit = cache.get(address)
    if hit is not None:
        return hit
    lay = _mm_layout(k)
    buf = k.read(address, lay.size)
    if lay.rss is not None:
        rss = _ulong(buf, lay.rss)
    elif lay.rss_stat is not None and not lay.percpu:
        rss = sum(max(_slong(buf, lay.rss_stat + index * 8), 0) for index in lay.rss_counters)
    elif lay.rss_stat is not None:
        rss = 0
        for index in lay.rss_counters:
            rss += _percpu_counter_sum_positive(k, address + lay.rss_stat + index * lay.counter_size, lay)
    else:
        rss = 0
    rss += _slong(buf, lay.anon_rss) + _slong(buf, lay.file_rss)
    info = MmInfo(
        address=address,
        total_vm=_ulong(buf, lay.total_vm),
        rss=rss,
        pgd=_ulong(buf, lay.pgd),
        arg_start=_ulong(buf, lay.arg_start),
        arg_end=_ulong(buf, lay.arg_end),
        env_start=_ulong(buf, lay.env_start),
        env_end=_ulong(buf, lay.env_end),
    )
    cache[address] = info
    return info


@per_kernel
def total_pages(k: Kernel) -> int:
    """crash's vt->total_pages: the page frame number of high_memory (the end of the direct map's RAM),
    plus any highmem pages (none on 64-bit)."""
    high = k.read_u64(k.address_of("high_memory"))
    pages = k.vtop(high) >> PAGE_SHIFT
    for name in ("_totalhigh_pages", "totalhigh_pages"):
        sym = k.symbols.lookup(name)
        if sym is not None:
            try:
                pages += k.read_u64(sym.address)
            except MemoryReadError:
                pass
            break
    return pages


@per_kernel
def totalram_pages(k: Kernel) -> int:
    """The kernel's count of RAM pages it manages (_totalram_pages, totalram_pages before 5.0)."""
    for name in ("_totalram_pages", "totalram_pages"):
        sym = k.symbols.lookup(name)
        if sym is not None:
            return k.read_u64(sym.address)
    raise KcrashError("this kernel has no totalram_pages")


@dataclass(frozen=True, slots=True)
class TaskMemUsage:
    rss: int  # pages
    total_vm: int  # pages
    pct_physmem: float
    mm: int

    @property
    def rss_kib(self) -> int:
        return self.rss * PAGE_SIZE // 1024

    @property
    def vsz_kib(self) -> int:
        return self.total_vm * PAGE_SIZE // 1024


_NO_USAGE = TaskMemUsage(0, 0, 0.0, 0)


def _thread_rss(k: Kernel, table: TaskTable, tgid: int, lay: _MmLayout) -> int:
    """SPLIT_RSS_COUNTING: the per-thread file, anon and shmem deltas of every thread in `tgid` (positive
    ones)."""
    if lay.task_rss_stat is None:
        return 0
    cache: dict[int, int] = k.cache.setdefault("kcrash.kernel.mm._thread_rss", {})
    hit = cache.get(tgid)
    if hit is not None:
        return hit
    total = 0
    span = (max(lay.rss_counters, default=-1) + 1) * 4
    for thread in table.thread_group(tgid):
        try:
            counts = struct.unpack(f"<{span // 4}i", k.read(thread.address + lay.task_rss_stat, span))
        except MemoryReadError:
            continue
        total += sum(max(counts[index], 0) for index in lay.rss_counters)
    cache[tgid] = total
    return total


def task_mem_usage(k: Kernel, table: TaskTable, task: TaskInfo) -> TaskMemUsage:
    """RSS, virtual size and %MEM of a task, as crash's get_task_mem_usage() computes them: zombies and
    exiting tasks show nothing; RSS is the mm's file + anon + shmem counters (each clamped at 0) plus, where the
    kernel splits RSS counting per thread, the thread group's cached deltas; %MEM is RSS over total_pages."""
    if task_states(k).is_zombie(task.state_value) or task.flags & PF_EXITING or not task.mm:
        return _NO_USAGE
    lay = _mm_layout(k)
    try:
        mm = mm_info(k, task.mm)
    except MemoryReadError:
        return TaskMemUsage(0, 0, 0.0, task.mm)
    rss = mm.rss
    if lay.rss is None and lay.task_rss_stat is not None:
        rss += _thread_rss(k, table, task.tgid, lay)
    if is_kthread(k, task) and not rss:
        return TaskMemUsage(rss, mm.total_vm, 0.0, task.mm)
    return TaskMemUsage(rss, mm.total_vm, rss * 100 / _physmem_pages(k), task.mm)


@per_kernel
def _physmem_pages(k: Kernel) -> int:
    """crash divides by MIN(total_pages, num_physpages) where the old num_physpages variable exists."""
    pages = total_pages(k)
    sym = k.symbols.lookup("num_physpages")
    if sym is not None:
        try:
            pages = min(pages, k.read_u64(sym.address)) or pages
        except MemoryReadError:
            pass
    return max(pages, 1)


# --- user memory ----------------------------------------------------------------------------------------


class UserReadError(KcrashError):
    """A user address that cannot be read (unmapped, or its page filtered out of the dump)."""

    def __init__(self, address: int) -> None:
        super().__init__(f"cannot access user stack address: {address:x}")
        self.address = address


def read_user(k: Kernel, mm: MmInfo, address: int, size: int) -> bytes:
    """`size` bytes at user virtual `address` in the address space `mm`, page by page; raises
    UserReadError naming the first page-piece that cannot be read (as crash reports it)."""
    try:
        pgd_paddr = k.vtop(mm.pgd)
    except MemoryReadError:
        raise UserReadError(address) from None
    out = bytearray()
    pos, end = address, address + size
    while pos < end:
        chunk = min(end - pos, PAGE_SIZE - (pos & (PAGE_SIZE - 1)))
        try:
            out += k.translator.read(pos, chunk, pgd_paddr)
        except MemoryReadError:
            raise UserReadError(pos) from None
        pos += chunk
    return bytes(out)


def task_args(k: Kernel, task: TaskInfo) -> bytes:
    """The raw argument area of a user task (NUL-separated strings, mm->arg_start..arg_end)."""
    if not task.mm:
        raise KcrashError("no user stack")
    mm = mm_info(k, task.mm)
    return read_user(k, mm, mm.arg_start, max(mm.arg_end - mm.arg_start, 0))


def task_env(k: Kernel, task: TaskInfo) -> bytes:
    """The raw environment area of a user task (NUL-separated strings, mm->env_start..env_end)."""
    if not task.mm:
        raise KcrashError("no user stack")
    mm = mm_info(k, task.mm)
    return read_user(k, mm, mm.env_start, max(mm.env_end - mm.env_start, 0))
