"""Resource limits: a thread group's rlimits (signal_struct.rlim[]), named as in the kernel's RLIMIT_*."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["RLIMIT_NAMES", "RLIM_INFINITY", "Rlimit", "task_rlimits"]

# include/uapi/asm-generic/resource.h, in index order.
RLIMIT_NAMES = (
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
)
RLIM_INFINITY = (1 << 64) - 1


@dataclass(frozen=True)
class Rlimit:
    name: str  # "NOFILE", or "(unknown)" past the names this module knows
    current: int  # RLIM_INFINITY for no limit
    maximum: int


def task_rlimits(k: Kernel, signal: int) -> list[Rlimit]:
    """The rlimits in the signal_struct at `signal` (a task's `signal`), in RLIMIT_* order. Raises
    KcrashError when the kernel's signal_struct has no rlim array, MemoryReadError when it is not in the
    dump."""
    hit = k.type("struct signal_struct").find_member("rlim")
    if hit is None:
        raise KcrashError("cannot determine rlimit array location")
    count = hit[0].type.strip().length or 0
    if not count:
        raise KcrashError("cannot determine rlimit array size")
    raw = k.read(signal + hit[1] // 8, count * 16)
    return [
        Rlimit(
            RLIMIT_NAMES[i] if i < len(RLIMIT_NAMES) else "(unknown)", *struct.unpack_from("<QQ", raw, 16 * i)
        )
        for i in range(count)
    ]
