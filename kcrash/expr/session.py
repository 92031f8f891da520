"""One expression session per shell: the Scope (names, types, `$N` history), the formatter settings
and, started only when needed, the gdb fallback. Commands reach it with `expr_session(ctx)`."""

from __future__ import annotations

from typing import Any

from kcrash.expr.errors import ExprError
from kcrash.expr.evaluate import Evaluator
from kcrash.expr.scope import Scope
from kcrash.expr.valfmt import PrintOptions, ValueFormatter
from kcrash.objects import Object

__all__ = ["ExprSession", "UserSpace", "expr_session", "is_percpu_symbol", "FORMAT_LETTERS"]

FORMAT_LETTERS = frozenset("xduotcazs")
_STATE_KEY = "kcrash.expr"


class ExprSession:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.scope = Scope(kernel)
        self.evaluator = Evaluator(self.scope)
        self._gdb: Any = None
        self.task_address: int | None = None  # the context task gdb's registers describe

    @property
    def history(self):
        return self.scope.history

    def formatter(self, fmt: str | None = None, radix: int = 10) -> ValueFormatter:
        opts = PrintOptions(format=fmt, radix16=(radix == 16 and fmt is None))
        return ValueFormatter(self.kernel, self.scope.symbolizer.suffix, opts)

    def evaluate(self, text: str, user_task: Any = None) -> Object:
        """Evaluate `text`; with `user_task`, user addresses read from that task's address space."""
        if user_task is not None:
            scope = Scope(UserSpace(self.kernel, user_task), history=self.scope.history)
            return Evaluator(scope).evaluate(text)
        return self.evaluator.evaluate(text)

    def format(self, value: Object, fmt: str | None = None, radix: int = 10) -> str:
        formatter = self.formatter(fmt, radix)
        formatter.kernel = value.kernel  # a UserSpace for `p -u` values
        return formatter.top(value)

    # --- gdb --------------------------------------------------------------------------------------------
    def gdb(self, task: Any = None) -> Any:
        """The session's gdb (started on first use, restarted if it died)."""
        from kcrash.gdb.mi import GdbSession

        if self._gdb is None or not self._gdb.alive():
            if self._gdb is not None:
                self._gdb.close()
            else:
                import atexit

                atexit.register(self.close)  # gdb and its private socket directory go with kcrash
            self._gdb = GdbSession(self.kernel, task)
        self._gdb.set_task(task)
        return self._gdb

    def close(self) -> None:
        if self._gdb is not None:
            self._gdb.close()
            self._gdb = None


class UserSpace:
    """The kernel as `p -u` sees it: addresses in the lower half read from the context task's user
    address space (crash's MEMTYPE_UVADDR); everything else is the Kernel's."""

    USER_TOP = 0x0000800000000000

    def __init__(self, kernel: Any, task: Any) -> None:
        from kcrash.kernel.mm import mm_info

        mm = int(task.mm) if task is not None else 0
        if not mm:
            raise ExprError("the current context task has no user address space")
        self._kernel = kernel
        self._mm = mm_info(kernel, mm)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kernel, name)

    def read(self, address: int, size: int, physical: bool = False) -> bytes:
        if physical or address >= self.USER_TOP:
            return self._kernel.read(address, size, physical)
        from kcrash.kernel.mm import read_user

        return read_user(self._kernel, self._mm, address, size)

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            chunk = min(limit - len(out), 4096 - ((address + len(out)) & 4095))
            data = self.read(address + len(out), chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                return bytes(out + data[:nul])
            out += data
        return bytes(out)


def expr_session(ctx: Any) -> ExprSession:
    """The ExprSession of the shell running `ctx` (made on first use)."""
    state = ctx.state
    session = state.get(_STATE_KEY)
    if session is None or session.kernel is not ctx.kernel:
        session = ExprSession(ctx.kernel)
        state[_STATE_KEY] = session
    return session


def is_percpu_symbol(kernel: Any, name: str) -> bool:
    """A symbol in the kernel's .data..percpu section (crash's is_percpu_symbol)."""
    sym = kernel.symbols.lookup(name)
    start = kernel.symbols.lookup("__per_cpu_start")
    end = kernel.symbols.lookup("__per_cpu_end")
    if sym is None or start is None or end is None:
        return False
    return start.address <= sym.address < end.address and sym.type in "dDVbB"
