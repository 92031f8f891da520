"""LEB128 variable-length integers, as DWARF encodes them."""

from __future__ import annotations

from typing import Any

__all__ = ["uleb128", "sleb128"]


def uleb128(buf: Any, pos: int) -> tuple[int, int]:
    """(value, position after it) of the unsigned LEB128 number at `pos`."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def sleb128(buf: Any, pos: int) -> tuple[int, int]:
    """(value, position after it) of the signed LEB128 number at `pos`."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos
