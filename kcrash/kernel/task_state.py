"""Task states: the state bits crash derives from the kernel's own task_state_array, crash's two-letter
codes (`ps`) and verbose names (`set`, the banner) for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcrash.errors import MemoryReadError
from kcrash.kernel.tasks import TaskInfo, task_state_value
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = ["TaskStates", "task_states", "task_state_code", "task_state_name", "task_state_full_value"]


class TaskStates:
    """The state bits crash derives from the kernel's `task_state_array` (fs/proc/array.c), or from the
    `stat_nam` string on 2.6.33-4.13, and how crash names them (`ps` codes, `set` names).

    Entry i of task_state_array names bit 1<<(i-1) ("R (running)" is 0). States the array does not list
    follow in the kernel's fixed order: from 4.14 (where "P (parked)" is listed) TASK_DEAD, TASK_WAKEKILL,
    TASK_WAKING, TASK_NOLOAD, TASK_NEW after PARKED; on 2.6.32-4.13 TASK_DEAD, TASK_WAKEKILL, TASK_WAKING
    after the dead bit.
    """

    UNSET = -1

    def __init__(self, array: list[str] | None = None, stat_nam: str | None = None) -> None:
        u = self.UNSET
        self.running = self.interruptible = self.uninterruptible = self.stopped = u
        self.traced = self.zombie = self.dead = self.swapping = self.exclusive = u
        self.wakekill = self.waking = self.parked = self.noload = self.new = u
        if stat_nam and len(stat_nam) > len("RSDTtZX"):
            self._from_stat_nam(stat_nam)
        elif array:
            self._from_array(array)
        if self.UNSET in (self.running, self.interruptible, self.uninterruptible, self.zombie, self.stopped):
            self._old_defaults()

    def _old_defaults(self) -> None:
        self.running, self.interruptible, self.uninterruptible = 0, 1, 2
        self.zombie, self.stopped, self.swapping, self.exclusive = 4, 8, 16, 32
        self.traced = self.dead = self.wakekill = self.waking = self.parked = self.noload = self.new = (
            self.UNSET
        )

    def _from_stat_nam(self, names: str) -> None:
        for i, c in enumerate(names):
            bit = 1 << (i - 1) if i else 0
            if c == "R":
                self.running = i
            elif c == "S":
                self.interruptible = i
            elif c == "D":
                self.uninterruptible = bit
            elif c == "T":
                self.stopped = bit
            elif c == "t":
                self.traced = bit
            elif c in "Xx":
                self.dead = bit if self.dead == self.UNSET else self.dead | bit
            elif c == "Z":
                self.zombie = bit
            elif c == "K":
                self.wakekill = bit
            elif c == "W":
                self.waking = bit
            elif c == "P":
                self.parked = bit
            elif c == "N":
                self.noload = bit
            elif c == "n":
                self.new = bit

    def _from_array(self, array: list[str]) -> None:
        bitpos = 0
        for text in array:
            if "(running)" in text:
                self.running = bitpos
            elif "(sleeping)" in text:
                self.interruptible = bitpos
            elif "(disk sleep)" in text:
                self.uninterruptible = bitpos
            elif "(stopped)" in text:
                self.stopped = bitpos
            elif "(zombie)" in text:
                self.zombie = bitpos
            elif "(dead)" in text:
                self.dead = bitpos if self.dead == self.UNSET else self.dead | bitpos
            elif "(swapping)" in text:
                self.swapping = bitpos
            elif "(tracing stop)" in text:
                self.traced = bitpos if self.traced == self.UNSET else self.traced | bitpos
            elif "(wakekill)" in text:
                self.wakekill = bitpos
            elif "(waking)" in text:
                self.waking = bitpos
            elif "(parked)" in text:
                self.parked = bitpos
            bitpos = bitpos << 1 if bitpos else 1
        if self.parked != self.UNSET:  # 4.14+
            p = self.parked
            self.dead = (self.dead if self.dead != self.UNSET else 0) | p << 1
            self.wakekill, self.waking, self.noload, self.new = p << 2, p << 3, p << 4, p << 5
        elif self.dead != self.UNSET and bin(self.dead).count("1") == 1:  # 2.6.32-4.13
            bit = self.dead
            self.dead |= bit << 1
            self.wakekill, self.waking = bit << 2, bit << 3

    def _has(self, mask: int, value: int) -> bool:
        return mask != self.UNSET and bool(value & mask)

    def code(self, value: int) -> str:
        """crash's two-letter state (task_state_string): RU IN UN ID ZO ST TR SW DE PA WA NE, "??" if none."""
        exclusive = 0
        if self.exclusive != self.UNSET:
            exclusive = value & self.exclusive
            value &= ~self.exclusive
        out, valid, set_ = "??", False, False
        if value == self.running:
            out, valid = "RU", True
        if self._has(self.interruptible, value):
            out, valid, set_ = "IN", True, True
        if self._has(self.uninterruptible, value):
            out, valid, set_ = ("ID" if self._has(self.noload, value) else "UN"), True, True
        if self._has(self.zombie, value):
            out, valid, set_ = "ZO", True, True
        if self._has(self.stopped, value):
            out, valid, set_ = "ST", True, True
        if self._has(self.traced, value):
            out, valid, set_ = "TR", True, True
        if value == self.swapping:
            out, valid, set_ = "SW", True, True
        if self._has(self.dead, value) and not set_:
            out, valid, set_ = "DE", True, True
        if value == self.parked:
            out, valid = "PA", True
        if value == self.waking:
            out, valid = "WA", True
        if value == self.new:
            out, valid = "NE", True
        if valid and exclusive:
            out += "EX"
        return out

    def name(self, value: int) -> str:
        """crash's verbose state for `set` (task_state_string_verbose): TASK_RUNNING, TASK_INTERRUPTIBLE, …"""
        if value == self.running:
            return "TASK_RUNNING"
        names = []
        if self._has(self.interruptible, value):
            names.append("TASK_INTERRUPTIBLE")
        if self._has(self.uninterruptible, value):
            names.append("TASK_UNINTERRUPTIBLE")
        if self._has(self.stopped, value):
            names.append("TASK_STOPPED")
        if self._has(self.traced, value):
            names.append("TASK_TRACED")
        if self._has(self.dead, value):
            both = value & self.dead
            names.append("EXIT_DEAD|TASK_DEAD" if bin(both).count("1") > 1 else "EXIT_DEAD")
        if self._has(self.zombie, value):
            names.append("EXIT_ZOMBIE")
        if self._has(self.waking, value):
            names.append("TASK_WAKING")
        if self._has(self.wakekill, value):
            names.append("TASK_WAKEKILL")
        if self._has(self.noload, value):
            names.append("TASK_NOLOAD")
        if self._has(self.new, value):
            names.append("TASK_NEW")
        if value == self.parked:
            return "TASK_PARKED"
        return "|".join(names)

    def is_zombie(self, value: int) -> bool:
        return self._has(self.zombie, value)


