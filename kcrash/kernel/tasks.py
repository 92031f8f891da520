"""Tasks: every thread and each CPU's idle task, crash's task table (PID order) with parents and thread
groups, kernel threads, how long a task has existed, and turning a PID / task address / command name into a
task. (State names: kcrash.kernel.task_state; the active tasks: kcrash.kernel.cpus; the panic task:
kcrash.kernel.panic.)"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import current_tasks, possible_cpus, runqueue
from kcrash.kernel.pid import pid_namespace_tasks
from kcrash.kernel.time import hz as kernel_hz
from kcrash.kernel.time import uptime_jiffies
from kcrash.objects import list_for_each_entry
from kcrash.program import per_kernel

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
    "is_kernel_thread",
    "task_parent",
    "TaskInfo",
    "TaskTable",
    "task_table",
    "read_task",
    "lookup_tasks",
    "resolve_task",
    "task_run_time",
]

PF_EXITING = 0x00000004
PF_KTHREAD = 0x00200000
_MASK64 = (1 << 64) - 1


# --- walking the kernel's lists ---------------------------------------------------------------------


def init_task(k: Kernel) -> Object:
    """The initial task (PID 0 on CPU 0, the head of the task list)."""
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


def for_each_task(k: Kernel) -> Iterator[Object]:
    """Every task crash's `ps` lists, in its order: the idle task of each CPU (PID 0, by CPU), then every
    thread of every process by PID. Tasks whose task_struct is not in the dump are left out."""
    for info in task_table(k).tasks:
        yield info.object(k)


class _Links:
    """Offsets of the links between task_structs: the process list, the thread list, the children and
    sibling lists, and the parent/leader pointers."""

    def __init__(self, k: Kernel) -> None:
        t = k.type("struct task_struct")
        self.size = t.sizeof()
        self.lists = [
            off for off in (t.find_offset("tasks"), t.find_offset("thread_node")) if off is not None
        ]
        self.thread_node = t.find_offset("thread_node")
        self.children = t.find_offset("children")
        self.sibling = t.find_offset("sibling")
        self.signal = t.find_offset("signal")
        sig = k.find_type("struct signal_struct")
        self.thread_head = sig.find_offset("thread_head") if sig is not None else None
        self.pointers = [
            off for off in (t.find_offset(n) for n in ("parent", "real_parent", "group_leader")) if off
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
    # The running tasks are reachable even where a filter dropped every task linked to them.
    running = list(current_tasks(k, possible_cpus(k)))
    seeds = [idle.require_address() for idle in idle_tasks(k)] + [k.address_of("init_task")] + running
    seeds += pid_namespace_tasks(k)
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
    """The task's PID (its thread id)."""
    return int(task.pid)


def task_tgid(task: Object) -> int:
    """The task's thread-group id (the PID of its process)."""
    return int(task.tgid)


def task_cpu(task: Object) -> int:
    """The CPU a task last ran on (task->cpu, or thread_info.cpu where the kernel keeps it there)."""
    if task.type_.find_member("cpu") is not None:
        return int(task.cpu)
    return int(task.thread_info.cpu)


def task_comm(task: Object) -> str:
    """The task's command name (comm)."""
    return task.comm.string_bytes().decode("utf-8", "replace")


def task_parent(task: Object) -> Object:
    """The task's real parent."""
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
        return int(struct.unpack_from("<" + f[1], buf, f[0])[0])


@per_kernel
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


@per_kernel
def task_table(k: Kernel) -> TaskTable:
    """Every task, read once; a dump does not change, so the table is cached. Tasks come from the idle
    tasks, the process and thread lists, and the PID IDR; `unreadable` maps task_structs that were found
    but whose memory the dump does not have (filtered out, or missing) to the read error."""
    found, unreadable = _discover_tasks(k)
    infos = [_task_info(k, address, buf) for address, buf in found.items()]
    table = TaskTable(k, infos)
    table.unreadable = unreadable
    return table


# --- kernel threads -------------------------------------------------------------------------------------


@per_kernel
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


# --- times ----------------------------------------------------------------------------------------------


def task_run_time(k: Kernel, task: TaskInfo, now: int | None = None) -> int:
    """Jiffies a task has existed (crash's convert_start_time): start_time is nanoseconds since boot on
    3.17+ kernels, and crash truncates it to whole seconds before subtracting it from the uptime."""
    if now is None:
        now = uptime_jiffies(k)
        if now is None:
            raise KcrashError("cannot determine the uptime: no jiffies_64 in the dump")
    hz = kernel_hz(k)
    start_field = _layout(k).fields["start_time"]
    if start_field is not None and start_field[1] in ("Q", "q"):
        start = task.start_time // 1_000_000_000 * hz
        return 0 if start > now else now - start
    return (now - task.start_time) & _MASK64
