"""Interrupts: the irq_desc of each IRQ (the static `irq_desc[]` array, the sparse-IRQ radix tree/xarray
`irq_desc_tree` before 6.5, or the maple tree `sparse_irqs`), their actions, chips, affinities and per-CPU
counts, the softirq vectors and the x86_64 IDT.

Tree and list walks are bounded and stop at a loop (kcrash.kernel.loopwalk)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.loopwalk import WALK_LIMIT, WalkLoop
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "nr_irqs",
    "irq_descs",
    "IrqAction",
    "irq_actions",
    "IrqInfo",
    "irq_info",
    "irq_affinity",
    "irq_counts",
    "softirq_actions",
    "idt_handlers",
]


def nr_irqs(k: Kernel) -> int:
    """How many IRQ numbers there are: the length of a static `irq_desc[]`, else the kernel's `nr_irqs`
    (`total_nr_irqs` on 7.2+)."""
    if k.symbols.lookup("irq_desc") is not None:
        _, t = k.variable_type("irq_desc")
        length = t.strip().length
        if length:
            return int(length)
    for name in ("total_nr_irqs", "nr_irqs"):  # total_nr_irqs since 7.2
        sym = k.symbols.lookup(name)
        if sym is not None:
            return k.read_u32(sym.address)
    raise KcrashError("cannot determine number of IRQs")


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


def _xarray_entries(k: Kernel, root: int) -> dict[int, int]:
    """index -> entry of an xarray (radix_tree_root since 4.20) at `root`."""
    xa = k.type("struct xarray")
    node_t = k.type("struct xa_node")
    shift_off, slots_off = node_t.offsetof("shift"), node_t.offsetof("slots")
    hit = node_t.find_member("slots")
    nslots = (hit[0].type.strip().length if hit else 0) or 64
    head = k.read_u64(root + xa.offsetof("xa_head"))
    out: dict[int, int] = {}
    seen: set[int] = set()

    def visit(entry: int, base: int) -> None:
        if not entry:
            return
        if not _is_node(entry):
            if entry & 3 == 0:
                out[base] = entry
            return
        node = entry - 2
        if node in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"xarray at {root:x}: node {node:x} met twice")
        seen.add(node)
        shift = k.read(node + shift_off, 1)[0]
        raw = k.read(node + slots_off, 8 * nslots)
        for i in range(nslots):
            child = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
            if child:
                visit(child, base + (i << shift))

    visit(head, 0)
    return out


def _maple_entries(k: Kernel, tree: int) -> list[int]:
    """The entries of the maple tree at `tree`, in index order (only the values: crash, too, takes an
    irq_desc's number from the descriptor, not from its place in the tree)."""
    mt = k.type("struct maple_tree")
    root = k.read_u64(tree + mt.offsetof("ma_root"))
    node_t = k.type("struct maple_node")
    layouts = {}
    for kind, member in ((1, "mr64"), (2, "mr64"), (3, "ma64")):
        off = node_t.find_offset(f"{member}.slot")
        pivots = node_t.find_offset(f"{member}.pivot")
        sub = k.find_type("struct maple_range_64" if member == "mr64" else "struct maple_arange_64")
        hit = sub.find_member("slot") if sub is not None else None
        if off is None or pivots is None or hit is None:
            raise KcrashError("cannot determine the maple tree node layout")
        layouts[kind] = (off, pivots, hit[0].type.strip().length or 0)
    out: list[int] = []
    seen: set[int] = set()

    def visit(entry: int) -> None:
        """A node (an encoded pointer: type in bits 3-6); the root's also carries xarray's node tag."""
        node = entry & ~0xFF
        kind = (entry >> 3) & 0xF
        if node in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"maple tree at {tree:x}: node {node:x} met twice")
        seen.add(node)
        if kind not in layouts:
            raise KcrashError(f"maple tree at {tree:x}: unexpected node type {kind}")
        off, pivots_off, count = layouts[kind]
        raw = k.read(node + off, 8 * count)
        pivots = k.read(node + pivots_off, 8 * (count - 1))
        leaf = kind < 2
        for i in range(count):
            # pivots increase, so only the first may be 0 (a range ending at index 0): a later 0 pivot marks
            # the end of the data, and a node that is not full keeps its metadata in its last slot
            if i >= 2 and not int.from_bytes(pivots[8 * (i - 1) : 8 * i], "little"):
                break
            slot = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
            if not slot:
                continue
            if leaf:
                if slot & 3 == 0:
                    out.append(slot)
            else:
                visit(slot)

    if _is_node(root):
        visit(root)
    elif root and root & 3 == 0:
        out.append(root)
    return out


