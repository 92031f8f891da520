"""The kernel log (printk): the 5.10+ lockless ring buffer, the 3.5-5.9 structured log_buf, and the older
plain character buffer. Layouts come from VMCOREINFO (which the kernel fills for exactly this purpose), with
the debug-info types as a fallback, so the log can be read even from a vmlinux without debug info.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.program import per_kernel
from kcrash.records import json_dec

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.program import Kernel

__all__ = [
    "LOG_CONT",
    "LogRecord",
    "LogLayoutError",
    "StructuredLayout",
    "PlainLog",
    "log_format",
    "log_records",
    "read_log",
    "plain_log",
    "parse_lockless",
    "parse_structured",
    "block_text",
    "caller_id_width",
]

LOG_CONT = 8  # enum printk_info_flags / log_flags: continuation of the previous record

# prb_desc state_var: the top two bits are the descriptor state, the rest its id (64-bit longs).
_SV_BITS = 64
_STATE_SHIFT = _SV_BITS - 2
_ID_MASK = (1 << _STATE_SHIFT) - 1
_DESC_COMMITTED, _DESC_FINALIZED = 1, 2
_ID_SIZE = 8  # each data block starts with its descriptor id, an unsigned long


class LogLayoutError(KcrashError):
    """The kernel's log buffer layout could not be determined."""


@dataclass(slots=True)
class LogRecord:
    """One printk record. `dataless` records (an empty printk, or a failed reservation) have no text;
    crash prints them as an empty line."""

    seq: int
    ts_nsec: int
    text: bytes
    level: int = 6
    facility: int = 0
    flags: int = 0
    caller_id: int | None = None
    subsystem: bytes = b""  # 5.10+: dev_printk_info
    device: bytes = b""
    dictionary: bytes = b""  # 3.5-5.9: the KEY=value\0... dictionary stored after the text
    dataless: bool = False

    @property
    def caller(self) -> str | None:
        """`T<tid>` or `C<cpu>` as crash's `log -c` prints it."""
        if self.caller_id is None:
            return None
        if self.caller_id & 0x80000000:
            return f"C{self.caller_id & 0x7FFFFFFF}"
        return f"T{self.caller_id}"

    @property
    def continuation(self) -> bool:
        return bool(self.flags & LOG_CONT)

    @property
    def context(self) -> list[tuple[bytes, bytes]]:
        """The record's key/value metadata: SUBSYSTEM/DEVICE (5.10+) or the dictionary entries."""
        if self.dictionary:
            out = []
            for entry in self.dictionary.split(b"\0"):
                key, _, value = entry.partition(b"=")
                if key:
                    out.append((key, value))
            return out
        return [(k, v) for k, v in ((b"SUBSYSTEM", self.subsystem), (b"DEVICE", self.device)) if v]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts_nsec": json_dec(self.ts_nsec),  # past 2^53 ns (104 days of uptime) a double loses digits
            "level": self.level,
            "facility": self.facility,
            "flags": self.flags,
            "caller": self.caller,
            "text": self.text.decode("utf-8", "replace"),
            "context": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in self.context},
        }


