"""`timer`: the pending timer-wheel timers of each CPU's timer bases, and with -r the hrtimers of each CPU's
clock bases."""

from __future__ import annotations

from dataclasses import dataclass

from kcrash.commands import Args, Context, Option, command
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import cpu_count, parse_cpu_spec
from kcrash.kernel.modules import resolve_any
from kcrash.kernel.time import hz, uptime_jiffies
from kcrash.kernel.timer import (
    TimerLoop,
    hrtimer_clock_bases,
    hrtimer_cpu_base,
    hrtimers,
    jiffies,
    timer_base_names,
    timer_bases,
    wheel_timers,
)
from kcrash.program import Kernel
from kcrash.records import dec_field, hex_field

__all__ = ["TimerRecord", "HrtimerRecord", "mkstring", "symstr"]


@dataclass
class TimerRecord:
    """`timer`: one pending timer_list of a CPU's timer base."""

    cpu: int
    base: str
    timer_base: int = hex_field()
    expires: int = dec_field(default=0)
    tte: int = 0
    timer_list: int = hex_field(default=0)
    function: int = hex_field(default=0)
    symbol: str = ""


@dataclass
class HrtimerRecord:
    """`timer -r`: one queued hrtimer of a CPU's clock base (times in ns of that clock)."""

    cpu: int
    clock: int
    clock_base: int = hex_field()
    softexpires: int = dec_field(default=0)
    expires: int = dec_field(default=0)
    tte: int = dec_field(default=0)
    hrtimer: int = hex_field(default=0)
    function: int = hex_field(default=0)
    symbol: str = ""


def mkstring(s: str, size: int, how: str) -> str:
    """crash's mkstring() justification: "l", "r", or "c" (centred, an odd space on the left) / "cl"
    (centred, an odd space on the right); a string already `size` long or longer is left as it is."""
    extra = size - len(s)
    if extra <= 0:
        return s
    if how == "l":
        return s + " " * extra
    if how == "r":
        return " " * extra + s
    left = extra // 2 + (extra % 2 if how == "c" else 0)
    return " " * left + s + " " * (extra - left)


def symstr(k: Kernel, address: int) -> str:
    """crash's value_to_symstr(): "name" or "name+offset" (decimal), "" when nothing is there."""
    hit = k.resolve(address)
    if hit is None or k.symbols.has_aliases(hit[0].address):
        # crash's own table decides between names at one address, and holds the modules' symbols
        try:
            hit = resolve_any(k, address) or hit
        except KcrashError:
            pass
    if hit is None:
        return ""
    sym, off = hit
    return f"{sym.name}+{off}" if off else sym.name


def _cpus(k: Kernel, spec: str | None) -> list[int]:
    ncpus = cpu_count(k)[0]
    return parse_cpu_spec(spec, ncpus) if spec is not None else list(range(ncpus))


