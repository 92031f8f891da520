"""`mach`: machine-specific data: `-m` the physical memory map (e820), `-c` each CPU's cpuinfo_x86."""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import Args, Context, Option, command
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.expr.session import expr_session
from kcrash.kernel.cpus import cpu_count
from kcrash.kernel.machine import cpu_info_address, e820_map
from kcrash.records import hex_field

__all__ = ["MemmapRecord", "CpuInfoRecord", "E820_NAMES"]

# crash's names for the e820 types (its own table; 12 and 128 named apart, anything else "type N")
E820_NAMES = {
    0: "(invalid type)",
    1: "E820_RAM",
    2: "E820_RESERVED",
    3: "E820_ACPI",
    4: "E820_NVS",
    5: "E820_UNUSABLE",
    12: "E820_PRAM",
    128: "E820_RESERVED_KERN",
}


@dataclass
class MemmapRecord:
    """`mach -m`: one range of the firmware's memory map."""

    start: int = hex_field()
    end: int = hex_field()
    type: int = 0
    name: str = ""


@dataclass
class CpuInfoRecord:
    """`mach -c`: one CPU's cpuinfo_x86, as crash prints the structure."""

    cpu: int
    address: int = hex_field()
    text: str = ""


@command(
    "mach",
    summary="machine specific data",
    options=[
        Option("-m", help="display the physical memory map."),
        Option("-c", help="display each cpu's cpuinfo structure."),
        Option("-x", help="with -c, hexadecimal output."),
        Option("-d", help="with -c, decimal output."),
    ],
    help="""
    SYNOPSIS
    mach [-m | -c -[xd]]

    DESCRIPTION
    This command displays data specific to a machine type.

      -m  Display the physical memory map (x86, x86_64 and ia64 only).
      -c  Display each cpu's cpuinfo structure (x86, x86_64 and ia64 only).
      -x  override default output format with hexadecimal format.
      -d  override default output format with decimal format.

    EXAMPLES
    Display the system physical memory map:

      kcrash> mach -m
            PHYSICAL ADDRESS RANGE         TYPE
      0000000000000000 - 0000000000001000  E820_RESERVED
      0000000000001000 - 000000000009fc00  E820_RAM
      ...
    """,
)
def mach_command(ctx: Context, args: Args) -> None:
    try:
        if args.m:
            _memmap(ctx)
        elif args.c:
            _cpu_data(ctx, 16 if args.x else 10)
        else:
            raise KcrashError("the machine summary is not available yet: use mach -m or mach -c")
    except MemoryReadError as e:
        raise KcrashError(str(e)) from None


def _memmap(ctx: Context) -> None:
    lines = ["      PHYSICAL ADDRESS RANGE         TYPE"]
    for e in e820_map(ctx.kernel):
        rec = MemmapRecord(e.start, e.end, e.type, E820_NAMES.get(e.type, f"type {e.type}"))
        if ctx.json:
            ctx.emit(rec)
        lines.append(f"{e.start:016x} - {e.end:016x}  {rec.name}")
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _cpu_data(ctx: Context, radix: int) -> None:
    k = ctx.kernel
    t = k.type("struct cpuinfo_x86")
    formatter = expr_session(ctx).formatter(None, radix)
    for cpu in range(cpu_count(k)[0]):
        address = cpu_info_address(k, cpu)
        body = formatter.value(t, k.read(address, t.strip().size or 0), 0, address, 0)
        rec = CpuInfoRecord(cpu, address, f"struct cpuinfo_x86 {body}")
        ctx.emit(rec, text=("\n" if cpu else "") + f"CPU {cpu}:\n{rec.text}")
