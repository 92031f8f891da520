"""`sig`: a task's signal handling state, as crash's cmd_sig() prints it (task.c dump_signal_data,
signame_list, translate_sigset, do_sig_thread_group)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, KcrashError, Option, command
from kcrash.commands._crashtext import task_header
from kcrash.commands.ps import center
from kcrash.commands.task import current_task_info
from kcrash.errors import MemoryReadError
from kcrash.kernel import tasks as th
from kcrash.kernel.signal import NSIG, SignalState, signal_names, task_signals
from kcrash.kernel.tasks import TaskInfo
from kcrash.records import hex_field

__all__ = ["SignalRecord", "SigActionRecord", "sig_command", "signal_lines"]

_W = 16
_UW = 10
SIG_HEADER = f" SIG {center('SIGACTION', _W)} {'HANDLER':>{_UW}} {center('MASK', 16)} {'FLAGS':<{_W}}"
QUEUE_HEADER = f"  SIGQUEUE:  SIG  {center('SIGINFO', _W)}"
# The uapi sa_flags bits crash names, in its order (x86_64 values).
_SA_FLAGS = (
    (0x1, "SA_NOCLDSTOP"),
    (0x04000000, "SA_RESTORER"),
    (0x2, "SA_NOCLDWAIT"),
    (0x4, "SA_SIGINFO"),
    (0x08000000, "SA_ONSTACK"),
    (0x10000000, "SA_RESTART"),
    (0x40000000, "SA_NODEFER"),
    (0x80000000, "SA_RESETHAND"),
)
_HANDLERS = {0: "SIG_DFL", 1: "SIG_IGN", (1 << 64) - 1: "SIG_ERR"}


@dataclass
class SigActionRecord:
    """One signal's disposition in a `signal` record."""

    signo: int
    sigaction: int = hex_field()
    handler: int = hex_field(default=0)
    mask: int = hex_field(default=0)
    flags: int = hex_field(default=0)


@dataclass
class SignalRecord:
    """`sig`: a task's signal state (the thread group's dispositions and shared pending set, the task's
    blocked and private pending sets; queues as [signo, siginfo address] pairs)."""

    pid: int
    task: int = hex_field()
    cpu: int = 0
    command: str = ""
    signal_struct: int = hex_field(default=0)
    nr_threads: int | None = None
    actions: list[SigActionRecord] = field(default_factory=list)
    sigpending: bool = False
    blocked: int = hex_field(default=0)
    private_pending: int = hex_field(default=0)
    private_queue: list = field(default_factory=list)
    shared_pending: int = hex_field(default=0)
    shared_queue: list = field(default_factory=list)


def _queue_lines(queue: list[tuple[int, int]], indent: str) -> list[str]:
    if not queue:
        return [f"{indent}  SIGQUEUE: (empty)"]
    return [indent + QUEUE_HEADER] + [f"             {signo:3}  {info:x}" for signo, info in queue]


def _flags_text(flags: int) -> str:
    names = [name for mask, name in _SA_FLAGS if flags & mask]
    return f"({'|'.join(names)})" if names else ""


def signal_lines(state: SignalState, group: bool, task_level: bool, indent: str = "") -> list[str]:
    """crash's dump_signal_data() for the thread-group level, the task level, or both."""
    lines: list[str] = []
    if group:
        threads = f"NR_THREADS: {state.nr_threads}" if state.nr_threads is not None else ""
        lines.append(f"{indent}SIGNAL_STRUCT: {state.signal_struct:x}  {threads}")
        if not state.signal_struct:
            return lines
        lines.append(indent + SIG_HEADER)
        for a in state.actions:
            handler = _HANDLERS.get(a.handler, f"{a.handler:x}")
            lines.append(
                f"{indent}{'[' + str(a.signo) + ']':>4} {a.address:<{_UW}x} {handler:>{_UW}} {a.mask:016x} "
                f"{a.flags:x} {_flags_text(a.flags)}"
            )
    if task_level:
        lines += [
            f"{indent}SIGPENDING: {'yes' if state.sigpending else 'no'}",
            f"{indent}   BLOCKED: {state.blocked:016x}",
            f"{indent}PRIVATE_PENDING",
            f"{indent}    SIGNAL: {state.private_signal:016x}",
            *_queue_lines(state.private_queue, indent),
        ]
    if group:
        lines += ["SHARED_PENDING", f"{indent}    SIGNAL: {state.shared_signal:016x}"]
        lines += _queue_lines(state.shared_queue, indent)
    return lines


def _record(task: TaskInfo, state: SignalState) -> SignalRecord:
    return SignalRecord(
        task.pid,
        task.address,
        task.cpu,
        task.comm,
        state.signal_struct,
        state.nr_threads,
        [SigActionRecord(a.signo, a.address, a.handler, a.mask, a.flags) for a in state.actions],
        state.sigpending,
        state.blocked,
        state.private_signal,
        [[s, f"{a:#x}"] for s, a in state.private_queue],
        state.shared_signal,
        [[s, f"{a:#x}"] for s, a in state.shared_queue],
    )


