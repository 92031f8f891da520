"""How the fields of the records commands print are written as JSON (docs/json.md).

JSON readers outside Python (jq, JavaScript, most libraries) read every number as an IEEE double and lose
digits above 2^53, which is every kernel address. A record field holding an address, a register or another
64-bit quantity is declared with `hex_field()` (written "0xffff8c0a411fb000", crash's notation) or
`dec_field()` (a decimal string, for values that are not addresses, such as nanoseconds); counts and other
small values stay JSON numbers. Lowest layer: records of every layer use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["JSON_SCHEMA", "dec_field", "hex_field", "json_dec", "json_hex", "json_kind"]

# The version of the JSON records' layout, carried by every record ("schema"). Fields are added freely;
# renaming or retyping one bumps it. 2: addresses, registers and 64-bit values became strings.
JSON_SCHEMA = 2


def hex_field(**kwargs: Any) -> Any:
    """A dataclass field written as "0x…" in JSON (ints inside a list or dict value too)."""
    return dataclasses.field(metadata={"json": "hex"}, **kwargs)


def dec_field(**kwargs: Any) -> Any:
    """A dataclass field written as a decimal string in JSON."""
    return dataclasses.field(metadata={"json": "dec"}, **kwargs)


def json_kind(f: dataclasses.Field) -> str | None:
    """ "hex", "dec" or None (plain JSON) for a dataclass field."""
    return f.metadata.get("json")


def json_hex(value: Any) -> Any:
    """Ints (alone, or in a list, tuple or dict value) as "0x…" strings ("-0x…" below zero)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return f"0x{value:x}" if value >= 0 else f"-0x{-value:x}"
    if isinstance(value, dict):
        return {str(k): json_hex(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_hex(v) for v in value]
    return value


def json_dec(value: Any) -> Any:
    """Ints (alone, or in a list, tuple or dict value) as decimal strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_dec(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_dec(v) for v in value]
    return value