class _Layout:
    """OFFSET/SIZE/LENGTH/SYMBOL values from VMCOREINFO, falling back to the kernel's types."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.info: dict[str, str] = k.vmcoreinfo

    def _struct(self, name: str) -> Type | None:
        try:
            return self.k.find_type(f"struct {name}")
        except KcrashError:
            return None

    def has(self, struct_name: str, member: str) -> bool:
        if f"OFFSET({struct_name}.{member})" in self.info:
            return True
        t = self._struct(struct_name)
        return t is not None and t.find_member(member) is not None

    def offset(self, struct_name: str, member: str) -> int:
        v = self.info.get(f"OFFSET({struct_name}.{member})")
        if v is not None:
            return int(v)
        t = self._struct(struct_name)
        hit = t.find_member(member) if t is not None else None
        if hit is None:
            raise LogLayoutError(f"cannot find the offset of {struct_name}.{member}")
        return hit[1] // 8

    def member_size(self, struct_name: str, member: str) -> int | None:
        t = self._struct(struct_name)
        hit = t.find_member(member) if t is not None else None
        if hit is None:
            return None
        try:
            return int(hit[0].type.sizeof())
        except (AttributeError, KcrashError):
            return None

    def size(self, name: str) -> int:
        v = self.info.get(f"SIZE({name})")
        if v is not None:
            return int(v)
        t = self._struct(name)
        if t is None:
            raise LogLayoutError(f"cannot find the size of {name}")
        return int(t.sizeof())

    def length(self, name: str, default: int) -> int:
        v = self.info.get(f"LENGTH({name})")
        return int(v) if v is not None else default

    def symbol(self, name: str) -> int | None:
        v = self.info.get(f"SYMBOL({name})")
        if v is not None:
            return int(v, 16)
        sym = self.k.symbols.lookup(name)
        return sym.address if sym else None

    def required_symbol(self, name: str) -> int:
        address = self.symbol(name)
        if address is None:
            raise LogLayoutError(f"this kernel has no {name} symbol")
        return address

    def symbol_size(self, name: str) -> int | None:
        sym = self.k.symbols.lookup(name)
        return sym.size if sym and sym.size else None


def _u64(k: Kernel, addr: int) -> int:
    return int.from_bytes(k.read(addr, 8), "little")


def _u32(k: Kernel, addr: int) -> int:
    return int.from_bytes(k.read(addr, 4), "little")


def log_format(k: Kernel) -> str:
    """Which log buffer the kernel has: "lockless" (5.10+), "structured" (3.5-5.9) or "plain"."""
    lay = _Layout(k)
    if lay.symbol("prb") is not None:
        return "lockless"
    if lay.symbol("log_first_idx") is not None and lay.symbol("log_next_idx") is not None:
        return "structured"
    if lay.symbol("log_buf") is not None:
        return "plain"
    raise LogLayoutError("this kernel has no log buffer symbols (prb, log_buf)")


@per_kernel
def log_records(k: Kernel) -> list[LogRecord]:
    """Every record still in the kernel log, oldest first (cached per Kernel: a dump does not change)."""
    kind = log_format(k)
    lay = _Layout(k)
    if kind == "lockless":
        records = _lockless_records(k, lay)
    elif kind == "structured":
        records = _structured_records(k, lay)
    else:
        records = plain_log(k).records
    return records


read_log = log_records


def caller_id_width(k: Kernel) -> int:
    """The width crash pads `log -c` caller ids to: from pid_max on 5.10+ kernels, else 8."""
    if log_format(k) != "lockless":
        return 8
    sym = k.symbols.lookup("pid_max")
    if sym is None:
        return 8
    try:
        pid_max = _u32(k, sym.address)
    except MemoryReadError:
        return 8
    if pid_max <= 99999:
        return 6
    if pid_max <= 999999:
        return 7
    return 8


# --- 5.10+: the lockless printk ring buffer ---------------------------------------------------------


@dataclass(frozen=True)
class LocklessLayout:
    """Where the fields of `struct prb_desc` and `struct printk_info` are."""

    desc_size: int = 24
    state_var: int = 0
    lpos_begin: int = 8
    lpos_next: int = 16
    info_size: int = 88
    seq: int = 0
    ts_nsec: int = 8
    text_len: int = 16
    caller_id: int = 20
    subsystem: int = 24
    subsystem_len: int = 16
    device: int = 40
    device_len: int = 48


def _lockless_records(k: Kernel, lay: _Layout) -> list[LogRecord]:
    prb = _u64(k, lay.required_symbol("prb"))
    desc_ring = prb + lay.offset("printk_ringbuffer", "desc_ring")
    data_ring = prb + lay.offset("printk_ringbuffer", "text_data_ring")
    counter = lay.offset("atomic_long_t", "counter") if lay.has("atomic_long_t", "counter") else 0

    count_bits = _u32(k, desc_ring + lay.offset("prb_desc_ring", "count_bits"))
    descs = _u64(k, desc_ring + lay.offset("prb_desc_ring", "descs"))
    infos = _u64(k, desc_ring + lay.offset("prb_desc_ring", "infos"))
    head_id = _u64(k, desc_ring + lay.offset("prb_desc_ring", "head_id") + counter)
    tail_id = _u64(k, desc_ring + lay.offset("prb_desc_ring", "tail_id") + counter)
    size_bits = _u32(k, data_ring + lay.offset("prb_data_ring", "size_bits"))
    data = _u64(k, data_ring + lay.offset("prb_data_ring", "data"))
    if not 0 < count_bits < 32 or not 0 < size_bits < 40:
        raise LogLayoutError(f"implausible printk ring (count_bits {count_bits}, size_bits {size_bits})")

    lpos = lay.offset("prb_desc", "text_blk_lpos")
    dev = lay.offset("printk_info", "dev_info")
    layout = LocklessLayout(
        desc_size=lay.size("prb_desc"),
        state_var=lay.offset("prb_desc", "state_var") + counter,
        lpos_begin=lpos + lay.offset("prb_data_blk_lpos", "begin"),
        lpos_next=lpos + lay.offset("prb_data_blk_lpos", "next"),
        info_size=lay.size("printk_info"),
        seq=lay.offset("printk_info", "seq"),
        ts_nsec=lay.offset("printk_info", "ts_nsec"),
        text_len=lay.offset("printk_info", "text_len"),
        caller_id=lay.offset("printk_info", "caller_id"),
        subsystem=dev + lay.offset("dev_printk_info", "subsystem"),
        subsystem_len=lay.length("printk_info_subsystem", 16),
        device=dev + lay.offset("dev_printk_info", "device"),
        device_len=lay.length("printk_info_device", 48),
    )
    count = 1 << count_bits
    # One bulk read per array: a few hundred KiB each, far cheaper than a read per record.
    desc_blob = k.read(descs, count * layout.desc_size)
    info_blob = k.read(infos, count * layout.info_size)
    text_blob = k.read(data, 1 << size_bits)
    return parse_lockless(desc_blob, info_blob, text_blob, count_bits, tail_id, head_id, layout)


def parse_lockless(
    desc_blob: bytes,
    info_blob: bytes,
    text_blob: bytes,
    count_bits: int,
    tail_id: int,
    head_id: int,
    layout: LocklessLayout | None = None,
) -> list[LogRecord]:
    """The records of a lockless ring from its descriptor, info and text arrays, `tail_id` to `head_id`.

    Only descriptors whose state is committed or finalized and whose id matches are records; reserved
    (being written) and reusable (recycled) descriptors are skipped, as the kernel's readers do.
    """
    lay = layout or LocklessLayout()
    count = 1 << count_bits
    size = len(text_blob)
    # facility, then flags:5 and level:3, follow the u16 text_len (no VMCOREINFO entry names them).
    fac_off = lay.text_len + 2
    unpack_q = struct.Struct("<Q").unpack_from
    records: list[LogRecord] = []
    ident = tail_id & _ID_MASK
    head = head_id & _ID_MASK
    for _ in range(count + 1):
        slot = ident % count
        d = slot * lay.desc_size
        sv = unpack_q(desc_blob, d + lay.state_var)[0]
        if (sv & _ID_MASK) == ident and (sv >> _STATE_SHIFT) in (_DESC_COMMITTED, _DESC_FINALIZED):
            begin = unpack_q(desc_blob, d + lay.lpos_begin)[0]
            nxt = unpack_q(desc_blob, d + lay.lpos_next)[0]
            i = slot * lay.info_size
            text_len = struct.unpack_from("<H", info_blob, i + lay.text_len)[0]
            fl = info_blob[i + fac_off + 1]
            text = block_text(text_blob, size, begin, nxt, text_len)
            records.append(
                LogRecord(
                    seq=unpack_q(info_blob, i + lay.seq)[0],
                    ts_nsec=unpack_q(info_blob, i + lay.ts_nsec)[0],
                    text=text if text is not None else b"",
                    level=fl >> 5,
                    facility=info_blob[i + fac_off],
                    flags=fl & 0x1F,
                    caller_id=struct.unpack_from("<I", info_blob, i + lay.caller_id)[0],
                    subsystem=_cstr(info_blob, i + lay.subsystem, lay.subsystem_len),
                    device=_cstr(info_blob, i + lay.device, lay.device_len),
                    dataless=text is None,
                )
            )
        if ident == head:
            break
        ident = (ident + 1) & _ID_MASK
    return records


def _cstr(blob: bytes, start: int, length: int) -> bytes:
    raw = blob[start : start + length]
    nul = raw.find(b"\0")
    return bytes(raw if nul < 0 else raw[:nul])


def block_text(ring: bytes, size: int, begin: int, nxt: int, text_len: int) -> bytes | None:
    """The text of the data block at logical positions [begin, next) of a ring of `size` bytes, or None
    for a data-less record.

    A block that would cross the end of the ring is stored from offset 0 instead: then `next` lies one
    wrap after `begin` and the block spans [0, next % size). (Since 2025 a block may also end exactly at
    the end of the ring, `next` then being the next wrap's first position.) Each block starts with its
    descriptor id before the text; a text longer than the block was truncated when it was stored.
    """
    if begin & 1 or nxt & 1:
        return None  # data-less: NO_LPOS (empty printk) or FAILED_LPOS
    wraps_b, wraps_n = begin // size, nxt // size
    if wraps_b == wraps_n and begin < nxt:
        start, length = begin % size, nxt - begin
    elif wraps_b + 1 == wraps_n and nxt % size == 0:
        start, length = begin % size, nxt - begin
    elif wraps_b + 1 == wraps_n:
        start, length = 0, nxt % size
    else:
        return None  # not a valid block description
    if length < _ID_SIZE:
        return None
    length = min(text_len, length - _ID_SIZE)
    return bytes(ring[start + _ID_SIZE : start + _ID_SIZE + length])


# --- 3.5-5.9: structured records in log_buf ------------------------------------------------------------


@dataclass(frozen=True)
class StructuredLayout:
    """`struct printk_log` (`struct log` before 3.11): `u64 ts_nsec; u16 len, text_len, dict_len;` then
    `u8 facility; u8 flags:5, level:3;` (3.6+) or `u16 level` (3.5: facility << 3 | level), then an
    optional `u32 caller_id` (5.1+ with CONFIG_PRINTK_CALLER); the text follows the header."""

    header_size: int = 16
    ts_nsec: int = 0
    len: int = 8
    text_len: int = 10
    dict_len: int = 12
    level_u16: bool = False
    caller_id: int | None = None


def _structured_layout(k: Kernel, lay: _Layout) -> StructuredLayout:
    info = lay.info
    if "SIZE(printk_log)" in info:
        name = "printk_log"
    elif "SIZE(log)" in info:
        name = "log"
    else:
        name = "printk_log" if lay._struct("printk_log") is not None else "log"
    hdr = lay.size(name)
    dict_len = lay.offset(name, "dict_len")
    level_u16 = False
    if lay._struct(name) is not None:
        level_u16 = not lay.has(name, "facility") and lay.member_size(name, "level") == 2
    elif re.match(r"3\.5\.", info.get("OSRELEASE", "")):
        level_u16 = True
    caller = None
    if lay.has(name, "caller_id"):
        caller = lay.offset(name, "caller_id")
    elif lay._struct(name) is None and hdr >= 20:
        caller = dict_len + 4
    return StructuredLayout(
        header_size=hdr,
        ts_nsec=lay.offset(name, "ts_nsec"),
        len=lay.offset(name, "len"),
        text_len=lay.offset(name, "text_len"),
        dict_len=dict_len,
        level_u16=level_u16,
        caller_id=caller,
    )


def _structured_records(k: Kernel, lay: _Layout) -> list[LogRecord]:
    layout = _structured_layout(k, lay)
    buf = _u64(k, lay.required_symbol("log_buf"))
    buf_len = _u32(k, lay.required_symbol("log_buf_len"))
    first_idx = _u32(k, lay.required_symbol("log_first_idx"))
    next_idx = _u32(k, lay.required_symbol("log_next_idx"))
    first_seq_sym = lay.symbol("log_first_seq")
    first_seq = _u64(k, first_seq_sym) if first_seq_sym is not None else 0
    if not 0 < buf_len <= 1 << 31:
        raise LogLayoutError(f"implausible log_buf_len {buf_len}")
    return parse_structured(k.read(buf, buf_len), first_idx, next_idx, first_seq, layout)


def parse_structured(
    blob: bytes, first_idx: int, next_idx: int, first_seq: int, layout: StructuredLayout | None = None
) -> list[LogRecord]:
    """Records of a 3.5-5.9 log_buf image from `first_idx` up to `next_idx`.

    A header whose `len` is 0 marks the end of the used part of the buffer: the record it stands for is
    the one at offset 0 (the kernel wraps a record that does not fit at the end).
    """
    lay = layout or StructuredLayout()
    hdr = lay.header_size
    size = len(blob)
    records: list[LogRecord] = []
    seen: set[int] = set()
    idx = first_idx
    seq = first_seq

    def length_at(pos: int) -> int:
        if pos + hdr > size:
            return 0
        return int(struct.unpack_from("<H", blob, pos + lay.len)[0])

    while idx != next_idx:
        ptr = idx if length_at(idx) else 0
        if ptr in seen or ptr + hdr > size:
            break  # a loop or a corrupt index: stop rather than repeat records
        seen.add(ptr)
        rec_len = length_at(ptr)
        text_len = struct.unpack_from("<H", blob, ptr + lay.text_len)[0]
        dict_len = struct.unpack_from("<H", blob, ptr + lay.dict_len)[0]
        if lay.level_u16:
            raw = struct.unpack_from("<H", blob, ptr + lay.dict_len + 2)[0]
            level, facility, flags = raw & 7, raw >> 3, 0
        else:
            facility = blob[ptr + lay.dict_len + 2]
            fl = blob[ptr + lay.dict_len + 3]
            level, flags = fl >> 5, fl & 0x1F
        text_at = ptr + hdr
        caller = struct.unpack_from("<I", blob, ptr + lay.caller_id)[0] if lay.caller_id is not None else None
        records.append(
            LogRecord(
                seq=seq,
                ts_nsec=struct.unpack_from("<Q", blob, ptr + lay.ts_nsec)[0],
                text=bytes(blob[text_at : text_at + text_len]),
                level=level,
                facility=facility,
                flags=flags,
                caller_id=caller,
                dictionary=bytes(blob[text_at + text_len : text_at + text_len + dict_len]),
            )
        )
        seq += 1
        if rec_len < hdr:
            break
        idx = ptr + rec_len
        if idx >= size:
            if first_idx > next_idx:
                idx = 0
            else:
                break
    return records


# --- before 3.5: a plain character ring ---------------------------------------------------------------


@dataclass(frozen=True)
class PlainLog:
    """The pre-3.5 log: the buffer in chronological order (NUL bytes are unused space) and whether its
    first byte starts a line (the ring has not wrapped and begins with a `<level>` prefix)."""

    text: bytes
    at_line_start: bool
    records: list[LogRecord] = field(default_factory=list)


def plain_log(k: Kernel) -> PlainLog:
    """Read the pre-3.5 character ring (`log_buf`, `log_buf_len`, `log_end`)."""
    lay = _Layout(k)
    log_buf = lay.symbol("log_buf")
    end_sym = lay.symbol("log_end")
    if log_buf is None or end_sym is None:
        raise LogLayoutError("no log_end: unknown log buffer format")
    len_sym = lay.symbol("log_buf_len")
    if len_sym is not None:
        buf_len = struct.unpack("<i", k.read(len_sym, 4))[0]
        buf = _u64(k, log_buf)
    else:
        # Before log_buf_len existed, log_buf was the array itself.
        buf_len = lay.symbol_size("log_buf") or 0
        buf = log_buf
    if not 0 < buf_len <= 1 << 31:
        raise LogLayoutError(f"implausible log_buf_len {buf_len}")
    end_size = lay.symbol_size("log_end") or 4
    end = _u64(k, end_sym) if end_size == 8 else _u32(k, end_sym)
    try:
        blob = k.read(buf, buf_len)
    except MemoryReadError as e:
        raise LogLayoutError(f"cannot read log_buf contents: {e}") from None
    return parse_plain(blob, end)


def parse_plain(blob: bytes, log_end: int) -> PlainLog:
    """Put a plain log ring in order: `log_end` counts every character ever logged."""
    size = len(blob)
    start = 0 if log_end < size else log_end & (size - 1)
    at_line_start = log_end < size and start == 0 and blob[:1] == b"<"
    text = bytes(blob[start:] + blob[:start])
    return PlainLog(text, at_line_start, _plain_records(text))


_LEVEL_PREFIX = re.compile(rb"<([0-7])>")


def _plain_records(text: bytes) -> list[LogRecord]:
    """One record per line of a plain log, its `<level>` prefix taken off."""
    records = []
    for i, line in enumerate(text.replace(b"\0", b"").split(b"\n")):
        if not line:
            continue
        m = _LEVEL_PREFIX.match(line)
        level = int(m.group(1)) if m else 4
        records.append(LogRecord(i, 0, line[m.end() :] if m else line, level=level))
    return records
