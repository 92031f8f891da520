"""printk_safe: the per-CPU buffers (4.11-5.14) that hold what printk could not log directly (NMI or
recursion context) until it is flushed into the log."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError
from kcrash.kernel.cpus import cpu_count

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["SafeBuffer", "safe_buffers"]


@dataclass(frozen=True)
class SafeBuffer:
    """One CPU's printk_safe_seq_buf: text printk could not log directly (NMI or recursion context)."""

    name: str  # "nmi_print_seq" or "safe_print_seq"
    cpu: int
    address: int
    length: int
    message_lost: int
    data: bytes


def safe_buffers(k: Kernel, cpus: int | None = None) -> list[SafeBuffer] | None:
    """The per-CPU printk_safe buffers of CPUs [0, cpus) (default: every CPU crash counts), or None if
    this kernel has none."""
    names = [n for n in ("nmi_print_seq", "safe_print_seq") if k.symbols.lookup(n) is not None]
    if not names:
        return None  # (checked first: it spares a type lookup on the kernels that have no such buffers)
    t = k.find_type("struct printk_safe_seq_buf")
    if t is None:
        return None
    if cpus is None:
        cpus = cpu_count(k)[0]
    len_hit, lost_hit, buf_hit = t.find_member("len"), t.find_member("message_lost"), t.find_member("buffer")
    if len_hit is None or lost_hit is None or buf_hit is None:
        raise KcrashError("-s not supported with this kernel version")
    buf_size = buf_hit[0].type.sizeof()
    out = []
    for name in names:
        address = k.address_of(name)
        for cpu in range(cpus):
            base = k.per_cpu_address(address, cpu)
            length = struct.unpack("<i", k.read(base + len_hit[1] // 8, 4))[0]
            lost = struct.unpack("<i", k.read(base + lost_hit[1] // 8, 4))[0]
            data = k.read(base + buf_hit[1] // 8, buf_size) if length > 0 else b""
            out.append(SafeBuffer(name, cpu, base, length, lost, data[: min(length, buf_size)]))
    return out
