"""BTF (the kernel's compact type format, section .BTF) as kcrash Types: every record indexed once,
Type objects and their members built only when asked for."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from functools import partial
from itertools import accumulate
from typing import Any

from kcrash.debuginfo.types import Enumerator, Kind, Member, Parameter, Type
from kcrash.errors import DebugInfoError

__all__ = ["BtfTypes", "parse_type_name", "canonical_base_name"]

BTF_MAGIC = 0xEB9F

# Kinds (include/uapi/linux/btf.h)
BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BTF_KIND_FLOAT = 16
BTF_KIND_DECL_TAG = 17
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19

BTF_INT_SIGNED = 1
BTF_INT_CHAR = 2
BTF_INT_BOOL = 4

# Bytes that follow the 12-byte common record: a fixed part plus `vlen` items of a per-kind size.
_EXTRA = (0, 4, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0)
_PER_ITEM = (0, 0, 0, 0, 12, 12, 8, 0, 0, 0, 0, 0, 0, 8, 0, 12, 0, 0, 0, 12)
_QUALIFIERS = {BTF_KIND_VOLATILE: Kind.VOLATILE, BTF_KIND_CONST: Kind.CONST, BTF_KIND_RESTRICT: Kind.RESTRICT}

_record = struct.Struct("<III").unpack_from
_name_info = struct.Struct("<II").unpack_from
_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from

_INT_WORDS = {"signed", "unsigned", "short", "long", "int", "char"}


def canonical_base_name(name: str) -> str:
    """A C integer type spelt as gcc names it in DWARF and pahole in BTF: "unsigned long" → "long
    unsigned int". Other names come back unchanged."""
    words = name.split()
    if not words or not set(words) <= _INT_WORDS or words.count("long") > 2:
        return " ".join(words)
    unsigned = "unsigned" in words
    longs = words.count("long")
    if "char" in words:
        if "short" in words or longs or "int" in words:
            return " ".join(words)
        if unsigned:
            return "unsigned char"
        return "signed char" if "signed" in words else "char"
    if "short" in words:
        return "short unsigned int" if unsigned else "short int"
    if longs == 2:
        return "long long unsigned int" if unsigned else "long long int"
    if longs == 1:
        return "long unsigned int" if unsigned else "long int"
    return "unsigned int" if unsigned else "int"


def parse_type_name(name: str) -> tuple[str, str]:
    """("struct"|"union"|"enum", tag) for a tagged name, else ("", typedef or base type name)."""
    words = name.split()
    if len(words) >= 2 and words[0] in ("struct", "union", "enum"):
        return words[0], " ".join(words[1:])
    return "", " ".join(words)


