"""Audit: the messages kauditd had not yet delivered, from its socket-buffer queues."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["AuditRecord", "audit_records"]


def _u32(k: Kernel, addr: int) -> int:
    return int.from_bytes(k.read(addr, 4), "little")


@dataclass(frozen=True)
class AuditRecord:
    type: int
    text: bytes


_NLMSG_HDRLEN = 16  # struct nlmsghdr, aligned to NLMSG_ALIGNTO (4)


def audit_records(k: Kernel) -> list[AuditRecord]:
    """Audit messages kauditd had not delivered: the hold, retry and main queues (audit_skb_* before
    4.11), oldest queue first."""
    queues: tuple[str, ...]
    if k.symbols.lookup("audit_skb_queue") is not None:
        queues = ("audit_skb_hold_queue", "audit_skb_queue")
    elif k.symbols.lookup("audit_queue") is not None:
        queues = ("audit_hold_queue", "audit_retry_queue", "audit_queue")
    else:
        raise KcrashError("-a option not supported on this dumpfile")
    head_t = k.find_type("struct sk_buff_head")
    skb_t = k.find_type("struct sk_buff")
    if head_t is None or skb_t is None:
        raise KcrashError("-a needs the sk_buff types (no debug info)")
    qlen_off = head_t.member("qlen")[1] // 8
    next_off = skb_t.member("next")[1] // 8
    len_off = skb_t.member("len")[1] // 8
    data_off = skb_t.member("data")[1] // 8
    out: list[AuditRecord] = []
    for name in queues:
        sym = k.symbols.lookup(name)
        if sym is None:
            continue
        head = sym.address
        qlen = _u32(k, head + qlen_off)
        if not qlen:
            continue
        skb = k.read_u64(head)
        for _ in range(qlen):
            if skb in (0, head):
                break
            length = _u32(k, skb + len_off)
            data = k.read_u64(skb + data_off)
            nl_type = struct.unpack("<H", k.read(data + 4, 2))[0]
            payload = k.read(data + _NLMSG_HDRLEN, max(0, length - _NLMSG_HDRLEN)) if length > 16 else b""
            out.append(AuditRecord(nl_type, payload.split(b"\0", 1)[0]))
            skb = k.read_u64(skb + next_off)
    return out
