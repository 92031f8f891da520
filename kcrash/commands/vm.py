"""`vm`: a task's address space (mm_struct, page directory, RSS, size) and its VMAs, as crash's cmd_vm()
prints them (memory.c vm_area_dump, handle_each_vm_area, vm_area_page_dump, do_vm_flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.commands._crashtext import task_header
from kcrash.commands.files import filename_component
from kcrash.commands.ps import center
from kcrash.commands.task import current_task_info
from kcrash.errors import MemoryReadError
from kcrash.kernel import tasks as th
from kcrash.kernel.mm import PAGE_SIZE, mm_info, task_mem_usage
from kcrash.kernel.tasks import TaskInfo
from kcrash.kernel.vma import Vma, mm_vmas, user_vtop
from kcrash.records import hex_field

__all__ = ["VmRecord", "VmaRecord", "vm_command", "vm_flag_names"]

_W = 16  # VADDR_PRLEN
_UW = 10  # UVADDR_PRLEN
_PW = 8  # MAX(PADDR_PRLEN, strlen("PHYSICAL"))
VM_HEADER = f"{center('MM', _W)}  {center('PGD', _W)}  {center('RSS', 6)}  {center('TOTAL_VM', 8)}"
VMA_HEADER = (
    f"{center('VMA', _W)} {center('START', _UW, rjust=True)} {center('END', _UW, rjust=True)}  FLAGS FILE"
)
PAGE_HEADER = f"{'VIRTUAL':<{_UW}}  {'PHYSICAL':<{_PW}}"


@dataclass
class VmaRecord:
    """One VMA of a `vm` record; with -p, `pages` lists [virtual, physical or null] pairs."""

    vma: int = hex_field()
    start: int = hex_field(default=0)
    end: int = hex_field(default=0)
    flags: int = hex_field(default=0)
    file: str = ""
    pages: list | None = None


@dataclass
class VmRecord:
    """A task's address space: mm_struct, pgd, RSS and total size (KiB), and its VMAs."""

    pid: int
    task: int = hex_field()
    cpu: int = 0
    command: str = ""
    mm: int = hex_field(default=0)
    pgd: int = hex_field(default=0)
    rss: int = 0
    total_vm: int = 0
    vmas: list[VmaRecord] = field(default_factory=list)


def vm_flag_names(k, flags: int) -> list[str]:
    """crash's do_vm_flags() names, in its order (crash's own table of the historical VM_* bits)."""
    upward = k.symbols.lookup("expand_upwards") is not None
    huge = k.type("struct mm_struct").find_member("pmd_huge_pte") is not None
    table = [
        (0x1, "READ"),
        (0x2, "WRITE"),
        (0x4, "EXEC"),
        (0x8, "SHARED"),
        (0x10, "MAYREAD"),
        (0x20, "MAYWRITE"),
        (0x40, "MAYEXEC"),
        (0x80, "MAYSHARE"),
        (0x100, "GROWSDOWN"),
        (0x200, "GROWSUP" if upward else "NOHUGEPAGE"),
        (0x400, "PFNMAP"),
        (0x800, "DENYWRITE"),
        (0x1000, "EXECUTABLE"),
        (0x2000, "LOCKED"),
        (0x4000, "IO"),
        (0x8000, "SEQ_READ"),
        (0x10000, "RAND_READ"),
        (0x20000, "DONTCOPY"),
        (0x40000, "DONTEXPAND"),
        (0x80000, "RESERVED"),
        (0x400000, "HUGETLB"),
        (0x100000, "ACCOUNT"),
        (0x800000, "NONLINEAR"),
        (0x1000000, "HUGEPAGE" if huge else "MAPPED_COPY"),
        (0x2000000, "INSERTPAGE"),
        (0x4000000, "ALWAYSDUMP"),
        (0x8000000, "CAN_NONLINEAR"),
        (0x10000000, "MIXEDMAP"),
        (0x20000000, "SAO"),
        (0x40000000, "PFN_AT_MMAP"),
        (0x80000000, "MERGEABLE"),
    ]
    return [name for mask, name in table if flags & mask]


def _vm_data(mm: int, pgd: int, rss_k: int, total_k: int) -> str:
    values = f"{center(f'{mm:x}', _W)}  {center(f'{pgd:x}', _W)}  {center(f'{rss_k}k', 6)}  {center(f'{total_k}k', 8)}"
    return f"{VM_HEADER}\n{values}"


