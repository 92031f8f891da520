"""Values printed as gdb prints them under crash (`set print pretty on`): scalars, chars, strings with
gdb's escapes and trailing-NUL rule, `<symbol+off>` after pointers, enums (flag enums decomposed), bit
fields, arrays with the 200-element limit, nested structs indented two spaces a level.

Formatting works on the raw bytes of the top-level value (one read for a whole task_struct), not on
per-member Objects, so a large struct prints in a few milliseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kcrash.debuginfo.types import QUALIFIERS, Kind, Type
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.expr.typeprint import peel, type_name

__all__ = ["PrintOptions", "ValueFormatter", "char_literal", "quote_bytes"]

_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_UNPACK = {
    (1, False): struct.Struct("<B").unpack_from,
    (1, True): struct.Struct("<b").unpack_from,
    (2, False): struct.Struct("<H").unpack_from,
    (2, True): struct.Struct("<h").unpack_from,
    (4, False): struct.Struct("<I").unpack_from,
    (4, True): struct.Struct("<i").unpack_from,
    (8, False): struct.Struct("<Q").unpack_from,
    (8, True): struct.Struct("<q").unpack_from,
}


@dataclass
class PrintOptions:
    """gdb's print settings as crash leaves them.

    format: a `/x`-style letter applied to every scalar (None: natural format). radix16: crash's `-x`
    (gdb's output-radix 16): integers and bools in hex, but chars arrays stay strings and enums names.
    repeats: gdb's repeat threshold; crash's gdb never folds repeats (None).
    """

    format: str | None = None
    radix16: bool = False
    pretty: bool = True
    print_max: int = 256  # crash's gdb prints 256 elements or characters, then "..."
    repeats: int | None = None
    symbols: bool = True


def _char_text(c: int, quote: str, need_escape: bool = False) -> str:
    """gdb's print_wchar for one byte; after an octal escape a digit is escaped too (`\\377\\070`)."""
    if 32 <= c < 127 and not (need_escape and 48 <= c <= 57):
        ch = chr(c)
        if ch == "\\" or ch == quote:
            return "\\" + ch
        return ch
    esc = _ESCAPES.get(c)
    return esc if esc is not None else f"\\{c & 0o777:03o}"


def _escaped(c: int) -> bool:
    """Whether _char_text printed an octal escape for `c` (then the next digit is escaped too)."""
    return not 32 <= c < 127 and c not in _ESCAPES


def _utf8_char(data: bytes, pos: int, end: int) -> str | None:
    """The printable character a valid UTF-8 sequence at data[pos:] encodes, within `end`, else None."""
    lead = data[pos]
    size = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if not size or pos + size > end:
        return None
    try:
        ch = data[pos : pos + size].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return ch if ch.isprintable() else None


def _quote_plain(data: bytes, end: int, ellipsis: bool) -> str:
    """gdb's generic_printstr without repeat folding (crash's setting) over data[:end], with a UTF-8 host
    charset: a valid UTF-8 sequence of a printable character is printed as that character, every other
    byte outside printable ASCII as an octal escape (and a digit after an octal escape escaped too)."""
    parts = ['"']
    need = False  # the previous character was an octal escape
    pos = 0
    while pos < end:
        c = data[pos]
        if c >= 0x80 and (ch := _utf8_char(data, pos, end)) is not None:
            parts.append(ch)
            pos += len(ch.encode("utf-8"))
            need = False
            continue
        if c in _ESCAPES:
            parts.append(_ESCAPES[c])
            need = False
        elif 32 <= c < 127 and not (need and 48 <= c <= 57):
            parts.append(_char_text(c, '"'))
            need = False
        else:
            parts.append(f"\\{c:03o}")
            need = True
        pos += 1
    parts.append('"')
    if ellipsis:
        parts.append("...")
    return "".join(parts)


def char_literal(c: int) -> str:
    """`'A'`, `'\\000'`: a char value as gdb shows it after the number."""
    return "'" + _char_text(c & 0xFF, "'") + "'"


def quote_bytes(data: bytes, force_ellipsis: bool, opts: PrintOptions) -> str:
    """gdb's generic_printstr for a byte string of known length (array or fetched string)."""
    length = len(data)
    if not force_ellipsis and length and data[-1] == 0:
        length -= 1
    if length == 0:
        return '""'
    # Consume runs of equal bytes until print_max characters are reached.
    runs: list[tuple[int, int]] = []
    i = 0
    count = 0
    while count < opts.print_max and i < length:
        c = data[i]
        j = i + 1
        while j < length and data[j] == c:
            j += 1
        runs.append((c, j - i))
        count += j - i
        i = j
    finished = i >= length
    threshold = opts.repeats
    parts: list[str] = []
    in_string = False
    need = False  # the previous character was an octal escape
    if threshold is None:
        return _quote_plain(data, i, force_ellipsis or not finished)
    for c, n in runs:
        if threshold is not None and n > threshold:
            if in_string:
                parts.append('"')
                in_string = False
            if parts:
                parts.append(", ")
            parts.append(f"'{_char_text(c, chr(39), need)}' <repeats {n} times>")
            need = _escaped(c)
            continue
        if not in_string:
            if parts:
                parts.append(", ")
            parts.append('"')
            in_string = True
        if c in _ESCAPES:
            parts.append(_ESCAPES[c] * n)
            need = False
        elif 32 <= c < 127 and not (need and 48 <= c <= 57):
            parts.append(_char_text(c, '"') * n)
            need = False
        else:
            parts.append(f"\\{c:03o}" * n)
            need = True
    if in_string:
        parts.append('"')
    if force_ellipsis or not finished:
        parts.append("...")
    return "".join(parts)


def _strip(t: Type) -> Type:
    while t.kind is Kind.TYPEDEF or t.kind in QUALIFIERS:
        t = t.target
    return t


def is_textual(t: Type, fmt: str | None = None) -> bool:
    """gdb's c_textual_element_type: one-byte integers print as characters."""
    if fmt is not None and fmt != "s":
        return False
    s = _strip(t)
    return s.kind is Kind.INT and s.size == 1


def _int_of(buf: Any, off: int, size: int, signed: bool) -> int:
    unpack = _UNPACK.get((size, signed))
    if unpack is not None:
        return unpack(buf, off)[0]
    return int.from_bytes(bytes(buf[off : off + size]), "little", signed=signed)


def format_scalar(value: int, size: int, signed: bool, fmt: str, kernel_symbolize=None) -> str:
    """print_scalar_formatted for an integer value of `size` bytes."""
    bits = size * 8
    mask = (1 << bits) - 1
    u = value & mask
    s = u - (1 << bits) if u >> (bits - 1) else u
    if fmt == "x":
        return f"0x{u:x}"
    if fmt == "z":
        return f"0x{u:0{size * 2}x}"
    if fmt == "d":
        return str(s)
    if fmt == "u":
        return str(u)
    if fmt == "o":
        return f"0{u:o}" if u else "0"
    if fmt == "t":
        return f"{u:b}"
    if fmt == "c":
        v = s if signed else u
        c = v & 0xFF
        if signed and c >= 128:
            c -= 256
        elif not signed:
            c = u & 0xFF
        return f"{c} {char_literal(c)}"
    if fmt == "a":
        text = f"0x{u:x}"
        if kernel_symbolize is not None:
            text += kernel_symbolize(u)
        return text
    return str(s if signed else u)


class ValueFormatter:
    """Formats values of one kernel; `symbolize(addr)` gives the " <sym+off>" suffix (or "")."""

    def __init__(self, kernel: Any, symbolize, opts: PrintOptions | None = None) -> None:
        self.kernel = kernel
        self.symbolize = symbolize
        self.opts = opts or PrintOptions()

    # --- entry points ---------------------------------------------------------------------------------
    def top(self, obj: Any) -> str:
        """The text after `$N = ` for an Object (gdb's print_formatted + c_value_print)."""
        t = obj.type_
        s = _strip(t)
        k = s.kind
        opts = self.opts
        if k is Kind.FUNCTION:
            label = s.name or type_name(t)  # "<text variable, no debug info>" for asm functions
            return "{" + label + "} " + self._address(obj.address, True)
        if opts.format and k not in (Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.VOID):
            return self._scalar_formatted(s, self._scalar_value(obj), opts.format)
        prefix = ""
        if k is Kind.POINTER:
            # gdb leaves out "(char *)" (also for const char: the qualified type keeps the name).
            _quals, core = peel(t)
            target = peel(core.target)[1] if core.kind is Kind.POINTER else None
            plain_char_ptr = target is not None and target.kind is Kind.INT and target.name == "char"
            if not plain_char_ptr:
                prefix = "(" + type_name(t) + ") "
        if obj._bit_size:
            return prefix + self._scalar(s, self._scalar_value(obj), 0)
        if k is Kind.VOID:
            return "void"
        data = obj.raw()
        return prefix + self.value(t, data, 0, obj.address, 0)

    def _scalar_value(self, obj: Any) -> int:
        v = obj.value()
        return int(v)

    # --- recursive printing ------------------------------------------------------------------------
    def value(self, t: Type, buf: Any, off: int, address: int | None, recurse: int) -> str:
        s = _strip(t)
        k = s.kind
        if k is Kind.STRUCT or k is Kind.UNION:
            return self._struct(s, buf, off, address, recurse)
        if k is Kind.ARRAY:
            return self._array(s, buf, off, address, recurse)
        if k is Kind.FUNCTION:
            return "{" + type_name(t) + "} " + self._address(address, True)
        if k is Kind.VOID:
            return "void"
        if k is Kind.FLOAT:
            raw = bytes(buf[off : off + (s.size or 0)])
            v = struct.unpack("<f" if s.size == 4 else "<d", raw)[0] if s.size in (4, 8) else 0.0
            return _float_text(v, s.size or 8)
        size = s.size if s.size is not None else 8
        signed = s.signed and k is not Kind.POINTER
        return self._scalar(s, _int_of(buf, off, size, signed), recurse)

    def _scalar(self, s: Type, v: int, recurse: int) -> str:
        """An integer-like value (int, char, bool, enum, pointer) already extracted."""
        opts = self.opts
        k = s.kind
        fmt = opts.format
        size = s.size if s.size is not None else 8
        if fmt:
            return self._scalar_formatted(s, v, fmt)
        if k is Kind.POINTER:
            return self._pointer(s, v)
        if k is Kind.ENUM:
            return _enum_text(s, v)
        if k is Kind.BOOL:
            if opts.radix16:
                return format_scalar(v, size, False, "x")
            return "false" if v == 0 else "true" if v == 1 else str(v)
        if opts.radix16:
            return format_scalar(v, size, s.signed, "x")
        if size == 1:
            return f"{v} {char_literal(v)}"
        return str(v)

    def _scalar_formatted(self, s: Type, v: int, fmt: str) -> str:
        size = s.size if s.size is not None else 8
        signed = s.signed and s.kind is not Kind.POINTER
        if s.kind is Kind.FLOAT:
            return str(v)
        if fmt == "s":
            if s.kind is Kind.POINTER:
                return self._pointer(s, v)
            return self._scalar(s, v, 0) if not self.opts.format else str(v)
        return format_scalar(v, size, signed, fmt, self.symbolize if self.opts.symbols else None)

    def _address(self, address: int | None, symbolic: bool = True) -> str:
        if address is None:
            return "<unknown>"
        text = f"0x{address:x}"
        if symbolic and self.opts.symbols:
            text += self.symbolize(address)
        return text

    def _pointer(self, s: Type, v: int) -> str:
        target = s.target
        ts = _strip(target)
        if ts.kind is Kind.FUNCTION:
            return self._address(v)
        text = self._address(v)
        if v and is_textual(target, self.opts.format):
            text += " " + self.c_string(v)
        return text

    def c_string(self, address: int) -> str:
        """gdb's val_print_string: a NUL-terminated string read from memory, at most print_max chars."""
        limit = self.opts.print_max
        data = bytearray()
        error_at = None
        pos = address
        while len(data) < limit:
            chunk = min(limit - len(data), 4096 - (pos & 4095))
            try:
                piece = self.kernel.read(pos, chunk)
            except (MemoryReadError, KcrashError):
                # The readable prefix of the chunk, byte by byte, as gdb's partial reads find it.
                piece = bytearray()
                while len(piece) < chunk:
                    try:
                        piece += self.kernel.read(pos + len(piece), 1)
                    except (MemoryReadError, KcrashError):
                        break
                piece = bytes(piece)
                if b"\0" not in piece:
                    error_at = pos + len(piece)
            nul = piece.find(b"\0")
            if nul >= 0:
                data += piece[: nul + 1]
                break
            data += piece
            pos += len(piece)
            if error_at is not None:
                break
        found_nul = bool(data) and data[-1] == 0
        force = False
        if error_at is None and not found_nul:
            try:
                force = self.kernel.read(address + len(data), 1) != b"\0"
            except (MemoryReadError, KcrashError):
                force = False
        out = ""
        if error_at is None or data:
            out = quote_bytes(bytes(data), force, self.opts)
        if error_at is not None:
            out += f"<error: Cannot access memory at address 0x{error_at:x}>"
        return out

    def _array(self, s: Type, buf: Any, off: int, address: int | None, recurse: int) -> str:
        elem = s.target
        es = _strip(elem)
        length = s.length or 0
        esize = es.size if es.kind is not Kind.ARRAY else elem.sizeof()
        if length <= 0 or not esize:
            # An array of unknown length prints as a pointer to its first element.
            text = self._address(address)
            if address and is_textual(elem, self.opts.format):
                text += " " + self.c_string(address)
            return text
        if is_textual(elem, self.opts.format):
            return quote_bytes(bytes(buf[off : off + length]), False, self.opts)
        opts = self.opts
        parts: list[str] = []
        printed = 0
        i = 0
        threshold = opts.repeats
        simple = es.kind not in (Kind.STRUCT, Kind.UNION, Kind.ARRAY)
        while i < length and printed < opts.print_max:
            start = off + i * esize
            reps = 1
            if threshold is not None:
                chunk = bytes(buf[start : start + esize])
                while (
                    i + reps < length
                    and bytes(buf[start + reps * esize : start + (reps + 1) * esize]) == chunk
                ):
                    reps += 1
            addr = address + i * esize if address is not None else None
            if simple:
                text = self._scalar_elem(es, buf, start, recurse + 1)
            else:
                text = self.value(elem, buf, start, addr, recurse + 1)
            if threshold is not None and reps > threshold:
                parts.append(f"{text} <repeats {reps} times>")
                i += reps
                printed += threshold
            else:
                parts.append(text)
                i += 1
                printed += 1
        body = ", ".join(parts)
        if i < length:
            body += "..."
        return "{" + body + "}"

    def _scalar_elem(self, es: Type, buf: Any, off: int, recurse: int) -> str:
        if es.kind is Kind.FLOAT:
            return self.value(es, buf, off, None, recurse)
        size = es.size if es.size is not None else 8
        return self._scalar(es, _int_of(buf, off, size, es.signed and es.kind is not Kind.POINTER), recurse)

    def _struct(self, s: Type, buf: Any, off: int, address: int | None, recurse: int) -> str:
        members = s.members
        if not members:
            return "{<No data fields>}" if s.size is not None else "<incomplete type>"
        pretty = self.opts.pretty
        indent = "\n" + " " * (2 + 2 * recurse)
        parts = []
        for m in members:
            mt = m.type
            name = m.name
            lead = (indent if pretty else "") + (name + " = " if name else "")
            if m.bit_size:
                ms = _strip(mt)
                byte = m.bit_offset // 8
                nbytes = (m.bit_offset % 8 + m.bit_size + 7) // 8
                raw = int.from_bytes(bytes(buf[off + byte : off + byte + nbytes]), "little")
                v = (raw >> (m.bit_offset % 8)) & ((1 << m.bit_size) - 1)
                if ms.signed and v >> (m.bit_size - 1):
                    v -= 1 << m.bit_size
                if self.opts.format:
                    text = self._scalar_formatted(ms, v, self.opts.format)
                else:
                    text = self._scalar(ms, v, recurse + 1) if ms.kind is not Kind.FLOAT else str(v)
            else:
                moff = off + m.bit_offset // 8
                maddr = address + m.bit_offset // 8 if address is not None else None
                text = self.value(mt, buf, moff, maddr, recurse + 1)
            parts.append(lead + text)
        sep = "," if pretty else ", "
        body = sep.join(parts)
        if pretty:
            body += "\n" + " " * (2 * recurse)
        return "{" + body + "}"


def _enum_text(s: Type, v: int) -> str:
    enumerators = s.enumerators or ()
    for e in enumerators:
        if e.value == v:
            return e.name
    if _is_flag_enum(s):
        names = []
        rest = v
        for e in enumerators:
            if e.value and rest & e.value:
                names.append(e.name)
                rest &= ~e.value
        if rest:
            names.append(f"unknown: 0x{rest:x}")
        if not names:
            return "0"
        return "(" + " | ".join(names) + ")"
    return str(v)


def _is_flag_enum(s: Type) -> bool:
    """gdb's flag-enum test: every value non-negative, at most one bit set, no two sharing a bit."""
    mask = 0
    for e in s.enumerators or ():
        if e.value < 0:
            return False
        if bin(e.value).count("1") >= 2:
            return False
        if mask & e.value:
            return False
        mask |= e.value
    return True


def _float_text(v: float, size: int) -> str:
    text = f"{v:.9g}" if size == 4 else f"{v:.17g}"
    if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
        return text
    return text
