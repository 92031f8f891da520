"""The printk readers and `log`'s formatting on synthetic log buffers: the 5.10+ lockless ring (wrapped
data blocks, data-less records, descriptors in other states), the 3.5-5.9 structured log_buf (wrap
marker), the pre-3.5 plain ring; and the pure parts of the `sys` helpers.

The memory images are built here, byte by byte, in the layouts the kernel documents (and VMCOREINFO
describes); the fake kernel has VMCOREINFO and memory only, no types, as a vmlinux without debug info.
"""

from __future__ import annotations

import io
import struct

import pytest

from kcrash.commands import _crashtext as crashtext
from kcrash.commands import sys as sys_command
from kcrash.commands.log import format_plain, format_record
from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.errors import LookupFailedError, PageNotInDumpError
from kcrash.kernel import panic, sysinfo
from kcrash.kernel import time as ktime
from kcrash.kernel.printk import (
    LOG_CONT,
    LogRecord,
    StructuredLayout,
    block_text,
    caller_id_width,
    log_format,
    log_records,
    parse_plain,
    parse_structured,
)

# --- a fake kernel: VMCOREINFO + sparse memory, no types --------------------------------------------------


class FakeKernel:
    def __init__(self, vmcoreinfo: dict[str, str], memory: dict[int, bytes], symbols=()) -> None:
        self.vmcoreinfo = vmcoreinfo
        self.cache: dict = {}  # Kernel.cache: what the helpers derived from this dump
        self.memory_regions = sorted(memory.items())
        self.symbols = SymbolTable.from_symbols(list(symbols))
        self.memory = None

    def read(self, address: int, size: int, physical: bool = False) -> bytes:
        for base, data in self.memory_regions:
            if base <= address and address + size <= base + len(data):
                return bytes(data[address - base : address - base + size])
        raise PageNotInDumpError(address)

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        for base, data in self.memory_regions:
            if base <= address < base + len(data):
                return bytes(data[address - base :]).split(b"\0", 1)[0][:limit]
        raise PageNotInDumpError(address)

    def find_type(self, name: str):
        return None

    def type(self, name: str):
        raise LookupFailedError(f"no type named {name!r}")


# VMCOREINFO of Debian's 6.1 kernel, as log_buf_vmcoreinfo_setup() writes it.
LOCKLESS_INFO = {
    "SIZE(printk_ringbuffer)": "88",
    "OFFSET(printk_ringbuffer.desc_ring)": "0",
    "OFFSET(printk_ringbuffer.text_data_ring)": "48",
    "OFFSET(printk_ringbuffer.fail)": "80",
    "OFFSET(prb_desc_ring.count_bits)": "0",
    "OFFSET(prb_desc_ring.descs)": "8",
    "OFFSET(prb_desc_ring.infos)": "16",
    "OFFSET(prb_desc_ring.head_id)": "24",
    "OFFSET(prb_desc_ring.tail_id)": "32",
    "SIZE(prb_desc)": "24",
    "OFFSET(prb_desc.state_var)": "0",
    "OFFSET(prb_desc.text_blk_lpos)": "8",
    "OFFSET(prb_data_blk_lpos.begin)": "0",
    "OFFSET(prb_data_blk_lpos.next)": "8",
    "SIZE(printk_info)": "88",
    "OFFSET(printk_info.seq)": "0",
    "OFFSET(printk_info.ts_nsec)": "8",
    "OFFSET(printk_info.text_len)": "16",
    "OFFSET(printk_info.caller_id)": "20",
    "OFFSET(printk_info.dev_info)": "24",
    "OFFSET(dev_printk_info.subsystem)": "0",
    "LENGTH(printk_info_subsystem)": "16",
    "OFFSET(dev_printk_info.device)": "16",
    "LENGTH(printk_info_device)": "48",
    "OFFSET(prb_data_ring.size_bits)": "0",
    "OFFSET(prb_data_ring.data)": "8",
    "SIZE(atomic_long_t)": "8",
    "OFFSET(atomic_long_t.counter)": "0",
}

PRB_PTR, PRB, DESCS, INFOS, TEXT = (
    0xFFFF_8880_0000_0000,
    0xFFFF_8880_0000_1000,
    0xFFFF_8880_0001_0000,
    (0xFFFF_8880_0002_0000),
    0xFFFF_8880_0003_0000,
)
RESERVED, COMMITTED, FINALIZED, REUSABLE = 0, 1, 2, 3
NO_LPOS, FAILED_LPOS = 0x3, 0x1


