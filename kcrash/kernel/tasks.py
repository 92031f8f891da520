"""Tasks: every thread and each CPU's idle task, crash's task table (PID order) with parents and thread
groups, state codes derived from the kernel's own task_state_array, the active and panic tasks, and turning
a PID / task address / command name into a task."""

from __future__ import annotations

import struct
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import cpu_curr, panic_cpu, possible_cpus, runqueue
from kcrash.objects import list_for_each_entry

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "PF_EXITING",
    "PF_KTHREAD",
    "init_task",
    "for_each_process",
    "for_each_thread",
    "for_each_task",
    "idle_tasks",
    "find_task",
    "task_pid",
    "task_tgid",
    "task_cpu",
    "task_comm",
    "task_state_value",
    "task_state_code",
    "is_kernel_thread",
    "task_parent",
    "TaskStates",
    "task_states",
    "TaskInfo",
    "TaskTable",
    "task_table",
    "read_task",
    "active_tasks",
    "mark_active",
    "clear_active_marks",
    "panic_task",
    "panic_task_info",
    "lookup_tasks",
    "resolve_task",
    "task_header",
    "kernel_hz",
    "uptime_jiffies",
    "task_run_time",
    "format_jiffies",
    "format_nanoseconds",
]

PF_EXITING = 0x00000004
PF_KTHREAD = 0x00200000
_MASK64 = (1 << 64) - 1


# --- walking the kernel's lists ---------------------------------------------------------------------


def init_task(k: Kernel) -> Object:
    return k.object_at("struct task_struct", k.address_of("init_task"))


def for_each_process(k: Kernel) -> Iterator[Object]:
    """Every thread-group leader, init_task first, in the order of the kernel's task list."""
    first = init_task(k)
    yield first
    yield from list_for_each_entry(first.type_, first.tasks, "tasks")


def for_each_thread(task: Object) -> Iterator[Object]:
    """Every thread of `task`'s thread group, the leader first (both the 3.14+ signal->thread_head
    list and the older task->thread_group list are understood)."""
    ttype = task.type_
    if ttype.find_member("thread_node") is not None:
        signal = task.signal
        if int(signal) == 0:
            yield task
            return
        yield from list_for_each_entry(ttype, signal.thread_head, "thread_node")
        return
    yield task
    yield from list_for_each_entry(ttype, task.thread_group, "thread_group")


def idle_tasks(k: Kernel) -> list[Object]:
    """The idle task of each CPU (swapper/N); CPU 0's is init_task."""
    out = []
    for cpu in possible_cpus(k):
        try:
            idle = runqueue(k, cpu).idle
            if int(idle):
                out.append(idle.deref())
                continue
        except (KcrashError, MemoryReadError):
            pass
        if cpu == 0:
            out.append(init_task(k))
    return out


def _running_tasks(k: Kernel) -> list[int]:
    """The address of the task each CPU's run queue says was running (`rq->curr`), where it can be read."""
    out = []
    for cpu in possible_cpus(k):
        try:
            address = cpu_curr(k, cpu).address
        except (KcrashError, MemoryReadError):
            continue
        if address is not None:
            out.append(address)
    return out


def for_each_task(k: Kernel) -> Iterator[Object]:
    """Every task crash's `ps` lists, in its order: the idle task of each CPU (PID 0, by CPU), then every
    thread of every process by PID. Tasks whose task_struct is not in the dump are left out."""
    for info in task_table(k).tasks:
        yield info.object(k)


def _offset(t: Type, path: str) -> int | None:
    offset = 0
    for part in path.split("."):
        hit = t.find_member(part)
        if hit is None:
            return None
        offset += hit[1] // 8
        t = hit[0].type
    return offset


