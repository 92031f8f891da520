"""x86_64 stack unwinding: ORC first, frame pointers where ORC has no entry.

The unwinder works on plain register dicts and a word reader; what a stack is called and where a task's
unwind starts is kernel knowledge and lives in kcrash.kernel.stack.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kcrash.arch.orc import (
    REG_AX,
    REG_BP,
    REG_BP_INDIRECT,
    REG_DI,
    REG_DX,
    REG_PREV_SP,
    REG_R10,
    REG_R13,
    REG_SP,
    REG_SP_INDIRECT,
    REG_UNDEFINED,
    TYPE_CALL,
    TYPE_END,
    TYPE_REGS,
    TYPE_REGS_PARTIAL,
    TYPE_UNDEFINED,
    ChainedOrc,
    OrcTable,
)
from kcrash.errors import MemoryReadError

__all__ = ["Frame", "Unwinder", "PT_REGS_ORDER"]

# struct pt_regs member order on x86_64 (the user_regs_struct prefix); offsets are taken from the
# kernel's type when available (see Unwinder.pt_regs_offsets).
PT_REGS_ORDER = "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split()
_PT_TO_USER = {
    "bp": "rbp",
    "bx": "rbx",
    "ax": "rax",
    "cx": "rcx",
    "dx": "rdx",
    "si": "rsi",
    "di": "rdi",
    "orig_ax": "orig_rax",
    "ip": "rip",
    "flags": "eflags",
    "sp": "rsp",
}
_ORC_REG_NAMES = {REG_AX: "rax", REG_DX: "rdx", REG_DI: "rdi", REG_R10: "r10", REG_R13: "r13"}


@dataclass
class Frame:
    """One frame: `ip` is the address in the function (a return address except for frame 0 and frames
    resumed from an exception), `slot` the stack address it was read from (None if from registers)."""

    ip: int
    sp: int
    slot: int | None
    regs: dict[str, int] | None = None  # the exception/interrupt register block that this frame left
    user_regs: bool = False  # `regs` is the user-mode block at the syscall/interrupt entry
    reliable: bool = True
    notes: list[str] = field(default_factory=list)
    error: MemoryReadError | None = None  # the read that ended the unwind after this frame


class FrameRule(Protocol):
    """How to find the caller's frame at one address (an ORC entry, or a rule from DWARF CFI)."""

    @property
    def sp_reg(self) -> int: ...
    @property
    def sp_offset(self) -> int: ...
    @property
    def bp_reg(self) -> int: ...
    @property
    def bp_offset(self) -> int: ...
    @property
    def type(self) -> str: ...