@per_kernel
def irq_descs(k: Kernel) -> dict[int, int]:
    """IRQ number -> address of its `struct irq_desc`, for every IRQ that has one."""
    sym = k.symbols.lookup("sparse_irqs")
    if sym is not None:
        off = k.type("struct irq_desc").offsetof("irq_data.irq")
        return {k.read_u32(desc + off): desc for desc in _maple_entries(k, sym.address)}
    sym = k.symbols.lookup("irq_desc_tree")
    if sym is not None:
        return _xarray_entries(k, sym.address)
    sym = k.symbols.lookup("irq_desc")
    if sym is not None:
        size = k.type("struct irq_desc").sizeof()
        return {i: sym.address + i * size for i in range(nr_irqs(k))}
    raise KcrashError("neither irq_desc, irq_desc_tree or sparse_irqs symbols exist")


@dataclass(frozen=True)
class IrqAction:
    """One `struct irqaction` of an IRQ's chain: its address, name and handler."""

    address: int
    name: str | None
    handler: int


def irq_actions(k: Kernel, desc: int) -> list[IrqAction]:
    """The chain of actions of the irq_desc at `desc` (`desc->action`, then `->next`)."""
    ia = k.type("struct irqaction")
    name_off, next_off, handler_off = ia.offsetof("name"), ia.offsetof("next"), ia.offsetof("handler")
    action = k.read_u64(desc + k.type("struct irq_desc").offsetof("action"))
    out: list[IrqAction] = []
    seen: set[int] = set()
    while action:
        if action in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"irqaction chain of irq_desc {desc:x}: loops at {action:x}")
        seen.add(action)
        ptr = k.read_u64(action + name_off)
        try:
            name = k.read_cstring(ptr, 4095).decode("utf-8", "replace") if ptr else None
        except MemoryReadError:
            name = None
        out.append(IrqAction(action, name, k.read_u64(action + handler_off)))
        action = k.read_u64(action + next_off)
    return out


@dataclass(frozen=True)
class IrqInfo:
    """What `irq -s` shows of an IRQ besides its counts: its chip's name and the flow handler's name."""

    chip: int
    chip_name: str | None
    flow_name: str | None


def _string_at(k: Kernel, ptr: int) -> str | None:
    if not ptr:
        return None
    try:
        return k.read_cstring(ptr, 4095).decode("utf-8", "replace")
    except MemoryReadError:
        return None


def irq_info(k: Kernel, desc: int) -> IrqInfo:
    """The chip (`irq_data.chip`) and its name, and the descriptor's flow name (`desc->name`)."""
    d = k.type("struct irq_desc")
    chip = k.read_u64(desc + d.offsetof("irq_data.chip"))
    chip_name = _string_at(k, k.read_u64(chip + k.type("struct irq_chip").offsetof("name"))) if chip else None
    name_off = d.find_offset("name")
    flow = _string_at(k, k.read_u64(desc + name_off)) if name_off is not None else None
    return IrqInfo(chip, chip_name, flow)


def irq_affinity(k: Kernel, desc: int, ncpus: int) -> list[int]:
    """The CPUs in the IRQ's affinity mask (`irq_common_data.affinity`, a pointer with
    CONFIG_CPUMASK_OFFSTACK), below `ncpus`."""
    d = k.type("struct irq_desc")
    off = d.find_offset("irq_common_data.affinity")
    if off is None:
        off = d.find_offset("irq_data.affinity")
    if off is None:
        raise KcrashError("this kernel's irq_desc has no affinity mask")
    hit = k.type("struct irq_common_data").find_member("affinity")
    address = desc + off
    if hit is not None and hit[0].type.strip().is_pointer:
        address = k.read_u64(address)
    bits = int.from_bytes(k.read(address, ((ncpus + 63) // 64) * 8), "little")
    return [cpu for cpu in range(ncpus) if bits >> cpu & 1]


def irq_counts(k: Kernel, desc: int, cpus: list[int]) -> dict[int, int]:
    """The IRQ's count on each of `cpus` (the per-cpu `desc->kstat_irqs`; its `cnt` member on 6.10+)."""
    d = k.type("struct irq_desc")
    ptr = k.read_u64(desc + d.offsetof("kstat_irqs"))
    if not ptr:
        return dict.fromkeys(cpus, 0)
    return {cpu: k.read_u32(k.per_cpu_address(ptr, cpu)) for cpu in cpus}


def softirq_actions(k: Kernel) -> list[int]:
    """The action of each softirq vector (`softirq_vec[i].action`, 0 where none is registered)."""
    address, t = k.variable_type("softirq_vec")
    count = t.strip().length or 0
    if not count:
        raise KcrashError("cannot determine softirq_vec array length")
    size = k.type("struct softirq_action").sizeof()
    off = k.type("struct softirq_action").offsetof("action")
    return [k.read_u64(address + i * size + off) for i in range(count)]


def idt_handlers(k: Kernel) -> list[int]:
    """The handler address of each of the 256 gates of the x86_64 `idt_table`."""
    size = k.type("struct gate_struct").sizeof()
    raw = k.read(k.symbol("idt_table").address, size * 256)
    out = []
    for i in range(256):
        lo = int.from_bytes(raw[i * size : i * size + 8], "little")
        hi = int.from_bytes(raw[i * size + 8 : i * size + 16], "little")
        out.append(((hi & 0xFFFFFFFF) << 32) | (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000))
    return out
