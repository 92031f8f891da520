"""`sys`: system data (crash's start-up block), taints, DMI strings and the built-in kernel config."""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import Argument, Option, UsageError, command
from kcrash.kernel.sysinfo import dmi_lines, dmi_strings, kernel_config, sys_info, taint_string, tainted_mask
from kcrash.records import hex_field


@dataclass(frozen=True)
class TaintRecord:
    """`sys -t`: the kernel's tainted_mask and crash's letters for it."""

    mask: int = hex_field()
    flags: str = ""


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
    ],
    arguments=[
        Argument(
            "config",
            nargs="?",
            complete="none",
            metavar="config",
            help='"config" to print the kernel configuration.',
        )
    ],
    help="""
    SYNOPSIS
    sys [config] [-t] [-i]

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
def sys_command(ctx, args):
    k = ctx.kernel
    if args.t:
        rec = TaintRecord(tainted_mask(k), taint_string(k))
        ctx.emit(rec, text=f"TAINTED_MASK: {rec.mask:x}  {rec.flags}")
        return
    if args.i:
        if ctx.json:
            for name, value in dmi_strings(k):
                ctx.emit(DmiRecord(name, value))
            return
        for line in dmi_lines(k):
            ctx.print(line)
        return
    if args.config is not None:
        if args.config != "config":
            raise UsageError(f"invalid argument: {args.config}")
        ctx.write(kernel_config(k))
        return
    info = sys_info(k)
    if ctx.json:
        ctx.emit(info)
        return
    for problem in info.warnings:
        ctx.warn(problem)
    ctx.write("\n".join(info.lines()) + "\n")
