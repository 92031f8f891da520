"""`swap`: the swap devices in use, as crash's swap command lists them."""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import command
from kcrash.commands.ps import center
from kcrash.kernel.swap import SwapInfo, swap_devices

HELP = """
NAME
  swap - swap device information

SYNOPSIS
  swap

DESCRIPTION
  This command displays information for each configured swap device: the address of its
  swap_info_struct, whether it is a partition or a file, its size and the space used (in kilobytes), the
  percentage used, its priority and its file name.  With no swap configured only the header is shown.

EXAMPLES

    kcrash> swap
    SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME
    ffff8ba9826a3c00  PARTITION  2097148k       1024k    0%   -2  /dev/vdb
"""

HEADER = "SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME"
_VADDR_PRLEN = 16


@dataclass
class Swap:
    """One swap device (sizes in KiB)."""

    info: SwapInfo
    size_kib: int = 0
    used_kib: int = 0
    pct: int = 0

    def __str__(self) -> str:
        d = self.info
        return (
            f"{center(f'{d.address:x}', max(_VADDR_PRLEN, len('SWAP_INFO_STRUCT')))}  "
            f"{'PARTITION' if d.partition else '  FILE   '} "
            f"{center(f'{self.size_kib}k', 10, rjust=True)} {center(f'{self.used_kib}k', 10, rjust=True)} "
            f"{center(f'{self.pct:2d}%', 4, rjust=True)} {d.prio:>4}  {d.filename}"
        )


@command("swap", summary="swap device information", help=HELP)
def swap_command(ctx, args):
    k = ctx.kernel
    devices = swap_devices(k)
    if not ctx.json:
        ctx.print(HEADER)
    shift = 12 - 10
    for d in devices:
        size = d.pages << shift
        used = d.inuse_pages << shift
        ctx.emit(Swap(d, size, used, used * 100 // size if size else 0))
