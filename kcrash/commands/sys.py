"""`sys`: system data (crash's start-up block), taints, DMI strings and the built-in kernel config."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, Option, UsageError, command
from kcrash.commands._crashtext import ctime_tz, format_jiffies
from kcrash.commands.task import context_lines, context_record
from kcrash.errors import KcrashError
from kcrash.kernel.panic import panic_task_info
from kcrash.kernel.syscalls import SyscallEntry, build_directory, syscall_table
from kcrash.kernel.sysinfo import (
    DumpFlags,
    SystemInfo,
    dmi_field_names,
    dmi_strings,
    kernel_config,
    system_info,
    taint_string,
    tainted_mask,
)
from kcrash.program import Kernel
from kcrash.records import hex_field

__all__ = ["SysInfo", "sys_record", "sys_lines", "banner_lines", "format_memory", "dmi_lines"]

GIB = 1 << 30
MIB = 1 << 20


@dataclass
class SysInfo:
    """The fields of crash's `sys` output, as crash writes them."""

    kernel: str
    dumpfile: str
    cpus: int
    offline: int
    date: str
    uptime: str
    load_average: str
    tasks: int
    nodename: str
    release: str
    version: str
    machine: str
    mhz: int | None
    memory: str
    panic: str
    warnings: list[str] = field(default_factory=list)


