"""The scheduler's run queues: each CPU's `struct rq` clock, its RT priority array and CFS red-black tree
(sched_entity nodes, group entities through `my_q`), and the task-group hierarchy (`root_task_group`).

The walks are bounded and stop at a loop (kcrash.kernel.loopwalk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError
from kcrash.kernel.cpus import runqueue
from kcrash.kernel.loopwalk import WALK_LIMIT, WalkLoop, list_nodes, rb_inorder
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "SchedLayout",
    "sched_layout",
    "rq_address",
    "rq_clock",
    "RtEntry",
    "rt_queue",
    "CfsEntity",
    "cfs_entities",
    "cfs_curr",
    "cfs_rq_nr_running",
    "cfs_rq_throttled",
    "cfs_rq_tg",
    "TaskGroup",
    "task_groups",
    "group_cfs_rq",
    "task_on_rq",
    "rt_prio_array",
    "cfs_rb_root",
    "rq_cfs_rq",
    "task_prio",
    "root_task_group",
    "group_rt_rq",
]


def _offset(k: Kernel, struct_name: str, *paths: str) -> int | None:
    t = k.find_type(struct_name)
    if t is None:
        return None
    for path in paths:
        off = t.find_offset(path)
        if off is not None:
            return off
    return None


@dataclass(frozen=True)
class SchedLayout:
    """Offsets (bytes) the walks need, from the debug info; None where this kernel lacks the member."""

    rq_cfs: int
    rq_rt: int | None
    rq_clock: int | None
    rt_rq_active: int | None
    rt_queue: int | None  # rt_prio_array.queue
    rt_queue_len: int
    rt_run_list: int | None  # sched_rt_entity.run_list
    rt_my_q: int | None
    task_rt: int | None
    task_se: int
    task_prio: int
    task_on_rq: int | None
    se_run_node: int
    se_my_q: int | None
    cfs_timeline: int  # rb_root (rb_root_cached.rb_root is first)
    cfs_leftmost: int | None
    cfs_curr: int | None
    cfs_tg: int | None
    cfs_nr_running: int | None
    cfs_throttled: int | None
    tg_cfs_rq: int | None
    tg_rt_rq: int | None
    tg_parent: int | None
    tg_siblings: int | None
    tg_children: int | None
    tg_css_cgroup: int | None
    cgroup_kn: int | None
    kn_name: int | None
    kn_parent: int | None


@per_kernel
def sched_layout(k: Kernel) -> SchedLayout:
    """Where the scheduler's structures keep what the run-queue walks read. Raises KcrashError when the
    kernel has no CFS run queue in `struct rq`."""
    rq_cfs = _offset(k, "struct rq", "cfs")
    task_se = _offset(k, "struct task_struct", "se")
    prio = _offset(k, "struct task_struct", "prio")
    run_node = _offset(k, "struct sched_entity", "run_node")
    timeline = _offset(k, "struct cfs_rq", "tasks_timeline")
    if None in (rq_cfs, task_se, prio, run_node, timeline):
        raise KcrashError("cannot determine run queue structures")
    assert rq_cfs is not None and task_se is not None and prio is not None
    assert run_node is not None and timeline is not None
    leftmost = _offset(k, "struct cfs_rq", "rb_leftmost", "tasks_timeline.rb_leftmost")
    queue_len = 0
    arr = k.find_type("struct rt_prio_array")
    if arr is not None:
        hit = arr.find_member("queue")
        if hit is not None:
            queue_len = hit[0].type.strip().length or 0
    return SchedLayout(
        rq_cfs=rq_cfs,
        rq_rt=_offset(k, "struct rq", "rt"),
        rq_clock=_offset(k, "struct rq", "clock", "most_recent_timestamp", "timestamp_last_tick"),
        rt_rq_active=_offset(k, "struct rt_rq", "active"),
        rt_queue=_offset(k, "struct rt_prio_array", "queue"),
        rt_queue_len=queue_len,
        rt_run_list=_offset(k, "struct sched_rt_entity", "run_list"),
        rt_my_q=_offset(k, "struct sched_rt_entity", "my_q"),
        task_rt=_offset(k, "struct task_struct", "rt"),
        task_se=task_se,
        task_prio=prio,
        task_on_rq=_offset(k, "struct task_struct", "on_rq"),
        se_run_node=run_node,
        se_my_q=_offset(k, "struct sched_entity", "my_q"),
        cfs_timeline=timeline,
        cfs_leftmost=leftmost,
        cfs_curr=_offset(k, "struct cfs_rq", "curr"),
        cfs_tg=_offset(k, "struct cfs_rq", "tg"),
        cfs_nr_running=_offset(k, "struct cfs_rq", "nr_running", "nr_queued"),
        cfs_throttled=_offset(k, "struct cfs_rq", "throttled"),
        tg_cfs_rq=_offset(k, "struct task_group", "cfs_rq"),
        tg_rt_rq=_offset(k, "struct task_group", "rt_rq"),
        tg_parent=_offset(k, "struct task_group", "parent"),
        tg_siblings=_offset(k, "struct task_group", "siblings"),
        tg_children=_offset(k, "struct task_group", "children"),
        tg_css_cgroup=_offset(k, "struct task_group", "css.cgroup"),
        cgroup_kn=_offset(k, "struct cgroup", "kn"),
        kn_name=_offset(k, "struct kernfs_node", "name"),
        kn_parent=_offset(k, "struct kernfs_node", "parent", "__parent"),
    )


def rq_address(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s `struct rq` (per-cpu `runqueues`)."""
    address = runqueue(k, cpu).address
    assert address is not None
    return address