def _idr_tasks(k: Kernel) -> list[int]:
    """Tasks with a PID in the initial namespace, from its IDR (an xarray or, 4.15-4.19, a radix tree):
    pid->tasks[PIDTYPE_PID] of every struct pid whose numbers[0].ns is init_pid_ns. This is how crash and
    drgn find tasks; it reaches threads the task lists cannot when a task_struct is missing from the dump."""
    ns_type = k.find_type("struct pid_namespace")
    pid_type = k.find_type("struct pid")
    task_type = k.find_type("struct task_struct")
    sym = k.symbols.lookup("init_pid_ns")
    if None in (ns_type, pid_type, task_type, sym):
        return []
    root = _offset(ns_type, "idr.idr_rt.xa_head")
    if root is None:
        root = _offset(ns_type, "idr.idr_rt.rnode")
    node_type = k.find_type("struct xa_node") or k.find_type("struct radix_tree_node")
    tasks_off = _offset(pid_type, "tasks")
    numbers_off = _offset(pid_type, "numbers")
    links_off = _offset(task_type, "pid_links") if task_type.find_member("pid_links") else None
    if links_off is None:
        links_off = _offset(task_type, "pids")  # 4.15-4.18: struct pid_link pids[] (node first)
    ns_off = _offset(k.type("struct upid"), "ns") if k.find_type("struct upid") else None
    if None in (root, node_type, tasks_off, numbers_off, links_off, ns_off):
        return []
    shift_off = _offset(node_type, "shift")
    slots_hit = node_type.find_member("slots")
    if shift_off is None or slots_hit is None:
        return []
    slots_off = slots_hit[1] // 8
    nslots = slots_hit[0].type.strip().length or 64
    tasks: list[int] = []
    try:
        pending = [k.read_u64(sym.address + root)]
    except MemoryReadError:
        return []
    visited = 0
    while pending and visited < 1 << 20:
        entry = pending.pop()
        visited += 1
        if not entry or entry & 1:
            continue  # empty or a value entry
        if entry & 3 == 2:
            if entry <= 4096:
                continue  # sibling or retry entry
            node = entry - 2
            try:
                raw = k.read(node + slots_off, 8 * nslots)
            except MemoryReadError:
                continue
            pending.extend(reversed(struct.unpack(f"<{nslots}Q", raw)))
            continue
        try:
            ns = k.read_u64(entry + numbers_off + ns_off)
            first = k.read_u64(entry + tasks_off)  # pid->tasks[PIDTYPE_PID].first
        except MemoryReadError:
            continue
        if ns != sym.address or not first:
            continue
        tasks.append(first - links_off)
    return tasks


class _Links:
    """Offsets of the links between task_structs: the process list, the thread list, the children and
    sibling lists, and the parent/leader pointers."""

    def __init__(self, k: Kernel) -> None:
        t = k.type("struct task_struct")
        self.size = t.sizeof()
        self.lists = [off for off in (_offset(t, "tasks"), _offset(t, "thread_node")) if off is not None]
        self.thread_node = _offset(t, "thread_node")
        self.children = _offset(t, "children")
        self.sibling = _offset(t, "sibling")
        self.signal = _offset(t, "signal")
        sig = k.find_type("struct signal_struct")
        self.thread_head = _offset(sig, "thread_head") if sig is not None else None
        self.pointers = [
            off for off in (_offset(t, n) for n in ("parent", "real_parent", "group_leader")) if off
        ]


def _discover_tasks(k: Kernel) -> tuple[dict[int, bytes], dict[int, str]]:
    """Every task_struct reachable from the idle tasks, init_task and the PID IDR through the links between
    tasks (process list both ways, thread lists, children/sibling lists, parent and leader pointers), each
    read once. A task reached through a list link is kept only if it links back to where it was reached
    from, so list heads (which are not tasks) are never taken for tasks. A filtered dump may lack some
    task_structs: the walk goes around them; their addresses are returned with the read error."""
    links = _Links(k)
    found: dict[int, bytes] = {}
    unreadable: dict[int, str] = {}
    rejected: set[int] = set()
    # (candidate address, None if known to be a task, else (offset in candidate, value it must hold))
    queue: list[tuple[int, tuple[int, int] | None]] = []
    seeds = (
        [idle.address for idle in idle_tasks(k)]
        + [k.address_of("init_task")]
        + _running_tasks(k)  # reachable even where a filter dropped every task linked to them
        + _idr_tasks(k)
    )
    queue.extend((address, None) for address in reversed(seeds))
    u64 = struct.Struct("<Q").unpack_from
    while queue:
        address, check = queue.pop()
        if address in found or address in unreadable or address in rejected or not address:
            continue
        try:
            buf = k.read(address, links.size)
        except MemoryReadError as e:
            unreadable[address] = str(e)
            continue
        if check is not None and u64(buf, check[0])[0] != check[1]:
            rejected.add(address)
            continue
        found[address] = buf
        heads = set()
        if links.signal is not None and links.thread_head is not None:
            heads.add(u64(buf, links.signal)[0] + links.thread_head)
        for off in links.pointers:
            parent = u64(buf, off)[0]
            queue.append((parent, None))
            if links.children is not None:
                heads.add(parent + links.children)
        for off in links.lists + ([links.sibling] if links.sibling is not None else []):
            node = address + off
            nxt, prv = u64(buf, off)[0], u64(buf, off + 8)[0]
            if nxt not in heads:
                queue.append((nxt - off, (off + 8, node)))  # its prev must point back here
            if prv not in heads:
                queue.append((prv - off, (off, node)))  # its next must point back here
        if links.children is not None and links.sibling is not None:
            head = address + links.children
            first, last = u64(buf, links.children)[0], u64(buf, links.children + 8)[0]
            if first != head:
                queue.append((first - links.sibling, (links.sibling + 8, head)))
                queue.append((last - links.sibling, (links.sibling, head)))
    return found, unreadable


