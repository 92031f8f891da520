"""Timers: the timer wheel (per-CPU `timer_bases[]`, 4.8+: each base's `vectors[]` of hlists of
`struct timer_list`) and the high-resolution timers (per-CPU `hrtimer_bases`, each clock base's
timerqueue, an rb tree of `struct hrtimer` nodes).

The walks are bounded and stop at a loop (kcrash.kernel.loopwalk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.loopwalk import WalkLoop, hlist_nodes, rb_inorder

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "TimerLoop",
    "jiffies",
    "timer_base_names",
    "timer_bases",
    "WheelTimer",
    "wheel_timers",
    "HrtimerClockBase",
    "Hrtimer",
    "hrtimer_cpu_base",
    "hrtimer_clock_bases",
    "hrtimers",
]

TimerLoop = WalkLoop  # what the walks here raise on a loop


def jiffies(k: Kernel) -> int:
    """The kernel's `jiffies` (an unsigned long)."""
    return k.read_u64(k.symbol("jiffies").address)


def _bases_type(k: Kernel) -> tuple[int, int, int]:
    """(address of per-cpu timer_bases, number of bases, sizeof(struct timer_base))."""
    address, t = k.variable_type("timer_bases")
    count = t.strip().length or 1
    return address, count, k.type("struct timer_base").sizeof()


def timer_base_names(k: Kernel) -> list[str]:
    """The names of the bases in `timer_bases[]`: BASE_STD (one base), BASE_STD and BASE_DEF (two: NO_HZ
    before 6.9), BASE_LOCAL, BASE_GLOBAL and BASE_DEF (three: 6.9+). The kernel names them by #define, so the
    debug info does not carry them; the array's length tells which set applies."""
    _, count, _ = _bases_type(k)
    return {1: ["BASE_STD"], 2: ["BASE_STD", "BASE_DEF"], 3: ["BASE_LOCAL", "BASE_GLOBAL", "BASE_DEF"]}.get(
        count, [f"BASE_{i}" for i in range(count)]
    )


def timer_bases(k: Kernel, cpu: int) -> list[int]:
    """The addresses of `cpu`'s `struct timer_base`s, in array order. Raises KcrashError on kernels
    without `timer_bases` (before 4.8)."""
    if k.symbols.lookup("timer_bases") is None:
        raise KcrashError("this kernel has no timer_bases (timer wheels before 4.8 are not supported)")
    address, count, size = _bases_type(k)
    base = k.per_cpu_address(address, cpu)
    return [base + i * size for i in range(count)]


@dataclass(frozen=True)
class WheelTimer:
    """A pending `struct timer_list`: where it is, when it expires (jiffies) and what it calls."""

    address: int
    expires: int
    function: int


def wheel_timers(k: Kernel, base: int) -> tuple[list[WheelTimer], list[int]]:
    """The timers queued on the `struct timer_base` at `base`, vector by vector in list order, and the
    indices of vectors whose list could not be walked (a loop or an unreadable node)."""
    tb = k.type("struct timer_base")
    hit = tb.find_member("vectors")
    if hit is None:
        raise KcrashError("cannot determine timer_base.vectors[] array size")
    nvec = hit[0].type.strip().length or 0
    if not nvec:
        raise KcrashError("cannot determine timer_base.vectors[] array size")
    raw = k.read(base + hit[1] // 8, 8 * nvec)
    tl = k.type("struct timer_list")
    entry, expires, function = tl.offsetof("entry"), tl.offsetof("expires"), tl.offsetof("function")
    timers: list[WheelTimer] = []
    faulty: list[int] = []
    for i in range(nvec):
        first = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
        if not first:
            continue
        try:
            nodes = list(hlist_nodes(k, first, f"timer_base.vectors[{i}]"))
        except (TimerLoop, MemoryReadError):
            faulty.append(i)
            continue
        for node in nodes:
            timer = node - entry
            try:
                timers.append(WheelTimer(timer, k.read_u64(timer + expires), k.read_u64(timer + function)))
            except MemoryReadError:
                continue
    return timers, faulty


# --- hrtimers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HrtimerClockBase:
    """One `struct hrtimer_clock_base` of a CPU: its index, address, its `get_time` function (None on 6.18+,
    which dropped it) and then the name of its `hrtimer_base_type` (None where the enum is unknown)."""

    index: int
    address: int
    get_time: int | None
    base_type: str | None
    offset: int  # ktime offset of this clock from CLOCK_MONOTONIC


@dataclass(frozen=True)
class Hrtimer:
    """A queued `struct hrtimer`: soft and hard expiry (ns of its clock) and the callback."""

    address: int
    softexpires: int
    expires: int
    function: int


def hrtimer_cpu_base(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s `struct hrtimer_cpu_base` (per-cpu `hrtimer_bases`)."""
    return k.per_cpu_address(k.symbol("hrtimer_bases").address, cpu)


def hrtimer_clock_bases(k: Kernel, cpu: int) -> list[HrtimerClockBase]:
    """`cpu`'s clock bases (`hrtimer_cpu_base.clock_base[]`), in array order."""
    cb = k.type("struct hrtimer_cpu_base")
    hit = cb.find_member("clock_base")
    if hit is None:
        raise KcrashError("this kernel's hrtimer_cpu_base has no clock_base")
    count = hit[0].type.strip().length or 0
    bt = k.type("struct hrtimer_clock_base")
    size = bt.sizeof()
    get_time = bt.find_offset("get_time")
    index = bt.find_offset("index")
    offset = bt.find_offset("offset")
    enum = k.find_type("enum hrtimer_base_type")
    names = {e.value: e.name for e in (enum.strip().enumerators or ())} if enum is not None else {}
    start = hrtimer_cpu_base(k, cpu) + hit[1] // 8
    out = []
    for i in range(count):
        address = start + i * size
        off = k.read_u64(address + offset) if offset is not None else 0
        fn = k.read_u64(address + get_time) if get_time is not None else None
        base_type = names.get(k.read_u32(address + index)) if index is not None and fn is None else None
        out.append(HrtimerClockBase(i, address, fn, base_type, off))
    return out


def hrtimers(k: Kernel, clock_base: int) -> list[Hrtimer]:
    """The hrtimers queued on a clock base, earliest first (the timerqueue's rb tree in order)."""
    bt = k.type("struct hrtimer_clock_base")
    root_off = bt.find_offset("active.rb_root.rb_root.rb_node")
    ht = k.type("struct hrtimer")
    node_off = ht.find_offset("node.node")
    expires_off = ht.find_offset("expires")
    if expires_off is None:
        expires_off = ht.find_offset("node.expires")
    soft_off = ht.find_offset("_softexpires")
    function_off = ht.find_offset("function")
    if root_off is None or node_off is None or expires_off is None or function_off is None:
        raise KcrashError("cannot determine the hrtimer structures")
    root = k.read_u64(clock_base + root_off)
    out: list[Hrtimer] = []
    for node in rb_inorder(k, root, "hrtimer timerqueue"):
        timer = node - node_off
        expires = _s64(k.read_u64(timer + expires_off))
        soft = _s64(k.read_u64(timer + soft_off)) if soft_off is not None else expires
        out.append(Hrtimer(timer, soft, expires, k.read_u64(timer + function_off)))
    return out


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v
