"""The kernel log (printk): the 5.10+ lockless ring buffer, the 3.5-5.9 structured log_buf, and the older
plain character buffer. Layouts come from VMCOREINFO (which the kernel fills for exactly this purpose), with
the debug-info types as a fallback, so the log can be read even from a vmlinux without debug info.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["LogRecord", "log_records", "read_log", "LogLayoutError"]

LOG_CONT = 8  # enum printk_info_flags / log_flags: continuation of the previous record


class LogLayoutError(KcrashError):
    """The kernel's log buffer layout could not be determined."""


@dataclass(slots=True)
class LogRecord:
    seq: int
    ts_nsec: int
    text: bytes
    level: int = 6
    facility: int = 0
    flags: int = 0
    caller_id: int | None = None
    subsystem: bytes = b""
    device: bytes = b""

    @property
    def caller(self) -> str | None:
        """`T<tid>` or `C<cpu>` as crash's `log -c` prints it."""
        if self.caller_id is None:
            return None
        if self.caller_id & 0x80000000:
            return f"C{self.caller_id & 0x7FFFFFFF}"
        return f"T{self.caller_id}"


class _Layout:
    """OFFSET/SIZE/LENGTH/SYMBOL values from VMCOREINFO, falling back to the kernel's types."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.info = k.vmcoreinfo

    def offset(self, struct_name: str, member: str) -> int:
        v = self.info.get(f"OFFSET({struct_name}.{member})")
        if v is not None:
            return int(v)
        try:
            t = self.k.type(f"struct {struct_name}")
            return t.member(member)[1] // 8
        except KcrashError:
            raise LogLayoutError(f"cannot find the offset of {struct_name}.{member}") from None

    def size(self, name: str) -> int:
        v = self.info.get(f"SIZE({name})")
        if v is not None:
            return int(v)
        try:
            return self.k.type(f"struct {name}").sizeof()
        except KcrashError:
            raise LogLayoutError(f"cannot find the size of {name}") from None

    def length(self, name: str, default: int) -> int:
        v = self.info.get(f"LENGTH({name})")
        return int(v) if v is not None else default

    def symbol(self, name: str) -> int | None:
        v = self.info.get(f"SYMBOL({name})")
        if v is not None:
            return int(v, 16)
        sym = self.k.symbols.lookup(name) if getattr(self.k, "symbols", None) else None
        return sym.address if sym else None


def _u64(read: Callable[[int, int], bytes], addr: int) -> int:
    return struct.unpack("<Q", read(addr, 8))[0]


def _u32(read: Callable[[int, int], bytes], addr: int) -> int:
    return struct.unpack("<I", read(addr, 4))[0]


def log_records(k: Kernel) -> list[LogRecord]:
    """Every record still in the kernel log, oldest first."""
    lay = _Layout(k)
    if lay.symbol("prb") is not None:
        return _lockless_records(k, lay)
    if lay.symbol("log_first_idx") is not None:
        return _structured_records(k, lay)
    if lay.symbol("log_buf") is not None:
        return _plain_records(k, lay)
    raise LogLayoutError("this kernel has no log buffer symbols (prb, log_buf)")


read_log = log_records


# --- 5.10+: the lockless printk ring buffer ---------------------------------------------------------


def _lockless_records(k: Kernel, lay: _Layout) -> list[LogRecord]:
    read = k.read
    prb = _u64(read, lay.symbol("prb"))
    desc_ring = prb + lay.offset("printk_ringbuffer", "desc_ring")
    data_ring = prb + lay.offset("printk_ringbuffer", "text_data_ring")
    counter = lay.offset("atomic_long_t", "counter") if "OFFSET(atomic_long_t.counter)" in lay.info else 0

    count_bits = _u32(read, desc_ring + lay.offset("prb_desc_ring", "count_bits"))
    descs = _u64(read, desc_ring + lay.offset("prb_desc_ring", "descs"))
    infos = _u64(read, desc_ring + lay.offset("prb_desc_ring", "infos"))
    head_id = _u64(read, desc_ring + lay.offset("prb_desc_ring", "head_id") + counter)
    tail_id = _u64(read, desc_ring + lay.offset("prb_desc_ring", "tail_id") + counter)
    size_bits = _u32(read, data_ring + lay.offset("prb_data_ring", "size_bits"))
    data = _u64(read, data_ring + lay.offset("prb_data_ring", "data"))
    if not 0 < count_bits < 32 or not 0 < size_bits < 40:
        raise LogLayoutError(f"implausible printk ring (count_bits {count_bits}, size_bits {size_bits})")

    desc_size = lay.size("prb_desc")
    sv_off = lay.offset("prb_desc", "state_var") + counter
    lpos_off = lay.offset("prb_desc", "text_blk_lpos")
    begin_off = lay.offset("prb_data_blk_lpos", "begin")
    next_off = lay.offset("prb_data_blk_lpos", "next")
    info_size = lay.size("printk_info")
    seq_off = lay.offset("printk_info", "seq")
    ts_off = lay.offset("printk_info", "ts_nsec")
    len_off = lay.offset("printk_info", "text_len")
    caller_off = lay.offset("printk_info", "caller_id")
    dev_off = lay.offset("printk_info", "dev_info")
    subsys_off = dev_off + lay.offset("dev_printk_info", "subsystem")
    device_off = dev_off + lay.offset("dev_printk_info", "device")
    subsys_len = lay.length("printk_info_subsystem", 16)
    device_len = lay.length("printk_info_device", 48)
    # facility, then flags:5 and level:3, follow the u16 text_len (no VMCOREINFO entry names them).
    fac_off = len_off + 2

    count = 1 << count_bits
    data_size = 1 << size_bits
    bits = 64
    id_mask = (1 << (bits - 2)) - 1
    state_shift = bits - 2
    committed, finalized = 1, 2

    # One bulk read per array: a few hundred KiB each, far cheaper than a read per record.
    desc_blob = read(descs, count * desc_size)
    info_blob = read(infos, count * info_size)
    text_blob = read(data, data_size)

    records: list[LogRecord] = []
    ident = tail_id & id_mask
    head = head_id & id_mask
    steps = 0
    while True:
        slot = ident % count
        d = slot * desc_size
        sv = struct.unpack_from("<Q", desc_blob, d + sv_off)[0]
        state = sv >> state_shift
        if (sv & id_mask) == ident and state in (committed, finalized):
            begin = struct.unpack_from("<Q", desc_blob, d + lpos_off + begin_off)[0]
            nxt = struct.unpack_from("<Q", desc_blob, d + lpos_off + next_off)[0]
            i = slot * info_size
            seq, ts = (
                struct.unpack_from("<QQ", info_blob, i + seq_off)[0],
                struct.unpack_from("<Q", info_blob, i + ts_off)[0],
            )
            text_len = struct.unpack_from("<H", info_blob, i + len_off)[0]
            facility = info_blob[i + fac_off]
            fl = info_blob[i + fac_off + 1]
            caller = struct.unpack_from("<I", info_blob, i + caller_off)[0]
            text = _block_text(text_blob, data_size, begin, nxt, text_len)
            records.append(
                LogRecord(
                    seq=seq,
                    ts_nsec=ts,
                    text=text,
                    level=fl >> 5,
                    facility=facility,
                    flags=fl & 0x1F,
                    caller_id=caller,
                    subsystem=bytes(info_blob[i + subsys_off : i + subsys_off + subsys_len]).split(b"\0")[0],
                    device=bytes(info_blob[i + device_off : i + device_off + device_len]).split(b"\0")[0],
                )
            )
        if ident == head:
            break
        ident = (ident + 1) & id_mask
        steps += 1
        if steps > count:
            break
    return records


def _block_text(ring: bytes, size: int, begin: int, nxt: int, text_len: int) -> bytes:
    """The text of one data block at logical positions [begin, next).

    A block that would cross the end of the ring is stored from offset 0 instead: then `next` lies one
    wrap after `begin` and the block spans [0, next % size). Data-less records have the low bit set.
    Each block starts with its descriptor id (an unsigned long) before the text.
    """
    if begin & 1 or nxt & 1 or begin == nxt:
        return b""
    wraps_b, wraps_n = begin // size, nxt // size
    if wraps_b == wraps_n:
        start, length = begin % size, nxt - begin
    elif wraps_b + 1 == wraps_n:
        start, length = 0, nxt % size
    else:
        return b""
    length = max(0, min(text_len, length - 8))
    return bytes(ring[start + 8 : start + 8 + length])


# --- 3.5-5.9: structured records in log_buf ------------------------------------------------------------


def _structured_records(k: Kernel, lay: _Layout) -> list[LogRecord]:
    read = k.read
    buf = _u64(read, lay.symbol("log_buf"))
    buf_len = _u32(read, lay.symbol("log_buf_len"))
    first_idx = _u32(read, lay.symbol("log_first_idx"))
    next_idx = _u32(read, lay.symbol("log_next_idx"))
    first_seq = _u64(read, lay.symbol("log_first_seq")) if lay.symbol("log_first_seq") else 0
    name = "printk_log" if "SIZE(printk_log)" in lay.info or _has_struct(k, "printk_log") else "log"
    hdr = lay.size(name)
    ts_off = lay.offset(name, "ts_nsec")
    len_off = lay.offset(name, "len")
    tlen_off = lay.offset(name, "text_len")
    dlen_off = lay.offset(name, "dict_len")
    fac_off = dlen_off + 1
    caller_off = hdr - 4 if hdr >= 20 and _has_caller_id(k, name, lay) else None
    if not 0 < buf_len <= 1 << 28:
        raise LogLayoutError(f"implausible log_buf_len {buf_len}")
    blob = read(buf, buf_len)
    return parse_structured(
        blob, first_idx, next_idx, first_seq, hdr, ts_off, len_off, tlen_off, dlen_off, fac_off, caller_off
    )


def parse_structured(
    blob: bytes,
    first_idx: int,
    next_idx: int,
    first_seq: int,
    hdr: int,
    ts_off: int,
    len_off: int,
    tlen_off: int,
    dlen_off: int,
    fac_off: int,
    caller_off: int | None,
) -> list[LogRecord]:
    """Records of a 3.5-5.9 log_buf image from `first_idx` up to `next_idx`; a zero `len` wraps to 0."""
    records: list[LogRecord] = []
    idx = first_idx
    seq = first_seq
    guard = 0
    while idx != next_idx and guard < len(blob):
        if idx + hdr > len(blob):
            idx = 0
            continue
        (length,) = struct.unpack_from("<H", blob, idx + len_off)
        if length == 0:
            idx = 0
            guard += 1
            continue
        (ts,) = struct.unpack_from("<Q", blob, idx + ts_off)
        (text_len,) = struct.unpack_from("<H", blob, idx + tlen_off)
        facility = blob[idx + fac_off]
        fl = blob[idx + fac_off + 1]
        caller = struct.unpack_from("<I", blob, idx + caller_off)[0] if caller_off is not None else None
        text = bytes(blob[idx + hdr : idx + hdr + text_len])
        records.append(
            LogRecord(seq, ts, text, level=fl >> 5, facility=facility, flags=fl & 0x1F, caller_id=caller)
        )
        seq += 1
        idx += length
        guard += length
    return records


def _has_struct(k: Kernel, name: str) -> bool:
    try:
        return k.find_type(f"struct {name}") is not None
    except KcrashError:
        return False


def _has_caller_id(k: Kernel, name: str, lay: _Layout) -> bool:
    if f"OFFSET({name}.caller_id)" in lay.info:
        return True
    try:
        t = k.find_type(f"struct {name}")
        return t is not None and t.find_member("caller_id") is not None
    except KcrashError:
        return False


# --- before 3.5: a plain character ring ---------------------------------------------------------------


def _plain_records(k: Kernel, lay: _Layout) -> list[LogRecord]:
    read = k.read
    buf = _u64(read, lay.symbol("log_buf"))
    buf_len = _u32(read, lay.symbol("log_buf_len"))
    end_sym = lay.symbol("log_end")
    if end_sym is None:
        raise LogLayoutError("no log_end: unknown log buffer format")
    end = _u32(read, end_sym)
    try:
        blob = read(buf, buf_len)
    except MemoryReadError as e:
        raise LogLayoutError(f"cannot read log_buf: {e}") from None
    if end > buf_len:
        start = end % buf_len
        text = blob[start:] + blob[:start]
    else:
        text = blob[:end]
    return [LogRecord(i, 0, line) for i, line in enumerate(text.split(b"\n")) if line]