# --- single-task accessors on Objects -----------------------------------------------------------------


def task_pid(task: Object) -> int:
    return int(task.pid)


def task_tgid(task: Object) -> int:
    return int(task.tgid)


def task_cpu(task: Object) -> int:
    """The CPU a task last ran on (task->cpu, or thread_info.cpu where the kernel keeps it there)."""
    if task.type_.find_member("cpu") is not None:
        return int(task.cpu)
    return int(task.thread_info.cpu)


def task_comm(task: Object) -> str:
    return task.comm.string_bytes().decode("utf-8", "replace")


def task_parent(task: Object) -> Object:
    return task.real_parent.deref()


def task_state_value(task: Object) -> int:
    """task->__state (5.14+) or task->state, as an unsigned value."""
    member = "__state" if task.type_.find_member("__state") is not None else "state"
    return int(task.member(member)) & 0xFFFFFFFF


def is_kernel_thread(task: Object) -> bool:
    """crash's test: PF_KTHREAD where the kernel sets it on the idle task, else "no mm"."""
    k = task.kernel
    if _kthread_flag(k):
        return bool(int(task.flags) & PF_KTHREAD)
    return int(task.mm) == 0


# --- task_struct snapshots ------------------------------------------------------------------------------

_INT_FORMATS = {
    (1, False): "B",
    (1, True): "b",
    (2, False): "H",
    (2, True): "h",
    (4, False): "I",
    (4, True): "i",
}


def _field(t: Type, path: str) -> tuple[int, str] | None:
    """(byte offset, struct format) of a scalar member path such as "sched_info.last_arrival"."""
    offset = 0
    for part in path.split("."):
        hit = t.find_member(part)
        if hit is None:
            return None
        member, bit_offset = hit
        offset += bit_offset // 8
        t = member.type
    s = t.strip()
    size = s.sizeof()
    if s.is_pointer or size == 8:
        return offset, "q" if (s.signed and not s.is_pointer) else "Q"
    return offset, _INT_FORMATS.get((size, bool(s.signed)), "I")


