"""CPUs: online/possible/present masks, how many CPUs crash counts, per-CPU runqueues, the task on each CPU
(the active tasks, with crash's `set -a` overrides), and which CPU panicked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "parse_cpu_spec",
    "cpumask_cpus",
    "online_cpus",
    "possible_cpus",
    "active_cpus",
    "cpu_count",
    "runqueue",
    "cpu_curr",
    "panic_cpu",
    "current_tasks",
    "active_tasks",
    "active_task_cpu",
    "mark_active",
    "clear_active_marks",
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
    """CPUs in the online mask (every CPU with saved registers when the mask cannot be read)."""
    try:
        return cpumask_cpus(k, "__cpu_online_mask")
    except (KcrashError, MemoryReadError):
        return list(range(max(1, len(k.cpu_registers_raw))))


def possible_cpus(k: Kernel) -> list[int]:
    """CPUs in the possible mask (0 .. nr_cpu_ids-1 when the mask cannot be read)."""
    try:
        return cpumask_cpus(k, "__cpu_possible_mask")
    except (KcrashError, MemoryReadError):
        return list(range(k.nr_cpu_ids))


def active_cpus(k: Kernel) -> list[int]:
    """CPUs that were running when the kernel crashed: the present ones (a CPU stopped by the panic is no
    longer online, but its runqueue still names the task it was running)."""
    try:
        return cpumask_cpus(k, "__cpu_present_mask")
    except (KcrashError, MemoryReadError):
        return online_cpus(k)


@per_kernel
def cpu_count(k: Kernel) -> tuple[int, int]:
    """(CPUs, online CPUs) as crash counts them: CPUs whose per-cpu area was set up, in order (their
    per-cpu `cpu_number` equals their index), and of those the ones in the online mask."""
    cpus = 0
    load = _address(k, "__per_cpu_load")
    number_sym = _address(k, "cpu_number")
    number_off = 0
    if number_sym is None and _address(k, "pcpu_hot") is not None:
        t = k.find_type("struct pcpu_hot")
        hit = t.find_member("cpu_number") if t is not None else None
        if hit is not None:
            number_sym, number_off = _address(k, "pcpu_hot"), hit[1] // 8
    try:
        offsets = k.per_cpu_offsets
    except (KcrashError, MemoryReadError):
        offsets = []
    if number_sym is not None and offsets:
        for i, off in enumerate(offsets):
            if load is not None and off == load:
                break
            try:
                value = int.from_bytes(k.read((number_sym + number_off + off) & (2**64 - 1), 4), "little")
            except MemoryReadError:
                break
            if value != i:
                break
            cpus += 1
    if not cpus:
        try:
            cpus = len(cpumask_cpus(k, "__cpu_possible_mask"))
        except (KcrashError, MemoryReadError):
            cpus = max(1, len(k.cpu_registers_raw))
    online = len([cpu for cpu in online_cpus(k) if cpu < cpus])
    return cpus, online


def _address(k: Kernel, name: str) -> int | None:
    sym = k.symbols.lookup(name)
    return sym.address if sym is not None else None


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


# --- active tasks -------------------------------------------------------------------------------------

_OVERRIDES = "kcrash.kernel.cpus.active_overrides"  # crash's `set -a`: CPU -> the task made active there


def _active_overrides(k: Kernel) -> dict[int, int]:
    return k.cache.get(_OVERRIDES) or {}


def current_tasks(k: Kernel, cpus: list[int]) -> dict[int, int]:
    """task address -> CPU for the task each of `cpus` was running (`rq->curr`), where it can be read."""
    out: dict[int, int] = {}
    for cpu in cpus:
        try:
            address = cpu_curr(k, cpu).address
        except (KcrashError, MemoryReadError):
            continue
        if address is not None:
            out[address] = cpu
    return out


@per_kernel
def _dump_active_tasks(k: Kernel) -> dict[int, int]:
    return current_tasks(k, active_cpus(k))


def active_tasks(k: Kernel) -> dict[int, int]:
    """task address -> CPU for the task current on each CPU when the dump was taken.

    Every present CPU counts, including one the panic took offline (its runqueue still names the task it
    was running, and crash marks that task active too). `set -a` overrides are applied on top.
    """
    overrides = _active_overrides(k)
    if not overrides:
        return dict(_dump_active_tasks(k))
    current = {cpu: address for address, cpu in _dump_active_tasks(k).items()}
    out: dict[int, int] = {}
    for cpu in active_cpus(k):
        if cpu in overrides:
            out[overrides[cpu]] = cpu
        elif cpu in current:
            out[current[cpu]] = cpu
    return out


class _HasAddress(Protocol):
    @property
    def address(self) -> int | None: ...


def active_task_cpu(k: Kernel, task: _HasAddress) -> int | None:
    """The CPU `task` was active on (honouring `set -a`), or None if it was not running."""
    if task.address is None:
        return None
    overrides = _active_overrides(k)
    if not overrides:
        return _dump_active_tasks(k).get(task.address)
    return active_tasks(k).get(task.address)


def mark_active(k: Kernel, cpu: int, address: int) -> None:
    """crash's `set -a`: treat the task at `address` as the task active on `cpu`."""
    k.cache.setdefault(_OVERRIDES, {})[cpu] = address


def clear_active_marks(k: Kernel) -> None:
    """Forget every `set -a` of this kernel."""
    k.cache.pop(_OVERRIDES, None)