class BtfTypes:
    """The types of one .BTF section. Type ids index records; Types are built and cached per id."""

    def __init__(self, data: bytes | memoryview, path: str = ".BTF", pointer_size: int = 8) -> None:
        self.path = path
        self.pointer_size = pointer_size
        view: Any = data
        if not isinstance(data, bytes):
            view = self._view = memoryview(data).cast("B")
        if len(view) < 24:
            raise DebugInfoError(path, "BTF section too short for its header")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", view, 0)
        if magic != BTF_MAGIC:
            raise DebugInfoError(path, f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        if version != 1:
            raise DebugInfoError(path, f"unsupported BTF version {version}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", view, 8)
        end = hdr_len + max(type_off + type_len, str_off + str_len)
        if hdr_len < 24 or end > len(view):
            raise DebugInfoError(path, "BTF header points past the end of the section (truncated?)")
        self._types = view[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strings = bytes(view[hdr_len + str_off : hdr_len + str_off + str_len])
        self._offsets = self._index_records()
        self._built: dict[int, Type] = {}
        self._names: dict[tuple[str, str], int] | None = None
        self._funcs: dict[str, int] | None = None
        self._enumerators: dict[str, tuple[int, int]] | None = None
        self._percpu: dict[str, tuple[int, Type]] | None = None
        self._void = Type(Kind.VOID, "void")

    def close(self) -> None:
        """Release the views of the section (so the mmap under them can be closed)."""
        for view in (self._types, getattr(self, "_view", None)):
            if isinstance(view, memoryview):
                view.release()

    @classmethod
    def from_elf(cls, elf: Any, sections: dict[str, Any], path: str = "vmlinux") -> BtfTypes | None:
        """The .BTF section of an ELF image held in an mmap (no copy of the type data), or None."""
        sec = sections.get(".BTF")
        if sec is None or sec.size == 0:
            return None
        return cls(memoryview(elf)[sec.offset : sec.offset + sec.size], path=path)

    # --- indexing ---------------------------------------------------------------------------------
    def _index_records(self) -> array[int]:
        """Offsets of type records by id (id 0 is void), and each record's name offset and info word:
        one pass, no Type objects."""
        types = self._types
        size = len(types)
        offsets = array("I", [0])
        self._name_offs = name_offs = array("I", [0])
        self._infos = infos = array("I", [0])
        append, append_name, append_info = offsets.append, name_offs.append, infos.append
        extra, per_item = _EXTRA, _PER_ITEM
        pos = kind = 0
        try:
            while pos < size:
                append(pos)
                name_off, info = _name_info(types, pos)
                append_name(name_off)
                append_info(info)
                kind = (info >> 24) & 0x1F
                pos += 12 + extra[kind] + per_item[kind] * (info & 0xFFFF)
        except IndexError:
            raise DebugInfoError(self.path, f"unknown BTF kind {kind} at type {len(offsets) - 1}") from None
        except struct.error:
            pos = -1
        if pos != size:
            raise DebugInfoError(self.path, "BTF type section ends inside a record (truncated?)")
        return offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def _name(self, off: int) -> str:
        strings = self._strings
        return strings[off : strings.index(0, off)].decode("utf-8", "replace")

    def _raw(self, tid: int) -> tuple[int, int, int, int, int, bool]:
        """(kind, vlen, name_off, size_or_type, record offset, kind_flag) of a type id."""
        pos = self._offsets[tid]
        name_off, info, size_type = _record(self._types, pos)
        return (info >> 24) & 0x1F, info & 0xFFFF, name_off, size_type, pos, bool(info >> 31)

    def _build_names(self) -> dict[tuple[str, str], int]:
        names: dict[tuple[str, str], int] = {}
        funcs: dict[str, int] = {}
        strings = self._strings
        # Every string once, by offset (names pointing into the middle of a string fall back below).
        parts = strings.split(b"\0")
        by_offset = dict(zip(accumulate((len(p) + 1 for p in parts), initial=0), parts, strict=False))
        namespace = {
            BTF_KIND_STRUCT: "struct", BTF_KIND_UNION: "union", BTF_KIND_ENUM: "enum", BTF_KIND_ENUM64: "enum",
            BTF_KIND_INT: "", BTF_KIND_TYPEDEF: "", BTF_KIND_FLOAT: "", BTF_KIND_FUNC: "()",
        }  # fmt: skip
        fwds: list[tuple[tuple[str, str], int]] = []
        for tid, (name_off, info) in enumerate(zip(self._name_offs, self._infos, strict=True)):
            if not name_off:
                continue
            raw = by_offset.get(name_off)
            name = raw.decode("utf-8", "replace") if raw is not None else self._name(name_off)
            kind = (info >> 24) & 0x1F
            ns = namespace.get(kind)
            if ns is None:
                if kind == BTF_KIND_FWD:
                    fwds.append((("union" if info >> 31 else "struct", name), tid))
            elif ns == "()":
                funcs.setdefault(name, tid)
            elif (ns, name) not in names:
                names[(ns, name)] = tid
        for key, tid in fwds:
            names.setdefault(key, tid)  # a forward declaration only when no definition exists
        self._funcs = funcs
        self._names = names
        return names

    # --- lookups ----------------------------------------------------------------------------------
    def find_type_id(self, name: str) -> int | None:
        names = self._names if self._names is not None else self._build_names()
        key = parse_type_name(name)
        tid = names.get(key)
        if tid is None and not key[0]:
            tid = names.get(("", canonical_base_name(key[1])))
        if tid is None and key == ("", "void"):
            return 0
        return tid

    def find_type(self, name: str) -> Type | None:
        """A type by C name: "struct task_struct", "union x", "enum pid_type", a typedef or base type."""
        tid = self.find_type_id(name)
        return None if tid is None else self.type(tid)

    def find_function(self, name: str) -> Type | None:
        """The prototype (Kind.FUNCTION) of a function BTF describes."""
        if self._funcs is None:
            self._build_names()
        assert self._funcs is not None
        tid = self._funcs.get(name)
        if tid is None:
            return None
        return self.type(self._raw(tid)[3])

    def find_enumerator(self, name: str) -> tuple[Type, int] | None:
        """(enum type, value) of an enumerator name."""
        if self._enumerators is None:
            self._enumerators = self._build_enumerators()
        hit = self._enumerators.get(name)
        if hit is None:
            return None
        return self.type(hit[0]), hit[1]

    def _build_enumerators(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for tid in range(1, len(self._offsets)):
            kind, vlen, _name, _size, pos, kflag = self._raw(tid)
            if kind == BTF_KIND_ENUM or kind == BTF_KIND_ENUM64:
                for name, value in self._enum_values(kind, vlen, pos, kflag):
                    out.setdefault(name, (tid, value))
        return out

    def percpu_variables(self) -> dict[str, tuple[int, Type]]:
        """Per-CPU variables from the .data..percpu DATASEC: name → (offset in the section, type)."""
        if self._percpu is not None:
            return self._percpu
        out: dict[str, tuple[int, Type]] = {}
        self._percpu = out
        types = self._types
        infos = self._infos
        # Only DATASEC records matter; pahole emits them last, so look from the end.
        for tid in range(len(self._offsets) - 1, 0, -1):
            if (infos[tid] >> 24) & 0x1F != BTF_KIND_DATASEC:
                continue
            kind, vlen, name_off, _size, pos, _ = self._raw(tid)
            if self._name(name_off) != ".data..percpu":
                continue
            for i in range(vlen):
                var, offset, _vsize = struct.unpack_from("<III", types, pos + 12 + 12 * i)
                vkind, _, vname, vtype, _, _ = self._raw(var)
                if vkind == BTF_KIND_VAR:
                    out[self._name(vname)] = (offset, self.type(vtype))
        return out

    def type_names(self) -> Iterator[str]:
        names = self._names if self._names is not None else self._build_names()
        for ns, name in names:
            yield f"{ns} {name}" if ns else name

    # --- building Types ---------------------------------------------------------------------------
    def type(self, tid: int) -> Type:
        """The Type of a BTF type id (built once)."""
        t = self._built.get(tid)
        if t is None:
            if tid == 0:
                return self._void
            if tid >= len(self._offsets):
                raise DebugInfoError(self.path, f"BTF type id {tid} out of range")
            t = self._built[tid] = self._make(tid)
        return t

    def _ref(self, tid: int) -> Type | partial[Type]:
        t = self._built.get(tid)
        return t if t is not None else partial(self.type, tid)

    def _make(self, tid: int) -> Type:
        kind, vlen, name_off, size_type, pos, kflag = self._raw(tid)
        name = self._name(name_off) if name_off else None
        types = self._types
        if kind == BTF_KIND_INT:
            encoding = _u32(types, pos + 12)[0] >> 24
            if encoding & BTF_INT_BOOL:
                return Type(Kind.BOOL, name, size_type)
            return Type(Kind.INT, name, size_type, signed=bool(encoding & BTF_INT_SIGNED))
        if kind == BTF_KIND_PTR:
            return Type(Kind.POINTER, None, self.pointer_size, target=self._ref(size_type))
        if kind == BTF_KIND_ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", types, pos + 12)
            return Type(Kind.ARRAY, None, None, target=self._ref(elem), length=nelems)
        if kind == BTF_KIND_STRUCT or kind == BTF_KIND_UNION:
            k = Kind.STRUCT if kind == BTF_KIND_STRUCT else Kind.UNION
            return Type(k, name, size_type, members=partial(self._members, pos, vlen, kflag))
        if kind == BTF_KIND_ENUM or kind == BTF_KIND_ENUM64:
            values = [Enumerator(n, v) for n, v in self._enum_values(kind, vlen, pos, kflag)]
            signed = kflag or any(e.value < 0 for e in values)
            return Type(Kind.ENUM, name, size_type, signed=signed, enumerators=values)
        if kind == BTF_KIND_FWD:
            ns = "union" if kflag else "struct"
            if name:
                full = self.find_type_id(f"{ns} {name}")
                if full is not None and self._raw(full)[0] != BTF_KIND_FWD:
                    return self.type(full)
            return Type(Kind.UNION if kflag else Kind.STRUCT, name, None)
        if kind == BTF_KIND_TYPEDEF:
            return Type(Kind.TYPEDEF, name, None, target=self._ref(size_type))
        if kind in _QUALIFIERS:
            return Type(_QUALIFIERS[kind], None, None, target=self._ref(size_type))
        if kind == BTF_KIND_FUNC_PROTO:
            return self._proto(pos, vlen, size_type)
        if kind == BTF_KIND_FLOAT:
            return Type(Kind.FLOAT, name, size_type, signed=True)
        if kind in (BTF_KIND_FUNC, BTF_KIND_VAR, BTF_KIND_TYPE_TAG, BTF_KIND_DECL_TAG):
            # Not types of their own: a function's or variable's type, or an annotation on one.
            return self.type(size_type)
        if kind == BTF_KIND_DATASEC:
            return self._void
        raise DebugInfoError(self.path, f"unknown BTF kind {kind} (type {tid})")

    def _enum_values(self, kind: int, vlen: int, pos: int, signed: bool) -> Iterator[tuple[str, int]]:
        types = self._types
        if kind == BTF_KIND_ENUM:
            fmt = "<Ii" if signed else "<II"
            for i in range(vlen):
                name_off, value = struct.unpack_from(fmt, types, pos + 12 + 8 * i)
                yield self._name(name_off), value
        else:
            for i in range(vlen):
                name_off, lo, hi = struct.unpack_from("<III", types, pos + 12 + 12 * i)
                value = (hi << 32) | lo
                if signed and value >= 1 << 63:
                    value -= 1 << 64
                yield self._name(name_off), value

    def _members(self, pos: int, vlen: int, kflag: bool) -> list[Member]:
        types = self._types
        members = []
        for i in range(vlen):
            name_off, mtype, offset = struct.unpack_from("<III", types, pos + 12 + 12 * i)
            name = self._name(name_off) if name_off else None
            if kflag:
                bit_offset, bit_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bit_size = offset, 0
                # Old-style bit fields: the member's type is an INT narrower than its size.
                kind, _, _, size, ipos, _ = self._raw(mtype)
                if kind == BTF_KIND_INT:
                    bits = _u32(types, ipos + 12)[0]
                    if bits & 0xFF != size * 8:
                        bit_size = bits & 0xFF
                        bit_offset += (bits >> 16) & 0xFF
            members.append(Member(name, self._ref(mtype), bit_offset, bit_size))
        return members

    def _proto(self, pos: int, vlen: int, ret: int) -> Type:
        types = self._types
        params = []
        variadic = False
        for i in range(vlen):
            name_off, ptype = struct.unpack_from("<II", types, pos + 12 + 8 * i)
            if ptype == 0 and i == vlen - 1:
                variadic = True
                break
            params.append(Parameter(self._name(name_off) if name_off else None, self._ref(ptype)))
        return Type(Kind.FUNCTION, None, None, target=self._ref(ret), params=params, variadic=variadic)
