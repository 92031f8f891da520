"""The task context: `set PID|TASK`, `set -c CPU`, `set -p`, `set -a TASK` and bare `set`, printing crash's
context block (task.c show_context). The shell's `set` owns the variables; this plugs in as its context hook."""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command, context_hook
from kcrash.commands._crashtext import task_header
from kcrash.kernel import tasks as th
from kcrash.kernel.cpus import active_cpus, active_tasks, mark_active
from kcrash.kernel.panic import panic_task_info, task_activity
from kcrash.kernel.task_state import task_state_name
from kcrash.kernel.tasks import TaskInfo
from kcrash.records import hex_field

__all__ = [
    "ContextRecord",
    "context_record",
    "context_lines",
    "context_text",
    "current_task_info",
    "set_context_hook",
    "task_command",
]


@dataclass(frozen=True)
class TaskHeaderRecord:
    """The `PID: … TASK: … CPU: … COMMAND:` line before a task's members."""

    pid: int
    task: int = hex_field()
    cpu: int = 0
    command: str = ""


@dataclass
class ContextRecord:
    """The current context, as `set` shows it."""

    pid: int
    command: str
    task: int = hex_field()
    thread_info: int = hex_field()
    tasks_with_pid: int = 0
    cpu: int = 0
    state: str = ""
    activity: str | None = None  # "PANIC", "ACTIVE", "SYSRQ" for a task on a CPU, else None


def context_record(k, task: TaskInfo) -> ContextRecord:
    """`task`'s context as crash's show_context() reports it."""
    table = th.task_table(k)
    return ContextRecord(
        pid=task.pid,
        command=task.comm,
        task=task.address,
        thread_info=task.thread_info,
        tasks_with_pid=len(table.with_pid(task.pid)),
        cpu=task.cpu,
        state=task_state_name(k, task),
        activity=task_activity(k, task.address),
    )


def context_lines(rec: ContextRecord, width: int = 7) -> list[str]:
    """crash's show_context(): the PID/COMMAND/TASK/CPU/STATE block. `set` aligns the names to 7 columns
    (the length of COMMAND); the start-up banner aligns them to 12, like the `sys` block above them."""
    of = f"(1 of {rec.tasks_with_pid})  " if rec.tasks_with_pid > 1 else ""
    suffix = f"({rec.activity})" if rec.activity else ""
    return [
        f"{'PID':>{width}}: {rec.pid}",
        f'{"COMMAND":>{width}}: "{rec.command}"',
        f"{'TASK':>{width}}: {rec.task:x}  {of}[THREAD_INFO: {rec.thread_info:x}]",
        f"{'CPU':>{width}}: {rec.cpu}",
        f"{'STATE':>{width}}: {rec.state} {suffix}",
    ]


def context_text(rec: ContextRecord) -> str:
    """The context block as `set` prints it."""
    return "\n".join(context_lines(rec))


def current_task_info(ctx) -> TaskInfo:
    """The context task's table entry (ctx.context_task: the task `set` chose, else the panic task)."""
    k = ctx.kernel
    address = ctx.context_task.address
    info = th.task_table(k).get(address)
    return info if info is not None else th.read_task(k, address)


def _show(ctx, task: TaskInfo) -> None:
    ctx.emit(context_record(ctx.kernel, task), text=context_text)


def _switch(ctx, task: TaskInfo) -> None:
    ctx.task = task.object(ctx.kernel)
    _show(ctx, task)


def _digits(word: str) -> int:
    """crash's dtoi(): a decimal number or `WORD: "c" is not a digit 0 - 9`."""
    for c in word:
        if not c.isdigit():
            raise KcrashError(f'{word}: "{c}" is not a digit 0 - 9')
    if not word:
        raise KcrashError(': "" is not a digit 0 - 9')
    return int(word)


def _option_value(words: list[str], i: int, flag: str) -> tuple[str, int]:
    word = words[i]
    if len(word) > 2:
        return word[2:], i + 1
    if i + 1 >= len(words):
        raise UsageError(f"option requires an argument -- '{flag}'")
    return words[i + 1], i + 2


def _set_cpu(ctx, cpu: int) -> None:
    k = ctx.kernel
    cpus = active_cpus(k)
    ncpus = (max(cpus) + 1) if cpus else 1
    if cpu >= ncpus:
        raise KcrashError(f"invalid cpu number: system has only {ncpus} cpu{'s' if ncpus > 1 else ''}")
    address = next((a for a, c in active_tasks(k).items() if c == cpu), None)
    table = th.task_table(k)
    info = table.get(address) if address is not None else None
    if info is None:
        raise KcrashError(f"cannot determine active task on cpu {cpu}")
    _switch(ctx, info)


def _set_word(ctx, word: str) -> None:
    k = ctx.kernel
    kind, tasks = th.lookup_tasks(k, word)
    if kind == "invalid":
        raise KcrashError(f"invalid task or pid value: {word}")
    _switch(ctx, tasks[0])


