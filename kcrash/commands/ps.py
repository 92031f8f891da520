"""`ps`: process status, in crash's formats (task.c show_ps and friends)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from kcrash.commands import Args, Argument, Context, KcrashError, Option, command
from kcrash.commands._crashtext import format_jiffies, format_nanoseconds, task_header
from kcrash.errors import MemoryReadError
from kcrash.kernel import mm as mmh
from kcrash.kernel import tasks as th
from kcrash.kernel.cpus import active_tasks, parse_cpu_spec, runqueue
from kcrash.kernel.panic import panic_task
from kcrash.kernel.rlimit import RLIM_INFINITY, RLIMIT_NAMES, task_rlimits
from kcrash.kernel.task_state import task_states
from kcrash.kernel.tasks import TaskInfo
from kcrash.kernel.time import hz, uptime_jiffies
from kcrash.records import hex_field

HELP = """
NAME
  ps - display process status information

SYNOPSIS
  ps [-k|-u|-G|-y policy] [-s] [-p|-c|-t|-[l|m][-C cpu]|-a|-g|-r|-S|-A|-H]
     [pid | task | command] ...

DESCRIPTION
  This command displays process status for selected, or all, processes in the
  system. If no arguments are entered, the process data is displayed for all
  processes: every thread of every thread group, and the idle task of each
  CPU. Specific processes may be selected by using the following identifier
  formats:

       pid  a process PID.
      task  a hexadecimal task_struct pointer.
   command  a command name. If a command name is made up of letters that are
            all numerical values, precede the name string with a "\\".
            If the command string is enclosed within "'" characters, then the
            encompassed string must be a POSIX extended regular expression
            that will be used to match task names.

  The process list may be further restricted by the following options:

        -k  restrict the output to only kernel threads.
        -u  restrict the output to only user tasks.
        -G  display only the thread group leader in a thread group.
 -y policy  restrict the output to tasks having a specified scheduling policy
            expressed by its integer value or by its (case-insensitive) name;
            multiple policies may be entered in a comma-separated list:
            0 or NORMAL, 1 or FIFO, 2 or RR, 3 or BATCH, 4 or ISO, 5 or IDLE,
            6 or DEADLINE.

  The process identifier types may be mixed. For each task, the following
  items are displayed:

    1. the process PID.
    2. the parent process PID.
    3. the CPU number that the task ran on last.
    4. the task_struct address or the kernel stack pointer of the process.
       (see -s option below)
    5. the task state (RU, IN, UN, ZO, ST, TR, DE, SW, WA, PA, ID, NE).
    6. the percentage of physical memory being used by this task.
    7. the virtual address size of this task in kilobytes.
    8. the resident set size of this task in kilobytes.
    9. the command name.

  The default output shows the task_struct address of each process under a
  column titled "TASK". A ">" marks the task running on each CPU when the dump
  was taken, including a CPU that the panic stopped. Kernel threads have their
  command names in brackets.

        -s  replace the TASK column with the KSTACKP column, which shows the
            kernel stack pointer saved when the task last left the CPU.
        -p  display the parental hierarchy of selected, or all, tasks.
        -c  display the children of selected, or all, tasks.
        -t  display the task run time, start time, and cumulative user and
            system times.
        -l  display the task's last-run timestamp value, using either the
            task_struct's last_run value, the task_struct's timestamp value
            or the task_struct's sched_entity last_arrival value, whichever
            applies, of selected, or all, tasks; the list is sorted with the
            most-recently run task (with the largest timestamp) shown first,
            followed by the task's current state.
        -m  similar to -l, but the timestamp value is translated into days,
            hours, minutes, seconds, and milliseconds since the task was last
            run on a cpu.
    -C cpus only usable with the -l or -m options, dump the timestamp data
            in per-cpu blocks, where the cpu[s] can be specified as "1,3,5",
            "1-3", "1,3,5-7,10", "all", or "a" (shortcut for "all").
        -a  display the command line arguments and environment strings of
            selected, or all, user-mode tasks.
        -g  display tasks by thread group, of selected, or all, tasks.
        -r  display resource limits (rlimits) of selected, or all, tasks.
        -S  display a summary consisting of the number of tasks in a task
            state.
        -A  display only the active task on each cpu.
        -H  display no header line.

