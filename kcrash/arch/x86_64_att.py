"""x86_64 disassembly in AT&T syntax, spelled as gdb (and so crash's `dis`) prints it.

capstone decodes; this module prints.  capstone's own AT&T printer differs from gdb's (binutils'
i386-dis) in many small ways, so the text is built here from capstone's decoded fields (operands, prefix
bytes, ModRM/SIB) following gdb's rules.  Each rule says which gdb behaviour it reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import capstone
from capstone import x86 as cx

__all__ = ["Instruction", "disassemble", "format_instruction", "MNEMONIC_WIDTH"]

MNEMONIC_WIDTH = 6  # gdb pads the mnemonic (with its prefixes) to 6 columns, then one space
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
_SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q"}

_OP_REG, _OP_IMM, _OP_MEM = cx.X86_OP_REG, cx.X86_OP_IMM, cx.X86_OP_MEM

# Legacy prefix bytes and the names gdb gives them when it prints one as a word of its own.
_SEGMENT_PREFIXES = {0x26: "es", 0x2E: "cs", 0x36: "ss", 0x3E: "ds", 0x64: "fs", 0x65: "gs"}
_LEGACY_PREFIXES = {0xF0, 0xF2, 0xF3, 0x66, 0x67, *_SEGMENT_PREFIXES}

# --- mnemonics -------------------------------------------------------------------------------------
# capstone (Intel) name -> gdb AT&T name, where they differ.
_RENAME = {
    "cdqe": "cltq",
    "cqo": "cqto",
    "cdq": "cltd",
    "cwde": "cwtl",
    "cwd": "cwtd",
    "cbw": "cbtw",
    "pushfq": "pushf",  # gdb prints pushf/popf in 64-bit mode
    "popfq": "popf",
    "movsxd": "movslq",
    "wait": "fwait",  # 9b: gdb treats it as a prefix-like word, printed unpadded
    "sal": "shl",  # c0-d3 /6 is an alias of /4: gdb names it shl
    "retfq": "lretq",
    "retf": "lret",
}

# gdb adds a b/w/l/q suffix to these when no register operand tells the size (binutils templates with
# the 'Q'/'S'-style size letters: immediate-to-memory and one-operand memory forms).
_SIZED_WHEN_MEMORY = {
    "mov", "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test", "inc", "dec", "neg", "not",
    "mul", "imul", "div", "idiv", "shl", "shr", "sar", "sal", "rol", "ror", "rcl", "rcr", "nop", "bt",
    "bts", "btr", "btc",
}  # fmt: skip

_SHIFTS = {"shl", "shr", "sar", "sal", "rol", "ror", "rcl", "rcr"}

# String instructions: gdb spells out the implicit operands (%ds:(%rsi), %es:(%rdi)).  Those with a
# register operand (stos, lods, scas) take no size suffix; movs/cmps/ins/outs do.
_STRING_OPS = {"movs", "cmps", "stos", "lods", "scas", "ins", "outs"}

# Operands gdb spells out for instructions capstone shows bare.
_IMPLICIT = {
    "monitor": ("%rax", "%ecx", "%edx"),
    "mwait": ("%eax", "%ecx"),
    "monitorx": ("%rax", "%ecx", "%edx"),
    "mwaitx": ("%eax", "%ecx", "%ebx"),
}

# x87 memory operands: gdb's size suffixes.
_INT_SUFFIX = {2: "s", 4: "l", 8: "ll"}
_FLOAT_SUFFIX = {4: "s", 8: "l", 10: "t"}
_X87_SUFFIXES = {
    **{n: _INT_SUFFIX for n in ("fild", "fist", "fistp", "fisttp", "fiadd", "fimul", "ficom", "ficomp")},
    **{n: _INT_SUFFIX for n in ("fisub", "fisubr", "fidiv", "fidivr")},
    **{n: _FLOAT_SUFFIX for n in ("fld", "fst", "fstp", "fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr")},
    **{n: _FLOAT_SUFFIX for n in ("fdiv", "fdivr")},
}

# Register spellings gdb uses that capstone spells differently.
_REG_RENAME = {f"dr{i}": f"db{i}" for i in range(16)}


@dataclass
class Instruction:
    """One decoded instruction: address, length, bytes, and what printing it needs."""

    address: int
    size: int
    raw: bytes
    mnemonic: str  # gdb's, with prefix words ("lock cmpxchg", "rep stos", "cs call")
    operands: str  # gdb's operand text without symbolic parts
    target: int | None = None  # a branch target gdb prints as `0x... <sym>`
    riprel: int | None = None  # the address a %rip-relative operand refers to (gdb's `# 0x...` comment)
    bare: bool = False  # printed without gdb's mnemonic padding

    def text(self, symbolize: Callable[[int], str | None] | None = None) -> str:
        return format_instruction(self, symbolize)


def format_instruction(insn: Instruction, symbolize: Callable[[int], str | None] | None = None) -> str:
    """gdb's text for `insn`: `mnemonic` padded to 6 + space, operands, `<sym+off>` after branch targets,
    and `        # 0x... <sym>` after %rip-relative operands.  `symbolize(addr)` returns the name gdb
    would show in angle brackets, or None for none."""
    ops = insn.operands
    if insn.target is not None:
        ops = f"{ops}0x{insn.target:x}"
        name = symbolize(insn.target) if symbolize else None
        if name is not None:
            ops += f" <{name}>"
    if insn.riprel is not None:
        ops += f"        # 0x{insn.riprel:x}"
        name = symbolize(insn.riprel) if symbolize else None
        if name is not None:
            ops += f" <{name}>"
    mnem = insn.mnemonic
    if insn.bare or (not ops and (mnem in ("nop", "fwait") or mnem.startswith("rex."))):
        return mnem  # gdb prints nop (90), fwait (9b) and a lone REX prefix without padding
    return f"{mnem:<{MNEMONIC_WIDTH}} {ops}"


_cs: capstone.Cs | None = None


def _engine() -> capstone.Cs:
    global _cs
    if _cs is None:
        _cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        _cs.detail = True
        _cs.skipdata = False
    return _cs


def disassemble(code: bytes, address: int, count: int | None = None) -> Iterator[Instruction]:
    """Decode `code` (loaded at `address`) into Instructions, gdb's `(bad)` where capstone cannot decode.

    Stops after `count` instructions, or when the bytes run out (a truncated last instruction is not
    returned)."""
    cs = _engine()
    offset = 0
    done = 0
    while offset < len(code) and (count is None or done < count):
        restart = False
        for ci in cs.disasm(code[offset:], address + offset):
            if ci.mnemonic == "ud1":
                # capstone takes ud1 as the two opcode bytes alone; gdb (like the CPU) reads a ModRM.
                insn = _ud1(code, offset, address, ci)
                if insn is None:
                    return
                yield insn
                offset += insn.size
                done += 1
                restart = True
                break
            yield _convert(ci)
            offset += ci.size
            done += 1
            if count is not None and done >= count:
                return
        if restart or offset >= len(code):
            continue
        # capstone stopped: an invalid (or truncated) instruction.
        if _could_be_truncated(code, offset):
            return
        insn = _bad(code, offset, address)
        yield insn
        offset += insn.size
        done += 1


_PREFIX_NAMES = {
    0xF0: "lock",
    0xF2: "repnz",
    0xF3: "repz",
    0x66: "data16",
    0x67: "addr32",
    **_SEGMENT_PREFIXES,
}


# Instructions gdb 10 knows and capstone does not: (bytes, text).
_EXTRA = {
    bytes.fromhex("0f01e8"): "serialize ",
    bytes.fromhex("c4e27849c0"): "tilerelease ",
}


def _bad(code: bytes, offset: int, address: int) -> Instruction:
    """gdb's `(bad)` for bytes it cannot decode: it takes the prefixes and the opcode bytes (not the
    ModRM byte after them) and prints the prefixes' names before `(bad)`."""
    for pattern, text in _EXTRA.items():
        if code.startswith(pattern, offset):
            return Instruction(address + offset, len(pattern), pattern, text[:-1], "")
    if code[offset] in (0xC4, 0xC5) and offset + 2 < len(code):
        # A VEX prefix gdb cannot decode: it prints a bare "(bad)" for prefix, payload and opcode.
        size = 3 if code[offset] == 0xC5 else 4
        return Instruction(address + offset, size, code[offset : offset + size], "(bad)", "", bare=True)
    pos = offset
    words = []
    while pos < len(code) and code[pos] in _PREFIX_NAMES and pos - offset < 14:
        words.append(_PREFIX_NAMES[code[pos]])
        pos += 1
    if pos < len(code) and 0x40 <= code[pos] <= 0x4F:
        pos += 1
    if pos < len(code) and code[pos] == 0x0F:
        pos += 1
        if pos < len(code) and code[pos] in (0x38, 0x3A):
            pos += 1
    pos = min(pos + 1, len(code))
    return Instruction(address + offset, pos - offset, code[offset:pos], " ".join([*words, "(bad)"]), "")


