"""`irq`: the IRQ descriptors and their actions; -u only those in use, -s per-CPU counts, -a affinities,
-b the softirq vectors, -d the x86_64 IDT."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, Option, UsageError, command
from kcrash.commands.timer import mkstring, symstr
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import cpu_count, parse_cpu_spec
from kcrash.kernel.irq import (
    idt_handlers,
    irq_actions,
    irq_affinity,
    irq_counts,
    irq_descs,
    irq_info,
    nr_irqs,
    softirq_actions,
)
from kcrash.kernel.loopwalk import WalkLoop
from kcrash.program import Kernel
from kcrash.records import hex_field

__all__ = ["IrqRecord", "IrqStatRecord", "IrqAffinityRecord", "SoftirqRecord", "IdtRecord", "cpu_ranges"]


@dataclass
class IrqRecord:
    """`irq`: one IRQ, its irq_desc (0 when it has none) and its actions' addresses and names."""

    irq: int
    irq_desc: int = hex_field(default=0)
    actions: list[int] = hex_field(default_factory=list)
    names: list[str | None] = field(default_factory=list)


@dataclass
class IrqStatRecord:
    """`irq -s`: one IRQ in use, its count on each CPU shown, its chip and flow names and action names."""

    irq: int
    counts: dict[str, int] = field(default_factory=dict)
    chip: str | None = None
    flow: str | None = None
    names: list[str] = field(default_factory=list)


@dataclass
class IrqAffinityRecord:
    """`irq -a`: one IRQ in use, its action names and its affinity CPUs."""

    irq: int
    names: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    affinity: str = ""


@dataclass
class SoftirqRecord:
    """`irq -b`: a registered softirq vector and its action."""

    vector: int
    action: int = hex_field()
    symbol: str = ""


@dataclass
class IdtRecord:
    """`irq -d`: one IDT gate and the handler it points at."""

    vector: int
    handler: int = hex_field()
    symbol: str = ""


