"""The system-call table: each `sys_call_table` entry, the symbol crash names it by, and the source line
that defines it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError
from kcrash.kernel.modules import resolve_any

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["SyscallEntry", "syscall_table", "build_directory"]


@dataclass(frozen=True)
class SyscallEntry:
    """One entry of `sys_call_table`: its number, the handler's address and symbol name (None when no
    symbol holds it), and the first source line of the handler that is not in an included header."""

    number: int
    address: int
    name: str | None
    file: str | None
    line: int | None


def build_directory(k: Kernel) -> str | None:
    """The directory the kernel was built in, as the line tables name it: the file of `schedule` up to its
    "/kernel/" (crash's get_build_directory)."""
    for name in ("schedule", "do_schedule"):
        sym = k.symbols.lookup(name)
        if sym is None:
            continue
        hit = k.source_line(sym.address)
        if hit is None:
            return None
        for marker in ("/kernel/", "/./arch/"):
            if marker in hit[0]:
                return hit[0][: hit[0].index(marker)]
        return None
    return None


def _defining_line(k: Kernel, address: int, size: int) -> tuple[str, int] | None:
    for addr in range(address, address + max(size, 1)):
        hit = k.source_line(addr)
        if hit is None:
            continue
        if hit[0].endswith(".h") and "include/" in hit[0]:
            continue  # an inline from a header: look further into the handler
        return hit
    return None


def syscall_table(k: Kernel) -> list[SyscallEntry]:
    """Every entry of the x86_64 `sys_call_table` (its length from the debug info's array type)."""
    if k.symbols.lookup("sys_call_table") is None:
        raise KcrashError("this kernel has no sys_call_table")
    address, t = k.variable_type("sys_call_table")
    count = t.strip().length
    if not count:
        raise KcrashError("cannot determine the number of system calls")
    raw = k.read(address, 8 * count)
    out = []
    for i in range(count):
        entry = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
        hit = resolve_any(k, entry)
        if hit is None:
            out.append(SyscallEntry(i, entry, None, None, None))
            continue
        sym, _ = hit
        where = _defining_line(k, entry, sym.address + sym.size - entry if sym.size else 1)
        out.append(SyscallEntry(i, entry, sym.name, where[0] if where else None, where[1] if where else None))
    return out