def format_memory(total: int, page_size: int = 4096) -> str:
    """crash's get_memory_size(): round up to the next GiB when within 64 MiB of it, then print with one
    decimal in GB, MB or KB, dropping a `.0`."""
    next_gib = -(-total // GIB) * GIB
    if next_gib and next_gib - total <= 64 * MIB:
        total = next_gib
    pages = total // page_size
    if pages == 0:
        return "0"
    size = float(pages * page_size)
    if size >= GIB:
        text = f"{size / GIB:.1f} GB"
    elif size >= MIB:
        text = f"{size / MIB:.1f} MB"
    else:
        return f"{int(size / 1024)} KB"
    return text.replace(".0 ", " ", 1)


def dumpfile_suffix(flags: DumpFlags) -> str:
    """What crash appends to DUMPFILE: `[PARTIAL DUMP]` for a filtered dump, `[INCOMPLETE]` for a truncated
    one, `[EXCLUDED VMEMMAP]`; spaced as crash's diskdump and ELF code do, nothing for one file of a set
    (crash lists the set instead)."""
    if flags.kdump:
        shown = [
            text
            for text, on in (
                (" [PARTIAL DUMP]", flags.partial),
                (" [INCOMPLETE]", flags.incomplete),
                (" [EXCLUDED VMEMMAP]", flags.excluded_vmemmap),
            )
            if on
        ]
        return "" if flags.split_part or not shown else " " + "".join(shown)
    return ("  [PARTIAL DUMP]" if flags.partial else "") + ("  [INCOMPLETE]" if flags.incomplete else "")


def _load_average(values: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{whole}.{hundredths:02d}" for whole, hundredths in values)


def sys_record(info: SystemInfo) -> SysInfo:
    """The `sys` record of the system's facts, each field in crash's words."""
    kernel = info.vmlinux
    if info.tainted:
        kernel += ("  [LIVEPATCH]" if info.livepatch else "") + "  [TAINTED]"
    return SysInfo(
        kernel=kernel,
        dumpfile=info.dump + dumpfile_suffix(info.dump_flags),
        cpus=info.cpus,
        offline=max(0, info.cpus - info.online),
        date=ctime_tz(info.crash_time) if info.crash_time is not None else "(unknown)",
        uptime=format_jiffies(info.uptime_jiffies, info.hz)
        if info.uptime_jiffies is not None
        else "(unknown)",
        load_average=_load_average(info.load_average) if info.load_average is not None else "(unknown)",
        tasks=info.tasks,
        nodename=info.utsname["nodename"],
        release=info.utsname["release"],
        version=info.utsname["version"],
        machine=info.utsname["machine"],
        mhz=info.mhz,
        memory=format_memory(info.memory) if info.memory is not None else "(unknown)",
        panic=info.panic,
        warnings=info.warnings,
    )


def sys_lines(rec: SysInfo) -> list[str]:
    """crash's `sys` block (and the start of its banner)."""
    cpus = str(rec.cpus) + (f" [OFFLINE: {rec.offline}]" if rec.offline else "")
    mhz = f"({rec.mhz} Mhz)" if rec.mhz else "(unknown Mhz)"
    panic = f'"{rec.panic}"' + (" (check log for details)" if "Oops: " in rec.panic else "")
    return [
        f"{'KERNEL':>12}: {rec.kernel}",
        f"{'DUMPFILE':>12}: {rec.dumpfile}",
        f"{'CPUS':>12}: {cpus}",
        f"{'DATE':>12}: {rec.date}",
        f"{'UPTIME':>12}: {rec.uptime}",
        f"{'LOAD AVERAGE':>12}: {rec.load_average}",
        f"{'TASKS':>12}: {rec.tasks}",
        f"{'NODENAME':>12}: {rec.nodename}",
        f"{'RELEASE':>12}: {rec.release}",
        f"{'VERSION':>12}: {rec.version}",
        f"{'MACHINE':>12}: {rec.machine}  {mhz}",
        f"{'MEMORY':>12}: {rec.memory}",
        f"{'PANIC':>12}: {panic}",
    ]


def banner_lines(k: Kernel) -> list[str]:
    """crash's start-up block: the `sys` lines, then the context of the task that panicked (names aligned
    to 12 columns like the `sys` block); KERNEL and DUMPFILE alone, with a warning, when the system
    information cannot be read."""
    try:
        lines = sys_lines(sys_record(system_info(k)))
    except KcrashError as e:
        return [
            f"{'KERNEL':>12}: {k.vmlinux_path}",
            f"{'DUMPFILE':>12}: {k.dump_path}",
            f"WARNING: cannot read the system information: {e}",
        ]
    try:
        task = panic_task_info(k)
        if task is not None:
            lines += context_lines(context_record(k, task), width=12)
    except KcrashError:
        pass
    return lines


def dmi_lines(entries: list[tuple[str, str]], field_names: list[str]) -> list[str]:
    """crash's `sys -i`: names right-aligned to the longest enumerator name, after two spaces."""
    if field_names:
        width = max(len(name) for name in field_names)
        return [f"  {name:>{width}}: {value}" for name, value in entries]
    return [f"  {name}: {value}" for name, value in entries]


@dataclass(frozen=True)
class TaintRecord:
    """`sys -t`: the kernel's tainted_mask and crash's letters for it."""

    mask: int = hex_field()
    flags: str = ""


@dataclass(frozen=True)
class SyscallRecord:
    """`sys -c`: one sys_call_table entry, its handler and where the handler is defined."""

    number: int
    address: int = hex_field()
    name: str | None = None
    file: str | None = None
    line: int | None = None


SYSCALL_HEADER = "NUM  SYSTEM CALL                FILE AND LINE NUMBER"


def syscall_line(entry: SyscallEntry, build_dir: str | None) -> str:
    """crash's `sys -c` line: the number, the handler, and its file relative to the build directory."""
    text = f"{entry.number:3d}  {entry.name or '':<26} "
    if entry.file is not None and build_dir and build_dir in entry.file:
        text += ".." + entry.file[entry.file.index(build_dir) + len(build_dir) :] + f": {entry.line}"
    return text


def _syscalls(ctx: Context, spec: str | None) -> None:
    k = ctx.kernel
    build_dir = build_directory(k)
    if build_dir is None:
        ctx.warn("line numbers are not available")
    entries = [e for e in syscall_table(k) if e.name is not None]
    if spec is not None:
        if spec.isdigit() or spec.lower().startswith("0x"):
            number = int(spec, 0)
            entries = [e for e in entries if e.number == number][:1]
        else:
            entries = [e for e in entries if spec in e.name]  # type: ignore[operator]
        if not entries:
            return
    if ctx.json:
        for e in entries:
            ctx.emit(SyscallRecord(e.number, e.address, e.name, e.file, e.line))
        return
    ctx.write("\n".join([SYSCALL_HEADER] + [syscall_line(e, build_dir) for e in entries]) + "\n")


@dataclass(frozen=True)
class DmiRecord:
    """One `sys -i` line: a DMI field (dmi_field's enumerator name) and its string."""

    name: str
    value: str


@command(
    "sys",
    summary="system data",
    options=[
        Option("-t", help="display kernel taint information."),
        Option("-i", help="display the DMI (SMBIOS) strings the kernel saved at boot."),
        Option("-c", help="display the system call table, or the calls matching a name or number."),
    ],
    arguments=[
        Argument(
            "config",
            nargs="?",
            complete="none",
            metavar="config",
            help='"config" to print the kernel configuration; with -c, a system call name or number.',
        )
    ],
    help="""
    SYNOPSIS
    sys [config] [-t] [-i] [-c [name|number]]

    DESCRIPTION
    This command displays system-specific data. If no arguments are entered,
    the same system data shown during kcrash invocation is shown: the kernel
    and dump file, CPU count, the date of the crash, uptime, load average,
    task count, utsname, processor speed, memory size and the panic message.

      config  If the kernel was configured with CONFIG_IKCONFIG, then dump
              the in-kernel configuration data.
          -t  Display kernel taint information. If the "tainted_mask" symbol
              exists, show its hexadecimal value and translate each bit set
              to the symbolic letter of the taint type.
          -i  Dump the DMI string data if available in the kernel.
          -c  [name|number] If no name or number argument is entered, dump all
              sys_call_table entries.  If a name string is entered, search the
              table for all entries containing the string.  If a number is
              entered, the table entry associated with that number will be
              displayed.

    EXAMPLES
    Display essential system information:

      kcrash> sys
            KERNEL: vmlinux
          DUMPFILE: kdump-lzo.kdump  [PARTIAL DUMP]
              CPUS: 2
              DATE: Thu Nov 26 10:41:03 UTC 2026
            UPTIME: 00:00:05
      LOAD AVERAGE: 0.08, 0.02, 0.01
             TASKS: 60
          NODENAME: (none)
           RELEASE: 6.1.0-56-cloud-amd64
           VERSION: #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)
           MACHINE: x86_64  (2100 Mhz)
            MEMORY: 1 GB
             PANIC: "Kernel panic - not syncing: sysrq triggered crash"

    Display the kernel taint information:

      kcrash> sys -t
      TAINTED_MASK: 1201  POE

    Dump the DMI strings:

      kcrash> sys -i
                DMI_BIOS_VENDOR: SeaBIOS
               DMI_BIOS_VERSION: 1.16.2-debian-1.16.2-1
      ...
    """,
)
def sys_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    if args.c:
        _syscalls(ctx, args.config)
        return
    if args.t:
        rec = TaintRecord(tainted_mask(k), taint_string(k))
        ctx.emit(rec, text=f"TAINTED_MASK: {rec.mask:x}  {rec.flags}")
        return
    if args.i:
        if ctx.json:
            for name, value in dmi_strings(k):
                ctx.emit(DmiRecord(name, value))
            return
        for line in dmi_lines(dmi_strings(k), dmi_field_names(k)):
            ctx.print(line)
        return
    if args.config is not None:
        if args.config != "config":
            raise UsageError(f"invalid argument: {args.config}")
        ctx.write(kernel_config(k))
        return
    info = sys_record(system_info(k))
    if ctx.json:
        ctx.emit(info)
        return
    for problem in info.warnings:
        ctx.warn(problem)
    ctx.write("\n".join(sys_lines(info)) + "\n")