def _vma_line(v: Vma) -> str:
    return f"{center(f'{v.address:x}', _W)} {v.start:>{_UW}x} {v.end:>{_UW}x} {v.flags:6x} {v.path}"


def _page_line(k, v: Vma, pgd: int, vaddr: int) -> tuple[str, int | None, int | None]:
    """crash's line for one page of a VMA, with the physical address and file offset it shows."""
    paddr = user_vtop(k, pgd, vaddr)
    if paddr is not None:
        return f"{vaddr:<{_UW}x}  {paddr:>{_PW}x}", paddr, None
    if v.file and v.dentry:
        offset = vaddr - v.start + v.pgoff * PAGE_SIZE
        return f"{vaddr:<{_UW}x}  FILE: {v.path}  OFFSET: {offset:x}", None, offset
    return f"{vaddr:<{_UW}x}  (not mapped)", None, None


class _Ref:
    """crash's vm -R reference: a number (hex, and decimal when it reads as one) or a file name."""

    def __init__(self, text: str) -> None:
        self.text = text
        digits = text[2:] if text[:2].lower() == "0x" else text
        self.number = bool(digits) and all(c in "0123456789abcdefABCDEF" for c in digits)
        self.hexval = int(digits, 16) if self.number else None

    def hex(self, value: int | None) -> bool:
        return self.number and value is not None and value == self.hexval


def _dump(ctx, task: TaskInfo, mode: str, single: int, ref: _Ref | None, radix: str) -> None:
    k = ctx.kernel
    usage = task_mem_usage(k, th.task_table(k), task)
    mm = task.mm
    pgd = mm_info(k, mm).pgd if mm else 0
    rss_k, total_k = usage.rss * PAGE_SIZE // 1024, usage.total_vm * PAGE_SIZE // 1024
    header = task_header(task.pid, task.address, task.cpu, task.comm)
    rec = VmRecord(task.pid, task.address, task.cpu, task.comm, mm, pgd, rss_k, total_k)
    out: list[str] = []
    if ref is not None and (ref.hex(mm) or ref.hex(pgd)) and mm:
        _flush(ctx, rec, [header, _vm_data(mm, pgd, rss_k, total_k), ""])
        return
    if mode in ("", "p") and ref is None:
        out.append(_vm_data(mm, pgd, rss_k, total_k))
    if not mm:
        _flush(ctx, rec, out)
        return
    if mode == "m":
        _flush(ctx, rec, out, final=False)
        ctx.run(f"struct mm_struct{radix} {mm:x}")
        return
    if mode == "" and ref is None:
        out.append(VMA_HEADER)
    found_single = False
    found_header = False
    last_vma = 0
    after_pages = False
    for v in mm_vmas(k, mm):
        if mode == "P" and v.address != single:
            continue
        if mode == "v":
            _flush(ctx, rec, out, final=False)
            out = []
            ctx.run(f"struct vm_area_struct{radix} {v.address:x}")
            continue
        vrec = VmaRecord(v.address, v.start, v.end, v.flags, v.path)
        if ref is not None:
            hit = (
                ref.hex(v.address)
                or ref.hex(v.flags)
                or (v.path != "" and filename_component(v.path, ref.text))
            )
            pages = []
            for vaddr in range(v.start, v.end, PAGE_SIZE):
                line, paddr, offset = _page_line(k, v, pgd, vaddr)
                if ref.hex(vaddr) or ref.hex(paddr) or ref.hex(offset):
                    pages.append(line)
            if (hit or pages) and not found_header:
                out += [header, _vm_data(mm, pgd, rss_k, total_k)]
                found_header = True
            if hit:  # crash repeats the VMA header only after a page listing
                if not last_vma or after_pages:
                    out.append(VMA_HEADER)
                out.append(_vma_line(v))
                last_vma, after_pages = v.address, False
            if pages:
                if last_vma != v.address:
                    out += [VMA_HEADER, _vma_line(v)]
                    last_vma = v.address
                out += [PAGE_HEADER, *pages]
                after_pages = True
            if hit or pages:
                rec.vmas.append(vrec)
            continue
        if mode in ("p", "P"):
            found_single = True
            out += [VMA_HEADER, _vma_line(v), PAGE_HEADER]
            vrec.pages = []
            for vaddr in range(v.start, v.end, PAGE_SIZE):
                line, paddr, _ = _page_line(k, v, pgd, vaddr)
                out.append(line)
                vrec.pages.append([f"{vaddr:#x}", None if paddr is None else f"{paddr:#x}"])
        else:
            out.append(_vma_line(v))
        rec.vmas.append(vrec)
    if mode == "P" and not found_single:
        out.append("(not found)")
    if found_header:
        out.append("")
    _flush(ctx, rec, out)


