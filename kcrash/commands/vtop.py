"""`vtop`, `ptov`, `pte`, `btop`, `ptob`: address translation as crash prints it — every page-table level,
the PTE's flags, the VMA of a user address and the struct page of the frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Argument, KcrashError, Option, command
from kcrash.commands.ps import center
from kcrash.commands.sym import parse_hex
from kcrash.errors import MemoryReadError
from kcrash.kernel import pagetable as pt
from kcrash.kernel.cpus import parse_cpu_spec
from kcrash.kernel.page import PageInfo, is_page_ptr, page_info, page_layout, pfn_to_page
from kcrash.kernel.swap import swap_file_name
from kcrash.kernel.tasks import lookup_tasks, task_cpu
from kcrash.kernel.vma import Vma, find_vma
from kcrash.records import hex_field

VADDR_PRLEN = 16
UVADDR_PRLEN = 10
_MASK64 = (1 << 64) - 1

VTOP_HELP = """
NAME
  vtop - virtual to physical

SYNOPSIS
  vtop [-c [pid | taskp]] [-u|-k] address ...

DESCRIPTION
  This command translates a user or kernel virtual address to its physical address.  Also displayed is
  the PTE translation, the vm_area_struct data for user virtual addresses, and the mem_map page data
  associated with the physical page.

    -u  the address is a user virtual address; only required on processors with overlapping kernel and
        user virtual address spaces.
    -k  the address is a kernel virtual address; only required on processors with overlapping kernel
        and user virtual address spaces.
    -c  pid | taskp  translate the virtual address from the page directory of the specified PID or
        hexadecimal task_struct pointer.  However, if this command is invoked from "foreach vtop", the
        pid or taskp argument should NOT be entered; the address will be translated using the page
        directory of each task specified by "foreach".
  address  a hexadecimal user or kernel virtual address.

  Every level the page-table walk reads is shown: for a kernel address the kernel's top-level table
  ("PGD DIRECTORY", its virtual address) and the entry for the address ("PAGE DIRECTORY"), then the PUD,
  PMD and PTE entries as "physical address of the entry => its value"; for a user address the task's
  PGD, PUD, PMD and PTE entries.  A 2 MB or 1 GB page ends the walk at the PMD or PUD.  A non-present,
  non-zero PTE is shown as a swap entry (SWAP device and OFFSET).

EXAMPLES
  Translate a kernel direct-map address:

    kcrash> vtop ffff8ba981250000
    VIRTUAL           PHYSICAL
    ffff8ba981250000  1250000

    PGD DIRECTORY: ffffffffae610000
    PAGE DIRECTORY: 19401067
       PUD: 19401530 => 19402067
       PMD: 19402048 => 132f063
       PTE: 132f280 => 8000000001250163
      PAGE: 1250000

          PTE         PHYSICAL  FLAGS
    8000000001250163   1250000  (PRESENT|RW|ACCESSED|DIRTY|GLOBAL|NX)

          PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS
    fffff297c0049400  1250000 ffff8ba9811b7200        0  1 fffffc0010200 slab,head

  Translate a user address of PID 1:

    kcrash> vtop -c 1 400000
    VIRTUAL     PHYSICAL
    400000      19601000

       PGD: 25b6000 => 185fe067
       PUD: 185fe000 => 185fa067
       PMD: 185fa010 => 185f9067
       PTE: 185f9000 => 8000000019601025
      PAGE: 19601000

          PTE         PHYSICAL  FLAGS
    8000000019601025  19601000  (PRESENT|USER|ACCESSED|NX)

          VMA           START       END     FLAGS FILE
    ffff8ba9bffcb8e8     400000     401000 8000071 /bin/busybox

          PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS
    fffff297c0658040 19601000 ffff8ba981941a88        0  6 fffffc008003e referenced,uptodate,dirty,lru,active,swapbacked
"""

PTOV_HELP = """
NAME
  ptov - physical to virtual

