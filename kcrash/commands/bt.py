"""`bt`: a task's kernel stack trace, in crash's format."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, KcrashError, Option, command
from kcrash.commands._crashtext import task_header
from kcrash.errors import MemoryReadError
from kcrash.kernel import module_debug
from kcrash.kernel.cpus import active_cpus, cpu_curr, parse_cpu_spec
from kcrash.kernel.modules import resolve_any
from kcrash.kernel.stack import Backtrace, backtrace
from kcrash.kernel.tasks import resolve_task, task_comm, task_pid
from kcrash.records import hex_field

HELP = """
NAME
  bt - backtrace

SYNOPSIS
  bt [-a] [-c cpu(s)] [-f] [-l] [-s] [-x|-d] [pid | task]

DESCRIPTION
  Display a kernel stack backtrace. With no argument, the current context task (by default the task
  that panicked). The unwinder follows the kernel's ORC tables (DWARF call-frame information where ORC
  has none, frame pointers last), so return addresses left over on the stack from earlier calls are not
  shown. Exception and interrupt frames print the saved register block; a switch to another stack prints
  a "--- <IRQ stack> ---" style line; the user-mode registers at the system-call entry end the trace.

  -a         the task running on each CPU when the dump was taken.
  -c cpu(s)  the task running on the given CPU(s): "3", "1,8,9", "1-23", or "a" for all.
  -f         display all stack data in each frame.
  -l         show the file and line number of each frame's text address.
  -s         show each frame's symbol name with its offset.
  -x         with -s, show offsets in hexadecimal.
  -d         with -s, show offsets in decimal (the default).
  pid        a process PID.
  task       a task_struct address in hexadecimal.

EXAMPLES
  kcrash> bt
  PID: 111      TASK: ffff8a78c25dc800  CPU: 0    COMMAND: "kc-crasher"
   #0 [ffffcb93c03e3c38] machine_kexec at ffffffff84e6c62f
   #1 [ffffcb93c03e3c90] __crash_kexec at ffffffff84f646b7
   #2 [ffffcb93c03e3d50] panic at ffffffff857cd06e

  kcrash> bt -a
  kcrash> bt -c 1
  kcrash> bt -l 107