def _flush(ctx, rec: VmRecord, lines: list[str], final: bool = True) -> None:
    """Write the text gathered so far; in JSON mode, the record once it is complete."""
    if ctx.json:
        if final:
            ctx.emit(rec)
        return
    if lines:
        ctx.write("\n".join(lines) + "\n")


@command(
    "vm",
    summary="virtual memory",
    options=[
        Option("-p", help="translate each virtual page of each VMA to its physical address."),
        Option("-P", metavar="vma", help="the same for one VMA only."),
        Option("-m", help="dump the mm_struct."),
        Option("-v", help="dump each vm_area_struct."),
        Option("-f", metavar="vm_flags", help="translate a vm_flags value."),
        Option("-R", metavar="reference", multiple=True, help="search for a number, address or file name."),
        Option("-x", help="-m and -v: hexadecimal numbers."),
        Option("-d", help="-m and -v: decimal numbers."),
    ],
    arguments=[Argument("task", nargs="*", complete="none", help="a pid or task address.")],
    help="""
    SYNOPSIS
    vm [-p | -P vma | -v | -m | -x | -d] [-R reference] [pid | task] ... [-f vm_flags]

    DESCRIPTION
    This command displays basic virtual memory information of a context,
    consisting of a pointer to its mm_struct and page directory, its RSS and
    total virtual memory size; and a list of pointers to each vm_area_struct,
    its starting and ending address, vm_flags value, and file pathname.  If no
    arguments are entered, the current context is used.

            -p  translate each virtual page of each VM area to its physical
                address; if a page is not mapped, show the file offset of a
                file-backed area, else "(not mapped)".
        -P vma  similar to -p, but only translate the pages of one VM area.
   -R reference  search for references to this number or filename.
            -m  dump the mm_struct associated with the task.
            -v  dump all of the vm_area_structs associated with the task.
            -x  override the default output format for -m or -v with hexadecimal.
            -d  override the default output format for -m or -v with decimal.
   -f vm_flags  translate the bits of a FLAGS (vm_flags) value.

    EXAMPLES
      kcrash> vm 1
      PID: 1        TASK: ffff8ba9811fe000  CPU: 1    COMMAND: "init"
             MM               PGD          RSS    TOTAL_VM
      ffff8ba981055b00  ffff8ba9825b6000  1804k    2260k
            VMA           START       END     FLAGS FILE
      ffff8ba9bffcb8e8     400000     401000 8000071 /bin/busybox
    """,
)
def vm_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    if args.x and args.d:
        raise KcrashError("-d and -x are mutually exclusive")
    if args.f is not None:
        try:
            flags = int(args.f[2:] if args.f[:2].lower() == "0x" else args.f, 16)
        except ValueError:
            raise KcrashError(f"invalid expression: {args.f}") from None
        ctx.print(f"{flags:x}: ({'|'.join(vm_flag_names(k, flags))})")
        return
    modes = [m for m in ("p", "m", "v") if getattr(args, m)] + (["P"] if args.P is not None else [])
    if len(modes) > 1 or len(args.R) > 1 or (args.R and modes and modes != ["p"]):
        if len(args.R) > 1:
            ctx.warn("only one -R option allowed")
        raise UsageError("-p, -P, -m, -v and -R (with anything but -p) are mutually exclusive")
    mode = modes[0] if modes else ""
    ref = _Ref(args.R[0]) if args.R else None
    single = 0
    if args.P is not None:
        try:
            single = int(args.P[2:] if args.P[:2].lower() == "0x" else args.P, 16)
        except ValueError:
            raise KcrashError(f"invalid expression: {args.P}") from None
    radix = " -x" if args.x else " -d" if args.d else ""
    targets: list[TaskInfo] = []
    if not args.task:
        targets.append(current_task_info(ctx))
    for word in args.task:
        kind, tasks = th.lookup_tasks(k, word)
        if kind == "invalid":
            ctx.warn(f"invalid task or pid value: {word}")
            continue
        targets.extend(tasks)
    for index, task in enumerate(targets):
        if ref is None and not ctx.json:
            lead = "\n" if index and args.task else ""
            ctx.write(f"{lead}{task_header(task.pid, task.address, task.cpu, task.comm)}\n")
        try:
            _dump(ctx, task, mode, single, ref, radix)
        except MemoryReadError as e:
            ctx.warn(str(e))