SYNOPSIS
  ptov address | offset:cpuspec ...

DESCRIPTION
  This command translates a hexadecimal physical address into a kernel virtual address (its address in
  the kernel's direct map).  Alternatively, a hexadecimal per-cpu offset and cpu specifier will be
  translated into the virtual addresses for each cpu specified.

       address  a physical address
  offset:cpuspec  a per-cpu offset with a CPU specifier:
                    :       CPU of the currently selected task.
                    :a[ll]  all CPUs.
                    :#[-#][,...]  CPU list(s), e.g. "1,3,5", "1-3", or "1,3,5-7,10".

EXAMPLES
  Translate physical address 1250000:

    kcrash> ptov 1250000
    VIRTUAL           PHYSICAL
    ffff8ba981250000  1250000

  Translate the per-cpu offset 1a000 on every CPU:

    kcrash> ptov 1a000:a
    PER-CPU OFFSET: 1a000
      CPU    VIRTUAL
      [0]  ffff8c01bdc1a000
      [1]  ffff8c01bdd1a000
"""

PTE_HELP = """
NAME
  pte - translate a page table entry

SYNOPSIS
  pte contents ...

DESCRIPTION
  This command translates the hexadecimal contents of a PTE into its physical page address and page
  bit settings.  If the PTE references a swap location, the swap device and offset are displayed.

EXAMPLES

    kcrash> pte 8000000001250163
          PTE         PHYSICAL  FLAGS
    8000000001250163   1250000  (PRESENT|RW|ACCESSED|DIRTY|GLOBAL|NX)
"""

BTOP_HELP = """
NAME
  btop - bytes to page

SYNOPSIS
  btop address ...

DESCRIPTION
  This command translates a hexadecimal address to its page number.

EXAMPLES

    kcrash> btop 512a000
    512a000: 512a
"""

PTOB_HELP = """
NAME
  ptob - page to bytes

SYNOPSIS
  ptob page_number ...

DESCRIPTION
  This command translates a page frame number to its byte value.  The number is decimal unless it has a
  0x prefix or hexadecimal letters.

EXAMPLES

    kcrash> ptob 0x512a
    512a: 512a000
"""


# --- records -----------------------------------------------------------------------------------------


@dataclass
class PageTableLevel:
    level: str
    address: int = hex_field()  # physical address of the entry
    value: int = hex_field()


@dataclass
class Vtop:
    """One address translated by `vtop` (crash's text in `text`)."""

    vaddr: int = hex_field()
    space: str = "kernel"  # "kernel" or "user"
    paddr: int | None = hex_field(default=None)  # None: not mapped / not accessible
    status: str = "mapped"  # mapped, not mapped, not accessible, not a kernel virtual address
    method: str = ""  # direct map, kernel text, page tables
    pgd: int | None = hex_field(default=None)  # kernel: the virtual address of the top-level table
    levels: list[PageTableLevel] = field(default_factory=list)
    page_size: int = 4096
    pte: int | None = hex_field(default=None)
    pte_flags: list[str] = field(default_factory=list)
    swap: str | None = None
    swap_offset: int | None = None
    vma: int | None = hex_field(default=None)
    vma_start: int | None = hex_field(default=None)
    vma_end: int | None = hex_field(default=None)
    vma_flags: int | None = hex_field(default=None)
    vma_file: str | None = None
    file_offset: int | None = hex_field(default=None)
    page: PageInfo | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass
class Ptov:
    paddr: int = hex_field()
    vaddr: int = hex_field()
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass
class PerCpuOffset:
    """`ptov OFFSET:CPUSPEC`: the per-cpu offset's address on each CPU asked for."""

    offset: int = hex_field()
    cpus: list[int] = field(default_factory=list)
    addresses: list[int] = hex_field(default_factory=list)
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass
class PteTranslation:
    pte: int = hex_field()
    paddr: int = hex_field()
    present: bool = False
    flags: list[str] = field(default_factory=list)
    swap: str | None = None
    swap_offset: int | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass
class PageConversion:
    """`btop` (bytes → page frame) or `ptob` (page frame → bytes)."""

    value: int = hex_field()
    result: int = hex_field()
    text: str = ""

    def __str__(self) -> str:
        return self.text


# --- text ----------------------------------------------------------------------------------------------


class SwapLocationError(KcrashError):
    """A swap entry whose device crash cannot name: crash has printed `partial` when it gives up."""

    def __init__(self, partial: str) -> None:
        super().__init__("cannot determine swap location")
        self.partial = partial


def _paddr_prlen(k) -> int:
    """crash's PADDR_PRLEN: the digits of the highest physical address (max_mapnr pages)."""
    return len(f"{page_layout(k).max_pfn << pt.PAGE_SHIFT:x}")


def page_header(k) -> str:
    width = max(_paddr_prlen(k), len("PHYSICAL"))
    return (
        f"{center('PAGE', VADDR_PRLEN)} {'PHYSICAL':>{width}} {center('MAPPING', VADDR_PRLEN, rjust=True)} "
        f"{center('INDEX', 8, rjust=True)}CNT FLAGS"
    )


def page_line(k, info: PageInfo) -> str:
    """crash's dump_mem_map() line of one page."""
    width = max(_paddr_prlen(k), len("PHYSICAL"))
    flags = f"{info.flags:x}"
    if info.flags and info.flag_names:
        flags += " " + ",".join(info.flag_names)
    return (
        f"{info.page:<{VADDR_PRLEN}x} {info.paddr:>{width}x} {info.mapping:>{VADDR_PRLEN}x} "
        f"{info.index:>8x} {info.count:>2} {flags}"
    )


def pte_lines(k, value: int) -> tuple[list[str], dict]:
    """crash's x86_64_translate_pte() block for one entry, and the facts it shows."""
    ptebuf = f"{value:x}"
    len1 = max(len(ptebuf), len("PTE"))
    present = pt.pte_present(value, user=True)
    if not present and value:
        swp_type, offset = pt.swap_entry(value)
        device = swap_file_name(k, swp_type)
        if " " in device:  # crash splits "device  OFFSET: n" into three words, or gives up
            raise SwapLocationError(f"{center('PTE', len1)}  ")
        len2 = max(len(device), len("SWAP"))
        len3 = max(len(str(offset)), len("OFFSET"))
        lines = [
            f"{center('PTE', len1)}  {center('SWAP', len2)}  {center('OFFSET', len3)}",
            f"{center(ptebuf, len1, rjust=True)}  {center(device, len2, rjust=True)}  "
            f"{center(str(offset), len3, rjust=True)}",
        ]
        return lines, {"swap": device, "swap_offset": offset, "flags": []}
    paddr = value & 0x000FFFFFFFFFF000
    physbuf = f"{paddr:x}"
    len2 = max(len(physbuf), len("PHYSICAL"))
    names = pt.pte_flag_names(value)
    flags = "(" + ("|".join(names) if value else "no mapping") + ")"
    lines = [
        f"{center('PTE', len1)}  {center('PHYSICAL', len2)}  FLAGS",
        f"{center(ptebuf, len1, rjust=True)}  {center(physbuf, len2, rjust=True)}  {flags}",
    ]
    return lines, {"paddr": paddr, "flags": names, "present": present}


def _phys_page(k, paddr: int) -> PageInfo | None:
    page = pfn_to_page(k, paddr >> pt.PAGE_SHIFT)
    if not is_page_ptr(k, page):
        return None
    try:
        return page_info(k, page)
    except MemoryReadError:
        return None


def _walk_lines(rec: Vtop, tr: pt.Translation, user: bool) -> list[str]:
    """The walk as crash prints it (levels, then PAGE and the PTE block, or the non-present PTE)."""
    lines: list[str] = []
    for i, entry in enumerate(tr.entries):
        if i == 0 and not user:
            lines.append(f"PGD DIRECTORY: {rec.pgd:x}")
            lines.append(f"PAGE DIRECTORY: {entry.value:x}")
        else:
            lines.append(f"   {entry.level}: {entry.address:x} => {entry.value:x}")
        rec.levels.append(PageTableLevel(entry.level, entry.address, entry.value))
    return lines


def _translate_lines(k, rec: Vtop, tr: pt.Translation, user: bool, out: list[str]) -> None:
    """Append the walk and the PTE block to `out`; when crash gives up on a swap entry, what it printed up
    to then goes with the error."""
    lines = _walk_lines(rec, tr, user)
    try:
        _leaf_lines(k, rec, tr, user, lines)
    except SwapLocationError as e:
        e.partial = "\n".join(out + lines) + "\n" + e.partial
        raise
    out += lines


def _leaf_lines(k, rec: Vtop, tr: pt.Translation, user: bool, lines: list[str]) -> None:
    leaf = tr.leaf
    if leaf is None:
        return
    walked_present = pt.pte_present(leaf.value, user=user and leaf.level in ("PMD", "PTE"))
    if walked_present and (leaf.level == "PTE" or leaf.value & 0x80):
        page = leaf.value & 0x000FFFFFFFFFF000
        if leaf.level == "PUD":
            lines.append(f"  PAGE: {page:x}  (1GB)")
        elif leaf.level == "PMD":
            lines.append(f"  PAGE: {page:x}  (2MB)")
        elif user:
            lines.append(f"  PAGE: {page:x}  ")
        else:
            lines.append(f"  PAGE: {page:x}")
        lines.append("")
        block, facts = pte_lines(k, leaf.value)
        lines += block
        rec.pte = leaf.value
        rec.pte_flags = facts.get("flags", [])
    elif leaf.level == "PTE" and leaf.value:
        lines.append("")
        block, facts = pte_lines(k, leaf.value)
        lines += block
        rec.pte = leaf.value
        rec.pte_flags = facts.get("flags", [])
        rec.swap = facts.get("swap")
        rec.swap_offset = facts.get("swap_offset")


def vtop_one(k, vaddr: int, task, space: str, use_task_pgd: bool, page_header_done: bool = False) -> Vtop:
    """Translate one address and build crash's text for it (crash prints the page header once per
    command: `page_header_done` leaves it out)."""
    rec = Vtop(vaddr=vaddr, space=space)
    lines: list[str] = []
    if space == "user":
        lines.append(f"{'VIRTUAL':<{UVADDR_PRLEN}}  {'PHYSICAL':<{VADDR_PRLEN}}")
        mm = int(task.member("mm"))
        vma = find_vma(k, mm, vaddr) if mm else None
        if vma is None:
            rec.status = "not accessible"
            lines += [f"{vaddr:<{UVADDR_PRLEN}x}  (not accessible)", ""]
            rec.text = "\n".join(lines) + "\n"
            return rec
        tr = pt.translate(k, vaddr, pt.task_pgd(k, task))
        _header(rec, tr, lines, UVADDR_PRLEN)
        _translate_lines(k, rec, tr, tr.user, lines)
        lines.append("")
        _vma_lines(k, rec, vma, lines)
        if rec.paddr is None and rec.swap is not None:
            lines += ["", f"SWAP: {rec.swap}  OFFSET: {rec.swap_offset}"]
        elif rec.paddr is None:
            offset = _file_offset(vma, vaddr)
            path = vma.path
            if path:
                rec.vma_file, rec.file_offset = path, offset
                lines += ["", f"FILE: {path}  OFFSET: {offset:x}"]
    else:
        lines.append(f"{'VIRTUAL':<{VADDR_PRLEN}}  {'PHYSICAL':<{VADDR_PRLEN}}")
        if vaddr < pt.kernel_layout(k).page_offset:
            rec.status = "not a kernel virtual address"
            lines += [f"{vaddr:<8x}  (not a kernel virtual address)", ""]
            rec.text = "\n".join(lines) + "\n"
            return rec
        rec.pgd = pt.kernel_pgd(k)
        tr = pt.translate(k, vaddr)
        _header(rec, tr, lines, UVADDR_PRLEN if use_task_pgd else VADDR_PRLEN)
        _translate_lines(k, rec, tr, False, lines)
    lines.append("")
    if rec.paddr is not None:
        info = _phys_page(k, rec.paddr)
        if info is not None:
            rec.page = info
            lines += [page_line(k, info)] if page_header_done else [page_header(k), page_line(k, info)]
    rec.text = "\n".join(lines) + "\n"
    return rec


def _header(rec: Vtop, tr: pt.Translation, lines: list[str], width: int) -> None:
    rec.method = tr.method
    rec.page_size = tr.page_size
    rec.paddr = tr.paddr
    if tr.paddr is None:
        rec.status = "not mapped"
        lines.append(f"{rec.vaddr:<{width}x}  (not mapped)")
    else:
        lines.append(f"{rec.vaddr:<{width}x}  {tr.paddr:<{VADDR_PRLEN}x}")
    lines.append("")


def _vma_lines(k, rec: Vtop, vma: Vma, lines: list[str]) -> None:
    path = vma.path
    rec.vma, rec.vma_start, rec.vma_end, rec.vma_flags = vma.address, vma.start, vma.end, vma.flags
    rec.vma_file = path or None
    lines.append(
        f"{center('VMA', VADDR_PRLEN)} {center('START', UVADDR_PRLEN, rjust=True)} "
        f"{center('END', UVADDR_PRLEN, rjust=True)}  FLAGS FILE"
    )
    lines.append(
        f"{center(f'{vma.address:x}', VADDR_PRLEN)} {vma.start:>{UVADDR_PRLEN}x} "
        f"{vma.end:>{UVADDR_PRLEN}x} {vma.flags:6x} {path}"
    )


def _file_offset(vma: Vma, vaddr: int) -> int:
    return (((vaddr - vma.start) >> pt.PAGE_SHIFT) + vma.pgoff) << pt.PAGE_SHIFT


# --- commands ------------------------------------------------------------------------------------------


def _address(word: str) -> int:
    value = parse_hex(word)
    if value is None:
        raise KcrashError(f'invalid input: "{word}"')
    return value & _MASK64


def _user_top(k) -> int:
    return 1 << 56 if k.translator.l5 else 1 << 47


@command(
    "vtop",
    summary="virtual to physical",
    options=[
        Option("-c", metavar="pid|taskp", dest="context", help="use this task's page tables."),
        Option("-u", help="the address is a user virtual address."),
        Option("-k", help="the address is a kernel virtual address."),
    ],
    arguments=[Argument("address", nargs="+", complete="none", help="hexadecimal virtual addresses.")],
    help=VTOP_HELP,
)
def vtop_command(ctx, args):
    k = ctx.kernel
    if args.u and args.k:
        raise KcrashError("-u and -k options are mutually exclusive")
    task = None
    if args.context is not None:
        kind, tasks = lookup_tasks(k, args.context)
        if kind == "invalid":
            raise KcrashError(f"invalid task or pid value: {args.context}")
        task = tasks[0].object(k)
    else:
        task = ctx.context_task
    header_done = False
    for n, word in enumerate(args.address):
        vaddr = _address(word)
        if args.u:
            space = "user"
        elif args.k:
            space = "kernel"
        else:
            is_user = vaddr < _user_top(k)
            is_kernel = vaddr >= pt.kernel_layout(k).page_offset
            if is_user == is_kernel:
                raise KcrashError(f"ambiguous address: {vaddr:x}  (requires -u or -k)")
            space = "user" if is_user else "kernel"
        if n:
            ctx.print("")
        try:
            rec = vtop_one(k, vaddr, task, space, args.context is not None, header_done)
        except MemoryReadError as e:
            raise KcrashError(f"page table not in the dump for address {vaddr:x}: {e}") from None
        except SwapLocationError as e:
            ctx.write(e.partial)
            raise KcrashError(str(e)) from None
        header_done = header_done or rec.page is not None
        ctx.emit(rec)


@command(
    "ptov",
    summary="physical to virtual",
    arguments=[Argument("address", nargs="+", complete="none", help="hexadecimal physical addresses.")],
    help=PTOV_HELP,
)
def ptov_command(ctx, args):
    k = ctx.kernel
    for n, word in enumerate(args.address):
        if ":" in word:
            _per_cpu(ctx, word, n)
            continue
        paddr = _address(word)
        vaddr = (k.translator.page_offset + paddr) & _MASK64
        text = f"{'VIRTUAL':<{VADDR_PRLEN}}  {'PHYSICAL':<{VADDR_PRLEN}}\n{vaddr:<{VADDR_PRLEN}x}  {paddr:<{VADDR_PRLEN}x}"
        ctx.emit(Ptov(paddr, vaddr, ("\n" if n else "") + text))


def _per_cpu(ctx, word: str, n: int) -> None:
    """`ptov OFFSET:CPUSPEC`: a per-cpu offset's address on each CPU of the spec (empty: the context's)."""
    k = ctx.kernel
    text, spec = word.split(":", 1)
    offset = _address(text)
    ncpus = k.nr_cpu_ids
    cpus = [task_cpu(ctx.context_task)] if not spec else parse_cpu_spec(spec, ncpus)
    width = len(f"[{ncpus - 1}]") + 2
    lines = [
        f"{'' if not n else chr(10)}PER-CPU OFFSET: {offset:x}",
        f"  {'CPU':<{width}}  {'VIRTUAL':<{VADDR_PRLEN}}",
    ]
    addresses = []
    for cpu in cpus:
        vaddr = (offset + k.per_cpu_offsets[cpu]) & _MASK64
        addresses.append(vaddr)
        lines.append(f"  {f'[{cpu}]':<{width}}{vaddr:x}")
    ctx.emit(PerCpuOffset(offset, cpus, addresses, "\n".join(lines)))


@command(
    "pte",
    summary="translate a page table entry",
    arguments=[Argument("contents", nargs="+", complete="none", help="hexadecimal PTE contents.")],
    help=PTE_HELP,
)
def pte_command(ctx, args):
    k = ctx.kernel
    for word in args.contents:
        value = _address(word)
        try:
            lines, facts = pte_lines(k, value)
        except SwapLocationError as e:
            ctx.write(e.partial)
            raise KcrashError(str(e)) from None
        ctx.emit(
            PteTranslation(
                pte=value,
                paddr=facts.get("paddr", 0),
                present=bool(facts.get("present")),
                flags=facts.get("flags", []),
                swap=facts.get("swap"),
                swap_offset=facts.get("swap_offset"),
                text="\n".join(lines),
            )
        )


@command(
    "btop",
    summary="bytes to page",
    arguments=[Argument("address", nargs="+", complete="none", help="hexadecimal addresses.")],
    help=BTOP_HELP,
)
def btop_command(ctx, args):
    for word in args.address:
        value = _address(word)
        result = value >> pt.PAGE_SHIFT
        ctx.emit(PageConversion(value, result, f"{value:x}: {result:x}"))


def _number(word: str) -> int:
    """crash's stoll(): decimal digits, else hexadecimal."""
    if word.isdigit():
        return int(word)
    return _address(word)


@command(
    "ptob",
    summary="page to bytes",
    arguments=[Argument("page", nargs="+", complete="none", help="page frame numbers.")],
    help=PTOB_HELP,
)
def ptob_command(ctx, args):
    for word in args.page:
        value = _number(word)
        result = (value << pt.PAGE_SHIFT) & _MASK64
        ctx.emit(PageConversion(value, result, f"{value:x}: {result:x}"))