EXAMPLES
  Show the process status of all current tasks:

    kcrash> ps
          PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM
            0       0   0  ffffffff90a1aa40  RU   0.0        0        0  [swapper/0]
            0       0   1  ffff88b941256000  RU   0.0        0        0  [swapper/1]
            1       0   0  ffff88b9411f8000  IN   0.0     2260       68  init
            2       0   1  ffff88b9411fc800  IN   0.0        0        0  [kthreadd]
    ...
    >     106       1   1  ffff88b9421f3000  RU   0.0     2260       56  kc-spinner
    >     110       1   0  ffff88b9421f8000  RU   0.0     2260       60  kc-crasher

  Show the parental hierarchy of a task:

    kcrash> ps -p 110
    PID: 0        TASK: ffffffff90a1aa40  CPU: 0    COMMAND: "swapper/0"
     PID: 1        TASK: ffff88b9411f8000  CPU: 0    COMMAND: "init"
      PID: 110      TASK: ffff88b9421f8000  CPU: 0    COMMAND: "kc-crasher"

  Count the tasks in each state:

    kcrash> ps -S
      RU: 4
      IN: 19
      ID: 37

  Show the tasks whose names match a regular expression:

    kcrash> ps 'kc-.*'
          PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM
          104       1   1  ffff88b9421fb000  IN   0.0     2260       60  kc-sleeper
          105       1   0  ffff88b9421f9800  IN   0.0     2260       56  kc-fiforeader
    >     106       1   1  ffff88b9421f3000  RU   0.0     2260       56  kc-spinner
    >     110       1   0  ffff88b9421f8000  RU   0.0     2260       60  kc-crasher
"""

_EXCLUSIVE = ("a", "t", "c", "p", "g", "l", "m", "S", "r", "A")
_EXCLUSIVE_MESSAGE = "-a, -t, -c, -p, -g, -l, -m, -S, -r and -A flags are all mutually-exclusive"
_POLICIES = {"NORMAL": 0, "FIFO": 1, "RR": 2, "BATCH": 3, "ISO": 4, "IDLE": 5, "DEADLINE": 6}
_VADDR_PRLEN = 16


def center(text: str, width: int, rjust: bool = False, ljust: bool = False) -> str:
    """crash's mkstring(…, CENTER[|RJUST|LJUST]): an odd spare space goes right (LJUST, default) or left."""
    extra = width - len(text)
    if extra <= 0:
        return text
    left = extra // 2
    if extra % 2 and rjust and not ljust:
        left += 1
    return " " * left + text + " " * (extra - left)


@dataclass
class PsRecord:
    """One row of `ps`."""

    pid: int
    ppid: int
    cpu: int
    task: int = hex_field()
    state: str = ""
    pct_mem: float = 0.0
    vsz: int = 0  # KiB
    rss: int = 0  # KiB
    comm: str = ""
    active: bool = False
    kernel_thread: bool = False
    kstackp: int | None = hex_field(default=None)


@dataclass
class StateCount:
    state: str
    count: int


