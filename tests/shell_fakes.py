"""Test doubles for the shell tests: a Kernel-like object with a real SymbolTable and no dump, and a Shell
writing into StringIO."""

from __future__ import annotations

import io

from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.shell.context import Settings
from kcrash.shell.core import Shell
from kcrash.shell.registry import Registry

SYMBOLS = [
    Symbol("jiffies", 0xFFFFFFFF82A05000, 8, "D"),
    Symbol("jiffies_64", 0xFFFFFFFF82A05000, 8, "D"),
    Symbol("init_task", 0xFFFFFFFF8261A940, 0x2A00, "D"),
    Symbol("init_uts_ns", 0xFFFFFFFF82614A00, 0x180, "D"),
    Symbol("schedule", 0xFFFFFFFF81E9B2A0, 0xA0, "T"),
    Symbol("schedule_timeout", 0xFFFFFFFF81E9C000, 0x100, "T"),
]


class FakeMemory:
    zero_excluded = False

    def close(self) -> None:
        pass


class FakeKernel:
    """Just enough of kcrash.program.Kernel for the shell: paths, symbols, warnings, types."""

    def __init__(self, symbols: list[Symbol] | None = None, types: set[str] | None = None) -> None:
        self.vmlinux_path = "/fake/vmlinux"
        self.dump_path = "/fake/vmcore"
        self.warnings: list[str] = []
        self.cache: dict = {}  # Kernel.cache: what the helpers derived from this dump
        self.symbols = SymbolTable.from_symbols(symbols if symbols is not None else SYMBOLS)
        self.memory = FakeMemory()
        self.types = types or set()
        self.closed = False

    def find_type(self, name: str):
        return name if name in self.types else None

    def close(self) -> None:
        self.closed = True

    def prefetch_debuginfo(self) -> bool:
        return False


def make_shell(registry: Registry | None = None, kernel: FakeKernel | None = None, **settings) -> Shell:
    """A Shell over a FakeKernel with the built-in commands, its stdout/stderr in StringIO."""
    if registry is None:
        registry = Registry()
        registry.load_module("kcrash.commands", "kcrash", builtin=True)
    return Shell(
        kernel or FakeKernel(),
        registry=registry,
        settings=Settings(**settings),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )


def run(shell: Shell, line: str) -> tuple[int, str, str]:
    """Run one line; returns (status, stdout, stderr) produced by it."""
    out, err = shell.stdout, shell.stderr
    o0, e0 = len(out.getvalue()), len(err.getvalue())
    status = shell.execute(line)
    return status, out.getvalue()[o0:], err.getvalue()[e0:]