def _could_be_truncated(code: bytes, offset: int) -> bool:
    """True when the bytes left are too few to tell (the caller read a bit too little)."""
    return len(code) - offset < 15 and not _decodes_with_padding(code[offset:])


def _decodes_with_padding(tail: bytes) -> bool:
    cs = _engine()
    return next(iter(cs.disasm(tail + b"\x90" * 15, 0)), None) is None


# --- conversion ---------------------------------------------------------------------------------------


def _prefix_bytes(raw: bytes) -> tuple[list[int], int]:
    """The legacy prefix bytes in order, and the REX byte (0 if none)."""
    prefixes = []
    rex = 0
    for b in raw:
        if b in _LEGACY_PREFIXES:
            prefixes.append(b)
            rex = 0  # a REX byte only counts directly before the opcode
        elif 0x40 <= b <= 0x4F and not rex:
            rex = b
        else:
            break
    return prefixes, rex


def _reg(cs_insn: Any, reg: int) -> str:
    name = cs_insn.reg_name(reg)
    return "%" + str(_REG_RENAME.get(name, name))


_REG16 = {
    **{f"{p}{r}": r for r in ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di") for p in ("e", "r")},
    **{f"r{i}{w}": f"r{i}w" for i in range(8, 16) for w in ("d", "")},
}


def _reg16(cs_insn: Any, reg: int) -> str:
    name = cs_insn.reg_name(reg)
    return "%" + str(_REG16.get(name, name))


def _signed_hex(value: int) -> str:
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _memory(
    ci: Any, op: Any, rex: int, segment_used: list[bool], seg_prefix: int | None
) -> tuple[str, int | None]:
    """A memory operand as gdb prints it, and the %rip-relative target if it is one."""
    mem = op.mem
    text = ""
    if seg_prefix is not None:
        text = f"%{_SEGMENT_PREFIXES[seg_prefix]}:"
        segment_used[0] = True
    modrm = ci.modrm
    mod, rm = modrm >> 6, modrm & 7
    has_sib = rm == 4 and mod != 3
    base_name = ci.reg_name(mem.base) if mem.base else None
    riprel = base_name == "rip"
    disp = mem.disp
    if riprel:
        target = (ci.address + ci.size + disp) & _MASK[8]
        return f"{text}{_signed_hex(disp)}(%rip)", target
    sib = ci.sib
    sib_base = sib & 7
    sib_index = ((sib >> 3) & 7) | (8 if rex & 0x2 else 0)
    scale_bits = sib >> 6
    have_base = mem.base != 0
    have_index = has_sib and sib_index != 4
    needs_riz = has_sib and not have_index and (scale_bits != 0 or (have_base and sib_base != 4))
    have_disp_field = mod in (1, 2) or (mod == 0 and (rm == 5 or (has_sib and sib_base == 5)))
    if have_disp_field:
        if not have_base and not have_index and not needs_riz:
            text += f"0x{disp & _MASK[8]:x}"  # an absolute address: gdb prints it unsigned
        else:
            text += _signed_hex(disp)
    if have_base or have_index or needs_riz:
        parts = ["%" + str(base_name) if have_base else ""]
        if have_index:
            parts.append(_reg(ci, mem.index))
            parts.append(str(mem.scale))
        elif needs_riz:
            parts.append("%riz")
            parts.append(str(1 << scale_bits))
        text += "(" + ",".join(parts) + ")"
    return text, None


def _convert(ci: Any) -> Instruction:
    raw = bytes(ci.bytes)
    prefixes, rex = _prefix_bytes(raw)
    mnemonic = ci.mnemonic
    words = mnemonic.split()
    # capstone puts lock/rep/repne in the mnemonic; gdb does too, but with its own names.
    base = words[-1]
    cap_prefixes = words[:-1]
    operands = list(ci.operands)
    seg_prefix = next((p for p in reversed(prefixes) if p in _SEGMENT_PREFIXES), None)
    segment_used = [False]
    target = None
    riprel = None

    name = _RENAME.get(base, base)
    op_texts: list[str] = []
    opcode = raw[len(prefixes) + (1 if rex else 0) :]
    if (
        name in ("jmp", "call")
        and opcode[:1] == b"\xff"
        and len(opcode) > 1
        and (opcode[1] >> 3) & 7 in (3, 5)
    ):
        name = "l" + name  # FF /3, FF /5: far call/jump through memory
    elif name == "vmmcall" and 0xF3 in prefixes:
        name = "vmgexit"  # f3 0f 01 d9: gdb knows the SEV-ES name
        prefixes = [p for p in prefixes if p != 0xF3]
    # A shift's %cl count says nothing about the operand size.
    shift = base in _SHIFTS
    has_reg = any(op.type == _OP_REG and not (shift and ci.reg_name(op.reg) == "cl") for op in operands)
    mem_ops = [op for op in operands if op.type == _OP_MEM]

    # --- special families -----------------------------------------------------------------------
    string_base = _string_base(name)
    if string_base is not None:
        return _string_instruction(ci, raw, prefixes, rex, string_base, operands, cap_prefixes)

    if name in ("movzx", "movsx"):
        src, dst = operands[1], operands[0]
        name = ("movz" if name == "movzx" else "movs") + _SUFFIX[src.size] + _SUFFIX[dst.size]
    elif name in _SIZED_WHEN_MEMORY and mem_ops and not has_reg:
        name += _SUFFIX.get(mem_ops[0].size, "")
    elif name in _IMPLICIT:
        op_texts = list(_IMPLICIT[name])
    elif name in ("lar", "lsl") and operands[1].type == _OP_REG:
        # gdb shows the selector register at its 16-bit width (`lar %dx,%edx`).
        op_texts = [_reg16(ci, operands[1].reg), _reg(ci, operands[0].reg)]
    elif name in _X87_SUFFIXES and mem_ops:
        name += _X87_SUFFIXES[name].get(mem_ops[0].size, "")
    elif name == "nop" and not operands:
        if 0x66 in prefixes and raw[len(prefixes) + (1 if rex else 0)] == 0x90:
            name = "xchg"
            op_texts = ["%ax", "%ax"]

    # --- operands, AT&T order (reversed) ----------------------------------------------------------
    if not op_texts:
        is_branch = ci.group(capstone.CS_GRP_JUMP) or ci.group(capstone.CS_GRP_CALL)
        for op in reversed(operands):
            if op.type == _OP_REG:
                text = _reg(ci, op.reg)
                if name in ("in", "out") and text == "%dx":
                    text = "(%dx)"  # gdb shows the port register as a memory-like operand
                op_texts.append(text)
            elif op.type == _OP_IMM:
                if is_branch and len(operands) == 1:
                    target = op.imm & _MASK[8]
                    op_texts.append("")
                else:
                    op_texts.append("$" + _immediate(ci, op, name))
            elif op.type == _OP_MEM:
                if name == "movabs":  # a64 moffs: the full address, no ModRM
                    op_texts.append(f"0x{op.mem.disp & _MASK[8]:x}")
                    continue
                text, rip = _memory(ci, op, rex, segment_used, seg_prefix)
                if rip is not None:
                    riprel = rip
                op_texts.append(text)
        if ci.group(capstone.CS_GRP_JUMP) or ci.group(capstone.CS_GRP_CALL):
            if operands and operands[0].type != _OP_IMM:
                op_texts = ["*" + t for t in op_texts]
        if shift and raw[len(prefixes) + (1 if rex else 0)] in (0xD0, 0xD1):
            op_texts = op_texts[1:]  # the by-one forms: gdb prints no $1

    if name == "enter":
        op_texts.reverse()  # gdb prints enter's operands in Intel order
    words_out = _prefix_words(prefixes, rex, cap_prefixes, segment_used[0], name, ci)
    if rex and _rex_has_unused_bits(ci, raw, len(prefixes)):
        words_out.append(_rex_name(rex))
    mnem = " ".join([*words_out, name])
    ops = ",".join(op_texts)
    return Instruction(ci.address, ci.size, raw, mnem, ops, target, riprel)


def _rex_name(rex: int) -> str:
    bits = "".join(c for c, m in (("W", 8), ("R", 4), ("X", 2), ("B", 1)) if rex & m)
    return f"rex.{bits}" if bits else "rex"


def _rex_has_unused_bits(ci: Any, raw: bytes, rex_at: int) -> bool:
    """gdb names the REX prefix when one of its bits (or the whole byte) changes nothing: decoded with
    that bit cleared, the instruction reads the same."""
    rex = raw[rex_at]
    seen = (ci.mnemonic, ci.op_str, ci.size)
    for bit in (8, 4, 2, 1, 0):
        if bit and not rex & bit:
            continue
        if bit:
            variant = raw[:rex_at] + bytes([rex & ~bit]) + raw[rex_at + 1 :]
        elif rex == 0x40:
            variant = raw[:rex_at] + raw[rex_at + 1 :] + b"\x90"  # keep the length; the nop is not read
        else:
            continue
        other = next(iter(_plain_engine().disasm(variant, ci.address)), None)
        if other is not None and (other.mnemonic, other.op_str, other.size + (1 if not bit else 0)) == seen:
            return True
    return False


_plain: capstone.Cs | None = None


def _plain_engine() -> capstone.Cs:
    global _plain
    if _plain is None:
        _plain = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return _plain


def _immediate(ci: Any, op: Any, name: str) -> str:
    size = op.size or 8
    if name in ("enter", "ret", "lret", "lretq", "int", "in", "out") or name.rstrip("bwlq") in _SHIFTS:
        size = ci.imm_size or 1  # counts and ports are printed at their own width
    return f"0x{op.imm & _MASK.get(size, _MASK[8]):x}"


def _prefix_words(
    prefixes: list[int], rex: int, cap_prefixes: list[str], segment_used: bool, name: str, ci: Any
) -> list[str]:
    """The prefix words gdb prints before the mnemonic."""
    words: list[str] = []
    seen_66 = False
    for p in prefixes:
        if p == 0xF0:
            words.append("lock")
        elif p in _SEGMENT_PREFIXES:
            if not segment_used:
                words.append(_SEGMENT_PREFIXES[p])
        elif p == 0x66:
            if seen_66:
                words.append("data16")
            seen_66 = True
        elif p == 0xF3:
            if "rep" in cap_prefixes or "repe" in cap_prefixes:
                words.append("repz")
            elif name == "ret":
                words.append("repz")
        elif p == 0xF2:
            if "repne" in cap_prefixes:
                words.append("repnz")
            elif ci.group(capstone.CS_GRP_JUMP) or ci.group(capstone.CS_GRP_CALL) or name == "ret":
                words.append("bnd")
    return words


def _string_base(name: str) -> str | None:
    for base in _STRING_OPS:
        if name == base or (name.startswith(base) and name[len(base) :] in ("b", "w", "d", "q")):
            return base
    return None


def _string_instruction(
    ci: Any, raw: bytes, prefixes: list[int], rex: int, base: str, operands: list[Any], cap_prefixes: Any
) -> Instruction:
    mem = [op for op in operands if op.type == _OP_MEM]
    size = mem[0].size if mem else (operands[0].size if operands else 1)
    reg = {1: "%al", 2: "%ax", 4: "%eax", 8: "%rax"}[size]
    seg = next((p for p in reversed(prefixes) if p in _SEGMENT_PREFIXES), None)
    src_seg = f"%{_SEGMENT_PREFIXES[seg]}" if seg is not None else "%ds"
    rsi, rdi = f"{src_seg}:(%rsi)", "%es:(%rdi)"
    if base == "stos":
        name, ops = "stos", f"{reg},{rdi}"
    elif base == "lods":
        name, ops = "lods", f"{rsi},{reg}"
    elif base == "scas":
        name, ops = "scas", f"{rdi},{reg}"
    elif base == "movs":
        name, ops = "movs" + _SUFFIX[size], f"{rsi},{rdi}"
    elif base == "cmps":
        name, ops = "cmps" + _SUFFIX[size], f"{rdi},{rsi}"
    elif base == "ins":
        name, ops = "ins" + _SUFFIX[size], f"(%dx),{rdi}"
    else:
        name, ops = "outs" + _SUFFIX[size], f"{rsi},(%dx)"
    words = []
    for p in prefixes:
        if p == 0xF0:
            words.append("lock")
        elif p == 0xF3:
            words.append("repz" if base in ("cmps", "scas") else "rep")
        elif p == 0xF2:
            words.append("repnz")
    return Instruction(ci.address, ci.size, raw, " ".join([*words, name]), ops)


_GPR32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + [f"r{i}d" for i in range(8, 16)]
_GPR64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{i}" for i in range(8, 16)]


def _ud1(code: bytes, offset: int, address: int, ci: Any) -> Instruction | None:
    """ud1 with its ModRM operand: gdb prints `ud1 %r/m,%reg` (the kernel's `ud1 %esp,%ecx` is 0f b9 cc)."""
    opcode_len = ci.size
    prefixes, rex = _prefix_bytes(bytes(ci.bytes))
    pos = offset + opcode_len
    if pos >= len(code):
        return None
    modrm = code[pos]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    regs = _GPR64 if rex & 0x8 else _GPR32
    reg_name = "%" + regs[reg | (8 if rex & 0x4 else 0)]
    length = opcode_len + 1
    if mod == 3:
        rm_text = "%" + regs[rm | (8 if rex & 0x1 else 0)]
    else:
        # Decode the memory form through capstone as a same-shaped instruction (0f af = imul r, r/m).
        probe = bytes(ci.bytes[: len(prefixes) + (1 if rex else 0)]) + b"\x0f\xaf" + code[pos : pos + 14]
        decoded = next(iter(_engine().disasm(probe, address + offset)), None)
        if decoded is None:
            return None
        length = decoded.size
        mem = next(op for op in decoded.operands if op.type == _OP_MEM)
        rm_text, _rip = _memory(decoded, mem, rex, [False], None)
    raw = code[offset : offset + length]
    return Instruction(address + offset, length, raw, "ud1", f"{rm_text},{reg_name}")


_GPR32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + [f"r{i}d" for i in range(8, 16)]
_GPR64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{i}" for i in range(8, 16)]