class _TaskLayout:
    """Where each field crash's task table needs lives in this kernel's task_struct."""

    SCALARS = {
        "pid": ("pid",),
        "tgid": ("tgid",),
        "state": ("__state", "state"),
        "exit_state": ("exit_state",),
        "flags": ("flags",),
        "cpu": ("cpu", "thread_info.cpu"),
        "mm": ("mm",),
        "parent": ("parent", "real_parent", "p_pptr"),  # crash's PPID column follows task->parent
        "real_parent": ("real_parent", "parent"),
        "group_leader": ("group_leader",),
        "start_time": ("start_time",),
        "utime": ("utime",),
        "stime": ("stime",),
        "last_run": ("last_run", "timestamp", "sched_info.last_arrival"),
        "policy": ("policy",),
        "prio": ("prio",),
        "static_prio": ("static_prio",),
        "normal_prio": ("normal_prio",),
        "rt_priority": ("rt_priority",),
        "stack": ("stack",),
        "ksp": ("thread.sp", "thread.ksp", "thread.rsp"),
        "signal": ("signal",),
    }

    def __init__(self, t: Type) -> None:
        self.size = t.sizeof()
        self.fields: dict[str, tuple[int, str] | None] = {}
        for name, paths in self.SCALARS.items():
            self.fields[name] = next((f for f in (_field(t, p) for p in paths) if f is not None), None)
        comm = t.find_member("comm")
        if comm is None:
            raise KcrashError("this kernel's task_struct has no comm member")
        self.comm = (comm[1] // 8, comm[0].type.sizeof())
        state = self.fields["state"]
        if state is not None and state[1] == "q":
            self.fields["state"] = (state[0], "Q")  # `volatile long state`: crash reads it as an ulong
        self.has_thread_info_struct = False
        ti = t.find_member("thread_info")
        if ti is not None and ti[0].type.is_aggregate:
            self.thread_info_offset = ti[1] // 8
            self.has_thread_info_struct = True

    def unpack(self, name: str, buf: bytes) -> int:
        f = self.fields[name]
        if f is None:
            return 0
        return struct.unpack_from("<" + f[1], buf, f[0])[0]


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> _TaskLayout:
    return _TaskLayout(k.type("struct task_struct"))


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What crash keeps in its task context, read from one task_struct at one time."""

    address: int
    pid: int
    tgid: int
    comm: str
    state: int
    exit_state: int
    flags: int
    cpu: int
    mm: int
    parent: int
    real_parent: int
    group_leader: int
    start_time: int
    utime: int
    stime: int
    last_run: int
    policy: int
    prio: int
    static_prio: int
    normal_prio: int
    rt_priority: int
    stack: int
    ksp: int
    signal: int
    thread_info: int

    @property
    def state_value(self) -> int:
        """state | exit_state, the value crash classifies."""
        return self.state | self.exit_state

    def object(self, k: Kernel) -> Object:
        return k.object_at("struct task_struct", self.address)


def read_task(k: Kernel, address: int) -> TaskInfo:
    """A snapshot of the task_struct at `address` (one read of the whole structure)."""
    return _task_info(k, address, k.read(address, _layout(k).size))


def _task_info(k: Kernel, address: int, buf: bytes) -> TaskInfo:
    lay = _layout(k)
    u = lay.unpack
    off, size = lay.comm
    comm = buf[off : off + size].split(b"\0", 1)[0].decode("utf-8", "replace")
    thread_info = address + lay.thread_info_offset if lay.has_thread_info_struct else u("stack", buf)
    return TaskInfo(
        address=address,
        pid=u("pid", buf),
        tgid=u("tgid", buf),
        comm=comm,
        state=u("state", buf),
        exit_state=u("exit_state", buf),
        flags=u("flags", buf),
        cpu=u("cpu", buf),
        mm=u("mm", buf),
        parent=u("parent", buf),
        real_parent=u("real_parent", buf),
        group_leader=u("group_leader", buf),
        start_time=u("start_time", buf),
        utime=u("utime", buf),
        stime=u("stime", buf),
        last_run=u("last_run", buf),
        policy=u("policy", buf),
        prio=u("prio", buf),
        static_prio=u("static_prio", buf),
        normal_prio=u("normal_prio", buf),
        rt_priority=u("rt_priority", buf),
        stack=u("stack", buf),
        ksp=u("ksp", buf),
        signal=u("signal", buf),
        thread_info=thread_info,
    )


class TaskTable:
    """crash's task table: every task, sorted by PID (the idle tasks, all PID 0, by CPU)."""

    def __init__(self, k: Kernel, tasks: list[TaskInfo]) -> None:
        self.kernel = k
        self.tasks = sorted(tasks, key=lambda t: (t.pid, t.cpu if t.pid == 0 else 0))
        self.by_address = {t.address: t for t in self.tasks}
        self.unreadable: dict[int, str] = {}  # task address -> why its task_struct cannot be read

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def get(self, address: int) -> TaskInfo | None:
        return self.by_address.get(address)

    def with_pid(self, pid: int) -> list[TaskInfo]:
        return [t for t in self.tasks if t.pid == pid]

    def with_comm(self, comm: str) -> list[TaskInfo]:
        return [t for t in self.tasks if t.comm == comm]

    def leader(self, tgid: int) -> TaskInfo | None:
        """The thread-group leader of `tgid` (crash's tgid_to_context: pid == tgid)."""
        return next((t for t in self.tasks if t.tgid == tgid and t.pid == tgid), None)

    def thread_group(self, tgid: int) -> list[TaskInfo]:
        return [t for t in self.tasks if t.tgid == tgid]

    def children(self, address: int) -> list[TaskInfo]:
        """Tasks whose parent (crash's ptask, task->parent) is `address`."""
        return [t for t in self.tasks if t.parent == address]

    def ppid(self, task: TaskInfo) -> int | None:
        parent = self.by_address.get(task.parent)
        return parent.pid if parent is not None else None

    def ancestry(self, task: TaskInfo) -> list[int]:
        """Task addresses from init_task down to `task`, following task->parent (crash's parent_list)."""
        chain = [task.address]
        child, parent = task.address, task.parent
        while child != parent and len(chain) < 1 << 16:
            chain.append(parent)
            info = self.by_address.get(parent)
            child = parent
            parent = info.parent if info is not None else _read_parent(self.kernel, parent)
        chain.reverse()
        return chain


def _read_parent(k: Kernel, address: int) -> int:
    f = _layout(k).fields["parent"]
    if f is None:
        return address
    try:
        return k.read_u64(address + f[0])
    except MemoryReadError:
        return address


@lru_cache(maxsize=8)
def task_table(k: Kernel) -> TaskTable:
    """Every task, read once; a dump does not change, so the table is cached. Tasks come from the idle
    tasks, the process and thread lists, and the PID IDR; `unreadable` maps task_structs that were found
    but whose memory the dump does not have (filtered out, or missing) to the read error."""
    found, unreadable = _discover_tasks(k)
    infos = [_task_info(k, address, buf) for address, buf in found.items()]
    table = TaskTable(k, infos)
    table.unreadable = unreadable
    return table


# --- state codes --------------------------------------------------------------------------------------


class TaskStates:
    """The state bits crash derives from the kernel's `task_state_array` (fs/proc/array.c), or from the
    `stat_nam` string on 2.6.33-4.13, and how crash names them (`ps` codes, `set` names).

    Entry i of task_state_array names bit 1<<(i-1) ("R (running)" is 0). States the array does not list
    follow in the kernel's fixed order: from 4.14 (where "P (parked)" is listed) TASK_DEAD, TASK_WAKEKILL,
    TASK_WAKING, TASK_NOLOAD, TASK_NEW after PARKED; on 2.6.32-4.13 TASK_DEAD, TASK_WAKEKILL, TASK_WAKING
    after the dead bit.
    """

    UNSET = -1

    def __init__(self, array: list[str] | None = None, stat_nam: str | None = None) -> None:
        u = self.UNSET
        self.running = self.interruptible = self.uninterruptible = self.stopped = u
        self.traced = self.zombie = self.dead = self.swapping = self.exclusive = u
        self.wakekill = self.waking = self.parked = self.noload = self.new = u
        if stat_nam and len(stat_nam) > len("RSDTtZX"):
            self._from_stat_nam(stat_nam)
        elif array:
            self._from_array(array)
        if self.UNSET in (self.running, self.interruptible, self.uninterruptible, self.zombie, self.stopped):
            self._old_defaults()

    def _old_defaults(self) -> None:
        self.running, self.interruptible, self.uninterruptible = 0, 1, 2
        self.zombie, self.stopped, self.swapping, self.exclusive = 4, 8, 16, 32
        self.traced = self.dead = self.wakekill = self.waking = self.parked = self.noload = self.new = (
            self.UNSET
        )

    def _from_stat_nam(self, names: str) -> None:
        for i, c in enumerate(names):
            bit = 1 << (i - 1) if i else 0
            if c == "R":
                self.running = i
            elif c == "S":
                self.interruptible = i
            elif c == "D":
                self.uninterruptible = bit
            elif c == "T":
                self.stopped = bit
            elif c == "t":
                self.traced = bit
            elif c in "Xx":
                self.dead = bit if self.dead == self.UNSET else self.dead | bit
            elif c == "Z":
                self.zombie = bit
            elif c == "K":
                self.wakekill = bit
            elif c == "W":
                self.waking = bit
            elif c == "P":
                self.parked = bit
            elif c == "N":
                self.noload = bit
            elif c == "n":
                self.new = bit

    def _from_array(self, array: list[str]) -> None:
        bitpos = 0
        for text in array:
            if "(running)" in text:
                self.running = bitpos
            elif "(sleeping)" in text:
                self.interruptible = bitpos
            elif "(disk sleep)" in text:
                self.uninterruptible = bitpos
            elif "(stopped)" in text:
                self.stopped = bitpos
            elif "(zombie)" in text:
                self.zombie = bitpos
            elif "(dead)" in text:
                self.dead = bitpos if self.dead == self.UNSET else self.dead | bitpos
            elif "(swapping)" in text:
                self.swapping = bitpos
            elif "(tracing stop)" in text:
                self.traced = bitpos if self.traced == self.UNSET else self.traced | bitpos
            elif "(wakekill)" in text:
                self.wakekill = bitpos
            elif "(waking)" in text:
                self.waking = bitpos
            elif "(parked)" in text:
                self.parked = bitpos
            bitpos = bitpos << 1 if bitpos else 1
        if self.parked != self.UNSET:  # 4.14+
            p = self.parked
            self.dead = (self.dead if self.dead != self.UNSET else 0) | p << 1
            self.wakekill, self.waking, self.noload, self.new = p << 2, p << 3, p << 4, p << 5
        elif self.dead != self.UNSET and bin(self.dead).count("1") == 1:  # 2.6.32-4.13
            bit = self.dead
            self.dead |= bit << 1
            self.wakekill, self.waking = bit << 2, bit << 3

    def _has(self, mask: int, value: int) -> bool:
        return mask != self.UNSET and bool(value & mask)

    def code(self, value: int) -> str:
        """crash's two-letter state (task_state_string): RU IN UN ID ZO ST TR SW DE PA WA NE, "??" if none."""
        exclusive = 0
        if self.exclusive != self.UNSET:
            exclusive = value & self.exclusive
            value &= ~self.exclusive
        out, valid, set_ = "??", False, False
        if value == self.running:
            out, valid = "RU", True
        if self._has(self.interruptible, value):
            out, valid, set_ = "IN", True, True
        if self._has(self.uninterruptible, value):
            out, valid, set_ = ("ID" if self._has(self.noload, value) else "UN"), True, True
        if self._has(self.zombie, value):
            out, valid, set_ = "ZO", True, True
        if self._has(self.stopped, value):
            out, valid, set_ = "ST", True, True
        if self._has(self.traced, value):
            out, valid, set_ = "TR", True, True
        if value == self.swapping:
            out, valid, set_ = "SW", True, True
        if self._has(self.dead, value) and not set_:
            out, valid, set_ = "DE", True, True
        if value == self.parked:
            out, valid = "PA", True
        if value == self.waking:
            out, valid = "WA", True
        if value == self.new:
            out, valid = "NE", True
        if valid and exclusive:
            out += "EX"
        return out

    def name(self, value: int) -> str:
        """crash's verbose state for `set` (task_state_string_verbose): TASK_RUNNING, TASK_INTERRUPTIBLE, …"""
        if value == self.running:
            return "TASK_RUNNING"
        names = []
        if self._has(self.interruptible, value):
            names.append("TASK_INTERRUPTIBLE")
        if self._has(self.uninterruptible, value):
            names.append("TASK_UNINTERRUPTIBLE")
        if self._has(self.stopped, value):
            names.append("TASK_STOPPED")
        if self._has(self.traced, value):
            names.append("TASK_TRACED")
        if self._has(self.dead, value):
            both = value & self.dead
            names.append("EXIT_DEAD|TASK_DEAD" if bin(both).count("1") > 1 else "EXIT_DEAD")
        if self._has(self.zombie, value):
            names.append("EXIT_ZOMBIE")
        if self._has(self.waking, value):
            names.append("TASK_WAKING")
        if self._has(self.wakekill, value):
            names.append("TASK_WAKEKILL")
        if self._has(self.noload, value):
            names.append("TASK_NOLOAD")
        if self._has(self.new, value):
            names.append("TASK_NEW")
        if value == self.parked:
            return "TASK_PARKED"
        return "|".join(names)

    def is_zombie(self, value: int) -> bool:
        return self._has(self.zombie, value)


@lru_cache(maxsize=8)
def task_states(k: Kernel) -> TaskStates:
    stat_nam = None
    sym = k.symbols.lookup("stat_nam")
    if sym is not None:
        try:
            text = k.read_cstring(sym.address, 64).decode("ascii")
            stat_nam = text if text.isprintable() else None
        except (MemoryReadError, UnicodeDecodeError):
            stat_nam = None
    array: list[str] = []
    sym = k.symbols.lookup("task_state_array")
    if sym is not None and sym.size:
        try:
            for i in range(sym.size // 8):
                array.append(k.read_cstring(k.read_u64(sym.address + 8 * i), 64).decode("ascii", "replace"))
        except MemoryReadError:
            pass
    return TaskStates(array, stat_nam)


def task_state_code(k: Kernel, task: Object | TaskInfo) -> str:
    """crash's two-letter state of a task (RU, IN, UN, ID, ZO, ST, TR, DE, PA, WA, NE)."""
    if isinstance(task, TaskInfo):
        value = task.state_value
    else:
        value = task_state_value(task) | (int(task.exit_state) & 0xFFFFFFFF)
    return task_states(k).code(value)


# --- kernel threads -------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _kthread_flag(k: Kernel) -> int:
    """PF_KTHREAD if the idle task carries it (2.6.27+), else 0 (then "no mm" means kernel thread)."""
    try:
        idle = read_task(k, k.address_of("init_task"))
    except (KcrashError, MemoryReadError):
        return 0
    return PF_KTHREAD if idle.flags & PF_KTHREAD else 0


def is_kthread(k: Kernel, task: TaskInfo) -> bool:
    flag = _kthread_flag(k)
    return bool(task.flags & flag) if flag else task.mm == 0


# --- active and panic tasks -----------------------------------------------------------------------------

_active_overrides: weakref.WeakKeyDictionary[Kernel, dict[int, int]] = weakref.WeakKeyDictionary()


def active_tasks(k: Kernel) -> dict[int, int]:
    """task address -> CPU for the task current on each CPU when the dump was taken.

    Every present CPU counts, including one the panic took offline (its runqueue still names the task it
    was running, and crash marks that task active too). `set -a` overrides are applied on top.
    """
    from kcrash.kernel.stack import active_cpus

    out: dict[int, int] = {}
    overrides = _active_overrides.get(k, {})
    for cpu in active_cpus(k):
        if cpu in overrides:
            out[overrides[cpu]] = cpu
            continue
        try:
            out[cpu_curr(k, cpu).address] = cpu
        except (KcrashError, MemoryReadError):
            continue
    return out


def mark_active(k: Kernel, task: TaskInfo) -> None:
    """crash's `set -a`: treat `task` as the task active on its CPU."""
    _active_overrides.setdefault(k, {})[task.cpu] = task.address


def clear_active_marks(k: Kernel) -> None:
    """Forget every `set -a` of this kernel."""
    _active_overrides.pop(k, None)


def panic_task(k: Kernel) -> Object | None:
    """The task that panicked: kcrash.kernel.sysinfo's answer when that module provides one, else the
    task current on the CPU in the kernel's `panic_cpu`."""
    try:
        from kcrash.kernel import sysinfo  # type: ignore[attr-defined]

        finder = getattr(sysinfo, "panic_task", None)
    except ImportError:
        finder = None
    if finder is not None:
        try:
            task = finder(k)
        except (KcrashError, MemoryReadError):
            task = None
        if task is not None:
            return task
    try:
        cpu = panic_cpu(k)
        if cpu is None:
            return None
        return cpu_curr(k, cpu)
    except (KcrashError, MemoryReadError):
        return None


def panic_task_info(k: Kernel) -> TaskInfo | None:
    """The panic task's table entry; None if there is no panic task or its task_struct is not in the dump."""
    task = panic_task(k)
    if task is None:
        return None
    info = task_table(k).get(task.address)
    if info is not None:
        return info
    try:
        return read_task(k, task.address)
    except MemoryReadError:
        return None


# --- naming a task ----------------------------------------------------------------------------------------


def lookup_tasks(k: Kernel, word: str) -> tuple[str, list[TaskInfo]]:
    """crash's str_to_context: a decimal PID or a hexadecimal task address.

    Returns ("pid", every task with that PID) or ("task", [the task]); ("invalid", []) when the word names
    neither. A word that is both a decimal PID and a hexadecimal PID prefers the decimal one, as crash does.
    """
    table = task_table(k)
    text = word.strip()
    dvalue = int(text) if text.isdigit() else None
    hvalue = None
    h = text[2:] if text[:2].lower() == "0x" else text
    if h and len(h) <= 16 and all(c in "0123456789abcdefABCDEF" for c in h):
        hvalue = int(h, 16)
    found: list[tuple[str, int, list[TaskInfo]]] = []
    if dvalue is not None:
        if table.with_pid(dvalue):
            found.append(("pid", dvalue, table.with_pid(dvalue)))
        if table.get(dvalue) is not None:
            found.append(("task", dvalue, [table.by_address[dvalue]]))
    if hvalue is not None and hvalue != dvalue:
        if table.with_pid(hvalue):
            found.append(("pid", hvalue, table.with_pid(hvalue)))
        if table.get(hvalue) is not None:
            found.append(("task", hvalue, [table.by_address[hvalue]]))
    if len(found) == 1:
        return found[0][0], found[0][2]
    if len(found) == 2 and found[0][0] == "pid" and found[1][0] == "pid":
        return "pid", found[0][2]
    return "invalid", []


def resolve_task(k: Kernel, word: str) -> Object:
    """The task a user named: a PID (the first task with it), a task_struct address, or a command name
    (if exactly one task runs it). Raises crash's "invalid task or pid value" error otherwise."""
    kind, tasks = lookup_tasks(k, word)
    if kind == "invalid":
        named = task_table(k).with_comm(word[1:] if word.startswith("\\") else word)
        if len(named) == 1:
            tasks = named
        elif len(named) > 1:
            raise KcrashError(f'"{word}" is the command of {len(named)} tasks: use a pid or task address')
        else:
            raise KcrashError(f"invalid task or pid value: {word}")
    return tasks[0].object(k)


def find_task(k: Kernel, pid: int) -> Object | None:
    """The first task with `pid` (crash's order: by PID, the idle tasks by CPU)."""
    hits = task_table(k).with_pid(pid)
    return hits[0].object(k) if hits else None


def task_header(task: TaskInfo) -> str:
    """crash's task header line (print_task_header), used by ps -p/-c/-g/-t/-l/-a, bt and foreach."""
    return f'PID: {task.pid:<7}  TASK: {task.address:<16x}  CPU: {task.cpu!s:<3}  COMMAND: "{task.comm}"'


# --- times ----------------------------------------------------------------------------------------------


def _sysinfo(name: str):
    """A helper of kcrash.kernel.sysinfo (the system facts `sys` prints), if that module provides it."""
    try:
        from kcrash.kernel import sysinfo
    except ImportError:
        return None
    return getattr(sysinfo, name, None)


@lru_cache(maxsize=8)
def kernel_hz(k: Kernel) -> int:
    """CONFIG_HZ: sysinfo.hz() when available, else from the NTP tick length (tick_nsec = NSEC_PER_SEC /
    HZ); 1000 (crash's x86_64 default) when the kernel has neither."""
    shared = _sysinfo("hz")
    if shared is not None and hasattr(k, "vmcoreinfo"):
        return shared(k)
    sym = k.symbols.lookup("tick_nsec")
    if sym is not None:
        try:
            tick = k.read_u64(sym.address)
        except MemoryReadError:
            tick = 0
        if tick:
            return max(1, round(1_000_000_000 / tick))
    return 1000


def uptime_jiffies(k: Kernel) -> int:
    """Jiffies since boot, as crash's get_uptime() derives them from jiffies_64 (which starts at
    INITIAL_JIFFIES, five minutes before the 32-bit wrap)."""
    hz = kernel_hz(k)
    j = k.read_u64(k.address_of("jiffies_64"))
    wrapped = j & 0xFFFFFFFF00000000
    if wrapped:
        wrapped -= 0x100000000
        j = (j & 0xFFFFFFFF) | wrapped
        return (j + 300 * hz) & _MASK64
    return (j - ((-300 * hz) & 0xFFFFFFFF)) & _MASK64


def task_run_time(k: Kernel, task: TaskInfo, now: int | None = None) -> int:
    """Jiffies a task has existed (crash's convert_start_time): start_time is nanoseconds since boot on
    3.17+ kernels, and crash truncates it to whole seconds before subtracting it from the uptime."""
    hz = kernel_hz(k)
    now = uptime_jiffies(k) if now is None else now
    if _layout(k).fields["start_time"] is not None and _layout(k).fields["start_time"][1] in ("Q", "q"):
        start = task.start_time // 1_000_000_000 * hz
        return 0 if start > now else now - start
    return (now - task.start_time) & _MASK64


def format_jiffies(jiffies: int, hz: int) -> str:
    """crash's convert_time(): "HH:MM:SS", or "N days, HH:MM:SS"."""
    total = jiffies // hz
    days, total = divmod(total, 86400)
    hours, total = divmod(total, 3600)
    minutes, seconds = divmod(total, 60)
    prefix = f"{days} days, " if days else ""
    return f"{prefix}{hours:02}:{minutes:02}:{seconds:02}"


def format_nanoseconds(ns: int) -> str:
    """crash's translate_nanoseconds(): "D HH:MM:SS.mmm"."""
    ms_total = ns // 1_000_000
    ms = ms_total % 1000
    secs_total = ms_total // 1000
    days, rest = divmod(secs_total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days} {hours:02}:{minutes:02}:{seconds:02}.{ms:03}"