class _Ps:
    """One `ps` invocation: the options, the task table, and crash's per-command state."""

    def __init__(self, ctx, args) -> None:
        self.ctx = ctx
        self.k = ctx.kernel
        self.args = args
        self.table = th.task_table(self.k)
        self.states = task_states(self.k)
        self.active = active_tasks(self.k)
        panic = panic_task(self.k)
        self.panic = panic.address if panic is not None else None
        self.group_seen: set[int] = set()
        self.idle_shown = False
        self.specified = False
        self.policy = self._policy(args.y) if args.y is not None else None
        self._rq_clock: dict[int, int] = {}
        self.ordered: list[TaskInfo] = self.table.tasks

    # --- option checks ----------------------------------------------------------------------------
    @staticmethod
    def _policy(text: str) -> int:
        mask = 0
        for word in text.split(","):
            word = word.strip()
            if word.isdigit() and int(word) in _POLICIES.values():
                mask |= 1 << int(word)
            elif word.upper() in _POLICIES:
                mask |= 1 << _POLICIES[word.upper()]
            else:
                raise KcrashError(f"{word}: invalid scheduling policy")
        return mask

    # --- task predicates --------------------------------------------------------------------------
    def is_active(self, t: TaskInfo) -> bool:
        return t.address in self.active or t.address == self.panic

    def kthread(self, t: TaskInfo) -> bool:
        return th.is_kthread(self.k, t)

    def code(self, t: TaskInfo) -> str:
        return self.states.code(t.state_value)

    def header(self, t: TaskInfo) -> str:
        return task_header(t.pid, t.address, t.cpu, t.comm)

    # --- the table rows ---------------------------------------------------------------------------
    def heading(self) -> str:
        column = center("KSTACKP", _VADDR_PRLEN, rjust=True) if self.args.s else center("TASK", _VADDR_PRLEN)
        return f"      PID    PPID  CPU {column}  ST  %MEM      VSZ      RSS  COMM"

    def record(self, t: TaskInfo) -> PsRecord:
        usage = mmh.task_mem_usage(self.k, self.table, t)
        ppid = self.table.ppid(t)
        active = self.is_active(t)
        kstackp = None
        if self.args.s:
            kstackp = 0 if active else t.ksp
        return PsRecord(
            pid=t.pid,
            ppid=-1 if ppid is None else ppid,
            cpu=t.cpu,
            task=t.address,
            state=self.code(t),
            pct_mem=usage.pct_physmem,
            vsz=usage.vsz_kib,
            rss=usage.rss_kib,
            comm=t.comm,
            active=active,
            kernel_thread=self.kthread(t),
            kstackp=kstackp,
        )

    @staticmethod
    def row(r: PsRecord) -> str:
        if r.kstackp is not None:
            pointer = center(f"{r.kstackp:x}" if r.kstackp else "--", _VADDR_PRLEN, rjust=True)
        else:
            pointer = center(f"{r.task:x}", _VADDR_PRLEN, rjust=True)
        pct = f"{r.pct_mem:.1f}"
        if len(pct) == 3:
            pct = center(pct, 4, rjust=True)
        pad = " " if len(r.state) > 3 else "  "
        comm = f"[{r.comm}]" if r.kernel_thread else r.comm
        cpu = str(r.cpu)
        return (
            f"{'> ' if r.active else '  '}{r.pid:7} {r.ppid:7} {cpu:>3}  {pointer} {r.state:>3}{pad}"
            f"{pct} {r.vsz:8} {r.rss:8}  {comm}"
        )

    # --- per-task output (crash's show_ps_data) -----------------------------------------------------
    def show(self, t: TaskInfo) -> None:
        a = self.args
        if a.u and self.kthread(t):
            return
        if a.k and not self.kthread(t):
            return
        if self.policy is not None and not (1 << t.policy) & self.policy:
            return
        if a.G:
            if a.l or a.m:
                raise KcrashError(f"-G not supported with -{'l' if a.l else 'm'} option")
            if t.pid != t.tgid:
                if not self.specified:
                    return
                leader = self.table.leader(t.tgid)
                if leader is None:
                    return
                t = leader
            if t.address in self.group_seen:
                return
            self.group_seen.add(t.address)
        if a.p:
            self.parent_list(t)
            self.ctx.print("")
        elif a.c:
            self.child_list(t)
            self.ctx.print("")
        elif a.l:
            self.last_run(t)
        elif a.m:
            self.milliseconds(t)
        elif a.a:
            self.task_args(t)
        elif a.r:
            self.rlimits(t)
        elif a.g:
            self.tgid_list(t)
        else:
            if a.A and not self.specified and not self.is_active(t):
                return
            rec = self.record(t)
            self.ctx.emit(rec, text=self.row(rec))

    def parent_list(self, t: TaskInfo) -> None:
        indent = ""
        for depth, address in enumerate(self.table.ancestry(t)):
            indent += " " * depth
            info = self.table.get(address)
            if info is not None:
                self.ctx.print(indent + self.header(info))
                indent = ""

    def child_list(self, t: TaskInfo) -> None:
        self.ctx.print(self.header(t))
        children = self.table.children(t.address)
        for child in children:
            self.ctx.print("  " + self.header(child))
        if not children:
            self.ctx.print("  (no children)")

    def tgid_list(self, t: TaskInfo) -> None:
        if t.pid != t.tgid:
            if not self.specified:
                return
            leader = self.table.leader(t.tgid)
            if leader is None:
                return
            t = leader
        if t.pid == 0 and self.idle_shown:
            return
        self.ctx.print(self.header(t))
        count = 0
        for other in self.table:
            if other.address == t.address or other.tgid != t.tgid:
                continue
            self.ctx.print("  " + self.header(other))
            count += 1
            if other.pid == 0:
                self.idle_shown = True
        if not count:
            self.ctx.print("  (no threads)")
        self.ctx.print("")

    def _last_run_format(self) -> tuple[int, str]:
        first = self.ordered[0].last_run if self.ordered else 0
        hexa = self.ctx.settings.radix == 16
        return len(f"{first:x}" if hexa else str(first)), "x" if hexa else "d"

    def last_run(self, t: TaskInfo) -> None:
        width, radix = self._last_run_format()
        self.ctx.print(f"[{t.last_run:{width}{radix}}] [{self.code(t)}]  {self.header(t)}")

    def rq_clock(self, cpu: int) -> int:
        if cpu not in self._rq_clock:
            self._rq_clock[cpu] = int(runqueue(self.k, cpu).clock)
        return self._rq_clock[cpu]

    def milliseconds(self, t: TaskInfo, clock: int | None = None) -> None:
        clock = self.rq_clock(t.cpu) if clock is None else clock
        delta = max(clock - t.last_run, 0)
        text = format_nanoseconds(delta)
        days = format_nanoseconds(clock).index(" ") - text.index(" ")
        self.ctx.print(f"[{' ' * days}{text}] [{self.code(t)}]  {self.header(t)}")

    def per_cpu_times(self, cpus: list[int]) -> None:
        for n, cpu in enumerate(cpus):
            self.ctx.print(f"{chr(10) if n else ''}CPU: {cpu}")
            for t in self.ordered:
                if t.cpu != cpu:
                    continue
                if self.args.l:
                    self.last_run(t)
                else:
                    self.milliseconds(t, self.rq_clock(cpu))

    def task_args(self, t: TaskInfo) -> None:
        self.ctx.print(self.header(t))
        if not t.mm:
            self.ctx.warn("no user stack")
            self.ctx.print("")
            return
        try:
            args = mmh.task_args(self.k, t)
        except mmh.UserReadError as e:
            self.ctx.warn(str(e))
            self.ctx.print("")
            return
        text = "ARG: " + _arg_text(args)
        try:
            env = mmh.task_env(self.k, t)
        except mmh.UserReadError as e:
            self.ctx.print(text)
            self.ctx.warn(str(e))
            self.ctx.print("")
            return
        body, chars = _env_text(env)
        self.ctx.write(f"{text}\nENV: {body}\n{'' if chars else chr(10)}")

    def rlimits(self, t: TaskInfo) -> None:
        try:
            limits = task_rlimits(self.k, t.signal)
        except MemoryReadError:
            self.ctx.print(self.header(t))
            return
        len1 = max(len(n) for n in RLIMIT_NAMES[: len(limits)])
        len2 = len("(unlimited)")
        self.ctx.print(self.header(t))
        lines = [
            f"  {'RLIMIT':>{len1}}   {center('CURRENT', len2, rjust=True)}   {center('MAXIMUM', len2, rjust=True)}"
        ]
        for limit in limits:
            cur_s = (
                "(unlimited)"
                if limit.current == RLIM_INFINITY
                else center(str(limit.current), len2, ljust=True)
            )
            max_s = (
                "(unlimited)"
                if limit.maximum == RLIM_INFINITY
                else center(str(limit.maximum), len2, ljust=True)
            )
            lines.append(f"  {limit.name:>{len1}}   {cur_s}   {max_s}")
        self.ctx.print("\n".join(lines) + "\n")

    def task_times(self, tasks: list[TaskInfo]) -> None:
        k = self.k
        ticks_per_second = hz(k)
        now = uptime_jiffies(k)
        for t in sorted(tasks, key=lambda t: t.start_time):
            run = format_jiffies(th.task_run_time(k, t, now), ticks_per_second)
            self.ctx.print(
                f"{self.header(t)}\n    RUN TIME: {run}\n  START TIME: {t.start_time}\n"
                f"       UTIME: {t.utime}\n       STIME: {t.stime}\n"
            )

    def times_selection(self, t: TaskInfo | None) -> list[TaskInfo]:
        a = self.args
        out: list[TaskInfo] = []
        for task in [t] if t is not None else self.table.tasks:
            if a.u and self.kthread(task):
                continue
            if a.k and not self.kthread(task):
                continue
            if a.G:
                if task.pid != task.tgid:
                    if t is None:
                        continue
                    leader = self.table.leader(task.tgid)
                    if leader is None:
                        return out
                    task = leader
                if task.address in self.group_seen:
                    return out
                self.group_seen.add(task.address)
            out.append(task)
        return out

    def summary(self) -> None:
        counts: dict[str, int] = {}
        for t in self.table:
            code = self.code(t)
            counts[code] = counts.get(code, 0) + 1
        for code, count in counts.items():
            self.ctx.emit(StateCount(code, count), text=f"  {code}: {count}")


