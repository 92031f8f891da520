"""Kernel stacks: where each task's unwind starts (saved CPU registers or its switch frame), which stack an
address lies on (task, IRQ, exception stacks), and the backtrace `bt` prints."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcrash.arch.dwarf_cfi import CfiTable
from kcrash.arch.orc import REG_SP, TYPE_CALL, ChainedOrc, OrcTable
from kcrash.arch.unwind import PT_REGS_ORDER, Frame, Unwinder
from kcrash.debuginfo import cache
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.cpus import (
    active_cpus,
    active_task_cpu,
    cpu_curr,
    possible_cpus,
)
from kcrash.kernel.module_orc import module_text, with_module_orc
from kcrash.kernel.tasks import task_cpu
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.arch.x86_64 import Registers
    from kcrash.objects import Object
    from kcrash.program import Kernel

__all__ = [
    "StackRange",
    "Backtrace",
    "stack_ranges",
    "cpu_registers",
    "task_start_registers",
    "backtrace",
    "unwinder",
]

# crash's names for the x86_64 exception stacks (members of struct cea_exception_stacks).
_EXCEPTION_STACK_NAMES = {
    "DF": "DOUBLEFAULT",
    "NMI": "NMI",
    "DB": "DEBUG",
    "DB1": "DEBUG",
    "MCE": "MCE",
    "VC": "VC",
    "VC2": "VC2",
}


@dataclass(frozen=True)
class StackRange:
    start: int
    end: int
    name: str  # "task", "IRQ stack", "NMI exception stack", …
    cpu: int | None = None

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end


@dataclass
class Backtrace:
    task: Object
    cpu: int
    frames: list[Frame]
    stacks: list[StackRange | None] = field(default_factory=list)  # the stack each frame's sp is on
    source: str = ""  # where the unwind started: "NT_PRSTATUS", "QEMU", "switch frame", "stack search"


@per_kernel
def unwinder(k: Kernel) -> Unwinder:
    """The kernel's unwinder: its ORC tables, DWARF CFI from .debug_frame where present, pt_regs layout."""
    orc_type = k.find_type("struct orc_entry")
    orc: OrcTable | ChainedOrc | None = OrcTable.from_vmlinux(k.elf, k.kaslr_offset, orc_type)
    offsets = None
    pt = k.find_type("struct pt_regs")
    if pt is not None:
        offsets = {}
        for name in PT_REGS_ORDER:
            hit = pt.find_member(name)
            if hit is not None:
                offsets[name] = hit[1] // 8
    stext = k.symbols.lookup("_stext")
    etext = k.symbols.lookup("_etext")
    lo = stext.address if stext else 0xFFFFFFFF80000000
    hi = etext.address if etext else 0xFFFFFFFFFFFFFFFF

    def is_text(addr: int) -> bool:
        return lo <= addr < hi or _module_text(k, addr)

    if isinstance(orc, OrcTable):  # module text unwinds with the module's own table, read from the dump
        orc = with_module_orc(k, orc, lambda addr: lo <= addr < hi)

    cfi = None
    frame_data = k.elf.section_data(".debug_frame")
    if frame_data is not None:
        bid = k.elf.build_id()
        index = cache.load(bid, "cfi-index", 1) if bid else None
        cfi = CfiTable(frame_data, k.kaslr_offset, index)
        if index is None and bid:
            cache.store(bid, "cfi-index", 1, cfi.index_bytes())
    return Unwinder(k.read, orc, cfi, offsets, is_text)


def _module_text(k: Kernel, addr: int) -> bool:
    return module_text(k, addr)


def thread_size(k: Kernel) -> int:
    """THREAD_SIZE: the init task's stack bounds from the linker script, else sizeof(union thread_union)
    (BTF does not describe that union, so the symbols avoid waiting for the DWARF index)."""
    # __start_init_task/__end_init_task until 6.10, then __start_init_stack/__end_init_stack.
    start = k.symbols.lookup("__start_init_task") or k.symbols.lookup("__start_init_stack")
    end = k.symbols.lookup("__end_init_task") or k.symbols.lookup("__end_init_stack")
    if start is not None and end is not None and 0 < end.address - start.address <= 1 << 20:
        return end.address - start.address
    t = k.find_type("union thread_union")
    if t is None:
        raise KcrashError("cannot determine THREAD_SIZE (no init stack symbols, no union thread_union)")
    return t.sizeof()