def cpu_ranges(cpus: list[int]) -> str:
    """crash's display_cpu_affinity(): "0-3,8,10-11"."""
    parts: list[str] = []
    start = prev = None
    for cpu in cpus + [None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


_DESC_W = max(16, len("IRQ_DESC/_DATA"))
_ACTION_W = max(16, len("IRQACTION"))


def _dump_lines(
    k: Kernel, irq: int, descs: dict[int, int], in_use_only: bool
) -> tuple[IrqRecord | None, list[str]]:
    desc = descs.get(irq, 0)
    if not desc and in_use_only:
        return None, []
    actions = irq_actions(k, desc) if desc else []
    rec = IrqRecord(irq, desc, [a.address for a in actions], [a.name for a in actions])
    head = f"{mkstring(str(irq), 4, 'c')}  " + (
        mkstring(f"{desc:x}", _DESC_W, "cl") if desc else mkstring("(unused)", _DESC_W, "cl")
    )
    if not actions:
        return rec, [head + "  " + mkstring("(unused)", _ACTION_W, "cl") + "  "]
    lines = []
    for i, a in enumerate(actions):
        prefix = head if i == 0 else " " * (4 + 2 + _DESC_W)
        name = f'"{a.name}"' if a.name is not None else ""
        lines.append(f"{prefix}  {mkstring(f'{a.address:x}', _ACTION_W, 'cl')}  {name}")
    return rec, lines


@command(
    "irq",
    summary="IRQ data",
    options=[
        Option("-u", help="display only IRQs that are in use."),
        Option("-d", help="display the interrupt descriptor table."),
        Option("-b", help="display the softirq vectors."),
        Option("-a", help="display the affinity of the IRQs in use."),
        Option("-s", help="display the per-CPU counts of the IRQs in use."),
        Option("-c", metavar="cpu", dest="cpus", help="with -s, restrict the counts to these CPUs."),
    ],
    arguments=[Argument("index", nargs="*", complete="none", help="the IRQ numbers to display.")],
    help="""
    SYNOPSIS
    irq [[[index ...] | -u ] | -d | -b | -a | -s [-c cpu]]

    DESCRIPTION
    This command collaborates the data in an irq_desc_t, along with its
    associated hw_interrupt_type and irqaction structure data, into a
    consolidated per-IRQ display.  Alternatively, the intel interrupt
    descriptor table, bottom half data, cpu affinity for in-use irqs,
    or kernel irq stats may be displayed.  If no index value argument(s)
    nor any options are entered, the IRQ data for all IRQs will be displayed.

      index   a valid IRQ index.
         -u   dump data for in-use IRQs only.
         -d   dump the intel interrupt descriptor table.
         -b   dump bottom half data.
         -a   dump cpu affinity for in-use IRQs.
         -s   dump the kernel irq stats; if no cpu specified with -c, the
              irq stats of all cpus will be displayed.
     -c cpu   only usable with the -s option, dump the irq stats of the
              specified cpu[s]; cpu can be specified as "1,3,5", "1-3",
              "1,3,5-7,10", "all", or "a" (shortcut for "all").

    EXAMPLES
      kcrash> irq -u
       IRQ   IRQ_DESC/_DATA      IRQACTION      NAME
        0   ffff8ba981159e00  ffff8ba981155300  "timer"
      ...
    """,
)
def irq_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    try:
        if args.d:
            _idt(ctx)
        elif args.b:
            _softirqs(ctx)
        elif args.a:
            _affinity(ctx)
        elif args.s:
            _stats(ctx, args.cpus)
        else:
            if args.cpus is not None:
                raise UsageError("-c is only usable with -s")
            _dump(ctx, args.index, args.u)
    except WalkLoop as e:
        raise KcrashError(str(e)) from None
    except MemoryReadError as e:
        raise KcrashError(f"cannot read the IRQ data: {e}") from None
    _ = k


def _dump(ctx: Context, indices: list[str], in_use_only: bool) -> None:
    k = ctx.kernel
    count = nr_irqs(k)
    descs = irq_descs(k)
    wanted: list[int] = []
    for word in indices:
        try:
            irq = int(word, 0)
        except ValueError:
            raise KcrashError(f"invalid IRQ value: {word}") from None
        if irq >= count:
            raise KcrashError(f"invalid IRQ value: {irq}  ({count - 1} max)")
        wanted.append(irq)
    if indices:
        in_use_only = False
    lines = [f" IRQ  {mkstring('IRQ_DESC/_DATA', 16, 'cl')}  {mkstring('IRQACTION', 16, 'cl')}  NAME"]
    for irq in wanted or range(count):
        rec, text = _dump_lines(k, irq, descs, in_use_only)
        if rec is None:
            continue
        if ctx.json:
            ctx.emit(rec)
        lines += text
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _in_use(k: Kernel) -> list[tuple[int, int, list]]:
    descs = irq_descs(k)
    out = []
    for irq in range(nr_irqs(k)):
        desc = descs.get(irq)
        if not desc:
            continue
        actions = irq_actions(k, desc)
        if actions:
            out.append((irq, desc, actions))
    return out


def _stats(ctx: Context, spec: str | None) -> None:
    k = ctx.kernel
    ncpus = cpu_count(k)[0]
    cpus = parse_cpu_spec(spec, ncpus) if spec is not None else list(range(ncpus))
    lines = ["     " + "".join(f"{'CPU' + str(cpu):>10} " for cpu in cpus)]
    for irq, desc, actions in _in_use(k):
        counts = irq_counts(k, desc, cpus)
        info = irq_info(k, desc)
        names = [a.name for a in actions if a.name is not None]
        rec = IrqStatRecord(
            irq, {str(c): n for c, n in counts.items()}, info.chip_name, info.flow_name, names
        )
        if ctx.json:
            ctx.emit(rec)
        text = f"{irq:3d}: " + "".join(f"{counts[c]:10d} " for c in cpus)
        if info.chip:
            if info.chip_name is not None:
                text += f"{info.chip_name:>8}"
            if info.flow_name is not None:
                text += f"-{info.flow_name:<8}"
        lines.append(text + " " + ",".join(names))
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _affinity(ctx: Context) -> None:
    k = ctx.kernel
    ncpus = cpu_count(k)[0]
    lines = ["IRQ NAME                 AFFINITY"]
    for irq, desc, actions in _in_use(k):
        cpus = irq_affinity(k, desc, ncpus)
        names = [a.name for a in actions if a.name is not None]
        rec = IrqAffinityRecord(irq, names, cpus, cpu_ranges(cpus))
        if ctx.json:
            ctx.emit(rec)
        lines.append(f"{irq:3d} {','.join(names):<20} {rec.affinity}")
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _softirqs(ctx: Context) -> None:
    k = ctx.kernel
    lines = [f"SOFTIRQ_VEC {mkstring('ACTION', 16, 'c')}"]
    for i, action in enumerate(softirq_actions(k)):
        if not action:
            continue
        rec = SoftirqRecord(i, action, symstr(k, action))
        if ctx.json:
            ctx.emit(rec)
        pad = "    " if i < 10 else "   "
        lines.append(f"    [{i}]{pad} {mkstring(f'{action:x}', 16, 'c')}  <{rec.symbol}>")
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")


def _idt(ctx: Context) -> None:
    k = ctx.kernel
    lines = []
    for i, handler in enumerate(idt_handlers(k)):
        rec = IdtRecord(i, handler, symstr(k, handler))
        if ctx.json:
            ctx.emit(rec)
        text = rec.symbol or f"{handler:016x}"
        lines.append(f"{'  ' if i < 10 else ' ' if i < 100 else ''}[{i}] {text}")
    if not ctx.json:
        ctx.write("\n".join(lines) + "\n")