def _arg_text(raw: bytes) -> str:
    """crash's ARG line: each string followed by one blank (empty strings add nothing)."""
    out = bytearray()
    run = 0
    for b in raw:
        if b == 0:
            if run:
                out += b" "
            run = 0
        else:
            out.append(b)
            run += 1
    return out.decode("utf-8", "replace")


def _env_text(raw: bytes) -> tuple[str, int]:
    """crash's ENV block: one string per line, continuation lines indented under the first."""
    out = bytearray()
    run = chars = 0
    for i, b in enumerate(raw):
        if b == 0:
            if run:
                out += b"\n"
            run = 0
        else:
            if not run and i:
                out += b"     "
            out.append(b)
            run += 1
            chars += 1
    return out.decode("utf-8", "replace"), chars


def _quoted_words(raw: str) -> set[str]:
    """The arguments that were typed inside single quotes (crash's regular-expression arguments)."""
    try:
        words = shlex.split(raw, posix=False)
    except ValueError:
        return set()
    return {w[1:-1] for w in words if len(w) >= 2 and w[0] == w[-1] == "'"}


def _is_number(word: str) -> bool:
    """crash's IS_A_NUMBER: decimal, or hexadecimal with an optional 0x."""
    h = word[2:] if word[:2].lower() == "0x" else word
    return bool(h) and all(c in "0123456789abcdefABCDEF" for c in h)