@per_kernel
def task_states(k: Kernel) -> TaskStates:
    """This kernel's task states, from its `stat_nam` or `task_state_array`."""
    stat_nam = None
    sym = k.symbols.lookup("stat_nam")
    if sym is not None:
        try:
            text = k.read_cstring(sym.address, 64).decode("ascii")
            stat_nam = text if text.isprintable() else None
        except (MemoryReadError, UnicodeDecodeError):
            stat_nam = None
    array: list[str] = []
    sym = k.symbols.lookup("task_state_array")
    if sym is not None and sym.size:
        try:
            for i in range(sym.size // 8):
                array.append(k.read_cstring(k.read_u64(sym.address + 8 * i), 64).decode("ascii", "replace"))
        except MemoryReadError:
            pass
    return TaskStates(array, stat_nam)


def task_state_full_value(task: Object | TaskInfo) -> int:
    """state | exit_state, the value crash classifies."""
    if isinstance(task, TaskInfo):
        return task.state_value
    return task_state_value(task) | (int(task.exit_state) & 0xFFFFFFFF)


def task_state_code(k: Kernel, task: Object | TaskInfo) -> str:
    """crash's two-letter state of a task (RU, IN, UN, ID, ZO, ST, TR, DE, PA, WA, NE)."""
    return task_states(k).code(task_state_full_value(task))


def task_state_name(k: Kernel, task: Object | TaskInfo) -> str:
    """crash's verbose state of a task (task_state_string_verbose): TASK_RUNNING, TASK_INTERRUPTIBLE, …"""
    return task_states(k).name(task_state_full_value(task))
