"""PIDs: the tasks the initial PID namespace's IDR maps PIDs to (struct pid -> task_struct)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kcrash.errors import MemoryReadError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["pid_namespace_tasks"]


def pid_namespace_tasks(k: Kernel) -> list[int]:
    """Tasks with a PID in the initial namespace, from its IDR (an xarray or, 4.15-4.19, a radix tree):
    pid->tasks[PIDTYPE_PID] of every struct pid whose numbers[0].ns is init_pid_ns. This is how crash and
    drgn find tasks; it reaches threads the task lists cannot when a task_struct is missing from the dump."""
    ns_type = k.find_type("struct pid_namespace")
    pid_type = k.find_type("struct pid")
    task_type = k.find_type("struct task_struct")
    upid_type = k.find_type("struct upid")
    node_type = k.find_type("struct xa_node") or k.find_type("struct radix_tree_node")
    sym = k.symbols.lookup("init_pid_ns")
    if ns_type is None or pid_type is None or task_type is None or upid_type is None or node_type is None:
        return []
    if sym is None:
        return []
    root = ns_type.find_offset("idr.idr_rt.xa_head")
    if root is None:
        root = ns_type.find_offset("idr.idr_rt.rnode")
    tasks_off = pid_type.find_offset("tasks")
    numbers_off = pid_type.find_offset("numbers")
    links_off = task_type.find_offset("pid_links") if task_type.find_member("pid_links") else None
    if links_off is None:
        links_off = task_type.find_offset("pids")  # 4.15-4.18: struct pid_link pids[] (node first)
    ns_off = upid_type.find_offset("ns")
    if root is None or tasks_off is None or numbers_off is None or links_off is None or ns_off is None:
        return []
    shift_off = node_type.find_offset("shift")
    slots_hit = node_type.find_member("slots")
    if shift_off is None or slots_hit is None:
        return []
    slots_off = slots_hit[1] // 8
    nslots = slots_hit[0].type.strip().length or 64
    tasks: list[int] = []
    try:
        pending = [k.read_u64(sym.address + root)]
    except MemoryReadError:
        return []
    visited = 0
    while pending and visited < 1 << 20:
        entry = pending.pop()
        visited += 1
        if not entry or entry & 1:
            continue  # empty or a value entry
        if entry & 3 == 2:
            if entry <= 4096:
                continue  # sibling or retry entry
            node = entry - 2
            try:
                raw = k.read(node + slots_off, 8 * nslots)
            except MemoryReadError:
                continue
            pending.extend(reversed(struct.unpack(f"<{nslots}Q", raw)))
            continue
        try:
            ns = k.read_u64(entry + numbers_off + ns_off)
            first = k.read_u64(entry + tasks_off)  # pid->tasks[PIDTYPE_PID].first
        except MemoryReadError:
            continue
        if ns != sym.address or not first:
            continue
        tasks.append(first - links_off)
    return tasks
