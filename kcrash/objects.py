"""Object: a typed kernel value, in dump memory (an address) or computed (bytes held here)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kcrash.debuginfo.types import Kind, Type, type_name
from kcrash.errors import KcrashError, LookupFailedError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "Object",
    "container_of",
    "list_for_each",
    "list_for_each_entry",
    "hlist_for_each_entry",
    "rbtree_inorder",
]

_INT_FORMATS = {
    (1, False): "<B",
    (1, True): "<b",
    (2, False): "<H",
    (2, True): "<h",
    (4, False): "<I",
    (4, True): "<i",
    (8, False): "<Q",
    (8, True): "<q",
}
_MASK64 = 0xFFFFFFFFFFFFFFFF


class ObjectError(KcrashError):
    """An operation that does not apply to an object of this type."""


class Object:
    """A value of a kernel type.

    Access members as attributes (`task.comm`) or with `.member("name")` where a member's name clashes
    with a method; pointers to structs are followed automatically for member access, as `->` would.
    """

    __slots__ = ("kernel", "type_", "address", "_buf", "_bit_offset", "_bit_size")

    def __init__(
        self,
        kernel: Kernel,
        type_: Type,
        *,
        address: int | None = None,
        value: bytes | int | float | None = None,
        bit_offset: int = 0,
        bit_size: int = 0,
    ) -> None:
        self.kernel = kernel
        self.type_ = type_
        self.address = address
        self._bit_offset = bit_offset
        self._bit_size = bit_size
        if value is None:
            if address is None:
                raise ObjectError("an object needs an address or a value")
            self._buf = None
        elif isinstance(value, bytes):
            self._buf = value
        else:
            self._buf = _encode(type_, value)

    # --- raw access -------------------------------------------------------------------------------
    def require_address(self) -> int:
        """The object's address; a value without one (a computed result) has none to offer."""
        if self.address is None:
            raise ObjectError(f"a {type_name(self.type_)} value that is not in memory has no address")
        return self.address

    def raw(self) -> bytes:
        """The object's bytes (for bit fields: the bytes that hold the field)."""
        if self._buf is not None:
            return self._buf
        if self._bit_size:
            nbytes = (self._bit_offset + self._bit_size + 7) // 8
            return self.kernel.read(self.require_address(), nbytes)
        return self.kernel.read(self.require_address(), self.type_.sizeof())

    def value(self) -> Any:
        """A Python value: int (integers, enums, pointers), float, bool; list for arrays; dict for structs."""
        t = self.type_.strip()
        k = t.kind
        if self._bit_size:
            bits = int.from_bytes(self.raw(), "little")
            v = (bits >> self._bit_offset) & ((1 << self._bit_size) - 1)
            if t.signed and v >> (self._bit_size - 1):
                v -= 1 << self._bit_size
            return bool(v) if k is Kind.BOOL else v
        if k in (Kind.INT, Kind.ENUM, Kind.POINTER, Kind.BOOL):
            size = t.size if t.size is not None else 8
            raw = self.raw()
            fmt = _INT_FORMATS.get((size, t.signed and k is not Kind.POINTER))
            v = (
                struct.unpack_from(fmt, raw)[0]
                if fmt
                else int.from_bytes(raw[:size], "little", signed=t.signed)
            )
            return bool(v) if k is Kind.BOOL else v
        if k is Kind.FLOAT:
            return struct.unpack_from({4: "<f", 8: "<d"}.get(t.size or 8, "<d"), self.raw())[0]
        if k is Kind.ARRAY:
            return [self[i].value() for i in range(t.length or 0)]
        if k in (Kind.STRUCT, Kind.UNION):
            return {m: self.member(m).value() for m in _named_members(t)}
        raise ObjectError(f"{type_name(self.type_)} has no value")

    def __int__(self) -> int:
        v = self.value()
        if isinstance(v, bool | int):
            return int(v)
        raise ObjectError(f"cannot convert {type_name(self.type_)} to an integer")

    __index__ = __int__

    def __bool__(self) -> bool:
        t = self.type_.strip()
        if t.kind in (Kind.STRUCT, Kind.UNION, Kind.ARRAY):
            return True
        return bool(self.value())

    # --- navigation -------------------------------------------------------------------------------
    def member(self, name: str) -> Object:
        t = self.type_.strip()
        if t.kind is Kind.POINTER:
            return self.deref().member(name)
        if t.kind not in (Kind.STRUCT, Kind.UNION):
            raise ObjectError(
                f'cannot take member "{name}" of {type_name(self.type_)}: not a struct or union'
            )
        m, bit_off = t.member(name)
        if m.bit_size:
            base_byte = bit_off // 8
            return self._sub(m.type, base_byte, bit_offset=bit_off % 8, bit_size=m.bit_size)
        return self._sub(m.type, bit_off // 8)

    def _sub(self, t: Type, byte_offset: int, bit_offset: int = 0, bit_size: int = 0) -> Object:
        if self._buf is not None:
            if bit_size:
                nbytes = (bit_offset + bit_size + 7) // 8
            else:
                nbytes = t.sizeof()
            return Object(
                self.kernel,
                t,
                value=self._buf[byte_offset : byte_offset + nbytes],
                bit_offset=bit_offset,
                bit_size=bit_size,
            )
        return Object(
            self.kernel,
            t,
            address=self.require_address() + byte_offset,
            bit_offset=bit_offset,
            bit_size=bit_size,
        )

    def __getattr__(self, name: str) -> Object:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.member(name)
        except LookupFailedError as e:
            raise AttributeError(str(e)) from None

    def __getitem__(self, index: int) -> Object:
        t = self.type_.strip()
        if t.kind is Kind.ARRAY:
            elem = t.target
            return self._sub(elem, int(index) * elem.sizeof())
        if t.kind is Kind.POINTER:
            elem = t.target
            size = elem.sizeof()
            return Object(self.kernel, elem, address=(self.value() + int(index) * size) & _MASK64)
        raise ObjectError(f"cannot subscript {type_name(self.type_)}")

    def deref(self) -> Object:
        t = self.type_.strip()
        if t.kind is not Kind.POINTER:
            raise ObjectError(f"cannot dereference {type_name(self.type_)}: not a pointer")
        target = t.target
        return Object(self.kernel, target, address=self.value())

    dereference = deref

    def address_of(self) -> Object:
        if self.address is None or self._bit_size:
            raise ObjectError("cannot take the address of a value not in memory")
        ptr = Type(Kind.POINTER, size=8, target=self.type_)
        return Object(self.kernel, ptr, value=self.address)

    def cast(self, type_: Type | str) -> Object:
        """Reinterpret: pointer/integer casts convert the value; other casts view the same memory."""
        if isinstance(type_, str):
            type_ = self.kernel.type(type_)
        new = type_.strip()
        if new.kind in (Kind.POINTER, Kind.INT, Kind.ENUM, Kind.BOOL) and self.type_.strip().kind in (
            Kind.POINTER,
            Kind.INT,
            Kind.ENUM,
            Kind.BOOL,
        ):
            v = int(self)
            size = new.sizeof()
            v &= (1 << (8 * size)) - 1
            return Object(self.kernel, type_, value=v.to_bytes(size, "little"))
        if self.address is not None and self._buf is None:
            return Object(self.kernel, type_, address=self.address)
        return Object(self.kernel, type_, value=self.raw()[: type_.sizeof()])

    # --- strings ----------------------------------------------------------------------------------
    def string_bytes(self, limit: int = 4096) -> bytes:
        """The NUL-terminated bytes of a char array or the string a char pointer points to."""
        t = self.type_.strip()
        if t.kind is Kind.ARRAY:
            data = self.raw()
            return data.split(b"\0", 1)[0]
        if t.kind is Kind.POINTER:
            return self.kernel.read_cstring(self.value(), limit)
        raise ObjectError(f"{type_name(self.type_)} is not a string")

    def string(self, limit: int = 4096) -> str:
        return self.string_bytes(limit).decode("utf-8", "replace")

    def __repr__(self) -> str:
        where = f"address=0x{self.address:x}" if self.address is not None else "value"
        return f"Object({type_name(self.type_)}, {where})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Object):
            return self.type_.strip().kind is other.type_.strip().kind and self.raw() == other.raw()
        if isinstance(other, int):
            return int(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal Objects need not hash alike: not hashable


def _named_members(t: Type) -> Iterator[str]:
    return t.member_names()


def _encode(t: Type, value: int | float) -> bytes:
    s = t.strip()
    if s.kind is Kind.FLOAT:
        return struct.pack("<d" if s.size == 8 else "<f", value)
    size = s.sizeof() if s.kind is not Kind.POINTER else 8
    return (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


# --- kernel data structures ---------------------------------------------------------------------------


def container_of(ptr: Object | int, type_: Type | str, member: str, kernel: Kernel | None = None) -> Object:
    """The `type_` object whose `member` lives at `ptr` (the kernel's container_of)."""
    if isinstance(ptr, Object):
        kernel = ptr.kernel
        address = int(ptr) if ptr.type_.strip().kind is Kind.POINTER else ptr.require_address()
    else:
        address = ptr
    if kernel is None:
        raise ObjectError("container_of of a plain address needs the kernel")
    if isinstance(type_, str):
        type_ = kernel.type(type_)
    path_offset = type_.offsetof(member)
    return Object(kernel, type_, address=(address - path_offset) & _MASK64)


def list_for_each(head: Object, limit: int = 1 << 20) -> Iterator[int]:
    """Addresses of the list_head nodes after `head` (a struct list_head or a pointer to one)."""
    if head.type_.strip().kind is Kind.POINTER:
        head = head.deref()
    kernel = head.kernel
    start = head.address
    node = int(head.member("next"))
    seen = 0
    while node != start:
        if node == 0:
            raise KcrashError(f"list at {start:x} is broken: NULL next pointer")
        yield node
        seen += 1
        if seen >= limit:
            raise KcrashError(f"list at {start:x} does not end after {limit} entries (corrupt?)")
        node = kernel.read_u64(node)


def list_for_each_entry(type_: Type | str, head: Object, member: str) -> Iterator[Object]:
    """Each `type_` object on the list `head` linked through `member` (list_for_each_entry)."""
    kernel = head.kernel
    if isinstance(type_, str):
        type_ = kernel.type(type_)
    off = type_.offsetof(member)
    for node in list_for_each(head):
        yield Object(kernel, type_, address=(node - off) & _MASK64)


def hlist_for_each_entry(type_: Type | str, head: Object, member: str) -> Iterator[Object]:
    kernel = head.kernel
    if isinstance(type_, str):
        type_ = kernel.type(type_)
    if head.type_.strip().kind is Kind.POINTER:
        head = head.deref()
    off = type_.offsetof(member)
    node = int(head.member("first"))
    seen = 0
    while node:
        yield Object(kernel, type_, address=(node - off) & _MASK64)
        node = kernel.read_u64(node)
        seen += 1
        if seen > 1 << 20:
            raise KcrashError(f"hlist at {head.address:x} does not end (corrupt?)")


def rbtree_inorder(root: Object) -> Iterator[int]:
    """Addresses of the rb_node entries of an rb_root, in order."""
    if root.type_.strip().kind is Kind.POINTER:
        root = root.deref()
    kernel = root.kernel
    node_type = root.member("rb_node").type_.strip().target
    left_off = node_type.member("rb_left")[1] // 8
    right_off = node_type.member("rb_right")[1] // 8
    stack: list[int] = []
    node = int(root.member("rb_node"))
    while stack or node:
        while node:
            stack.append(node)
            node = kernel.read_u64(node + left_off)
        node = stack.pop()
        yield node
        node = kernel.read_u64(node + right_off)