class Unwinder:
    def __init__(
        self,
        read: Callable[[int, int], bytes],
        orc: OrcTable | ChainedOrc | None,
        cfi: Any = None,
        pt_regs_offsets: dict[str, int] | None = None,
        is_text: Callable[[int], bool] | None = None,
        max_frames: int = 256,
    ) -> None:
        self.read = read
        self.orc = orc
        self.cfi = cfi  # DWARF CFI (kcrash.arch.dwarf_cfi.CfiTable) for code ORC leaves undefined
        off = pt_regs_offsets or {name: 8 * i for i, name in enumerate(PT_REGS_ORDER)}
        self.pt_regs_offsets = off
        self.pt_regs_size = max(off.values()) + 8
        self.is_text = is_text or (lambda a: a >= 0xFFFFFFFF80000000)
        self.max_frames = max_frames

    def _word(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def read_pt_regs(self, addr: int) -> dict[str, int]:
        """A struct pt_regs at `addr`, keyed by user_regs_struct names (rip, rsp, rax, …)."""
        blob = self.read(addr, self.pt_regs_size)
        regs = {}
        for name, off in self.pt_regs_offsets.items():
            regs[_PT_TO_USER.get(name, name)] = struct.unpack_from("<Q", blob, off)[0]
        return regs

    def unwind(self, regs: dict[str, int], slot: int | None = None) -> list[Frame]:
        """Frames from the register state `regs` (rip, rsp, rbp, …) outwards."""
        frames: list[Frame] = []
        ip, sp, bp = regs["rip"], regs["rsp"], regs.get("rbp", 0)
        full_regs: dict[str, int] | None = dict(regs)
        signal = True  # frame 0's ip is where the CPU was, not a return address
        while len(frames) < self.max_frames:
            frame = Frame(ip=ip, sp=sp, slot=slot)
            frames.append(frame)
            if not self.is_text(ip):
                frame.reliable = False
                frame.notes.append("not kernel text")
                break
            entry = self.orc.find(ip if signal else ip - 1) if self.orc else None
            try:
                if entry is None or entry.type == TYPE_UNDEFINED:
                    step = self._cfi_step(ip if signal else ip - 1, sp, bp)
                    if step is not None:
                        frame.notes.append("dwarf cfi")
                    else:
                        step = self._frame_pointer_step(bp, sp)
                        if step is None:
                            break
                        frame.notes.append("frame pointer")
                    ip, sp, bp, slot = step
                    signal, full_regs = False, None
                    continue
                if entry.type == TYPE_END:
                    break
                prev_sp = self._prev_sp(entry, sp, bp, full_regs)
                if prev_sp is None:
                    frame.notes.append("unknown frame base")
                    break
                if entry.type == TYPE_CALL:
                    slot = prev_sp - 8
                    new_ip = self._word(slot)
                    new_bp = self._restore_bp(entry, prev_sp, bp, None)
                    if prev_sp <= sp and not (entry.sp_reg == REG_BP):
                        frame.notes.append("stack does not advance")
                        break
                    ip, sp, bp = new_ip, prev_sp, new_bp
                    signal, full_regs = False, None
                elif entry.type == TYPE_REGS:
                    pt = self.read_pt_regs(prev_sp)
                    frame.regs = pt
                    bp = self._restore_bp(entry, prev_sp, bp, pt)
                    ip, sp, slot = pt["rip"], pt["rsp"], None
                    signal, full_regs = True, pt
                    if pt.get("cs", 0) & 3:
                        frame.user_regs = True
                        break
                elif entry.type == TYPE_REGS_PARTIAL:
                    ip_off = self.pt_regs_offsets["ip"]
                    base = prev_sp - ip_off
                    blob = self.read(prev_sp, 5 * 8)
                    rip, cs, flags, rsp, ss = struct.unpack("<5Q", blob)
                    frame.regs = {"rip": rip, "cs": cs, "eflags": flags, "rsp": rsp, "ss": ss, "_base": base}
                    bp = self._restore_bp(entry, prev_sp, bp, None)
                    ip, sp, slot = rip, rsp, None
                    signal, full_regs = True, None
                    if cs & 3:
                        frame.user_regs = True
                        break
                else:
                    break
            except MemoryReadError as e:
                frame.error = e
                break
        return frames

    def _prev_sp(self, entry: FrameRule, sp: int, bp: int, full_regs: dict[str, int] | None) -> int | None:
        r = entry.sp_reg
        if r == REG_SP:
            return sp + entry.sp_offset
        if r == REG_BP:
            return bp + entry.sp_offset
        if r == REG_SP_INDIRECT:
            return self._word(sp) + entry.sp_offset
        if r == REG_BP_INDIRECT:
            return self._word(bp + entry.sp_offset)
        name = _ORC_REG_NAMES.get(r)
        if name and full_regs and name in full_regs:
            return full_regs[name] + entry.sp_offset
        return None

    def _restore_bp(self, entry: FrameRule, prev_sp: int, bp: int, pt: dict[str, int] | None) -> int:
        r = entry.bp_reg
        if r == REG_UNDEFINED:
            return pt["rbp"] if pt and "rbp" in pt else bp
        if r == REG_PREV_SP:
            return self._word(prev_sp + entry.bp_offset)
        if r == REG_BP:
            return self._word(bp + entry.bp_offset)
        return bp

    def _cfi_step(self, lookup_ip: int, sp: int, bp: int) -> tuple[int, int, int, int] | None:
        if self.cfi is None:
            return None
        row = self.cfi.row(lookup_ip)
        if row is None or row.cfa_reg not in (6, 7):
            return None
        cfa = (sp if row.cfa_reg == 7 else bp) + row.cfa_offset
        slot = cfa + row.saved.get(row.ra_reg, -8)
        # A failed read here is the stack's own memory missing: the caller reports it.
        ret = self._word(slot)
        new_bp = self._word(cfa + row.saved[6]) if 6 in row.saved else bp
        return ret, cfa, new_bp, slot

    def _frame_pointer_step(self, bp: int, sp: int) -> tuple[int, int, int, int] | None:
        if bp <= sp or bp - sp > 1 << 16 or bp & 7:
            return None
        try:
            new_bp = self._word(bp)
            ret = self._word(bp + 8)
        except MemoryReadError:
            return None
        if not self.is_text(ret):
            return None
        return ret, bp + 16, new_bp, bp + 8
