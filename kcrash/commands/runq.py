"""`runq`: each CPU's run queue (current task, RT priority array, CFS tree), by task group with -g, the
queued tasks by `on_rq` with -d, and the run-queue clocks with -t, -T and -m."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Context, Option, command
from kcrash.commands._crashtext import format_nanoseconds
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import active_tasks, cpu_count, parse_cpu_spec
from kcrash.kernel.loopwalk import WalkLoop
from kcrash.kernel.sched import (
    TaskGroup,
    cfs_curr,
    cfs_entities,
    cfs_rb_root,
    cfs_rq_nr_running,
    cfs_rq_tg,
    cfs_rq_throttled,
    group_cfs_rq,
    group_rt_rq,
    root_task_group,
    rq_address,
    rq_cfs_rq,
    rq_clock,
    rt_prio_array,
    rt_queue,
    task_groups,
    task_on_rq,
    task_prio,
)
from kcrash.kernel.tasks import TaskInfo, task_table
from kcrash.program import Kernel
from kcrash.records import dec_field, hex_field

__all__ = ["RunqTask", "RunqCpu", "RunqGroup", "RunqOnRq", "RunqTimestamp", "RunqLag"]


@dataclass
class RunqTask:
    """A task on a run queue: its priority (`task->prio`), and whether it is the CPU's running task."""

    prio: int
    pid: int
    task: int = hex_field()
    comm: str = ""
    current: bool = False
    depth: int = 0  # -g: nesting under task groups (0: the root group)


@dataclass
class RunqCpu:
    """`runq`: one CPU's run queue."""

    cpu: int
    runqueue: int = hex_field()
    current: RunqTask | None = None
    current_address: int = hex_field(default=0)
    rt_prio_array: int = hex_field(default=0)
    rt: list[RunqTask] = field(default_factory=list)
    cfs_rb_root: int = hex_field(default=0)
    cfs: list[RunqTask] = field(default_factory=list)


@dataclass
class RunqGroup:
    """`runq -g`: a task group's header line on one CPU (kind "cfs" or "rt")."""

    cpu: int
    kind: str
    depth: int
    task_group: int = hex_field()
    rq: int = hex_field(default=0)
    name: str | None = None
    throttled: bool = False


@dataclass
class RunqOnRq:
    """`runq -d`: the tasks of a CPU whose `task->on_rq` is set, in task-table order."""

    cpu: int
    tasks: list[RunqTask] = field(default_factory=list)


@dataclass
class RunqTimestamp:
    """`runq -t` (rq clock and the current task's last arrival) and `runq -m` (their difference)."""

    cpu: int
    clock: int = dec_field()
    last_run: int | None = dec_field(default=None)
    task: RunqTask | None = None


@dataclass
class RunqLag:
    """`runq -T`: how far a CPU's run-queue clock is behind the most recent one, in seconds."""

    cpu: int
    lag: float


def _entry(table, address: int, prio: int | None = None, current: bool = False, depth: int = 0):
    info: TaskInfo | None = table.get(address)
    if info is None:
        return None
    return RunqTask(
        prio if prio is not None else info.prio, info.pid, info.address, info.comm, current, depth
    )


def _task_line(t: RunqTask) -> str:
    return f'PID: {t.pid:<5}  TASK: {t.task:x}  COMMAND: "{t.comm}"'


def _prio_line(t: RunqTask) -> str:
    return f"[{t.prio:3d}] " + _task_line(t) + (" [CURRENT]" if t.current else "")


def _selected(ctx: Context, spec: str | None) -> list[int]:
    ncpus = cpu_count(ctx.kernel)[0]
    return parse_cpu_spec(spec, ncpus) if spec is not None else list(range(ncpus))


def _current_by_cpu(k: Kernel) -> dict[int, int]:
    return {cpu: address for address, cpu in active_tasks(k).items()}


def _cfs_tasks(k: Kernel, table, cfs_rq: int, seen: set[int], warnings: list[str]) -> list[RunqTask]:
    """crash's dump_tasks_in_cfs_rq: the running group's queue first, then the tree, groups expanded."""
    out: list[RunqTask] = []
    curr = cfs_curr(k, cfs_rq)
    if curr is not None and curr.my_q:
        out += _cfs_tasks(k, table, curr.my_q, seen, warnings)
    for ent in cfs_entities(k, cfs_rq):
        if ent.my_q:
            out += _cfs_tasks(k, table, ent.my_q, seen, warnings)
            continue
        assert ent.task is not None
        entry = _entry(table, ent.task, task_prio(k, ent.task))
        if entry is None:
            continue
        if entry.task in seen:
            warnings.append(f"duplicate CFS runqueue node: task {entry.task:x}")
            return out
        seen.add(entry.task)
        out.append(entry)
    return out


