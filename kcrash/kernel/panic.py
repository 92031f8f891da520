"""The panic: the log line crash reports as PANIC, whether SysRq triggered the crash, and the task that
panicked (crash's get_panicmsg() and get_active_set_panic_task() rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import active_cpus, active_tasks, cpu_curr, panic_cpu
from kcrash.kernel.printk import log_records
from kcrash.kernel.stack import backtrace
from kcrash.kernel.tasks import TaskInfo, find_task, read_task, task_table
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "PanicInfo",
    "panic_info",
    "panic_message",
    "panic_task",
    "panic_task_info",
    "sysrq_crash",
    "default_task",
    "task_activity",
]


def _read_int(k: Kernel, name: str) -> int | None:
    sym = k.symbols.lookup(name)
    if sym is None:
        return None
    try:
        return int.from_bytes(k.read(sym.address, sym.size or 4), "little")
    except MemoryReadError:
        return None


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
    lines: list[str] = []
    for rec in log_records(k):
        text = rec.text.decode("latin-1")
        lines.extend(text.split("\n"))
    return lines


@per_kernel
def panic_message(k: Kernel) -> tuple[str, bool]:
    """(message, sysrq): the log line crash reports as PANIC, and whether the crash was sysrq-triggered."""
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
    if message is None and k.symbols.lookup("sysrq_pressed") is not None:
        if _read_int(k, "sysrq_pressed"):
            message = first(("sysrq",))
    if message is None:
        message = first(_PANIC_LINES)
    if message is None:
        message = first(_LATE_LINES)
    return message or "", sysrq


def sysrq_crash(k: Kernel) -> bool:
    """crash's SYSRQ flag: the log shows SysRq triggered the crash ("SysRq : Crash", "SysRq : Trigger a
    crash", or a "SysRq : Netdump" line taken as the panic message)."""
    return panic_message(k)[1]


_CPU_PID_LINE = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: ")


@per_kernel
def panic_task(k: Kernel) -> Object | None:
    """The task that panicked: the current task of `panic_cpu` (set by panic() and crash_kexec()); else an
    active task whose stack holds the panic or kexec path; else the task the log's last "CPU: N PID: M
    Comm:" line names. None if the kernel did not panic."""
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
    return task


_PANIC_FUNCTIONS = ("panic", "__crash_kexec", "crash_kexec", "machine_kexec", "vpanic")


def _panic_task_from_stacks(k: Kernel) -> Object | None:
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
    """The panic message, the SysRq flag and the panic task together."""
    message, sysrq = panic_message(k)
    return PanicInfo(message, sysrq, panic_task(k))


def panic_task_info(k: Kernel) -> TaskInfo | None:
    """The panic task's table entry; None if there is no panic task or its task_struct is not in the dump."""
    task = panic_task(k)
    if task is None or task.address is None:
        return None
    info = task_table(k).get(task.address)
    if info is not None:
        return info
    try:
        return read_task(k, task.address)
    except MemoryReadError:
        return None


def default_task(k: Kernel) -> Object:
    """The task a session starts in (crash's initial context, get_panic_context()): the panic task, else
    the first task of crash's task table (CPU 0's idle task)."""
    task = panic_task(k)
    return task if task is not None else task_table(k).tasks[0].object(k)


def task_activity(k: Kernel, address: int) -> str | None:
    """What crash's context block says about a task on a CPU: "PANIC" for the task that panicked ("SYSRQ"
    when SysRq triggered the crash), "ACTIVE" for another task current on its CPU (honouring `set -a`),
    None for a task that was not running."""
    panic = panic_task_info(k)
    if panic is not None and address == panic.address:
        return "SYSRQ" if sysrq_crash(k) else "PANIC"
    return "ACTIVE" if address in active_tasks(k) else None
