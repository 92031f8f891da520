"""Maple trees (lib/maple_tree.c, 6.1+): the ranges and entries of a tree, read from the dump — what holds a
process's VMAs since 6.1 (mm_struct.mm_mt)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["mt_for_each"]

# Node pointers carry their type in bits 3..6 and are 256-byte aligned (include/linux/maple_tree.h).
_NODE_MASK = 0xFF
_TYPE_SHIFT = 3
_TYPE_MASK = 0x0F
_MAX_DEPTH = 64


@dataclass(frozen=True)
class _Layout:
    root: int  # maple_tree.ma_root
    node_size: int
    dense_slots: int  # offset of maple_node.slot (maple_dense)
    dense_count: int
    range_pivots: int  # maple_range_64.pivot, from the node
    range_npivots: int
    range_slots: int
    arange_pivots: int
    arange_npivots: int
    arange_slots: int
    types: dict[str, int]


def _offset(k: Kernel, type_name: str, path: str) -> int:
    t = k.type(type_name)
    total = 0
    for part in path.split("."):
        hit = t.find_member(part)
        if hit is None:
            raise KcrashError(f"{type_name} has no member {path}")
        total += hit[1] // 8
        t = hit[0].type
    return total


def _length(k: Kernel, type_name: str, member: str) -> int:
    hit = k.type(type_name).find_member(member)
    if hit is None:
        raise KcrashError(f"{type_name} has no member {member}")
    return hit[0].type.strip().sizeof() // 8


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> _Layout:
    enum = k.type("enum maple_type").strip()
    types = {e.name: e.value for e in enum.enumerators or ()}
    return _Layout(
        root=_offset(k, "struct maple_tree", "ma_root"),
        node_size=k.type("struct maple_node").sizeof(),
        dense_slots=_offset(k, "struct maple_node", "slot"),
        dense_count=_length(k, "struct maple_node", "slot"),
        range_pivots=_offset(k, "struct maple_node", "mr64.pivot"),
        range_npivots=_length(k, "struct maple_range_64", "pivot"),
        range_slots=_offset(k, "struct maple_node", "mr64.slot"),
        arange_pivots=_offset(k, "struct maple_node", "ma64.pivot"),
        arange_npivots=_length(k, "struct maple_arange_64", "pivot"),
        arange_slots=_offset(k, "struct maple_node", "ma64.slot"),
        types=types,
    )


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


def mt_for_each(k: Kernel, tree: int) -> Iterator[tuple[int, int, int]]:
    """(first, last, entry) of every non-empty range of the maple tree at `tree`, in index order."""
    lay = _layout(k)
    root = k.read_u64(tree + lay.root)
    if not _is_node(root):
        if root:
            yield 0, 0, root
        return
    yield from _walk(k, lay, root, 0, (1 << 64) - 1, 0)


def _walk(
    k: Kernel, lay: _Layout, entry: int, lo: int, hi: int, depth: int
) -> Iterator[tuple[int, int, int]]:
    if depth > _MAX_DEPTH:
        raise KcrashError("maple tree deeper than 64 levels (corrupt?)")
    node = entry & ~_NODE_MASK
    kind = (entry >> _TYPE_SHIFT) & _TYPE_MASK
    raw = k.read(node, lay.node_size)
    types = lay.types
    if kind == types.get("maple_dense"):
        slots = struct.unpack_from(f"<{lay.dense_count}Q", raw, lay.dense_slots)
        for i, slot in enumerate(slots):
            if slot:
                yield lo + i, lo + i, slot
        return
    if kind == types.get("maple_arange_64"):
        npiv, at_piv, at_slot = lay.arange_npivots, lay.arange_pivots, lay.arange_slots
    else:
        npiv, at_piv, at_slot = lay.range_npivots, lay.range_pivots, lay.range_slots
    pivots = struct.unpack_from(f"<{npiv}Q", raw, at_piv)
    slots = struct.unpack_from(f"<{npiv + 1}Q", raw, at_slot)
    leaf = kind < types.get("maple_range_64", 2)
    first = lo
    for i, slot in enumerate(slots):
        last = pivots[i] if i < npiv else hi
        if i and i < npiv and last == 0:
            last = hi  # no more pivots: this slot runs to the node's end
        if slot:
            if leaf:
                if not _is_node(slot):
                    yield first, last, slot
            else:
                yield from _walk(k, lay, slot, first, last, depth + 1)
        if last >= hi:
            return
        first = last + 1