def _mark_active(ctx, word: str) -> None:
    k = ctx.kernel
    kind, tasks = th.lookup_tasks(k, word)
    if kind == "invalid":
        raise KcrashError(f"invalid task or pid value: {word}")
    if kind == "pid" and len(tasks) > 1:
        raise KcrashError(f"pid {tasks[0].pid} has {len(tasks)} tasks: use a task address")
    task = tasks[0]
    mark_active(k, task.cpu, task.address)
    ctx.print(f'"{task.comm}" task {task.address:x} has been marked as the active task on cpu {task.cpu}')


def _is_number(word: str) -> bool:
    h = word[2:] if word[:2].lower() == "0x" else word
    return bool(h) and all(c in "0123456789abcdefABCDEF" for c in h)


@context_hook
def set_context_hook(ctx, words: list[str]) -> bool:
    """`set` with no variable: show or change the context task, as crash's cmd_set does."""
    k = ctx.kernel
    if k is None or not hasattr(k, "read") or k.find_type("struct task_struct") is None:
        return False  # no dump with tasks behind this shell (a test double): leave `set` to the variables
    if not words:
        _show(ctx, current_task_info(ctx))
        return True
    first = words[0]
    if first.startswith("-c"):
        value, _ = _option_value(words, 0, "c")
        _set_cpu(ctx, _digits(value))
        return True
    if first == "-p":
        task = panic_task_info(ctx.kernel)
        if task is None:
            ctx.warn("no panic task found!")
            return True
        _switch(ctx, task)
        return True
    if first.startswith("-a"):
        value, _ = _option_value(words, 0, "a")
        _mark_active(ctx, value)
        return True
    if first.startswith("-"):
        return False
    if not all(_is_number(w) for w in words):
        if _is_number(first):
            _set_word(ctx, first)
            return True
        return False
    for word in words:
        _set_word(ctx, word)
    return True


# --- task ---------------------------------------------------------------------------------------------


@command(
    "task",
    summary="task_struct contents",
    options=[
        Option("-R", metavar="member", multiple=True, help="only these task_struct/thread_info members."),
        Option("-x", help="display numbers in hexadecimal."),
        Option("-d", help="display numbers in decimal."),
    ],
    arguments=[Argument("target", nargs="*", complete="none", help="a pid, task address or member name.")],
    help="""
    SYNOPSIS
    task [-R member[,member]] [-dx] [pid | taskp] ...

    DESCRIPTION
    This command dumps a formatted display of the contents of a task's
    task_struct and thread_info structures. Multiple task or PID numbers may
    be entered; if no arguments are entered, the task_struct and thread_info
    structures of the current context are displayed.

           pid  a process PID.
         taskp  a hexadecimal task_struct pointer.
     -R member  a comma-separated list of one or more task_struct and/or
                thread_info structure members to display; members may also
                be given as plain arguments.
            -x  override default output format with hexadecimal format.
            -d  override default output format with decimal format.

    EXAMPLES
      kcrash> task -R pid,comm
      PID: 110      TASK: ffff88b9421f8000  CPU: 0    COMMAND: "kc-crasher"
        pid = 110,
        comm = "kc-crasher\\000\\000\\000\\000\\000",

      kcrash> task 1
    """,
)
def task_command(ctx: Context, args: Args) -> None:
    if args.x and args.d:
        raise KcrashError("-d and -x are mutually exclusive")
    k = ctx.kernel
    ttype = k.type("struct task_struct")
    members: list[str] = [m for spec in args.R for m in spec.split(",") if m]
    targets: list[TaskInfo] = []
    bogus = 0
    for word in args.target:
        if _is_number(word):
            kind, tasks = th.lookup_tasks(k, word)
            if kind == "invalid":
                bogus += 1
                ctx.warn(f"invalid task or pid value: {word}")
                ctx.print("")
            targets.extend(tasks)
        elif "," in word or "." in word or "[" in word or ttype.find_member(word) is not None:
            members.extend(m for m in word.split(",") if m)
        else:
            ctx.warn(f"invalid task, pid, or task_struct member: {word}")
            ctx.print("")
    if not targets and not bogus:
        targets.append(current_task_info(ctx))
    flag = " -x" if args.x else " -d" if args.d else ""
    ti_type = k.find_type("struct thread_info")
    for task in targets:
        ctx.emit(
            TaskHeaderRecord(task.pid, task.address, task.cpu, task.comm),
            text=task_header(task.pid, task.address, task.cpu, task.comm),
        )
        if members:
            for member in members:
                root = member.split(".", 1)[0].split("[", 1)[0]
                if ttype.find_member(root) is None and ti_type is not None and ti_type.find_member(root):
                    ctx.run(f"struct thread_info.{member}{flag} {task.thread_info:x}")
                elif ttype.find_member(root) is None:
                    ctx.warn(f"{member}: not a task_struct or thread_info member")
                else:
                    ctx.run(f"struct task_struct.{member}{flag} {task.address:x}")
        else:
            ctx.run(f"struct task_struct{flag} {task.address:x}")
            if ti_type is not None:
                ctx.print("")
                ctx.run(f"struct thread_info{flag} {task.thread_info:x}")
        ctx.print("")