def _rt_tasks(k: Kernel, table, prio_array: int) -> list[RunqTask]:
    out: list[RunqTask] = []
    for ent in rt_queue(k, prio_array):
        if ent.my_q:
            out += _rt_tasks(k, table, ent.my_q + _rt_active_offset(k))
            continue
        assert ent.task is not None
        entry = _entry(table, ent.task, ent.prio)
        if entry is not None:
            out.append(entry)
    return out


def runq_cpus(ctx: Context, cpus: list[int]) -> list[RunqCpu]:
    k = ctx.kernel
    table = task_table(k)
    current = _current_by_cpu(k)
    out: list[RunqCpu] = []
    for cpu in cpus:
        address = current.get(cpu, 0)
        rec = RunqCpu(cpu, rq_address(k, cpu), _entry(table, address) if address else None, address)
        rec.rt_prio_array = rt_prio_array(k, cpu)
        rec.rt = _rt_tasks(k, table, rec.rt_prio_array)
        rec.cfs_rb_root = cfs_rb_root(k, cpu)
        warnings: list[str] = []
        rec.cfs = _cfs_tasks(k, table, rq_cfs_rq(k, cpu), set(), warnings)
        for w in warnings:
            ctx.warn(w)
        out.append(rec)
    return out


def _runq_lines(rec: RunqCpu, first: bool) -> list[str]:
    lines = [("" if first else "\n") + f"CPU {rec.cpu} RUNQUEUE: {rec.runqueue:x}"]
    lines.append("  CURRENT: " + (_task_line(rec.current) if rec.current else f"{rec.current_address:x}"))
    lines.append(f"  RT PRIO_ARRAY: {rec.rt_prio_array:x}")
    lines += [" " * 5 + _prio_line(t) for t in rec.rt] or ["     [no tasks queued]"]
    lines.append(f"  CFS RB_ROOT: {rec.cfs_rb_root:x}")
    lines += [" " * 5 + _prio_line(t) for t in rec.cfs] or ["     [no tasks queued]"]
    return lines


# --- -g ------------------------------------------------------------------------------------------------


class _GroupWalk:
    """crash's dump_tasks_by_task_group for one CPU: each group's header before its tasks, groups that are
    not queued (nr_running 0) skipped but searched for queued descendants."""

    def __init__(self, ctx, cpu: int, groups: list[TaskGroup], current: RunqTask | None) -> None:
        self.ctx = ctx
        self.k = ctx.kernel
        self.table = task_table(self.k)
        self.cpu = cpu
        self.groups = groups
        self.current = current
        self.use = [g.depth != 0 for g in groups]
        self.seen: set[int] = set()
        self.lines: list[str] = []
        self.records: list[object] = []

    def _header(self, index: int, cfs_rq: int) -> None:
        g = self.groups[index]
        throttled = bool(cfs_rq_throttled(self.k, cfs_rq))
        rec = RunqGroup(self.cpu, "cfs", g.depth, g.address, cfs_rq, g.name, throttled)
        self.records.append(rec)
        text = " " * (2 + 3 * g.depth) + f"TASK_GROUP: {g.address:x}  CFS_RQ: {cfs_rq:x} "
        if g.name is not None:
            text += f" <{g.name}>"
        if throttled:
            text += " (THROTTLED)"
        self.lines.append(text)

    def _task(self, entry: RunqTask, depth: int) -> None:
        entry.depth = depth
        self.records.append(entry)
        self.lines.append(" " * (5 + 3 * depth) + _prio_line(entry))

    def _print_parents(self, index: int) -> None:
        parent = self.groups[index].parent
        if parent is None or not self.use[parent]:
            return
        self._print_parents(parent)
        self._header(parent, group_cfs_rq(self.k, self.groups[parent].address, self.cpu))
        self.use[parent] = False

    def _lower_dequeued(self, depth: int, cfs_rq: int) -> int:
        total = 0
        for i, g in enumerate(self.groups):
            if not self.use[i] or g.depth - depth != 1 or g.parent is None:
                continue
            if cfs_rq_tg(self.k, cfs_rq) != self.groups[g.parent].address:
                continue
            child = group_cfs_rq(self.k, g.address, self.cpu)
            if child == cfs_rq:
                continue
            if cfs_rq_nr_running(self.k, child) == 0:
                total += self._lower_dequeued(depth + 1, child)
                continue
            self._print_parents(i)
            total += 1
            total += self.cfs(depth + 1, child)
        return total

    def cfs(self, depth: int, cfs_rq: int) -> int:
        k = self.k
        total = 0
        if depth:
            tg = cfs_rq_tg(k, cfs_rq)
            for i, g in enumerate(self.groups):
                if g.address == tg:
                    self._header(i, cfs_rq)
                    self.use[i] = False
                    break
        curr = cfs_curr(k, cfs_rq)
        if curr is not None and curr.my_q:
            total += 1
            total += self.cfs(depth + 1, curr.my_q)
        elif (
            curr is not None
            and self.current is not None
            and curr.task == self.current.task
            and (entry := _entry(self.table, self.current.task, task_prio(k, self.current.task), True))
        ):
            total += 1
            self._task(entry, depth)
        for ent in cfs_entities(k, cfs_rq):
            if ent.my_q:
                total += 1
                total += self.cfs(depth + 1, ent.my_q)
                continue
            assert ent.task is not None
            entry = _entry(self.table, ent.task, task_prio(k, ent.task))
            if entry is None:
                continue
            if entry.task in self.seen:
                self.ctx.warn(f"duplicate CFS runqueue node: task {entry.task:x}")
                return total
            self.seen.add(entry.task)
            self._task(entry, depth)
            total += 1
        total += self._lower_dequeued(depth, cfs_rq)
        if not total:
            self.lines.append(" " * (5 + 3 * depth) + "[no tasks queued]")
        return total


