"""kcrash plugin `hung`: tasks in uninterruptible sleep (D state) and how long each has waited.

Written against kcrash's public API only: the command decorator and the kernel helpers (kcrash.kernel:
every task, crash's state codes, a task's CPU and run queue; docs/api.md). Time waited is the task's CPU
run-queue clock minus the moment it last got a CPU (sched_info.last_arrival), as crash's `ps -m` computes
it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import Argument, KcrashError, Option, command
from kcrash.kernel.cpus import runqueue
from kcrash.kernel.task_state import task_state_code
from kcrash.kernel.tasks import for_each_task, task_comm, task_cpu, task_pid
from kcrash.objects import Object

__all__ = ["HungTask", "hung_tasks"]

NSEC_PER_SEC = 1_000_000_000


@dataclass(frozen=True)
class HungTask:
    pid: int
    task: int
    cpu: int
    state: str  # "UN", or "ID" for TASK_IDLE
    waited_ns: int | None  # None when the kernel keeps no timestamp for it
    comm: str


def _member(obj: Object, *names: str) -> Object | None:
    for name in names:
        try:
            return obj.member(name)
        except KcrashError:
            continue
    return None


def last_arrival(task: Object) -> int | None:
    info = _member(task, "sched_info")
    if info is not None:
        stamp = _member(info, "last_arrival")
        if stamp is not None:
            return int(stamp)
    se = _member(task, "se")
    stamp = _member(se, "exec_start") if se is not None else None
    return int(stamp) if stamp is not None else None


def hung_tasks(kernel, include_idle: bool = False) -> list[HungTask]:
    """Tasks in D state, the longest waiting first."""
    clocks: dict[int, int | None] = {}
    found: list[HungTask] = []
    for task in for_each_task(kernel):
        state = task_state_code(kernel, task)  # crash's codes: "UN" in D state, "ID" for TASK_IDLE
        if state not in ("UN", "ID") or (state == "ID" and not include_idle):
            continue
        cpu = task_cpu(task)
        if cpu not in clocks:
            try:
                clocks[cpu] = int(runqueue(kernel, cpu).clock)
            except KcrashError:
                clocks[cpu] = None
        stamp = last_arrival(task)
        clock = clocks[cpu]
        waited = clock - stamp if clock is not None and stamp is not None and clock >= stamp else None
        found.append(
            HungTask(
                pid=task_pid(task),
                task=task.require_address(),
                cpu=cpu,
                state=state,
                waited_ns=waited,
                comm=task_comm(task),
            )
        )
    found.sort(key=lambda t: (-(t.waited_ns or 0), t.pid))
    return found


def format_duration(ns: int | None) -> str:
    if ns is None:
        return "?"
    ms = ns // 1_000_000
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    text = f"{hours}:{minutes:02d}:{seconds:02d}.{ms:03d}"
    return f"{days}d {text}" if days else text


def render(task: HungTask) -> str:
    return (
        f"{task.pid:>7}  {task.task:016x}  {task.cpu:>3}  {task.state}  "
        f"{format_duration(task.waited_ns):>12}  {task.comm}"
    )


@command(
    "hung",
    summary="list tasks in uninterruptible sleep",
    options=[
        Option("-a", help="also list TASK_IDLE tasks (D state that does not count as load)."),
        Option("-t", metavar="seconds", type=float, help="only tasks that have waited at least this long."),
    ],
    arguments=[Argument("comm", nargs="*", complete="none", help="only tasks with these command names.")],
    render=render,
    help="""
    DESCRIPTION
    Lists the tasks in uninterruptible sleep (state D, "UN" in ps), the
    longest-waiting first: PID, task_struct address, CPU, state, how long the
    task has been off the CPU (its run queue's clock minus the time it last
    started running, as "ps -m" shows it) and the command name.

      -a  also list TASK_IDLE tasks ("ID"), which sleep in D state without
          counting as load (idle kernel threads).
      -t seconds
          only tasks that have waited at least this many seconds.

    EXAMPLES
      kcrash> hung
          PID  TASK              CPU  ST        WAITED  COMM
          812  ffff8881045b8000    1  UN   0:02:13.456  kc-blocked
      kcrash> hung -a -t 5
    """,
)
def hung(ctx, args):
    tasks = hung_tasks(ctx.kernel, include_idle=args.a)
    if args.t is not None:
        tasks = [t for t in tasks if t.waited_ns is not None and t.waited_ns >= args.t * NSEC_PER_SEC]
    if args.comm:
        tasks = [t for t in tasks if t.comm in args.comm]
    if not ctx.json:
        ctx.print(f"{'PID':>7}  {'TASK':<16}  CPU  ST  {'WAITED':>12}  COMM")
    for task in tasks:
        ctx.emit(task)
