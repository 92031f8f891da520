"""`files`: a task's root and working directory and its open files, as crash's cmd_files() prints them
(filesys.c open_files_dump, file_dump, display_dentry_info)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcrash.commands import Args, Argument, Context, KcrashError, Option, UsageError, command
from kcrash.commands._crashtext import task_header
from kcrash.commands.ps import center
from kcrash.commands.task import current_task_info
from kcrash.errors import MemoryReadError
from kcrash.kernel import fs as kfs
from kcrash.kernel import tasks as th
from kcrash.kernel.tasks import TaskInfo
from kcrash.records import hex_field

__all__ = [
    "FilesRecord",
    "OpenFileRecord",
    "DentryRecord",
    "files_command",
    "open_files",
    "filename_component",
]

_W = 16  # crash's VADDR_PRLEN on 64-bit
HEADER = f" FD {center('FILE', _W)} {center('DENTRY', _W)} {center('INODE', _W)} TYPE PATH"
HEADER_NRPAGES = f" FD {center('INODE', _W)} {center('I_MAPPING', _W)} NRPAGES TYPE PATH"
DENTRY_HEADER = f"{center('DENTRY', _W)} {center('INODE', _W)} {center('SUPERBLK', _W)} TYPE PATH"


@dataclass
class OpenFileRecord:
    """One open file descriptor (inside a `files` record)."""

    fd: int
    file: int = hex_field()
    dentry: int = hex_field(default=0)
    inode: int = hex_field(default=0)
    type: str = ""
    path: str = ""
    mapping: int = hex_field(default=0)
    nrpages: int = 0


@dataclass
class FilesRecord:
    """A task's root, working directory and open files (only those -R matched, with -R)."""

    pid: int
    task: int = hex_field()
    cpu: int = 0
    command: str = ""
    root: str | None = None
    cwd: str | None = None
    files: list[OpenFileRecord] = field(default_factory=list)


@dataclass
class DentryRecord:
    """`files -d`: a dentry's inode, superblock, type and path."""

    dentry: int = hex_field(default=0)
    inode: int = hex_field(default=0)
    superblock: int = hex_field(default=0)
    type: str = ""
    path: str = ""


def _file_line(f: kfs.OpenFile, nrpages: bool) -> str:
    if not f.dentry:
        return f"{f.fd:3} {center(f'{f.file:x}', _W, rjust=True)} {f.dentry:016x} {center('?', _W)} ?    ?"
    if not f.inode:
        return (
            f"{f.fd:3} {center(f'{f.file:x}', _W, rjust=True)} {center(f'{f.dentry:x}', _W, rjust=True)} "
            f"{f.inode:016x} ?    ?"
        )
    kind = f"{f.type:<4}"
    if nrpages:
        return (
            f"{f.fd:3} {center(f'{f.inode:x}', _W, rjust=True)} {center(f'{f.mapping:x}', _W, rjust=True)} "
            f"{f.nrpages:>7} {kind} {f.path}"
        )
    return (
        f"{f.fd:3} {center(f'{f.file:x}', _W, rjust=True)} {center(f'{f.dentry:x}', _W, rjust=True)} "
        f"{center(f'{f.inode:x}', _W, rjust=True)} {kind} {f.path}"
    )


def filename_component(path: str, ref: str) -> bool:
    """crash's FILENAME_COMPONENT(path, ref)."""
    return (path == "/" and ref == "/") or (ref != "/" and ref in path)


class _Reference:
    """crash's `-R` reference: a number (a descriptor in decimal, else an address in hex) or a string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hexval: int | None = None
        self.decval: int | None = None

    def classify(self, max_fds: int) -> None:
        word = self.text
        self.hexval = self.decval = None
        digits = word[2:] if word[:2].lower() == "0x" else word
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
            return
        if any(c in "abcdefABCDEFxX" for c in word):
            self.hexval = int(digits, 16)
        elif int(word) <= max_fds:
            self.decval = int(word)
        else:
            self.hexval = int(word, 16)

    def matches(self, line: str) -> bool:
        """crash's open_file_reference() on a formatted file line."""
        words = line.split()
        if len(words) < 5:
            return False
        if self.hexval is not None or self.decval is not None:
            fd = int(words[0])
            if fd in (self.hexval, self.decval):
                return True
            for word in words[1:4]:
                if word != "?" and int(word, 16) == self.hexval:
                    return True
        if self.text == words[4]:
            return True
        return len(words) == 6 and filename_component(words[5], self.text)