def _signame_list() -> str:
    lines = []
    for signo in range(1, NSIG + 1):
        names = signal_names(signo)
        lines.append(
            f"{'[' + str(signo) + ']':>4} {'/'.join(names)}" if signo < 10 else f"[{signo}] {'/'.join(names)}"
        )
    return "\n".join(lines)


def _translate(sigset: int) -> str:
    """crash's translate_sigset(): the set's names, wrapped before 80 columns."""
    if not sigset:
        return "(none)"
    out, length = "", 0
    count = 0
    for signo in range(1, NSIG + 1):
        if sigset >> (signo - 1) & 1:
            piece = (" " if count else "") + signal_names(signo)[0]
            count += 1
            if length + len(piece) > 80:
                piece = piece[1:]
                out += "\n"
                length = 0
            length += len(piece)
            out += piece
    return out


def _header(task: TaskInfo) -> str:
    return task_header(task.pid, task.address, task.cpu, task.comm)


def _thread_group(ctx, task: TaskInfo) -> None:
    k = ctx.kernel
    table = th.task_table(k)
    if task.pid != task.tgid:
        leader = table.leader(task.tgid)
        if leader is None:
            return
        task = leader
    state = task_signals(k, task.address)
    lines = [_header(task), *signal_lines(state, True, False), "", "  " + _header(task)]
    lines += signal_lines(state, False, True, "  ")
    records = [_record(task, state)]
    for other in table.thread_group(task.tgid):
        if other.address == task.address:
            continue
        other_state = task_signals(k, other.address)
        lines += ["", "  " + _header(other), *signal_lines(other_state, False, True, "  ")]
        records.append(_record(other, other_state))
    if ctx.json:
        for rec in records:
            ctx.emit(rec)
    else:
        ctx.write("\n".join(lines) + "\n\n")


@command(
    "sig",
    summary="task signal handling",
    options=[
        Option("-l", help="list the signal numbers and their names."),
        Option("-s", metavar="sigset", help="translate a hexadecimal signal set into signal names."),
        Option("-g", help="show the signal state of the task's whole thread group."),
        Option("-R", metavar="reference", multiple=True, help="(not supported, as in crash)"),
    ],
    arguments=[Argument("task", nargs="*", complete="none", help="a pid or task address.")],
    help="""
    SYNOPSIS
    sig [[-l] | [-s sigset]] | [-g] [pid | taskp] ...

    DESCRIPTION
    This command displays signal-handling data of one or more tasks.  Multiple
    task or PID numbers may be entered; if no arguments are entered, the signal
    handling data of the current context will be displayed.  The default display
    shows:

      1.  Whether the task has an unblocked signal pending.
      2.  The contents of the "signal" and "blocked" sigset_t structures
          from the task_struct/signal_struct, both of which are represented
          as a 64-bit hexadecimal value.
      3.  For each defined signal:
          a. the signal number and associated signal name.
          b. the virtual address of its sigaction structure.
          c. the sigaction's sa_handler value.
          d. the sigaction's sa_mask value.
          e. the sigaction's sa_flags value.
      4.  The queued signals, private and shared.

           -l  displays the defined signal numbers and names.
    -s sigset  translates a 64-bit hexadecimal value representing the signals
               that are set in a sigset_t structure.
           -g  displays signal information for all threads in a task's
               thread group.
          pid  a process PID.
        taskp  a hexadecimal task_struct pointer.

    EXAMPLES
      kcrash> sig -s 1234
      SIGQUIT SIGTRAP SIGABRT SIGUSR1 SIGPIPE
    """,
)
def sig_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    if args.s is not None:
        try:
            sigset = int(args.s[2:] if args.s[:2].lower() == "0x" else args.s, 16)
        except ValueError:
            raise KcrashError(f"invalid expression: {args.s}") from None
        ctx.print(_translate(sigset))
        return
    if args.l:
        ctx.print(_signame_list())
        return
    if args.R:
        raise KcrashError("-R not supported yet")
    targets: list[TaskInfo] = []
    bogus = 0
    for word in args.task:
        kind, tasks = th.lookup_tasks(k, word)
        if kind == "invalid":
            bogus += 1
            ctx.warn(f"invalid task or pid value: {word}")
            continue
        targets.extend(tasks)
    if not targets and not bogus:
        targets.append(current_task_info(ctx))
    for task in targets:
        try:
            if args.g:
                _thread_group(ctx, task)
                continue
            state = task_signals(k, task.address)
        except MemoryReadError as e:
            ctx.warn(str(e))
            continue
        if ctx.json:
            ctx.emit(_record(task, state))
        else:
            ctx.write("\n".join([_header(task), *signal_lines(state, True, True)]) + "\n\n")