def _runq_groups(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    root, label = root_task_group(k)
    groups = task_groups(k)
    table = task_table(k)
    current = _current_by_cpu(k)
    for n, cpu in enumerate(cpus):
        address = current.get(cpu, 0)
        cur = _entry(table, address) if address else None
        lines = [("\n" if n else "") + f"CPU {cpu}"]
        lines.append("  CURRENT: " + (_task_line(cur) if cur else f"{address:x}"))
        walk = _GroupWalk(ctx, cpu, groups, cur)
        rt_rq = group_rt_rq(k, root, cpu)
        if rt_rq:
            lines.append(f"  {label}_TASK_GROUP: {root:x}  RT_RQ: {rt_rq:x}")
            rt = _rt_tasks(k, table, rt_rq + _rt_active_offset(k))
            lines += [" " * 5 + f"[{t.prio:3d}] " + _task_line(t) for t in rt] or ["     [no tasks queued]"]
        cfs_rq = group_cfs_rq(k, root, cpu)
        if cfs_rq:
            lines.append(f"  {label}_TASK_GROUP: {root:x}  CFS_RQ: {cfs_rq:x}")
            walk.cfs(0, cfs_rq)
            lines += walk.lines
        if ctx.json:
            ctx.emit(RunqCpu(cpu, rq_address(k, cpu), cur, address))
            for rec in walk.records:
                ctx.emit(rec)
        else:
            ctx.write("\n".join(lines) + "\n")


def _rt_active_offset(k: Kernel) -> int:
    return k.type("struct rt_rq").offsetof("active")


# --- -d, -t, -T, -m --------------------------------------------------------------------------------------


def _runq_on_rq(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    table = task_table(k)
    for cpu in cpus:
        lines = [("\n" if cpu else "") + f"CPU {cpu}"]
        rec = RunqOnRq(cpu)
        for info in table:
            if info.cpu != cpu or not task_on_rq(k, info.address):
                continue
            entry = RunqTask(task_prio(k, info.address), info.pid, info.address, info.comm)
            rec.tasks.append(entry)
            lines.append(" " * 5 + _prio_line(entry))
        if not rec.tasks:
            lines.append("     [no tasks queued]")
        ctx.emit(rec, text="\n".join(lines))


def _runq_timestamps(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    table = task_table(k)
    current = _current_by_cpu(k)
    for cpu in cpus:
        clock = rq_clock(k, cpu)
        info = table.get(current.get(cpu, 0))
        rec = RunqTimestamp(cpu, clock)
        if info is not None:
            rec.last_run = info.last_run
            rec.task = RunqTask(info.prio, info.pid, info.address, info.comm, True)
        text = f"{' ' if cpu < 10 else ''}CPU {cpu}: {clock}"
        if rec.task is not None and rec.last_run is not None:
            indent = (7 if cpu < 10 else 8 if cpu < 100 else 9) + (1 if cpu < 10 else 0)
            width = len(str(clock))
            text += "\n" + " " * indent + f"{rec.last_run:0{width}d}  " + _task_line(rec.task)
        else:
            text += "\n"
        ctx.emit(rec, text=text)


def _runq_lag(ctx: Context) -> None:
    k = ctx.kernel
    ncpus = cpu_count(k)[0]
    clocks = sorted(((rq_clock(k, cpu), cpu) for cpu in range(ncpus)), key=lambda c: -c[0])
    top = clocks[0][0]
    digits = len(str(ncpus))
    for clock, cpu in clocks:
        rec = RunqLag(cpu, (top - clock) / 1e9)
        pad = " " * (2 + digits - len(str(cpu)))
        ctx.emit(rec, text=f"{pad}CPU {cpu}: {rec.lag:.2f} secs")


def _runq_milliseconds(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    table = task_table(k)
    current = _current_by_cpu(k)
    ncpus = cpu_count(k)[0]
    max_indent = 1 if ncpus < 10 else 2 if ncpus < 100 else 3 if ncpus < 1000 else 4
    max_days = 0
    for cpu in cpus:
        clock = rq_clock(k, cpu)
        if not max_days:
            max_days = format_nanoseconds(clock).index(" ")
        indent = max_indent - (0 if cpu < 10 else 1 if cpu < 100 else 2 if cpu < 1000 else 4)
        info = table.get(current.get(cpu, 0))
        rec = RunqTimestamp(cpu, clock)
        if info is None:
            ctx.emit(rec, text=" " * indent + f"CPU {cpu}: [unknown]")
            continue
        rec.last_run = info.last_run
        rec.task = RunqTask(info.prio, info.pid, info.address, info.comm, True)
        text = format_nanoseconds(max(0, clock - info.last_run))
        days = text.index(" ")
        ctx.emit(
            rec,
            text=" " * indent + f"CPU {cpu}: [{' ' * (max_days - days)}{text}]  " + _task_line(rec.task),
        )


@command(
    "runq",
    summary="run queue",
    options=[
        Option("-t", help="display the timestamp of each run queue and of its current task."),
        Option("-T", help="display each CPU's lag behind the most recent run-queue timestamp."),
        Option("-m", help="display how long each CPU's current task has been running."),
        Option("-g", help="display the tasks by task group."),
        Option("-c", metavar="cpu(s)", dest="cpus", help="restrict the output to these CPUs."),
        Option("-d", help="display the tasks whose on_rq is set, per CPU (debug)."),
    ],
    help="""
    SYNOPSIS
    runq [-t] [-T] [-m] [-g] [-c cpu(s)]

    DESCRIPTION
    With no argument, this command displays the tasks on the run queues
    of each cpu.

       -t  Display the timestamp information of each cpu's runqueue, which is the
           rq.clock, rq.most_recent_timestamp or rq.timestamp_last_tick value,
           whichever applies; following each cpu timestamp is the last_run or
           timestamp value of the active task on that cpu, whichever applies,
           along with the task identification.
       -T  Display the time lag of each CPU relative to the most recent runqueue
           timestamp.
       -m  Display the amount of time that the active task on each cpu has been
           running, expressed in a format consisting of days, hours, minutes,
           seconds and milliseconds.
       -g  Display tasks hierarchically by task_group.  The task_group line shows
           the task_group address, the cfs_rq or rt_rq address, the task_group
           name (if any), and whether the task_group is throttled.
       -c cpu  restrict the output to the run queue data of one or more CPUs,
           which can be specified using the format "3", "1,8,9", "1-23", or
           "1,8,9-14".
       -d  Display tasks whose task_struct.on_rq is set, per cpu (debug).

    EXAMPLES
    Display the tasks on the run queues of each cpu:

      kcrash> runq
      CPU 0 RUNQUEUE: ffff8ba9bec31980
        CURRENT: PID: 108    TASK: ffff8ba9825f4800  COMMAND: "kc-spinner"
        RT PRIO_ARRAY: ffff8ba9bec31bc0
           [no tasks queued]
        CFS RB_ROOT: ffff8ba9bec31a30
           [no tasks queued]
      ...

    Display the amount of time the active task on each cpu has been running:

      kcrash> runq -m
       CPU 0: [0 00:00:00.000]  PID: 108    TASK: ffff8ba9825f4800  COMMAND: "kc-spinner"
       CPU 1: [0 00:00:00.012]  PID: 110    TASK: ffff8ba981911800  COMMAND: "kc-crasher"
    """,
)
def runq_command(ctx: Context, args: Args) -> None:
    cpus = _selected(ctx, args.cpus)
    try:
        if args.t:
            _runq_timestamps(ctx, cpus)
        elif args.T:
            _runq_lag(ctx)
        elif args.m:
            _runq_milliseconds(ctx, cpus)
        elif args.d:
            _runq_on_rq(ctx, cpus)
        elif args.g:
            _runq_groups(ctx, cpus)
        else:
            for n, rec in enumerate(runq_cpus(ctx, cpus)):
                ctx.emit(rec, text="\n".join(_runq_lines(rec, n == 0)))
    except WalkLoop as e:
        raise KcrashError(str(e)) from None
    except MemoryReadError as e:
        raise KcrashError(f"cannot read the run queue: {e}") from None