"""

_REG_ROWS = (
    ("RAX", "rax", "RBX", "rbx", "RCX", "rcx"),
    ("RDX", "rdx", "RSI", "rsi", "RDI", "rdi"),
    ("RBP", "rbp", "R8", "r8", "R9", "r9"),
    ("R10", "r10", "R11", "r11", "R12", "r12"),
    ("R13", "r13", "R14", "r14", "R15", "r15"),
)


@dataclass
class FrameRecord:
    level: int
    stack_address: int = hex_field()
    function: str | None = None
    offset: int | None = None
    address: int = hex_field(default=0)
    module: str | None = None
    file: str | None = None
    line: int | None = None
    exception_registers: dict[str, int] | None = hex_field(default=None)
    user_registers: bool = False
    stack_switch: str | None = None


@dataclass
class BacktraceRecord:
    pid: int
    task: int = hex_field()
    cpu: int = 0
    command: str = ""
    frames: list[FrameRecord] = field(default_factory=list)


def _resolve_text(k, address: int):
    """(symbol, offset) for a frame address: the vmlinux's text, else the loaded module that holds it
    (its Symbol.module gives crash's ` [module]` suffix); None for user-space addresses."""
    if address < 0xFFFF800000000000:
        return None
    stext, etext = k.symbols.lookup("_stext"), k.symbols.lookup("_etext")
    if stext is not None and etext is not None and stext.address <= address < etext.address:
        hit = k.resolve(address)
        if hit is None or not k.symbols.has_aliases(hit[0].address):
            return hit
        # Several names at that address: crash's table picks as crash does (__x86_indirect_thunk_rax, not
        # the __x86_indirect_thunk_array label); only then is it loaded (~70 ms, ~30 MB).
    try:
        return resolve_any(k, address) or k.resolve(address)
    except KcrashError:
        return k.resolve(address)


def _register_block(regs: dict[str, int], exception_rip: str | None) -> list[str]:
    lines = []
    if exception_rip is not None:
        lines.append(f"    [exception RIP: {exception_rip}]")
    g = regs.get
    lines.append(f"    RIP: {g('rip', 0):016x}  RSP: {g('rsp', 0):016x}  RFLAGS: {g('eflags', 0):08x}")
    if "rax" in regs:
        for a, ka, b, kb, c, kc in _REG_ROWS:
            lines.append(f"    {a:>3}: {g(ka, 0):016x}  {b:>3}: {g(kb, 0):016x}  {c:>3}: {g(kc, 0):016x}")
        lines.append(f"    ORIG_RAX: {g('orig_rax', 0):016x}  CS: {g('cs', 0):04x}  SS: {g('ss', 0):04x}")
    else:
        lines.append(f"    CS: {g('cs', 0):04x}  SS: {g('ss', 0):04x}")
    return lines


def build_record(k, task, want_lines: bool) -> tuple[BacktraceRecord, Backtrace]:
    bt = backtrace(k, task)
    rec = BacktraceRecord(task_pid(task), task.address, bt.cpu, task_comm(task))
    for i, f in enumerate(bt.frames):
        hit = _resolve_text(k, f.ip)
        fr = FrameRecord(
            level=i,
            stack_address=f.slot if f.slot is not None else f.sp,
            function=hit[0].name if hit else None,
            offset=hit[1] if hit else None,
            address=f.ip,
            module=hit[0].module if hit else None,
        )
        if want_lines and hit:
            # A module's lines come from its object file once `mod -s` loaded it (as crash's).
            src = module_debug.source_line(k, f.ip) if hit[0].module else k.source_line(f.ip)
            if src:
                fr.file, fr.line = src
        if f.regs is not None:
            fr.exception_registers = {key: v for key, v in f.regs.items() if not key.startswith("_")}
            fr.user_registers = f.user_regs
        here = bt.stacks[i]
        nxt = bt.stacks[i + 1] if i + 1 < len(bt.stacks) else None
        if here is not None and here.name != "task" and i + 1 < len(bt.frames) and nxt is not here:
            fr.stack_switch = here.name
        rec.frames.append(fr)
    return rec, bt


def render(rec: BacktraceRecord, k, opts) -> str:
    lines = [task_header(rec.pid, rec.task, rec.cpu, rec.command)]
    frames = rec.frames
    for i, fr in enumerate(frames):
        if fr.function is None:
            name = f"{fr.address:x}"
        elif opts.s:
            off = f"0x{fr.offset:x}" if opts.x else f"{fr.offset}"
            name = f"{fr.function}+{off}"
        else:
            name = fr.function
        mod = f" [{fr.module}]" if fr.module else ""
        prefix = " " if fr.level < 10 else ""
        if fr.function is not None or i == 0:
            lines.append(f"{prefix}#{fr.level} [{fr.stack_address:x}] {name} at {fr.address:x}{mod}")
            if opts.l and fr.file:
                lines.append(f"    {fr.file}: {fr.line}")
        if opts.f and i + 1 < len(frames):
            lines.extend(_frame_words(k, fr, frames[i + 1]))
        if fr.exception_registers is not None:
            regs = fr.exception_registers
            exc = None
            if not fr.user_registers:
                hit = _resolve_text(k, regs.get("rip", 0))
                exc = (
                    (f"{hit[0].name}+{hit[1]}" if hit[1] else hit[0].name)
                    if hit
                    else f"{regs.get('rip', 0):x}"
                )
            lines.extend(_register_block(regs, exc))
        if fr.stack_switch:
            lines.append(f"--- <{fr.stack_switch}> ---")
    return "\n".join(lines)


def _frame_words(k, fr: FrameRecord, nxt: FrameRecord) -> list[str]:
    start = fr.stack_address + 8
    end = nxt.stack_address + 8  # through the slot holding the next frame's return address, as crash
    if not 0 < end - start <= 8192:
        return []
    try:
        data = k.read(start, end - start)
    except MemoryReadError:
        return []
    words = struct.unpack(f"<{len(data) // 8}Q", data)
    out = []
    for i in range(0, len(words), 2):
        row = " ".join(f"{w:016x}" for w in words[i : i + 2])
        out.append(f"    {start + 8 * i:x}: {row} ")
    return out


@command(
    "bt",
    summary="backtrace",
    options=[
        Option("-a", help="the task running on each CPU"),
        Option("-c", metavar="CPUS", help="the task running on the given CPU(s)"),
        Option("-f", help="display all stack data in each frame"),
        Option("-l", help="show file and line number of each frame"),
        Option("-s", help="show symbol offsets"),
        Option("-x", help="offsets in hexadecimal"),
        Option("-d", help="offsets in decimal"),
    ],
    arguments=[Argument("task", help="PID or task address", nargs="*")],
    help=HELP,
)
def bt_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    targets = []
    if args.a or args.c:
        cpus = active_cpus(k)
        wanted = cpus if args.a else parse_cpu_spec(args.c, k.nr_cpu_ids)
        for cpu in wanted:
            if cpu not in cpus:
                raise KcrashError(f"invalid cpu: {cpu}")
            targets.append(cpu_curr(k, cpu))
    elif args.task:
        targets = [resolve_task(k, word) for word in args.task]
    else:
        targets = [ctx.context_task]
    for n, task in enumerate(targets):
        rec, bt = build_record(k, task, args.l)
        text = render(rec, k, args)
        if n and not ctx.json:
            ctx.write("\n")
        ctx.emit(rec, text=text)
        if bt.frames and bt.frames[-1].error is not None:
            ctx.warn(str(bt.frames[-1].error))