@per_kernel
def _cpu_stacks(k: Kernel) -> tuple[StackRange, ...]:
    out: list[StackRange] = []
    irq_t = k.find_type("struct irq_stack")
    irq_size = irq_t.sizeof() if irq_t is not None else thread_size(k)
    for cpu in possible_cpus(k):
        top = None
        try:
            if k.symbols.lookup("hardirq_stack_ptr") is not None:
                top = int(k.per_cpu("hardirq_stack_ptr", cpu))
            elif k.symbols.lookup("pcpu_hot") is not None:
                top = int(k.per_cpu("pcpu_hot", cpu).hardirq_stack_ptr)
        except (KcrashError, MemoryReadError):
            top = None
        if top:
            # hardirq_stack_ptr points at the last word of the stack.
            end = (top + 8 + 15) & ~15
            out.append(StackRange(end - irq_size, end, "IRQ stack", cpu))
        try:
            if k.symbols.lookup("cea_exception_stacks") is None:
                continue
            estacks = k.per_cpu("cea_exception_stacks", cpu).deref()
            stype = estacks.type_.strip()
            for m in stype.members:
                if m.name and m.name.endswith("_stack") and not m.name.endswith("_guard"):
                    key = m.name[: -len("_stack")]
                    start = estacks.require_address() + m.offset
                    name = _EXCEPTION_STACK_NAMES.get(key, key)
                    out.append(StackRange(start, start + m.type.sizeof(), f"{name} exception stack", cpu))
        except (KcrashError, MemoryReadError):
            continue
    return tuple(out)


def stack_ranges(k: Kernel, task: Object) -> list[StackRange]:
    """The stacks a frame of `task` can be on: its own kernel stack, then every CPU's IRQ and exception stacks."""
    base = int(task.stack)
    return [StackRange(base, base + thread_size(k), "task")] + list(_cpu_stacks(k))


def _which_stack(ranges: list[StackRange], addr: int) -> StackRange | None:
    for r in ranges:
        if addr in r:
            return r
    return None


def cpu_registers(k: Kernel, cpu: int) -> Registers | None:
    """The registers the dump saved for `cpu`.

    QEMU saves every vCPU, in CPU order. kdump saves one NT_PRSTATUS per CPU that took part in the crash,
    with the pid of the task it was running (0 for an idle CPU): match the pid, else the CPU's position.
    """
    regs = k.cpu_registers_raw
    if not regs:
        return None
    if any(r.source == "QEMU" or r.control for r in regs):
        return regs[cpu] if cpu < len(regs) else None
    try:
        pid = int(cpu_curr(k, cpu).pid)
    except (KcrashError, MemoryReadError):
        pid = None
    if pid:
        matches = [r for r in regs if r.pid == pid]
        if len(matches) == 1:
            return matches[0]
    cpus = active_cpus(k)
    if cpu in cpus and cpus.index(cpu) < len(regs):
        return regs[cpus.index(cpu)]
    return None


def task_start_registers(k: Kernel, task: Object) -> tuple[dict[str, int], int | None, str]:
    """(registers, slot of rip or None, source) where the unwind of `task` starts."""
    cpu = active_task_cpu(k, task)
    if cpu is not None:
        saved = cpu_registers(k, cpu)
        if saved is not None and saved["rip"] >= 0xFFFFFFFF80000000 and not saved.values.get("cs", 0x10) & 3:
            return dict(saved.values), None, saved.source
    # A task switched out by the scheduler: thread.sp points at its struct inactive_task_frame.
    sp = int(task.thread.sp)
    frame_t = k.find_type("struct inactive_task_frame")
    if frame_t is None:
        raise KcrashError("no struct inactive_task_frame in the debug info: cannot unwind sleeping tasks")
    frame = k.object_at(frame_t, sp)
    regs = {"rsp": sp + frame_t.sizeof()}
    for member, reg in (
        ("r15", "r15"),
        ("r14", "r14"),
        ("r13", "r13"),
        ("r12", "r12"),
        ("bx", "rbx"),
        ("bp", "rbp"),
    ):
        if frame_t.find_member(member) is not None:
            regs[reg] = int(frame.member(member))
    regs["rip"] = int(frame.ret_addr)
    slot = frame.ret_addr.address
    return regs, slot, "switch frame"


def _search_stack(k: Kernel, uw: Unwinder, rng: StackRange, want_end: int | None) -> list[Frame] | None:
    """Find a live call chain on a stack whose registers the dump did not save (an NMI'd CPU): the lowest
    return address whose ORC unwind climbs to the register block at the top of the stack."""
    try:
        blob = k.read(rng.start, rng.end - rng.start)
    except MemoryReadError:
        return None
    words = struct.unpack(f"<{len(blob) // 8}Q", blob)
    for i, word in enumerate(words):
        if not uw.is_text(word) or uw.orc is None:
            continue
        sym = k.symbols.resolve(word)
        if sym is None or sym[1] == 0:
            continue
        slot = rng.start + 8 * i
        frames = uw.unwind({"rip": word, "rsp": slot + 8, "rbp": 0}, slot=slot)
        if len(frames) < 2:
            continue
        # The chain must reach the register block of the interrupted context: with registers to match, any
        # block holding them (past one taken in kernel mode the unwind goes on, and may stop early); without,
        # the block at its end.
        if want_end is None:
            if frames[-1].regs is not None:
                return _from_stop_handler(k, frames)
        elif any(f.regs is not None and f.regs.get("rip") == want_end for f in frames):
            return _from_stop_handler(k, frames)
    return None