def rq_clock(k: Kernel, cpu: int) -> int:
    """`cpu`'s run-queue clock in nanoseconds (`rq->clock`; crash's rq timestamp)."""
    lay = sched_layout(k)
    if lay.rq_clock is None:
        raise KcrashError("this kernel's struct rq has no clock")
    return k.read_u64(rq_address(k, cpu) + lay.rq_clock)


# --- RT ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RtEntry:
    """One entity on an RT priority array: a task, or a group (`my_q`, its rt_rq) at queue index `prio`."""

    prio: int
    task: int | None
    my_q: int | None = None


def rt_prio_array(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s `rq->rt.active` (crash's RT PRIO_ARRAY)."""
    lay = sched_layout(k)
    if lay.rq_rt is None or lay.rt_rq_active is None:
        raise KcrashError("this kernel has no RT run queue")
    return rq_address(k, cpu) + lay.rq_rt + lay.rt_rq_active


def rt_queue(k: Kernel, prio_array: int) -> list[RtEntry]:
    """The entities queued on the `struct rt_prio_array` at `prio_array`, by queue index then list order."""
    lay = sched_layout(k)
    if lay.rt_queue is None or lay.rt_run_list is None:
        return []
    out: list[RtEntry] = []
    for i in range(lay.rt_queue_len):
        head = prio_array + lay.rt_queue + 16 * i
        for node in list_nodes(k, head, "rt_prio_array"):
            rt_se = node - lay.rt_run_list
            my_q = k.read_u64(rt_se + lay.rt_my_q) if lay.rt_my_q is not None else 0
            if my_q:
                out.append(RtEntry(i, None, my_q))
            elif lay.task_rt is not None:
                out.append(RtEntry(i, rt_se - lay.task_rt))
    return out


# --- CFS --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CfsEntity:
    """One sched_entity of a CFS rb tree: a task's (`task`), or a group's (`my_q`: the group's cfs_rq)."""

    se: int
    task: int | None
    my_q: int | None


def cfs_rb_root(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s `rq->cfs.tasks_timeline` (crash's CFS RB_ROOT)."""
    lay = sched_layout(k)
    return rq_address(k, cpu) + lay.rq_cfs + lay.cfs_timeline


def rq_cfs_rq(k: Kernel, cpu: int) -> int:
    """The address of `cpu`'s root `struct cfs_rq` (`rq->cfs`)."""
    return rq_address(k, cpu) + sched_layout(k).rq_cfs


def _entity(k: Kernel, se: int) -> CfsEntity:
    lay = sched_layout(k)
    my_q = k.read_u64(se + lay.se_my_q) if lay.se_my_q is not None else 0
    return CfsEntity(se, None if my_q else se - lay.task_se, my_q or None)


def cfs_entities(k: Kernel, cfs_rq: int) -> list[CfsEntity]:
    """The entities in the rb tree of the `struct cfs_rq` at `cfs_rq`, leftmost first (none when the cached
    leftmost is NULL, as crash reads it). The running entity (`cfs_rq->curr`) is not in the tree."""
    lay = sched_layout(k)
    if lay.cfs_leftmost is not None and not k.read_u64(cfs_rq + lay.cfs_leftmost):
        return []
    root = k.read_u64(cfs_rq + lay.cfs_timeline)
    return [_entity(k, node - lay.se_run_node) for node in rb_inorder(k, root, "cfs_rq tasks_timeline")]


def cfs_curr(k: Kernel, cfs_rq: int) -> CfsEntity | None:
    """`cfs_rq->curr`, the entity running on this cfs_rq, or None."""
    lay = sched_layout(k)
    if lay.cfs_curr is None:
        return None
    se = k.read_u64(cfs_rq + lay.cfs_curr)
    return _entity(k, se) if se else None


def cfs_rq_nr_running(k: Kernel, cfs_rq: int) -> int:
    """`cfs_rq->nr_running` (`nr_queued` since 6.14)."""
    lay = sched_layout(k)
    return k.read_u32(cfs_rq + lay.cfs_nr_running) if lay.cfs_nr_running is not None else 0


def cfs_rq_throttled(k: Kernel, cfs_rq: int) -> bool | None:
    """Whether bandwidth control throttled this cfs_rq; None without CONFIG_CFS_BANDWIDTH."""
    lay = sched_layout(k)
    if lay.cfs_throttled is None:
        return None
    return bool(k.read_u32(cfs_rq + lay.cfs_throttled))


def cfs_rq_tg(k: Kernel, cfs_rq: int) -> int:
    """The task group owning a cfs_rq (`cfs_rq->tg`), 0 without group scheduling."""
    lay = sched_layout(k)
    return k.read_u64(cfs_rq + lay.cfs_tg) if lay.cfs_tg is not None else 0


def task_on_rq(k: Kernel, task: int) -> int:
    """`task->on_rq`."""
    lay = sched_layout(k)
    if lay.task_on_rq is None:
        raise KcrashError("this kernel's task_struct has no on_rq")
    return k.read_u32(task + lay.task_on_rq)


def task_prio(k: Kernel, task: int) -> int:
    """`task->prio`, read now."""
    return int.from_bytes(k.read(task + sched_layout(k).task_prio, 4), "little", signed=True)


# --- task groups ------------------------------------------------------------------------------------


@dataclass
class TaskGroup:
    """A `struct task_group` of the hierarchy under the root group, with its depth (root: 0), its cgroup's
    name (kernfs name; "/" for the root cgroup; None for an autogroup, which has no cgroup) and its
    parent's index in the list `task_groups` returns."""

    address: int
    depth: int
    name: str | None
    parent: int | None = None
    children: list[int] = field(default_factory=list)


def root_task_group(k: Kernel) -> tuple[int, str]:
    """(address, crash's label) of the root task group: `root_task_group` ("ROOT"), `init_task_group`
    ("INIT") on old kernels."""
    for name, label in (("init_task_group", "INIT"), ("root_task_group", "ROOT")):
        sym = k.symbols.lookup(name)
        if sym is not None:
            return sym.address, label
    raise KcrashError("cannot determine root task_group")


def _group_name(k: Kernel, group: int) -> str | None:
    lay = sched_layout(k)
    if lay.tg_css_cgroup is None or lay.cgroup_kn is None or lay.kn_name is None or lay.kn_parent is None:
        return None
    cgroup = k.read_u64(group + lay.tg_css_cgroup)
    if not cgroup:
        return None
    kn = k.read_u64(cgroup + lay.cgroup_kn)
    if not kn:
        return None
    if not k.read_u64(kn + lay.kn_parent):
        return "/"
    name = k.read_u64(kn + lay.kn_name)
    if not name:
        return None
    return k.read_cstring(name, 4095).decode("utf-8", "replace")


def task_groups(k: Kernel) -> list[TaskGroup]:
    """Every task group from the root down (children through `children`/`siblings`), parents before their
    children, then stably ordered by depth as crash keeps them."""
    lay = sched_layout(k)
    if lay.tg_children is None or lay.tg_siblings is None:
        raise KcrashError("this kernel has no task group hierarchy")
    root, _ = root_task_group(k)
    groups: list[TaskGroup] = []
    seen: set[int] = set()

    def visit(group: int, depth: int, parent: int | None) -> None:
        if group in seen or len(seen) >= WALK_LIMIT:
            raise WalkLoop(f"task_group children: loop at {group:x}")
        seen.add(group)
        index = len(groups)
        groups.append(TaskGroup(group, depth, _group_name(k, group), parent))
        if parent is not None:
            groups[parent].children.append(index)
        assert lay.tg_children is not None and lay.tg_siblings is not None
        for node in list(list_nodes(k, group + lay.tg_children, "task_group children")):
            visit(node - lay.tg_siblings, depth + 1, index)

    visit(root, 0, None)
    order = sorted(range(len(groups)), key=lambda i: groups[i].depth)
    remap = {old: new for new, old in enumerate(order)}
    out = [groups[i] for i in order]
    for g in out:
        g.parent = remap[g.parent] if g.parent is not None else None
        g.children = [remap[c] for c in g.children]
    return out


def group_cfs_rq(k: Kernel, group: int, cpu: int) -> int:
    """The group's cfs_rq on `cpu` (`tg->cfs_rq[cpu]`); 0 without CONFIG_FAIR_GROUP_SCHED."""
    lay = sched_layout(k)
    if lay.tg_cfs_rq is None:
        return 0
    array = k.read_u64(group + lay.tg_cfs_rq)
    return k.read_u64(array + 8 * cpu) if array else 0


def group_rt_rq(k: Kernel, group: int, cpu: int) -> int:
    """The group's rt_rq on `cpu` (`tg->rt_rq[cpu]`); 0 without CONFIG_RT_GROUP_SCHED."""
    lay = sched_layout(k)
    if lay.tg_rt_rq is None:
        return 0
    array = k.read_u64(group + lay.tg_rt_rq)
    return k.read_u64(array + 8 * cpu) if array else 0
