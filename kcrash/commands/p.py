"""`p` (print an expression, crash's leader and per-cpu forms) and `gdb` (a command straight to gdb).

Expressions are evaluated natively (kcrash.expr); what only gdb can evaluate goes to the session's gdb,
which reads the dump through kcrash's remote-protocol server (kcrash.gdb).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.errors import MemoryReadError
from kcrash.expr.crashfmt import p_leader, whatis_variable
from kcrash.expr.errors import ExprError, Unsupported
from kcrash.expr.session import FORMAT_LETTERS, expr_session, is_percpu_symbol
from kcrash.kernel.cpus import parse_cpu_spec
from kcrash.kernel.modules import lookup_module_symbol
from kcrash.kernel.tasks import task_cpu

__all__ = ["PrintRecord", "print_expression", "gdb_fallback", "split_options", "read_error"]

_OPTION_WORD = re.compile(r"-[dhxu]+$")


@dataclass(frozen=True)
class PrintRecord:
    """One printed value: `$history = text` (text as gdb prints it), with crash's leader if any."""

    expression: str
    history: int | None
    text: str
    leader: str | None = None
    source: str = "native"  # or "gdb"


def _render(rec: PrintRecord) -> str:
    body = f"${rec.history} = {rec.text}" if rec.history is not None else rec.text
    return p_leader(rec.leader, body) if rec.leader else body


def split_options(text: str, letters: str) -> tuple[set[str], str]:
    """Leading crash-style option words (`-x`, `-d`) of a raw argument text, and the rest verbatim."""
    flags: set[str] = set()
    rest = text.strip()
    while rest.startswith("-"):
        word, _, tail = rest.partition(" ")
        if not re.fullmatch(f"-[{letters}]+", word):
            break
        flags.update(word[1:])
        rest = tail.strip()
    return flags, rest


def read_error(e: MemoryReadError) -> KcrashError:
    """crash's line for a failed read made on gdb's behalf."""
    return KcrashError(f'{e}  type: "gdb_readmem_callback"')


def _format_letter(suffix: str | None) -> str | None:
    if not suffix:
        return None
    letters = [c for c in suffix if c in FORMAT_LETTERS]
    bad = [c for c in suffix if not (c in FORMAT_LETTERS or c in "bhwg" or c.isdigit())]
    if bad:
        raise UsageError(f'Undefined output format "{bad[0]}".')
    if any(c.isdigit() for c in suffix) and suffix.lstrip("0123456789") != suffix and suffix[0] != "1":
        raise KcrashError('Item count other than 1 is meaningless in "print" command.')
    return letters[-1] if letters else None


def gdb_fallback(ctx, text: str, why: Exception, fmt: str | None = None, radix: int = 10) -> str:
    """Evaluate with gdb what the native evaluator cannot: gdb's value text (after its `$N = `)."""
    if not ctx.settings.gdb:
        raise KcrashError(f"{why} (the gdb fallback is off)")
    from kcrash.gdb.mi import GdbError, GdbMissing

    session = expr_session(ctx)
    try:
        gdb = session.gdb(_context_task(ctx))
        return gdb.print_value(text, fmt=fmt, radix=radix)
    except GdbMissing as e:
        raise KcrashError(str(e)) from None
    except GdbError as e:
        raise KcrashError(str(e)) from None


def _context_task(ctx):
    try:
        return ctx.context_task
    except Exception:  # noqa: BLE001 - registers are a bonus for gdb; expressions work without them
        return None


def context_cpus(ctx, spec: str) -> list[int]:
    """The CPUs of a `SYMBOL:cpuspec` suffix: empty means the context task's CPU, else crash's CPU list."""
    spec = spec.strip()
    if spec == "":
        task = _context_task(ctx)
        if task is None:
            raise KcrashError("no current CPU for an empty cpu specification")
        return [task_cpu(task)]
    return parse_cpu_spec(spec, ctx.kernel.nr_cpu_ids)


def print_expression(
    ctx, text: str, fmt: str | None, radix: int, leader: str | None = None, user: bool = False
) -> PrintRecord:
    """Evaluate and format `text`, recording it in the value history; gdb for what kcrash cannot.
    `user`: addresses below the kernel half are the context task's user addresses (`p -u`)."""
    session = expr_session(ctx)
    try:
        value = session.evaluate(text, _context_task(ctx) if user else None)
        body = session.format(value, fmt, radix)
        source = "native"
    except Unsupported as why:
        gdb_text = gdb_fallback(ctx, text, why, fmt, radix)
        value, body, source = None, gdb_text, "gdb"
    except MemoryReadError as e:
        raise read_error(e) from None
    except ExprError as e:
        raise KcrashError(str(e)) from None
    history = session.history.record(value) if value is not None else session.history.record(None)
    return PrintRecord(text, history, body, leader, source)


def _per_cpu(ctx, name: str, spec: str | None, fmt: str | None, radix: int) -> bool:
    """crash's display_per_cpu_info: True when `name` was a per-cpu symbol and has been shown."""
    k = ctx.kernel
    if not is_percpu_symbol(k, name):
        return False
    session = expr_session(ctx)
    try:
        address, vtype = k.variable_type(name)
    except KcrashError:
        return False
    if spec is None:
        lines = ["PER-CPU DATA TYPE:", "  " + whatis_variable(name, vtype), "PER-CPU ADDRESSES:"]
        for cpu in range(k.nr_cpu_ids):
            lines.append(f"  [{cpu}]: {k.per_cpu_address(address, cpu):x}")
        ctx.write("\n".join(lines) + "\n")
        return True
    cpus = context_cpus(ctx, spec)
    from kcrash.objects import Object

    for cpu in cpus:
        value = Object(k, vtype, address=k.per_cpu_address(address, cpu))
        try:
            body = session.format(value, fmt, radix)
        except MemoryReadError as e:
            raise read_error(e) from None
        n = session.history.record(value)
        rec = PrintRecord(f"{name}:{cpu}", n, body, f"per_cpu({name}, {cpu})")
        ctx.emit(rec, text=_render)
    return True


