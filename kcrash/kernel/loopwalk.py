"""Bounded, loop-checked walks of the kernel's linked structures (list_head, hlist, rb tree), as the
scheduler, timer and irq views use them. Each stops with WalkLoop at the first node met twice or past
WALK_LIMIT nodes. (A stop-gap: kcrash's generic walkers are to replace these.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["WALK_LIMIT", "WalkLoop", "list_nodes", "hlist_nodes", "rb_inorder"]

WALK_LIMIT = 1 << 20  # no kernel list these views walk holds a million nodes: past that a walk went astray


class WalkLoop(KcrashError):
    """A list or tree walk met a node twice (or exceeded WALK_LIMIT)."""


def list_nodes(k: Kernel, head: int, what: str) -> Iterator[int]:
    """The `list_head` nodes after `head`, up to `head` again (`what` names the list in errors)."""
    seen: set[int] = set()
    node = k.read_u64(head)
    while node != head:
        if node in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"{what}: list loops at {node:x}")
        if node == 0:
            raise WalkLoop(f"{what}: NULL next pointer after {head:x}")
        seen.add(node)
        yield node
        node = k.read_u64(node)


def hlist_nodes(k: Kernel, first: int, what: str) -> Iterator[int]:
    """The `hlist_node`s from `first` (an hlist_head's first) to the NULL that ends the list."""
    seen: set[int] = set()
    node = first
    while node:
        if node in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"{what}: list loops at {node:x}")
        seen.add(node)
        yield node
        node = k.read_u64(node)


def rb_inorder(k: Kernel, root_node: int, what: str) -> Iterator[int]:
    """The rb_node addresses of the tree under `root_node`, leftmost first (rb_first/rb_next order)."""
    t = k.type("struct rb_node")
    left, right = t.offsetof("rb_left"), t.offsetof("rb_right")
    seen: set[int] = set()
    stack: list[int] = []
    node = root_node
    while stack or node:
        while node:
            if node in seen or len(seen) >= WALK_LIMIT:
                raise WalkLoop(f"{what}: rb tree loops at {node:x}")
            seen.add(node)
            stack.append(node)
            node = k.read_u64(node + left)
        node = stack.pop()
        yield node
        node = k.read_u64(node + right)