def _wheel(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    now = jiffies(k)
    flen = max(len(str(now)), len("JIFFIES"))
    names = timer_base_names(k)
    if not ctx.json:
        ctx.write(f"{mkstring('JIFFIES', flen, 'l')}\n{mkstring(str(now), flen, 'r')}\n\n")
    for n, cpu in enumerate(cpus):
        lines = [""] if n else []
        for name, base in zip(names, timer_bases(k, cpu), strict=False):
            lines.append(f"TIMER_BASES[{cpu}][{name}]: {base:x}")
            timers, faulty = wheel_timers(k, base)
            timers.sort(key=lambda t: t.expires)
            for i in faulty:
                ctx.warn(f"ignoring faulty timer_list in timer_base.vector[{i}] list")
            ttes = [_slong(t.expires - now) for t in timers]
            tlen = max(len(str(max((abs(t) for t in ttes), default=0))) + 1, len("TTE"))
            lines.append(
                f"  {mkstring('EXPIRES', flen, 'l')}     {mkstring('TTE', tlen, 'l')}     TIMER_LIST     FUNCTION"
            )
            for t, tte in zip(timers, ttes, strict=True):
                sym = symstr(k, t.function)
                if ctx.json:
                    ctx.emit(TimerRecord(cpu, name, base, t.expires, tte, t.address, t.function, sym))
                lines.append(
                    f"  {mkstring(str(t.expires), flen, 'r')}  {mkstring(str(tte), tlen, 'r')}"
                    f"  {t.address:16x}  {t.function:16x}  <{sym}>"
                )
            if not timers:
                lines.append("  (none)")
        if not ctx.json:
            ctx.write("\n".join(lines) + "\n")


def _slong(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _hrtimers(ctx: Context, cpus: list[int]) -> None:
    k = ctx.kernel
    up = uptime_jiffies(k) or 0
    base_now = up * (1_000_000_000 // hz(k))
    for n, cpu in enumerate(cpus):
        lines = [""] if n else []
        lines.append(f"CPU: {cpu}  HRTIMER_CPU_BASE: {hrtimer_cpu_base(k, cpu):x}")
        for j, cb in enumerate(hrtimer_clock_bases(k, cpu)):
            if j:
                lines.append("")
            label = symstr(k, cb.get_time) if cb.get_time is not None else cb.base_type
            head = f"  CLOCK: {cb.index}  HRTIMER_CLOCK_BASE: {cb.address:x}"
            lines.append(head + (f"  [{label}]" if label is not None else ""))
            now = base_now + cb.offset
            timers = hrtimers(k, cb.address)
            if not timers:
                lines.append("  (empty)")
                continue
            last = timers[-1]
            elen = max(len(str(last.expires)), 7)
            slen = max(len(str(last.softexpires)), 11)
            tlen = len(str(last.expires - now))
            lines.append("  " + mkstring("CURRENT", slen, "c"))
            lines.append("  " + mkstring(str(now), slen, "c"))
            lines.append(
                "  "
                + "  ".join(
                    [
                        mkstring("SOFTEXPIRES", slen, "c"),
                        mkstring("EXPIRES", elen, "c"),
                        mkstring("TTE", tlen, "c"),
                        mkstring("HRTIMER", 16, "cl"),
                        mkstring("FUNCTION", 16, "cl"),
                    ]
                )
            )
            for t in timers:
                sym = symstr(k, t.function)
                tte = t.expires - now
                if ctx.json:
                    ctx.emit(
                        HrtimerRecord(
                            cpu,
                            cb.index,
                            cb.address,
                            t.softexpires,
                            t.expires,
                            tte,
                            t.address,
                            t.function,
                            sym,
                        )
                    )
                lines.append(
                    f"  {mkstring(str(t.softexpires), slen, 'c')}  {mkstring(str(t.expires), elen, 'c')}"
                    f"  {mkstring(str(tte), tlen, 'r')}  {t.address:x}  {t.function:x}  <{sym}>"
                )
        if not ctx.json:
            ctx.write("\n".join(lines) + "\n")


@command(
    "timer",
    summary="timer queue data",
    options=[
        Option("-r", help="display the hrtimers of each CPU's clock bases."),
        Option("-C", metavar="cpu(s)", dest="cpus", help="restrict the output to these CPUs."),
    ],
    help="""
    SYNOPSIS
    timer [-r][-C cpu]

    DESCRIPTION
    This command displays the timer queue entries, both old- and new-style,
    in chronological order.  In the case of the old-style timers, the
    timer_table array index is shown; in the case of the new-style timers,
    the timer_list address is shown.  On later kernels, the timer data is
    per-cpu.

      -r  Display all hrtimer timers.
      -C cpu  Restrict the output to one or more CPUs, where multiple cpu[s] can
          be specified, for example, as "1,3,5", "1-3", or "1,3,5-7,10".

    EXAMPLES
      kcrash> timer
      JIFFIES
      4294894803

      TIMER_BASES[0][BASE_STD]: ffff8ba9bec20980
        EXPIRES        TTE        TIMER_LIST     FUNCTION
        4294895265     462  ffffffffae6604f8  ffffffffaccb79d0  <delayed_work_timer_fn>
      ...
    """,
)
def timer_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    cpus = _cpus(k, args.cpus)
    try:
        if args.r:
            _hrtimers(ctx, cpus)
        else:
            _wheel(ctx, cpus)
    except TimerLoop as e:
        raise KcrashError(str(e)) from None
    except MemoryReadError as e:
        raise KcrashError(f"cannot read the timers: {e}") from None