@command(
    "ps",
    summary="display process status information",
    options=[
        Option("-k", help="restrict the output to only kernel threads."),
        Option("-u", help="restrict the output to only user tasks."),
        Option("-G", help="display only the thread group leader in a thread group."),
        Option("-y", metavar="policy", help="restrict the output to tasks with these scheduling policies."),
        Option("-s", help="show the kernel stack pointer instead of the task_struct address."),
        Option("-p", help="display the parental hierarchy."),
        Option("-c", help="display the children."),
        Option("-t", help="display run time, start time, user and system times."),
        Option("-l", help="display the last-run timestamp, most recent first."),
        Option("-m", help="display the time since the task last ran."),
        Option("-C", metavar="cpus", help="with -l or -m, per-cpu blocks for these cpus."),
        Option("-a", help="display command line arguments and environment strings."),
        Option("-g", help="display tasks by thread group."),
        Option("-r", help="display resource limits."),
        Option("-S", help="display the number of tasks in each state."),
        Option("-A", help="display only the active task on each cpu."),
        Option("-H", help="display no header line."),
    ],
    arguments=[Argument("task", nargs="*", complete="none", help="a pid, task address, command or 'regex'.")],
    help=HELP,
    render=_Ps.row,
)
def ps_command(ctx: Context, args: Args) -> None:
    if args.u and args.k:
        raise KcrashError("-u and -k are mutually exclusive")
    chosen = [f for f in _EXCLUSIVE if getattr(args, f)]
    if len(chosen) > 1:
        raise KcrashError(_EXCLUSIVE_MESSAGE)
    ps = _Ps(ctx, args)
    table = ps.table
    ordered = table.tasks
    if args.l or args.m:
        ordered = sorted(table.tasks, key=lambda t: t.last_run, reverse=True)
    elif args.C is not None:
        raise KcrashError("-C option is only applicable with -l and -m")
    ps.ordered = ordered

    show_header = not (set(chosen) - {"A"}) and not args.H and not ctx.json
    if not args.task:
        if show_header:
            ctx.print(ps.heading())
        if args.t:
            ps.task_times(ps.times_selection(None))
        elif args.S:
            if args.u or args.k or args.G:
                raise KcrashError("-S option cannot be used with other options")
            ps.summary()
        elif args.C is not None:
            ps.per_cpu_times(parse_cpu_spec(args.C, max(t.cpu for t in table) + 1))
        else:
            for t in ordered:
                ps.show(t)
            for message in table.unreadable.values():
                ctx.warn(message)  # crash reports these while building its task table
        return

    if args.S:
        raise KcrashError("-S option takes no arguments")
    if args.C is not None:
        ctx.warn("-C option is not applicable with specified tasks")
    quoted = _quoted_words(args.raw)
    selectors: list[tuple[str, Any]] = []
    for word in args.task:
        if word in quoted:
            try:
                selectors.append(("regex", re.compile(word)))
            except re.error:
                raise KcrashError(f"invalid regular expression: {word}") from None
        elif _is_number(word):
            kind, hits = th.lookup_tasks(ctx.kernel, word)
            if kind == "invalid":
                ctx.warn(f"invalid task or pid value: {word}")
                ctx.print("")
                continue
            if kind == "pid":
                selectors.append(("pid", hits[0].pid))
            else:
                selectors.append(("task", hits[0].address))
        else:
            name = word[1:] if word.startswith("\\") else word
            selectors.append(("comm", name[:15]))
    if show_header:
        ctx.print(ps.heading())
    ps.specified = True
    group_only = args.g or args.G
    for t in ordered:
        for kind, value in selectors:
            if kind == "pid":
                match = t.pid == value
            elif kind == "task":
                match = t.address == value
            elif kind == "comm":
                match = t.comm == value and (not group_only or t.pid == t.tgid)
            else:
                match = value.search(t.comm) is not None and (not group_only or t.pid == t.tgid)
            if not match:
                continue
            if args.t:
                ps.task_times(ps.times_selection(t))
            else:
                ps.show(t)
