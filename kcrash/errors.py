"""Exceptions kcrash raises; the shell prints each as one line."""

from __future__ import annotations

__all__ = [
    "KcrashError",
    "DumpError",
    "DebugInfoError",
    "MemoryReadError",
    "PageExcludedError",
    "PageNotInDumpError",
    "FaultError",
    "LookupFailedError",
]


class KcrashError(Exception):
    """Base of every error kcrash reports to a user as one line."""


class DumpError(KcrashError):
    """A dump (or vmlinux) that cannot be opened: what, which file, why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


class DebugInfoError(DumpError):
    """The vmlinux lacks what kcrash needs, or does not match the dump."""


class MemoryReadError(KcrashError):
    """A read of dump memory that cannot be satisfied."""

    def __init__(self, address: int, physical: bool, message: str) -> None:
        super().__init__(message)
        self.address = address
        self.physical = physical


def _space(physical: bool) -> str:
    return "physical address" if physical else "kernel virtual address"


class PageExcludedError(MemoryReadError):
    """The dump format says this page was filtered out (makedumpfile dump level)."""

    def __init__(self, address: int, physical: bool = True) -> None:
        super().__init__(address, physical, f"page excluded: {_space(physical)}: {address:x}")


class PageNotInDumpError(MemoryReadError):
    """No such page in the dump (a hole, or beyond the end of a truncated file)."""

    def __init__(self, address: int, physical: bool = True, why: str = "seek error") -> None:
        super().__init__(address, physical, f"{why}: {_space(physical)}: {address:x}")


class FaultError(MemoryReadError):
    """A virtual address that the page tables do not map."""

    def __init__(self, address: int, why: str = "invalid kernel virtual address") -> None:
        super().__init__(address, False, f"{why}: {address:x}")


class LookupFailedError(KcrashError, LookupError):
    """A symbol, type or member name that does not exist."""
