"""Loop-proof walks over the kernel's linked structures: lists, hlists, singly-linked chains, red-black
trees, XArrays (and the radix trees built on them) and maple trees.

Every walker reads its layouts from the debug info, yields addresses (or small records) as it goes, and
is bounded: a node seen twice raises `WalkLoopError` naming it (so a patched or corrupt dump cannot make
a walk run forever), and no walk takes more than `limit` steps. Callers stream what they got before the
error and then print the error's one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kcrash.debuginfo.types import Kind, Type
from kcrash.errors import KcrashError
from kcrash.program import Kernel, per_kernel

__all__ = [
    "WalkError",
    "WalkLoopError",
    "DEFAULT_LIMIT",
    "linked_walk",
    "list_for_each",
    "hlist_for_each",
    "brent_walk",
    "BrentLoopError",
    "RbNode",
    "rbtree_walk",
    "XaEntry",
    "XarrayLayout",
    "xarray_layout",
    "xarray_walk",
    "MapleEntry",
    "maple_walk",
]

DEFAULT_LIMIT = 1 << 24
_MASK64 = 0xFFFFFFFFFFFFFFFF


class WalkError(KcrashError):
    """A walk that met a broken link: `address` is where."""

    def __init__(self, message: str, address: int) -> None:
        super().__init__(message)
        self.address = address


class WalkLoopError(WalkError):
    """A node met twice (`duplicate list entry: ADDR`, as crash says), or a walk past its step bound."""

    def __init__(self, kind: str, address: int, what: str = "entry") -> None:
        super().__init__(f"duplicate {kind} {what}: {address:x}", address)
        self.kind = kind


def _limit_error(kind: str, address: int, limit: int) -> WalkLoopError:
    err = WalkLoopError(kind, address)
    err.args = (f"{kind} does not end after {limit} entries: {address:x}",)
    return err


def _offset(kernel: Kernel, type_name: str, member: str) -> int:
    return kernel.type(type_name).offsetof(member)


# --- linked lists ---------------------------------------------------------------------------------------


def _first_link(kernel: Kernel, start: int, next_offset: int) -> int:
    try:
        return kernel.read_u64(start + next_offset)
    except KcrashError:
        raise WalkError(f"invalid list entry: {start:x}", start) from None


def linked_walk(
    kernel: Kernel,
    start: int,
    next_offset: int = 0,
    *,
    end: int = 0,
    circular: bool = True,
    null_is_error: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[int]:
    """Each link address from `start`, following the pointer at `next_offset` of each link.

    The walk ends at a NULL pointer (an error with `null_is_error`, as for a list_head ring), at `end`,
    and, when `circular`, at a pointer back to `start`, to the link itself or to the first link after
    `start` (crash's rules for a singly-linked or circular list). Any other link met twice raises
    WalkLoopError with its address.
    """
    read = kernel.read_u64
    first = _first_link(kernel, start, next_offset)
    seen: set[int] = set()
    node = start
    count = 0
    while True:
        if node in seen:
            raise WalkLoopError("list", node)
        if count >= limit:
            raise _limit_error("list", node, limit)
        yield node
        seen.add(node)
        count += 1
        last = node
        node = read(node + next_offset)
        if node == 0:
            if null_is_error:
                raise WalkError("invalid list entry: 0", last)
            return
        if node == end:
            return
        if circular and (node == start or node == last or (node == first and count != 1)):
            return


def list_for_each(
    kernel: Kernel, head: int, *, reverse: bool = False, limit: int = DEFAULT_LIMIT
) -> Iterator[int]:
    """The list_head nodes on the list headed by the list_head at `head` (prev-wise with `reverse`)."""
    link = _offset(kernel, "struct list_head", "prev" if reverse else "next")
    start = kernel.read_u64(head + link)
    if start == head:
        return
    yield from linked_walk(kernel, start, link, end=head, null_is_error=True, limit=limit)


def hlist_for_each(kernel: Kernel, head: int, *, limit: int = DEFAULT_LIMIT) -> Iterator[int]:
    """The hlist_node addresses on the hlist_head at `head`; NULL ends it, any node met twice is a loop."""
    first = kernel.read_u64(head + _offset(kernel, "struct hlist_head", "first"))
    if not first:
        return
    yield from linked_walk(
        kernel, first, _offset(kernel, "struct hlist_node", "next"), circular=False, limit=limit
    )


class BrentLoopError(WalkLoopError):
    """A loop found by Brent's algorithm: its length, the steps from the start to it, and the link where
    it begins (`address`)."""

    def __init__(self, address: int, length: int, distance: int) -> None:
        super().__init__("list", address)
        self.length = length
        self.distance = distance


def brent_walk(
    kernel: Kernel,
    start: int,
    next_offset: int = 0,
    *,
    end: int = 0,
    null_is_error: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[int]:
    """linked_walk's links and end rules in constant memory: R. P. Brent's cycle detection (crash's
    `list -B`) instead of a set of the links seen. A loop raises BrentLoopError once found, which is
    a few links after the walk first came back to a link it had yielded."""
    read = kernel.read_u64
    first = _first_link(kernel, start, next_offset)
    tortoise, hare = start, first
    power, length = 2, 0
    node, count = start, 0
    while True:
        if count >= limit:
            raise _limit_error("list", node, limit)
        yield node
        count += 1
        last = node
        node = read(node + next_offset)
        if count > 1 and tortoise == hare:
            tortoise = hare = start
            for _ in range(length):
                hare = read(hare + next_offset)
            distance = 0
            while tortoise != hare and distance < limit:
                tortoise, hare = read(tortoise + next_offset), read(hare + next_offset)
                distance += 1
            raise BrentLoopError(tortoise, length, distance)
        if power == length:
            tortoise = hare
            power *= 2
            length = 0
        hare = node
        length += 1
        if node == 0:
            if null_is_error:
                raise WalkError("invalid list entry: 0", last)
            return
        if node == end or node == start or node == last or (node == first and count != 1):
            return


# --- red-black trees ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RbNode:
    """One rb_node of a red-black tree and its position from the root ("root/l/r")."""

    node: int
    position: str


def rbtree_walk(
    kernel: Kernel, root_node: int, *, inorder: bool = False, limit: int = DEFAULT_LIMIT
) -> Iterator[RbNode]:
    """The rb_nodes under `root_node` (an rb_node address, not the rb_root), parent before children
    (crash's default order), or left to right with `inorder`. A node met twice raises WalkLoopError."""
    left_off = _offset(kernel, "struct rb_node", "rb_left")
    right_off = _offset(kernel, "struct rb_node", "rb_right")
    read = kernel.read_u64
    seen: set[int] = set()

    def enter(node: int) -> None:
        if node in seen:
            raise WalkLoopError("tree", node)
        if len(seen) >= limit:
            raise _limit_error("tree", node, limit)
        seen.add(node)

    if not root_node:
        return
    if not inorder:
        stack = [(root_node, "root")]
        while stack:
            node, pos = stack.pop()
            enter(node)
            yield RbNode(node, pos)
            right, left = read(node + right_off), read(node + left_off)
            if right:
                stack.append((right, pos + "/r"))
            if left:
                stack.append((left, pos + "/l"))
        return
    pending: list[tuple[int, str]] = []
    node, pos = root_node, "root"
    while pending or node:
        while node:
            enter(node)
            pending.append((node, pos))
            node, pos = read(node + left_off), pos + "/l"
        node, pos = pending.pop()
        yield RbNode(node, pos)
        node, pos = read(node + right_off), pos + "/r"


# --- XArrays --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XarrayLayout:
    """xa_node's layout: chunk shift and size, member offsets."""

    chunk_shift: int
    chunk_size: int
    shift_offset: int
    slots_offset: int


@per_kernel
def xarray_layout(kernel: Kernel) -> XarrayLayout:
    """The xa_node layout of this kernel (XA_CHUNK_SHIFT from the length of xa_node.slots)."""
    node = kernel.type("struct xa_node")
    hit = node.find_member("slots")
    if hit is None:
        raise KcrashError("xarray facility does not exist or has changed its format")
    slots = hit[0].type.strip()
    size = slots.length or 0
    if size <= 0 or size & (size - 1):
        raise KcrashError("cannot determine length of xa_node.slots[] array")
    return XarrayLayout(size.bit_length() - 1, size, node.offsetof("shift"), hit[1] // 8)


@dataclass(frozen=True)
class XaEntry:
    """One entry of an XArray: its index, the entry (internal tag bits cleared as crash does), the path
    of its node from the root ("root/1", or "direct" for an entry held in xa_head itself) and its slot."""

    index: int
    entry: int
    position: str
    slot: int


def _xa_is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


def xarray_walk(
    kernel: Kernel, head: int, *, node_given: bool = False, limit: int = DEFAULT_LIMIT
) -> Iterator[XaEntry]:
    """The non-NULL entries of the XArray whose xa_head value is `head` (or, with `node_given`, of the
    subtree at the xa_node `head`), by index. A node met twice raises WalkLoopError."""
    layout = xarray_layout(kernel)
    node = head & ~3 if (node_given or head & 3 == 2) else head
    if not (node_given or _xa_is_node(head)):
        if head:
            yield XaEntry(0, head & ~3 if head & 3 == 2 else head, "direct", 0)
        return
    height = kernel.read_u8(node + layout.shift_offset) // layout.chunk_shift + 1
    seen: set[int] = set()
    # an explicit stack of (node, height, path, index, next offset) keeps deep corrupt trees off the C stack
    stack: list[tuple[int, int, str, int, int]] = [(node, height, "root", 0, 0)]
    seen.add(node)
    while stack:
        node, height, path, index, off = stack.pop()
        shift = (height - 1) * layout.chunk_shift
        slots = kernel.read(node + layout.slots_offset, 8 * layout.chunk_size)
        while off < layout.chunk_size:
            slot = int.from_bytes(slots[8 * off : 8 * off + 8], "little")
            off += 1
            if not slot:
                continue
            if slot & 3 == 2:
                slot &= ~2 & _MASK64
            if height == 1:
                yield XaEntry(index | (off - 1), slot, path, off - 1)
                continue
            if slot in seen:
                raise WalkLoopError("tree", slot, "node")
            if len(seen) >= limit:
                raise _limit_error("tree", slot, limit)
            seen.add(slot)
            stack.append((node, height, path, index, off))
            stack.append((slot, height - 1, f"{path}/{off - 1}", index | ((off - 1) << shift), 0))
            break


# --- maple trees ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapleEntry:
    """One slot of a maple tree leaf: the range it covers, the entry (0 for a gap), the path of the
    leaf ("root/1") and the slot's index in it."""

    first: int
    last: int
    entry: int
    path: str
    slot: int


@dataclass(frozen=True)
class _MapleLayout:
    node_size: int
    node_slot: int  # maple_node.slot
    dense_slots: int
    range_pivot: int  # maple_node.mr64.pivot
    range_slot: int
    range_slots: int
    arange_pivot: int
    arange_slot: int
    arange_slots: int
    types: dict[int, str]  # enum maple_type value -> name


def _array_length(t: Type, member: str) -> int:
    hit = t.find_member(member)
    if hit is None or hit[0].type.strip().kind is not Kind.ARRAY:
        raise KcrashError("maple trees do not exist or have changed their format")
    return hit[0].type.strip().length or 0


@per_kernel
def _maple_layout(kernel: Kernel) -> _MapleLayout:
    if kernel.find_type("struct maple_node") is None:
        raise KcrashError("maple trees do not exist in this kernel")
    node = kernel.type("struct maple_node")
    r64 = kernel.type("struct maple_range_64")
    a64 = kernel.type("struct maple_arange_64")
    mtype = kernel.type("enum maple_type").strip()
    types = {e.value: e.name for e in (mtype.enumerators or ())}
    return _MapleLayout(
        node.sizeof(),
        node.offsetof("slot"),
        _array_length(node, "slot"),
        node.offsetof("mr64") + r64.offsetof("pivot"),
        node.offsetof("mr64") + r64.offsetof("slot"),
        _array_length(r64, "slot"),
        node.offsetof("ma64") + a64.offsetof("pivot"),
        node.offsetof("ma64") + a64.offsetof("slot"),
        _array_length(a64, "slot"),
        types,
    )


def maple_walk(
    kernel: Kernel, root: int, *, node_given: bool = False, limit: int = DEFAULT_LIMIT
) -> Iterator[MapleEntry]:
    """Every leaf slot of the maple tree whose ma_root value is `root` (or, with `node_given`, of the
    encoded maple node `root`), left to right, gaps included (entry 0). A node met twice raises
    WalkLoopError."""
    lay = _maple_layout(kernel)
    read = kernel.read
    if not node_given and not _xa_is_node(root):
        yield MapleEntry(0, 0, root, "", 0)
        return

    def node_type(enode: int) -> str:
        return lay.types.get((enode >> 3) & 0xF, "?")

    def node_max(kind: str) -> int:
        return lay.dense_slots if kind == "maple_dense" else _MASK64

    seen: set[int] = set()
    # (encoded node, min, max, path); children are pushed right to left so they come out in order
    stack: list[tuple[int, int, int, str]] = [
        (root, 0, node_max(node_type(root)), "direct" if node_given else "root")
    ]
    while stack:
        enode, low, high, path = stack.pop()
        addr = enode & ~0xFF & _MASK64
        if addr in seen:
            raise WalkLoopError("tree", addr, "node")
        if len(seen) >= limit:
            raise _limit_error("tree", addr, limit)
        seen.add(addr)
        kind = node_type(enode)
        data = read(addr, lay.node_size)
        if kind == "maple_dense":
            for i in range(lay.dense_slots):
                off = lay.node_slot + 8 * i
                yield MapleEntry(low + i, low + i, int.from_bytes(data[off : off + 8], "little"), path, i)
            continue
        if kind == "maple_arange_64":
            pivots, slots, count = lay.arange_pivot, lay.arange_slot, lay.arange_slots
        elif kind in ("maple_range_64", "maple_leaf_64"):
            pivots, slots, count = lay.range_pivot, lay.range_slot, lay.range_slots
        else:
            raise WalkError(f"maple node {addr:x}: unknown node type {(enode >> 3) & 0xF}", addr)
        leaf = kind == "maple_leaf_64"
        children: list[tuple[int, int, int, str]] = []
        first = low
        for i in range(count):
            slot = int.from_bytes(data[slots + 8 * i : slots + 8 * i + 8], "little")
            if i < count - 1:
                last = int.from_bytes(data[pivots + 8 * i : pivots + 8 * i + 8], "little")
            else:
                last = high
                if not slot and (kind == "maple_arange_64" or high != node_max(kind)):
                    break
            if last == 0 and i > 0:
                break
            if leaf:
                yield MapleEntry(first, last, slot, path, i)
            elif slot:
                children.append((slot, first, last, f"{path}/{i}"))
            if last >= high:
                break
            first = last + 1
        stack.extend(reversed(children))
