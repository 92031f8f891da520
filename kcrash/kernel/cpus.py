"""CPUs: online/possible masks, per-CPU runqueues, the task on each CPU, and which CPU panicked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "parse_cpu_spec",
    "cpumask_cpus",
    "online_cpus",
    "possible_cpus",
    "runqueue",
    "cpu_curr",
    "panic_cpu",
]


def cpumask_cpus(k: Kernel, symbol: str) -> list[int]:
    """The CPUs set in a global `struct cpumask` variable such as `__cpu_online_mask`."""
    sym = k.symbols.lookup(symbol)
    if sym is None:
        raise KcrashError(f"this kernel has no {symbol}")
    nbits = k.nr_cpu_ids
    nbytes = ((nbits + 63) // 64) * 8
    bits = int.from_bytes(k.read(sym.address, nbytes), "little")
    return [cpu for cpu in range(nbits) if bits >> cpu & 1]


def online_cpus(k: Kernel) -> list[int]:
    try:
        return cpumask_cpus(k, "__cpu_online_mask")
    except (KcrashError, MemoryReadError):
        return list(range(max(1, len(k.cpu_registers_raw))))


def possible_cpus(k: Kernel) -> list[int]:
    try:
        return cpumask_cpus(k, "__cpu_possible_mask")
    except (KcrashError, MemoryReadError):
        return list(range(k.nr_cpu_ids))


def runqueue(k: Kernel, cpu: int) -> Object:
    """`struct rq` of a CPU (the per-cpu variable `runqueues`)."""
    sym = k.symbol("runqueues")
    return k.object_at("struct rq", k.per_cpu_address(sym.address, cpu))


def cpu_curr(k: Kernel, cpu: int) -> Object:
    """The task running on `cpu` when the dump was taken (`rq->curr`)."""
    return runqueue(k, cpu).curr.deref()


def panic_cpu(k: Kernel) -> int | None:
    """The CPU that called panic(), or None if no CPU did (the kernel's `panic_cpu`, -1 when unset)."""
    sym = k.symbols.lookup("panic_cpu")
    if sym is None:
        return None
    value = int.from_bytes(k.read(sym.address, 4), "little", signed=True)
    return None if value < 0 else value


def parse_cpu_spec(text: str, ncpus: int) -> list[int]:
    """crash's CPU list syntax ("3", "1,8,9", "1-23", "a"/"all") as sorted CPU numbers below `ncpus`."""
    if text in ("a", "all"):
        return list(range(ncpus))
    cpus: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                cpus.extend(range(int(lo), int(hi) + 1))
            else:
                cpus.append(int(lo))
        except ValueError:
            raise KcrashError(f"invalid cpu specification: {text}") from None
    for cpu in cpus:
        if not 0 <= cpu < ncpus:
            raise KcrashError(f"invalid cpu specification: {text}")
    return sorted(set(cpus))