class Ring:
    """A lockless printk ring being written the way kernel/printk/printk_ringbuffer.c lays it out."""

    def __init__(self, count_bits: int = 3, size_bits: int = 8, first_id: int = 10, lpos: int = 0) -> None:
        self.count = 1 << count_bits
        self.count_bits, self.size_bits = count_bits, size_bits
        self.size = 1 << size_bits
        self.descs = bytearray(self.count * 24)
        self.infos = bytearray(self.count * 88)
        self.text = bytearray(self.size)
        self.next_id = first_id
        self.tail_id = first_id
        self.lpos = lpos

    def _alloc(self, ident: int, size: int) -> tuple[int, int]:
        begin, nxt = self.lpos, self.lpos + size
        if begin // self.size != nxt // self.size:
            # A block that would cross the end is stored at the start of the next wrap.
            nxt = (nxt // self.size) * self.size + size
            struct.pack_into("<Q", self.text, 0, ident)
        if begin % self.size + 8 <= self.size:
            struct.pack_into("<Q", self.text, begin % self.size, ident)
        self.lpos = nxt
        return begin, nxt

    def add(
        self,
        text: bytes,
        *,
        state: int = FINALIZED,
        seq: int | None = None,
        ts: int = 0,
        level: int = 6,
        flags: int = 0,
        caller: int = 1,
        subsystem: bytes = b"",
        device: bytes = b"",
        lpos: tuple[int, int] | None = None,
        text_len: int | None = None,
        sv_id: int | None = None,
    ) -> int:
        ident = self.next_id
        self.next_id += 1
        if lpos is None:
            if text:
                size = (8 + len(text) + 7) & ~7
                begin, nxt = self._alloc(ident, size)
                start = 0 if begin // self.size != nxt // self.size and nxt % self.size else begin % self.size
                self.text[start + 8 : start + 8 + len(text)] = text
            else:
                begin = nxt = NO_LPOS
        else:
            begin, nxt = lpos
        slot = ident % self.count
        sv = (state << 62) | (ident if sv_id is None else sv_id)
        struct.pack_into("<QQQ", self.descs, slot * 24, sv, begin, nxt)
        info = bytearray(88)
        tl = len(text) if text_len is None else text_len
        struct.pack_into(
            "<QQHBBI", info, 0, ident if seq is None else seq, ts, tl, 0, (level << 5) | flags, caller
        )
        info[24 : 24 + len(subsystem)] = subsystem
        info[40 : 40 + len(device)] = device
        self.infos[slot * 88 : slot * 88 + 88] = info
        return ident

    def kernel(self) -> FakeKernel:
        head = self.next_id - 1
        prb = bytearray(88)
        struct.pack_into("<IxxxxQQQQ", prb, 0, self.count_bits, DESCS, INFOS, head, self.tail_id)
        struct.pack_into("<IxxxxQ", prb, 48, self.size_bits, TEXT)
        info = dict(LOCKLESS_INFO, **{"SYMBOL(prb)": f"{PRB_PTR:x}", "OSRELEASE": "6.1.0"})
        memory = {
            PRB_PTR: struct.pack("<Q", PRB),
            PRB: bytes(prb),
            DESCS: bytes(self.descs),
            INFOS: bytes(self.infos),
            TEXT: bytes(self.text),
        }
        return FakeKernel(info, memory)


def test_lockless_records_plain():
    ring = Ring()
    ring.add(b"Linux version 6.1.0", ts=0, level=5, caller=0)
    ring.add(b"second\nline two", ts=1_500_000_000, level=4, caller=0x80000001)
    k = ring.kernel()
    assert log_format(k) == "lockless"
    recs = log_records(k)
    assert [(r.seq, r.text, r.level, r.caller) for r in recs] == [
        (10, b"Linux version 6.1.0", 5, "T0"),
        (11, b"second\nline two", 4, "C1"),
    ]


def test_lockless_wrapped_block_begins_in_previous_wrap():
    # Ring of 256 bytes; the head sits 24 bytes before the end of wrap 3: a 32-byte block cannot fit, so
    # it is stored at offset 0 while its begin lpos stays in the previous wrap.
    ring = Ring(lpos=3 * 256 + 200)
    ring.add(b"fits here 1234", ts=1)  # 8 + 14 -> 24 bytes: 200..224
    wrapped = ring.add(b"wraps to the start", ts=2)  # 8 + 18 -> 32 bytes: cannot fit in 224..256
    ring.add(b"after", ts=3)
    k = ring.kernel()
    descs = k.read(DESCS, 24 * 8)
    begin, nxt = struct.unpack_from("<QQ", descs, (wrapped % 8) * 24 + 8)
    assert begin // 256 == 3 and nxt // 256 == 4 and begin % 256 > nxt % 256
    assert [r.text for r in log_records(k)] == [b"fits here 1234", b"wraps to the start", b"after"]


def test_block_text_rules():
    ring = bytes(range(256))
    # regular block: text after the 8-byte id, truncated to the block.
    assert block_text(ring, 256, 256 + 16, 256 + 32, 100) == ring[24:32]
    # wrapped: begin in wrap 1, next in wrap 2 -> data from offset 0.
    assert block_text(ring, 256, 256 + 240, 512 + 24, 10) == ring[8:18]
    # a block ending exactly at the end of the ring (kernels from late 2025 keep it there).
    assert block_text(ring, 256, 256 + 224, 512, 24) == ring[232:256]
    # data-less records and impossible descriptions.
    assert block_text(ring, 256, NO_LPOS, NO_LPOS, 0) is None
    assert block_text(ring, 256, FAILED_LPOS, FAILED_LPOS, 5) is None
    assert block_text(ring, 256, 256, 1024, 5) is None


def test_lockless_skips_descriptors_not_committed():
    ring = Ring()
    ring.add(b"committed", state=COMMITTED)
    ring.add(b"being written", state=RESERVED)
    ring.add(b"recycled", state=REUSABLE)
    stale = ring.add(b"stale id")
    # A descriptor whose state_var names another id (it was reused by a later record) is not this one.
    struct.pack_into("<Q", ring.descs, (stale % 8) * 24, (FINALIZED << 62) | (stale + 8))
    ring.add(b"finalized")
    assert [r.text for r in log_records(ring.kernel())] == [b"committed", b"finalized"]


def test_lockless_dataless_and_truncated_records():
    ring = Ring()
    ring.add(b"", ts=5)  # printk(""): NO_LPOS, no data block
    ring.add(b"", lpos=(FAILED_LPOS, FAILED_LPOS), text_len=20)  # reservation that failed
    ring.add(b"short", text_len=40)  # text_len larger than the block: truncated to the block
    recs = log_records(ring.kernel())
    assert [(r.dataless, r.text) for r in recs] == [(True, b""), (True, b""), (False, b"short\0\0\0")]
    assert format_record(recs[0]) == ""


def test_lockless_ids_wrap_the_descriptor_ring():
    ring = Ring(first_id=(1 << 62) - 3)  # ids wrap at DESC_ID_MASK
    ids = [ring.add(f"rec {i}".encode()) for i in range(3)]
    ring.next_id = 0  # the id after the last one
    ring.add(b"rec 3")
    ring.tail_id = ids[0]
    assert [r.text for r in log_records(ring.kernel())] == [b"rec 0", b"rec 1", b"rec 2", b"rec 3"]


def test_format_record_like_crash():
    rec = LogRecord(7, 3_000_123_456, b"one\ntwo\tx\x01\xff", level=4, caller_id=42, subsystem=b"pci")
    rec.device = b"+pci:0000:00:01.0"
    assert format_record(rec) == "[    3.000123] one\n               two\tx.."
    assert format_record(rec, timestamps=False, level=True) == "<4>one\n   two\tx.."
    assert (
        format_record(rec, caller_width=6) == "[    3.000123] [   T42] one\n                        two\tx.."
    )
    assert format_record(rec, dictionary=True).splitlines()[2:] == [
        "               SUBSYSTEM=pci",
        "               DEVICE=+pci:0000:00:01.0",
    ]
    big = LogRecord(0, 123456_789000000, b"x", caller_id=0x80000003)
    assert format_record(big, caller_width=7) == "[123456.789000] [     C3] x"


def test_log_command_on_synthetic_ring():
    from kcrash.shell.context import Settings
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    ring = Ring()
    ring.add(b"hello", ts=1_000_000)
    ring.add(b"")
    ring.add(b"multi\nline", ts=2_000_000, level=3)
    registry = Registry()
    registry.load_module("kcrash.commands", "kcrash", builtin=True)
    shell = Shell(
        ring.kernel(), registry=registry, settings=Settings(), stdout=io.StringIO(), stderr=io.StringIO()
    )
    shell.execute("log -m")
    assert (
        shell.stdout.getvalue()
        == "[    0.001000] <6>hello\n\n[    0.002000] <3>multi\n                  line\n"
    )
    assert shell.stderr.getvalue() == ""


def test_caller_id_width_follows_pid_max():
    ring = Ring()
    ring.add(b"x")
    k = ring.kernel()
    k.symbols = SymbolTable.from_symbols([Symbol("pid_max", 0xFFFF_8880_0004_0000, 4, "D")])
    for pid_max, width in ((32768, 6), (99999, 6), (4194304, 8), (500000, 7)):
        k.memory_regions = [r for r in k.memory_regions if r[0] != 0xFFFF_8880_0004_0000]
        k.memory_regions.append((0xFFFF_8880_0004_0000, struct.pack("<I", pid_max)))
        k.memory_regions.sort()
        assert caller_id_width(k) == width


# --- 3.5-5.9: structured log_buf ----------------------------------------------------------------------


def structured_record(text: bytes, *, ts=0, level=6, facility=0, flags=0, dictionary=b"", caller=None):
    hdr = 16 if caller is None else 20
    size = (hdr + len(text) + len(dictionary) + 7) & ~7
    rec = bytearray(size)
    struct.pack_into("<QHHHBB", rec, 0, ts, size, len(text), len(dictionary), facility, (level << 5) | flags)
    if caller is not None:
        struct.pack_into("<I", rec, 16, caller)
    rec[hdr : hdr + len(text)] = text
    rec[hdr + len(text) : hdr + len(text) + len(dictionary)] = dictionary
    return bytes(rec)


def test_structured_wraps_at_zero_length_marker():
    # Buffer of 160 bytes: the oldest records sit at 96..144; the rest of the buffer (16 bytes, a header's
    # worth) is zero: a len==0 marker, the next record having not fitted. The newest records continue
    # from offset 0 up to log_next_idx.
    buf = bytearray(160)
    buf[96:120] = structured_record(b"oldest", ts=1)
    buf[120:144] = structured_record(b"older", ts=2)
    r3 = structured_record(b"newer", ts=3, dictionary=b"SUBSYSTEM=pci\0DEVICE=+pci:1")
    buf[0 : len(r3)] = r3
    buf[len(r3) : len(r3) + 24] = structured_record(b"newest", ts=4)
    next_idx = len(r3) + 24
    assert next_idx < 96
    recs = parse_structured(bytes(buf), 96, next_idx, 100, StructuredLayout())
    assert [(r.seq, r.text, r.ts_nsec) for r in recs] == [
        (100, b"oldest", 1),
        (101, b"older", 2),
        (102, b"newer", 3),
        (103, b"newest", 4),
    ]
    assert recs[2].context == [(b"SUBSYSTEM", b"pci"), (b"DEVICE", b"+pci:1")]
    assert format_record(recs[2], dictionary=True) == (
        "[    0.000000] newer\n               SUBSYSTEM=pci\n               DEVICE=+pci:1"
    )


def test_structured_explicit_len_zero_marker_and_caller():
    buf = bytearray(96)
    a = structured_record(b"A", caller=5, level=3, flags=LOG_CONT)
    buf[48 : 48 + len(a)] = a
    # len == 0 marker right after it
    struct.pack_into("<QHHHBB", buf, 48 + len(a), 0, 0, 0, 0, 0, 0)
    b = structured_record(b"B", caller=0x80000002)
    buf[0 : len(b)] = b
    layout = StructuredLayout(header_size=20, caller_id=16)
    recs = parse_structured(bytes(buf), 48, len(b), 0, layout)
    assert [(r.text, r.caller, r.level, r.continuation) for r in recs] == [
        (b"A", "T5", 3, True),
        (b"B", "C2", 6, False),
    ]


def test_structured_from_vmcoreinfo():
    buf = structured_record(b"first") + structured_record(b"second", level=2)
    log_buf = 0xFFFF_8880_0010_0000
    syms = {
        "log_buf": 0xFFFF_FFFF_8200_0000,
        "log_buf_len": 0xFFFF_FFFF_8200_0008,
        "log_first_idx": 0xFFFF_FFFF_8200_0010,
        "log_next_idx": 0xFFFF_FFFF_8200_0018,
    }
    info = {f"SYMBOL({n})": f"{a:x}" for n, a in syms.items()}
    info.update(
        {
            "SIZE(printk_log)": "16",
            "OFFSET(printk_log.ts_nsec)": "0",
            "OFFSET(printk_log.len)": "8",
            "OFFSET(printk_log.text_len)": "10",
            "OFFSET(printk_log.dict_len)": "12",
        }
    )
    memory = {
        syms["log_buf"]: struct.pack("<Q", log_buf),
        syms["log_buf_len"]: struct.pack("<I", 256),
        syms["log_first_idx"]: struct.pack("<I", 0),
        syms["log_next_idx"]: struct.pack("<I", len(buf)),
        log_buf: buf.ljust(256, b"\0"),
    }
    k = FakeKernel(info, memory)
    assert log_format(k) == "structured"
    assert [(r.text, r.level) for r in log_records(k)] == [(b"first", 6), (b"second", 2)]


# --- before 3.5: the plain ring ------------------------------------------------------------------------


def test_plain_log_not_wrapped():
    blob = b"<6>Linux version 2.6.32\n<4>warning: x\x01y\n".ljust(64, b"\0")
    log = parse_plain(blob, 40)
    assert log.at_line_start
    assert format_plain(log.text, log.at_line_start) == "Linux version 2.6.32\nwarning: x.y\n"
    assert (
        format_plain(log.text, log.at_line_start, level=True) == "<6>Linux version 2.6.32\n<4>warning: x.y\n"
    )
    assert [(r.level, r.text) for r in log.records] == [(6, b"Linux version 2.6.32"), (4, b"warning: x\x01y")]


def test_plain_log_wrapped():
    # 32-byte ring; 70 characters logged: the oldest text starts at 70 % 32 = 6, mid-line.
    text = b"<6>aaaa\n<6>bbbbbbbbbb\n<6>cccccccc\n<4>dddddddddddd\n<6>eeeeee\n"[:70]
    ring = bytearray(32)
    for i, ch in enumerate(text):
        ring[i % 32] = ch
    log = parse_plain(bytes(ring), len(text))
    assert not log.at_line_start
    assert log.text == text[-32:]
    out = format_plain(log.text, log.at_line_start)
    # The partial first line is printed as it is; later lines lose their level prefix.
    assert out == text[-32:].split(b"\n", 1)[0].decode() + "\ndddddddddddd\neeeeee\n"


def test_plain_log_from_symbols():
    log_buf = 0xFFFF_8880_0020_0000
    syms = [
        Symbol("log_buf", 0xFFFF_FFFF_8210_0000, 8, "d"),
        Symbol("log_buf_len", 0xFFFF_FFFF_8210_0008, 4, "d"),
        Symbol("log_end", 0xFFFF_FFFF_8210_0010, 4, "b"),
    ]
    memory = {
        0xFFFF_FFFF_8210_0000: struct.pack("<QiiI", log_buf, 64, 0, 9),
        log_buf: b"<5>hello\n".ljust(64, b"\0"),
    }
    k = FakeKernel({}, memory, syms)
    assert log_format(k) == "plain"
    assert [(r.text, r.level) for r in log_records(k)] == [(b"hello", 5)]


# --- sys helpers ---------------------------------------------------------------------------------------


def test_format_memory_like_crash():
    assert sys_command.format_memory(262011 * 4096) == "1 GB"  # within 64 MiB of 1 GiB: rounded up
    assert sys_command.format_memory(3 * 2**30 - 100 * 2**20) == "2.9 GB"
    assert sys_command.format_memory(512 * 2**20) == "512 MB"
    assert sys_command.format_memory(0) == "0"


def test_format_uptime_like_crash():
    assert crashtext.format_jiffies(5 * 250, 250) == "00:00:05"
    assert (
        crashtext.format_jiffies((265 * 86400 + 18 * 3600 + 15 * 60 + 40) * 100, 100) == "265 days, 18:15:40"
    )


def test_ctime_tz_format(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    assert crashtext.ctime_tz(1795689189) == "Thu Nov 26 10:33:09 UTC 2026"
    assert crashtext.ctime_tz(0) == "Thu Jan  1 00:00:00 UTC 1970"


def test_panic_message_order(monkeypatch):
    def with_log(lines):
        k = FakeKernel({}, {})
        recs = [LogRecord(i, 0, line.encode()) for i, line in enumerate(lines)]
        monkeypatch.setattr(panic, "log_records", lambda kernel: recs)
        return panic.panic_message(k)

    assert with_log(["sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash"]) == (
        "Kernel panic - not syncing: sysrq triggered crash",
        False,
    )
    assert with_log(["sysrq: SysRq : Trigger a crash", "BUG: unable to handle kernel NULL pointer"]) == (
        "sysrq: SysRq : Trigger a crash",
        True,
    )
    assert with_log(["Oops: 0002 [#1] SMP", "Kernel panic - not syncing: Fatal exception"])[0] == (
        "Oops: 0002 [#1] SMP"
    )
    assert (
        with_log(["general protection fault: 0000 [#1]", "Oops: x"])[0]
        == "general protection fault: 0000 [#1]"
    )
    assert with_log(["nothing here"]) == ("", False)


def test_sys_lines_format():
    info = sys_command.SysInfo(
        kernel="vmlinux",
        dumpfile="vmcore  [PARTIAL DUMP]",
        cpus=4,
        offline=1,
        date="Thu Nov 26 10:33:09 UTC 2026",
        uptime="00:00:04",
        load_average="0.00, 0.01, 0.05",
        tasks=60,
        nodename="(none)",
        release="6.1.0",
        version="#1 SMP",
        machine="x86_64",
        mhz=None,
        memory="1 GB",
        panic="Oops: 0002 [#1] SMP",
    )
    lines = sys_command.sys_lines(info)
    assert lines[2] == "        CPUS: 4 [OFFLINE: 1]"
    assert lines[10] == "     MACHINE: x86_64  (unknown Mhz)"
    assert lines[12] == '       PANIC: "Oops: 0002 [#1] SMP" (check log for details)'
    assert all(line[12:14] == ": " for line in lines)


@pytest.mark.parametrize(
    ("fmt", "level", "incomplete", "status", "want"),
    [
        ("KDUMP (lzo)", 31, False, 0, "  [PARTIAL DUMP]"),
        ("flattened KDUMP (zlib)", 1, False, 0, "  [PARTIAL DUMP]"),
        ("KDUMP (lzo)", 0, False, 0, ""),
        ("KDUMP (lzo)", 31, True, 0x10, "  [PARTIAL DUMP] [INCOMPLETE] [EXCLUDED VMEMMAP]"),
        ("ELF", None, False, 0, ""),
        ("ELF", None, True, 0, "  [INCOMPLETE]"),
    ],
)
def test_dumpfile_suffix(fmt, level, incomplete, status, want):
    class Mem:
        format_name = fmt
        dump_level = level
        partial = False

    Mem.incomplete = incomplete
    Mem.status = status
    k = FakeKernel({}, {})
    k.memory = Mem()
    assert sys_command.dumpfile_suffix(sysinfo.dump_flags(k)) == want


def test_load_average_rounding():
    avenrun = [0, 2048 * 8 // 100, 2048 * 3 // 2]  # 0.00, ~0.08, 1.50
    k = FakeKernel(
        {},
        {0xFFFF_FFFF_8300_0000: struct.pack("<3Q", *avenrun)},
        [Symbol("avenrun", 0xFFFF_FFFF_8300_0000, 24, "B")],
    )
    assert sysinfo.load_average(k) == ((0, 0), (0, 8), (1, 50))
    assert sys_command._load_average(sysinfo.load_average(k)) == "0.00, 0.08, 1.50"


def test_uptime_jiffies_initial_offset():
    addr = 0xFFFF_FFFF_8300_1000
    initial = (-300 * 250) & 0xFFFFFFFF
    k = FakeKernel({}, {addr: struct.pack("<Q", initial + 1100)}, [Symbol("jiffies_64", addr, 8, "D")])
    assert ktime.uptime_jiffies(k, 250) == 1100
    # After 2^32 jiffies the upper half is set: crash re-bases it and adds INITIAL_JIFFIES back.
    k2 = FakeKernel({}, {addr: struct.pack("<Q", (1 << 32) + 5)}, [Symbol("jiffies_64", addr, 8, "D")])
    assert ktime.uptime_jiffies(k2, 250) == 5 + 300 * 250