@command(
    "p",
    summary="print the value of an expression",
    options=[
        Option("-x", help="hexadecimal output."),
        Option("-d", help="decimal output."),
        Option("-u", help="the expression refers to user addresses of the current context task."),
    ],
    arguments=[Argument("expression", nargs="*", help="a C expression, or a symbol[:cpuspec].")],
    raw=True,
    suffix=True,
    help="""
    SYNOPSIS
    p [-x|-d][-u] [expression | symbol[:cpuspec]]
    p/FMT expression

    DESCRIPTION
    Print the value of a C expression as gdb prints it: kernel variables, members
    (. and ->), subscripts, casts to any type the debug info knows, pointer
    arithmetic, sizeof, &, *, the value history $N, gdb's @ and {type}addr. A
    single symbol is printed as "SYMBOL = $N = value". Expressions kcrash cannot
    evaluate itself (gdb convenience functions, registers, floating point) are
    handed to gdb, which reads the dump through kcrash.

        -x  override the default output format with hexadecimal format.
        -d  override the default output format with decimal format.
        -u  the expression evaluates to a user address reference.
      /FMT  gdb's print formats: x d u o t c a z s.
     symbol:cpuspec  a per-cpu symbol: ":" the current CPU, ":a" all CPUs,
                     ":1,3,5-7" a CPU list. A per-cpu symbol alone shows its
                     type and per-cpu addresses.

    The default output format is decimal; "set radix 16" (alias "hex") makes it
    hexadecimal. The aliases "px" and "pd" print one value in hex or decimal.

    EXAMPLES
      kcrash> p jiffies
      jiffies = $1 = 4294892296
      kcrash> p init_task.comm
      $2 = "swapper/0\\000\\000\\000\\000\\000\\000"
      kcrash> p &init_task
      $3 = (struct task_struct *) 0xffffffff8a01aa40 <init_task>
      kcrash> px init_task.se.load
      kcrash> p sizeof(struct task_struct)
      kcrash> p runqueues:1
      kcrash> p ((struct task_struct *)0xffff888003a2c800)->comm
    """,
)
def p_command(ctx: Context, args: Args) -> None:
    flags, text = split_options(args.raw, "dhxu")
    if "x" in flags and "d" in flags:
        raise KcrashError("-d and -x are mutually exclusive")
    radix = 16 if "x" in flags or "h" in flags else 10 if "d" in flags else ctx.settings.radix
    fmt = _format_letter(args.suffix)
    if not text:
        raise UsageError("missing expression")
    words = text.split()
    first = words[0]
    if ":" in first and "::" not in first and not args.suffix:
        name, _, spec_text = first.rpartition(":")
        sym = ctx.kernel.symbols.lookup(name) if re.fullmatch(r"[A-Za-z_]\w*", name) else None
        if sym is not None and len(words) == 1:
            if _per_cpu(ctx, name, spec_text, fmt, radix):
                return
            ctx.warn(f"WARNING: {name} is not percpu; cpuspec ignored.")
            text = first = name
    leader = None
    # crash names the first word when it is a symbol (`jiffies = $1 = ...`, also for `jiffies + 1`).
    if not args.suffix and re.fullmatch(r"[A-Za-z_]\w*", first):
        if ctx.kernel.symbols.lookup(first) is not None:
            if len(words) == 1 and _per_cpu(ctx, first, None, fmt, radix):
                return
            leader = first
        elif lookup_module_symbol(ctx.kernel, first) is not None:
            leader = first  # a module's symbol
    rec = print_expression(ctx, text, fmt, radix, leader, user="u" in flags)
    ctx.emit(rec, text=_render)


@command(
    "gdb",
    summary="gdb command",
    arguments=[Argument("command", nargs="+", help="a gdb command line.")],
    raw=True,
    help="""
    SYNOPSIS
    gdb command ...

    DESCRIPTION
    Pass a command line straight to gdb, which kcrash starts on first use with
    the vmlinux loaded at the dump's KASLR offset and the dump's memory served by
    kcrash itself (over a private socket). The current context task's registers
    are gdb's registers, so "gdb bt" and "gdb info registers" describe it.
    Nothing of the command line is interpreted by a shell.

    EXAMPLES
      kcrash> gdb info symbol 0xffffffff81e0a940
      kcrash> gdb ptype struct list_head
      kcrash> gdb bt
    """,
)
def gdb_command(ctx: Context, args: Args) -> None:
    line = args.raw.strip()
    if not line:
        raise UsageError("missing gdb command")
    if not ctx.settings.gdb:
        raise KcrashError("the gdb fallback is off (--no-gdb)")
    from kcrash.gdb.mi import GdbError, GdbMissing

    try:
        gdb = expr_session(ctx).gdb(_context_task(ctx))
        output = gdb.console(line)
    except (GdbMissing, GdbError) as e:
        raise KcrashError(str(e)) from None
    if output:
        ctx.write(output if output.endswith("\n") else output + "\n")