# kdump's crash_setup_regs() (inlined here) saves the panicking CPU's registers.
_CRASH_SETUP_REGS_CALLERS = ("__crash_kexec", "crash_kexec")


def _in_function(k: Kernel, address: int, names: tuple[str, ...]) -> bool:
    hit = k.symbols.resolve(address)
    return hit is not None and hit[0].name in names


def _returns_into(k: Kernel, addr: int, func_start: int, func_end: int) -> bool:
    return func_start < addr <= func_end


def _calls_after_saved_registers(
    k: Kernel, uw: Unwinder, frames: list[Frame], regs: dict[str, int]
) -> list[Frame]:
    """kdump saves the panicking CPU's registers in __crash_kexec (crash_setup_regs) and then calls on
    (machine_kexec, relocate_kernel): those later calls are real and their return addresses lie just below
    the saved stack pointer. Follow them down as long as each callee's ORC frame climbs exactly to its
    caller's return slot, and show them first, as crash does."""
    rsp = regs["rsp"]
    hit = k.symbols.resolve(frames[0].ip)
    if hit is None or uw.orc is None:
        return frames
    sym = hit[0]
    end = sym.address + (sym.size or 0)
    try:
        ret = struct.unpack("<Q", k.read(rsp - 8, 8))[0]
    except MemoryReadError:
        return frames
    if not _returns_into(k, ret, sym.address, end):
        return frames
    top = Frame(ip=ret, sp=rsp, slot=rsp - 8, notes=["return address below saved registers"])
    deeper: list[Frame] = []
    target = rsp - 8  # the return slot the next callee's frame must climb to
    for _ in range(4):
        found = None
        for slot in range(target - 8, max(target - 2048, 0), -8):
            try:
                word = struct.unpack("<Q", k.read(slot, 8))[0]
            except MemoryReadError:
                break
            if not uw.is_text(word):
                continue
            entry = uw.orc.find(word - 1)
            if entry is None or entry.type != TYPE_CALL or entry.sp_reg != REG_SP:
                continue
            if slot + 8 + entry.sp_offset - 8 == target:
                found = Frame(ip=word, sp=slot + 8, slot=slot)
                break
        if found is None:
            break
        deeper.append(found)
        target = slot
    if not deeper:
        return frames
    deeper.reverse()
    return deeper + [top] + frames[1:]


# Where a CPU that kdump stopped with an NMI parks itself: it never returns from these, so a return address
# found below them on the stack is left over from a call they already finished.
_STOP_HANDLERS = ("crash_nmi_callback",)


def _from_stop_handler(k: Kernel, frames: list[Frame]) -> list[Frame]:
    for i, f in enumerate(frames):
        if _in_function(k, f.ip, _STOP_HANDLERS):
            return frames[i:]
    return frames


def backtrace(k: Kernel, task: Object) -> Backtrace:
    """The stack trace of `task`, as far as the unwinder can follow it."""
    uw = unwinder(k)
    ranges = stack_ranges(k, task)
    cpu = active_task_cpu(k, task)
    regs, slot, source = task_start_registers(k, task)
    frames: list[Frame]
    if cpu is not None and source == "switch frame":
        # Active on a CPU, but the saved registers are user-mode or absent (an NMI'd CPU): look for
        # the live chain on that CPU's NMI stack, then its IRQ stack.
        saved = cpu_registers(k, cpu)
        frames = []
        # (An NMI from user mode runs its handler on the task stack.)
        for rng in ranges:
            if rng.name == "task" or (rng.cpu == cpu and rng.name in ("NMI exception stack", "IRQ stack")):
                found = _search_stack(k, uw, rng, saved["rip"] if saved else None)
                if found:
                    frames, source = found, "stack search"
                    break
        if not frames:
            if saved is not None:
                frames = uw.unwind(dict(saved.values))
                source = saved.source
            else:
                frames = uw.unwind(regs, slot)
    else:
        frames = uw.unwind(regs, slot)
        if source == "NT_PRSTATUS" and frames and _in_function(k, frames[0].ip, _CRASH_SETUP_REGS_CALLERS):
            frames = _calls_after_saved_registers(k, uw, frames, regs)
        elif source == "NT_PRSTATUS" and cpu is not None:
            # kdump's NMI stopped this CPU in kernel mode and saved the interrupted registers: show the NMI
            # handler's frames first (crash_nmi_callback … end_repeat_nmi and the exception frame), as crash
            # does, when its chain on the NMI stack leads to exactly these registers.
            for rng in ranges:
                if rng.cpu == cpu and rng.name == "NMI exception stack":
                    found = _search_stack(k, uw, rng, regs["rip"])
                    if found:
                        frames = found
                        break
    bt = Backtrace(task, cpu if cpu is not None else task_cpu(task), frames, source=source)
    bt.stacks = [_which_stack(ranges, f.sp) for f in frames]
    return bt
