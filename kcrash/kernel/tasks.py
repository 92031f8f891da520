"""Tasks: walking every thread (and each CPU's idle task), pids, CPUs and crash's state codes."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import possible_cpus, runqueue
from kcrash.objects import list_for_each_entry

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
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
]


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
            out.append(runqueue(k, cpu).idle.deref())
        except (KcrashError, MemoryReadError):
            if cpu == 0:
                out.append(init_task(k))
    return out


def for_each_task(k: Kernel) -> Iterator[Object]:
    """Every task crash's `ps` lists: the idle task of every CPU, then every thread of every process."""
    seen: set[int] = set()
    for idle in idle_tasks(k):
        if idle.address not in seen:
            seen.add(idle.address)
            yield idle
    for leader in for_each_process(k):
        if leader.address == init_task(k).address:
            continue
        for thread in for_each_thread(leader):
            if thread.address not in seen:
                seen.add(thread.address)
                yield thread


def task_pid(task: Object) -> int:
    return int(task.pid)


def task_tgid(task: Object) -> int:
    return int(task.tgid)


def task_cpu(task: Object) -> int:
    """The CPU a task last ran on (task->cpu since 5.16-ish; thread_info.cpu before)."""
    if task.type_.find_member("cpu") is not None:
        return int(task.cpu)
    return int(task.thread_info.cpu)


def task_comm(task: Object) -> str:
    return task.comm.string_bytes().decode("utf-8", "replace")


def is_kernel_thread(task: Object) -> bool:
    """A kernel thread has no user address space (crash brackets these in ps)."""
    return int(task.mm) == 0


def task_parent(task: Object) -> Object:
    return task.real_parent.deref()


class TaskStates:
    """The kernel's task-state bits, derived from its own fs/proc `task_state_array`.

    Entry i of that array ("R (running)", "S (sleeping)", "D (disk sleep)", …) names state bit 1<<(i-1).
    Bits the array does not list follow in the kernel's fixed order after the last listed one: from
    4.14 (where "P (parked)" is listed) TASK_DEAD, TASK_WAKEKILL, TASK_WAKING, TASK_NOLOAD, TASK_NEW;
    before 4.14 TASK_DEAD, TASK_WAKEKILL, TASK_WAKING, TASK_PARKED, TASK_NOLOAD, TASK_NEW.
    """

    def __init__(self, letters: list[str]) -> None:
        self.bits: dict[str, int] = {}
        for i, letter in enumerate(letters):
            if i:
                self.bits.setdefault(letter, 1 << (i - 1))
        self.running = 0
        self.interruptible = self.bits.get("S", 1)
        self.uninterruptible = self.bits.get("D", 2)
        self.stopped = self.bits.get("T", 4)
        self.traced = self.bits.get("t", 8)
        self.exit_dead = self.bits.get("X", 16)
        self.exit_zombie = self.bits.get("Z", 32)
        if "P" in self.bits and self.bits["P"] == 64:
            self.parked = 64
            self.dead, self.wakekill, self.waking, self.noload, self.new = 128, 256, 512, 1024, 2048
        else:
            self.dead, self.wakekill, self.waking, self.parked, self.noload, self.new = (
                64,
                128,
                256,
                512,
                1024,
                2048,
            )


_DEFAULT_LETTERS = ["R", "S", "D", "T", "t", "X", "Z", "P", "I"]


@lru_cache(maxsize=8)
def _task_states_cached(k: Kernel) -> TaskStates:
    sym = k.symbols.lookup("task_state_array")
    letters: list[str] = []
    if sym is not None and sym.size:
        try:
            for i in range(sym.size // 8):
                ptr = k.read_u64(sym.address + 8 * i)
                letters.append(k.read_cstring(ptr, 32)[:1].decode("ascii", "replace"))
        except MemoryReadError:
            letters = []
    return TaskStates(letters or _DEFAULT_LETTERS)


def task_states(k: Kernel) -> TaskStates:
    return _task_states_cached(k)


def task_state_value(task: Object) -> int:
    """task->__state (5.14+) or task->state, as an unsigned value."""
    member = "__state" if task.type_.find_member("__state") is not None else "state"
    return int(task.member(member)) & 0xFFFFFFFF


def task_state_code(k: Kernel, task: Object) -> str:
    """crash's two-letter state: RU IN UN ZO ST TR DE WA PA ID NE (from state and exit_state)."""
    s = task_states(k)
    state = task_state_value(task)
    exit_state = int(task.exit_state)
    if exit_state & s.exit_zombie:
        return "ZO"
    if exit_state & s.exit_dead:
        return "DE"
    if state == s.running:
        return "RU"
    if state & s.interruptible:
        return "IN"
    if state & s.uninterruptible:
        return "ID" if state & s.noload else "UN"
    if state & s.stopped:
        return "ST"
    if state & s.traced:
        return "TR"
    if state & s.parked:
        return "PA"
    if state & s.waking:
        return "WA"
    if state & s.new:
        return "NE"
    if state & s.dead:
        return "DE"
    return "??"


def find_task(k: Kernel, pid: int) -> Object | None:
    for task in for_each_task(k):
        if task_pid(task) == pid:
            return task
    return None
