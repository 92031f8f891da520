"""ORC tables: entry lookup and the register numbering read from the table itself (synthetic tables), and
the numbering chosen for each real vmlinux of the fixtures."""

from __future__ import annotations

import re
import struct

import pytest
from conftest import fixture_set, open_fixture_kernel

from kcrash.arch import orc
from kcrash.arch.orc import REG_AX, REG_BP, REG_DI, REG_PREV_SP, REG_SP, REG_UNDEFINED, TYPE_CALL, OrcTable

# struct orc_entry from 6.4 on: sp_reg:4, bp_reg:4, type:3, signal:1 (the layout BTF gives).
LAYOUT = orc._Bits({"sp_reg": (0, 4), "bp_reg": (4, 4), "type": (8, 3), "signal": (11, 1)})
CALL = 2
# The registers' numbers in the two schemes: (SP, BP, PREV_SP, DI, AX)
OLD = {"sp": 5, "bp": 4, "prev_sp": 1, "di": 3}
NEW = {"sp": 3, "bp": 4, "prev_sp": 8, "di": 5, "ax": 1}


def entry(sp_off: int, bp_off: int, sp_reg: int, bp_reg: int, typ: int = CALL) -> bytes:
    return struct.pack("<hhH", sp_off, bp_off, sp_reg | bp_reg << 4 | typ << 8)


def table(regs: dict[str, int], extra: list[bytes]) -> OrcTable:
    """A table shaped like a compiler's: function entries (SP+8), frames after push %rbp (SP+16, caller's
    bp at PREV_SP-16), then the entries under test."""
    body = []
    for _ in range(200):
        body.append(entry(8, 0, regs["sp"], REG_UNDEFINED))
        body.append(entry(16, -16, regs["sp"], regs["prev_sp"]))
    body += extra
    ips = list(range(0x1000, 0x1000 + 16 * len(body), 16))
    return OrcTable(ips, b"".join(body), LAYOUT, True)


@pytest.mark.parametrize("regs,numbering", [(OLD, "4.14"), (NEW, "7.1")])
def test_numbering_is_read_from_the_entries(regs, numbering) -> None:
    t = table(regs, [entry(24, -16, regs["bp"], regs["prev_sp"]), entry(0, 0, regs["di"], REG_UNDEFINED)])
    assert t.numbering == numbering
    first = t.find(0x1000)
    assert (first.sp_reg, first.sp_offset, first.type) == (REG_SP, 8, TYPE_CALL)
    after_push = t.find(0x1010)
    assert (after_push.sp_reg, after_push.bp_reg, after_push.bp_offset) == (REG_SP, REG_PREV_SP, -16)
    n = 400
    bp_based = t.find(0x1000 + 16 * n)
    assert (bp_based.sp_reg, bp_based.bp_reg) == (REG_BP, REG_PREV_SP)
    assert t.find(0x1000 + 16 * (n + 1)).sp_reg == REG_DI


def test_ax_exists_only_in_the_new_numbering() -> None:
    t = table(NEW, [entry(0, 0, NEW["ax"], REG_UNDEFINED)])
    assert t.find(0x1000 + 16 * 400).sp_reg == REG_AX


def test_empty_table_keeps_the_old_numbering() -> None:
    assert OrcTable([], b"", LAYOUT, True).numbering == "4.14"


@pytest.mark.parametrize("series", ["6.1", "6.12", "sid"])
def test_real_vmlinux_numbering(series) -> None:
    """Linux 7.1 renumbered the registers ("objtool/x86: Reorder ORC register numbering"): the table of each
    fixture kernel must be read with the numbering of its version."""
    from kcrash.kernel.stack import unwinder

    fs = fixture_set(series)
    k = open_fixture_kernel(fs, "qemu.elf")
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", fs.manifest["kernel_release"]).groups())
    assert unwinder(k).orc.numbering == ("7.1" if (major, minor) >= (7, 1) else "4.14")