def open_files(k, task: TaskInfo, nrpages: bool = False, ref: str | None = None) -> tuple[FilesRecord, str]:
    """One task's `files` block: the record and crash's text (without the task header unless -R found
    something, as crash prints it)."""
    rec = FilesRecord(task.pid, task.address, task.cpu, task.comm)
    lines: list[str] = []
    fsinfo = kfs.task_fs(k, task.address)
    reference = _Reference(ref) if ref is not None else None
    found = False
    root_pwd = ""
    if fsinfo is not None:
        rec.root, rec.cwd = fsinfo.root, fsinfo.cwd
        if reference is not None:
            root_pwd = f"ROOT: {fsinfo.root}    CWD: {fsinfo.cwd} "
            if filename_component(fsinfo.root, ref or "") or filename_component(fsinfo.cwd, ref or ""):
                lines += [task_header(task.pid, task.address, task.cpu, task.comm), root_pwd]
                found = True
        else:
            lines.append(f"ROOT: {fsinfo.root}    CWD: {fsinfo.cwd}")
    table = kfs.task_files(k, task.address)
    if not table.open:
        if reference is None:
            lines.append("No open files")
        elif found:
            lines.append("")
        return rec, "\n".join(lines)
    if reference is not None:
        reference.classify(table.max_fds)
    header_done = False
    for f in table.open:
        line = _file_line(f, nrpages)
        if reference is not None:
            if not reference.matches(line):
                continue
            if not found and not any(line.startswith("PID:") for line in lines):
                lines += [task_header(task.pid, task.address, task.cpu, task.comm), root_pwd]
            found = True
        if not header_done:
            lines.append(HEADER_NRPAGES if nrpages else HEADER)
            header_done = True
        lines.append(line)
        rec.files.append(
            OpenFileRecord(f.fd, f.file, f.dentry, f.inode, f.type, f.path, f.mapping, f.nrpages)
        )
    if reference is not None and found:
        lines.append("")
    return rec, "\n".join(lines)


def _dentry(ctx, word: str) -> None:
    k = ctx.kernel
    try:
        dentry = int(word, 16)
    except ValueError:
        raise KcrashError(f"invalid expression: {word}") from None
    table = th.task_table(k)
    init = table.with_pid(1)
    info = kfs.dentry_info(k, dentry, init[0].address if init else th.init_task(k).require_address())
    rec = DentryRecord(info.dentry, info.inode, info.superblock, info.type, info.path)
    kind = f"{info.type:<4}" if info.type != "N/A" else "N/A"
    text = (
        f"{DENTRY_HEADER}\n{info.dentry:>{_W}x} {info.inode:>{_W}x} "
        f"{center(f'{info.superblock:x}', _W)} {kind} {info.path}"
    )
    ctx.emit(rec, text=text)


@command(
    "files",
    summary="open files",
    options=[
        Option("-d", metavar="dentry", help="display a dentry's inode, superblock, type and path."),
        Option("-p", metavar="inode", help="dump the pages of an inode's page cache."),
        Option("-c", help="show each open file's inode, i_mapping and page-cache page count."),
        Option("-R", metavar="reference", multiple=True, help="show only what refers to this reference."),
    ],
    arguments=[Argument("task", nargs="*", complete="none", help="a pid or task address.")],
    help="""
    SYNOPSIS
    files [-d dentry] | [-p inode] | [-c] [-R reference] [pid | taskp] ...

    DESCRIPTION
    This command displays information about open files of a context.
    It prints the context's current root directory and current working
    directory, and then for each open file descriptor it prints a pointer
    to its file struct, a pointer to its dentry struct, a pointer to the
    inode, the file type, and the pathname.  If no arguments are entered,
    the current context is used.  The -R option, typically invoked from
    "foreach files", searches for references to a supplied number, address,
    or filename argument, and prints only the essential information leading
    up to and including the reference.  The -d option is not context
    specific, and only shows the data requested.

     -d dentry  given a hexadecimal dentry address, display its inode,
                super block, file type, and full pathname.
     -p inode   given a hexadecimal inode address, dump all of its pages
                that are in the page cache.
     -c         for each open file descriptor, prints a pointer to its
                inode, a pointer to the inode's i_mapping address_space
                structure, the number of pages of the inode that are in
                the page cache, the file type, and the pathname.
  -R reference  search for references to this file descriptor number,
                filename, dentry, inode, address_space, or file structure
                address.

    EXAMPLES
      Display the open files of the current context:

        kcrash> files
        PID: 110      TASK: ffff8ba981911800  CPU: 1    COMMAND: "kc-crasher"
        ROOT: /    CWD: /
         FD       FILE            DENTRY           INODE       TYPE PATH
          0 ffff8ba982528c00 ffff8ba9820b0900 ffff8ba9813a3ac0 CHR  /dev/null
          1 ffff8ba982528b00 ffff8ba9814173c0 ffff8ba9814510f8 REG  /proc/sysrq-trigger
    """,
)
def files_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    if len(args.R) > 1:
        raise UsageError("only one -R option allowed")
    if args.d is not None:
        _dentry(ctx, args.d)
        return
    if args.p is not None:
        raise KcrashError("-p option not supported yet by kcrash")
    ref = args.R[0] if args.R else None
    targets: list[tuple[TaskInfo, bool]] = []  # (task, a blank line after it: crash's STR_PID case)
    if not args.task:
        targets.append((current_task_info(ctx), False))
    for word in args.task:
        kind, tasks = th.lookup_tasks(k, word)
        if kind == "invalid":
            ctx.warn(f"invalid task or pid value: {word}")
            continue
        targets.extend((t, kind == "pid") for t in tasks)
    for index, (task, blank_after) in enumerate(targets):
        try:
            rec, text = open_files(k, task, nrpages=args.c, ref=ref)
        except MemoryReadError as e:
            ctx.warn(str(e))
            continue
        if ref is None:
            head = task_header(task.pid, task.address, task.cpu, task.comm)
            text = f"{head}\n{text}"
            if index and args.task:
                text = "\n" + text
        if ctx.json:
            ctx.emit(rec)
            continue
        if text:
            ctx.write(text + "\n")
        if blank_after:
            ctx.write("\n")
