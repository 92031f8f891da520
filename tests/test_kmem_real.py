"""`kmem` on the real Debian dumps: crash 9.0.2 on 5.10, 6.1 and 6.12, drgn on every series (sid included).

crash 9.0.2's output must equal kcrash's exactly, with these documented exceptions:
- `kmem -s NAME` for a cache that does not exist: crash prints nothing; kcrash says `invalid kmem_cache`.
- `kmem SYMBOL` (not hexadecimal): crash prints only its usage; kcrash prints `invalid address` first.
- `kmem -n` where memory_block.state is an `enum memory_block_state` (Debian's 6.12, MEM_ONLINE = 0): crash
  still decodes the old MEM_* bits and prints UNKNOWN; kcrash names the enumerator (ONLINE).
The addresses given to `kmem ADDRESS` are picked from kcrash's own view of the dump (a slab object, a free
object, a vmalloc area, the init task, a task_struct, a struct page, a physical address); crash describes
them independently, so a wrong pick shows up as a difference, not as a pass.

drgn (its slab helpers) checks the caches on every series: their names, object sizes, slab and object
totals, and the free/allocated state of every object of each CPU's active slab. drgn's allocated counts are
not compared: it leaves out the cpu slabs of CPUs not in the online mask, which crash (and kcrash) count.
"""

from __future__ import annotations

import json

import pytest
from conftest import fixture_set, open_fixture_kernel, run_command
from oracles import crash9_outputs, drgn_eval

from kcrash.kernel import meminfo, slab
from kcrash.kernel.cpus import online_cpus
from kcrash.kernel.page import page_layout, page_to_virt, virt_to_page
from kcrash.kernel.tasks import task_table
from kcrash.kernel.vmalloc import vmap_areas

CRASH9_SERIES = ("5.10", "6.1", "6.12")
ALL_SERIES = ("5.10", "6.1", "6.12", "sid")
DUMPS = ["kdump-zlib.kdump", "qemu-kdump.zlib"]
# crash 9.0.2 exits without a prompt on the 6.12 makedumpfile dumps (it reads the QEMU ones).
CRASH9_DUMPS = {"5.10": DUMPS, "6.1": DUMPS, "6.12": ["qemu-kdump.zlib"]}
FIXED = [
    "kmem -i",
    "kmem -V",
    "kmem -z",
    "kmem -s",
    "kmem -v",
    "kmem -h",
    "kmem -g",
    "kmem -g 0x10200",
    "kmem -n",
    "kmem -f",
]
# makedumpfile 1.7.2 filters out pages the 6.12 and 7.x kernels still use (slab pages, vmap_nodes, inodes):
# on those series the checks use QEMU's unfiltered dump.
DRGN_DUMP = {
    "5.10": "kdump-zlib.kdump",
    "6.1": "kdump-zlib.kdump",
    "6.12": "qemu-kdump.zlib",
    "sid": "qemu-kdump.zlib",
}
SLAB_CACHES = ["kmalloc-1k", "kmem_cache_node", "task_struct"]


def _dump(series, dump):
    fs = fixture_set(series)
    if dump not in fs.dumps:
        pytest.skip(f"{dump} is not in the {series} fixture set")
    return fs, open_fixture_kernel(fs, dump)


def _address_commands(k) -> list[str]:
    """`kmem ADDRESS` lines for one address of each kind this dump has."""
    cmds = []
    caches = {c.name: c for c in slab.slab_caches(k)}
    cache = caches.get("kmalloc-1k") or next(iter(caches.values()))
    cpus = slab.cpu_slabs(k, cache)
    for cs in cpus:
        if cs.slab:
            _, objects = slab.slab_objects(k, cache, cs.slab, cpus)
            used = [o for o in objects if not o.free]
            free = [o for o in objects if o.free]
            for obj in used[:1] + free[:1]:
                cmds += [f"kmem {obj.address + 16:x}", f"kmem -s {obj.address:x}", f"kmem -S {obj.address:x}"]
            cmds.append(f"kmem {cs.slab:x}")
            break
    areas = vmap_areas(k)
    if areas:
        cmds += [f"kmem {areas[0].start + 0x100:x}", f"kmem -v {areas[-1].start:x}"]
    for zone in meminfo.zones(k):
        lists = (
            [fl for fl in meminfo.free_lists(k, zone) if fl.blocks and fl.order >= 2]
            if zone.free_pages
            else []
        )
        if lists:
            # The 4th page of a free block: crash's search also matches the page just past a block, then
            # rejects it, so a block's first page can go unreported; an inner page cannot.
            lay = page_layout(k)
            lru = k.type("struct page").member("lru")[1] // 8
            head = k.read_u64(lists[0].address) - lru
            vaddr = page_to_virt(k, head) + 3 * 4096
            cmds += [f"kmem {vaddr:x}", f"kmem -f {vaddr:x}", f"kmem -p {head + 3 * lay.page_size:x}"]
            break
    table = task_table(k)
    init = next(t for t in table if t.pid == 1)
    cmds += [
        f"kmem {init.stack + 0x100:x}",
        f"kmem {init.address + 0x100:x}",
        f"kmem {k.address_of('init_task'):x}",
        "kmem 1000000",
        "kmem -p 1000000",
    ]
    cmds.append(f"kmem -s {cache.address:x}")
    return cmds


@pytest.mark.parametrize(("series", "dump"), [(s, d) for s in CRASH9_SERIES for d in CRASH9_DUMPS[s]])
def test_kmem_matches_crash9(series, dump):
    fs, k = _dump(series, dump)
    commands = FIXED + [f"kmem -S {name}" for name in SLAB_CACHES] + _address_commands(k)
    want = crash9_outputs(fs.vmlinux, fs.path(dump), commands)
    state = k.find_type("struct memory_block")
    enum_state = state is not None and state.member("state")[0].type.strip().kind.name == "ENUM"
    for cmd in commands:
        out, err = run_command(k, cmd)
        expected = want[cmd]
        if cmd == "kmem -n" and enum_state:
            expected = expected.replace(" UNKNOWN ", " ONLINE  ")
        assert err == "", cmd
        assert out.rstrip("\n") == expected.rstrip("\n"), cmd


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_kmem_documented_differences(series):
    fs, k = _dump(series, "qemu-kdump.zlib")
    want = crash9_outputs(fs.vmlinux, fs.path("qemu-kdump.zlib"), ["kmem -s no_such_cache", "kmem jiffies"])
    assert want["kmem -s no_such_cache"].strip() == ""
    out, err = run_command(k, "kmem -s no_such_cache")
    assert out == "" and err.strip() == "kmem: invalid kmem_cache: no_such_cache"
    out, err = run_command(k, "kmem jiffies")
    assert err.startswith("kmem: invalid address: jiffies")
    assert "Usage:" in want["kmem jiffies"]


_DRGN_SLAB = """
import json
from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_usage
out = []
for s in for_each_slab_cache(prog):
    u = slab_cache_usage(s)
    out.append([s.value_(), s.name.string_().decode(), int(s.object_size), u.num_objs, u.num_slabs])
print(json.dumps(out))
"""

_DRGN_OBJECTS = """
import json
from drgn.helpers.linux.slab import slab_object_info
out = []
for a in %r:
    i = slab_object_info(prog, a)
    out.append(None if i is None else [i.slab_cache.value_(), i.address, bool(i.allocated)])
print(json.dumps(out))
"""


def _drgn_args(fs, dump) -> tuple[str, ...]:
    return tuple(fs.dumps[dump].get("checks", {}).get("drgn", {}).get("args", []))


@pytest.mark.parametrize("series", ALL_SERIES)
def test_slab_caches_match_drgn(series):
    dump = DRGN_DUMP[series]
    fs, k = _dump(series, dump)
    want = json.loads(drgn_eval(fs.vmlinux, fs.path(dump), _DRGN_SLAB, _drgn_args(fs, dump)))
    caches = slab.slab_caches(k)
    assert [[c.address, c.name, c.object_size] for c in caches] == [w[:3] for w in want]
    for cache, (_, name, _, num_objs, num_slabs) in zip(caches, want, strict=True):
        st = slab.cache_stats(k, cache)
        assert st.error is None, name
        assert (st.total, st.slabs) == (num_objs, num_slabs), name
        assert 0 <= st.allocated <= st.total


@pytest.mark.parametrize("series", ALL_SERIES)
def test_slab_objects_match_drgn(series):
    """Every object of the cpu slabs and node partial slabs of the last caches (7.0+: of the slabs holding
    the objects cached in the CPUs' sheaves), free or allocated as drgn sees it. drgn leaves out the sheaves
    and lockless freelists of CPUs not in the online mask (a CPU the panic stopped): objects cached there are
    not compared (crash, like kcrash, counts them free)."""
    fs, k = _dump(series, DRGN_DUMP[series])
    online = set(online_cpus(k))
    addresses, expected = [], []
    for cache in slab.slab_caches(k)[-8:]:
        cpus = slab.cpu_slabs(k, cache)
        offline_cached = {o for cs in cpus if cs.cpu not in online for o in cs.sheaves}
        offline_cached |= {
            o for cs in cpus if cs.cpu not in online for o in slab.freelist(k, cache, cs.freelist)
        }
        slabs = {cs.slab for cs in cpus if cs.slab}
        slabs |= {s for node in slab.node_slabs(k, cache) for s in node.partial}
        for cs in cpus:
            for obj in cs.sheaves[:4]:
                found = slab.slab_of_page(k, virt_to_page(k, obj))
                if found is not None:
                    slabs.add(found[1])
        for s in sorted(slabs):
            _, objects = slab.slab_objects(k, cache, s, cpus)
            for obj in objects:
                if obj.address in offline_cached:
                    continue
                addresses.append(obj.address)
                expected.append([cache.address, obj.address, not obj.free])
    assert addresses, "no slab found in the last caches"
    code = _DRGN_OBJECTS % addresses
    got = json.loads(
        drgn_eval(fs.vmlinux, fs.path(DRGN_DUMP[series]), code, _drgn_args(fs, DRGN_DUMP[series]))
    )
    assert got == expected


_DRGN_MEMINFO = """
import json
from drgn import cast
from drgn.helpers.linux.mm import totalram_pages
zone = [int(x.counter) for x in prog["vm_zone_stat"]]
node = [int(x.counter) for x in prog["vm_node_stat"]]
print(json.dumps([int(totalram_pages(prog)), zone, node]))
"""


@pytest.mark.parametrize("series", ALL_SERIES)
def test_vm_stat_matches_drgn(series):
    dump = DRGN_DUMP[series]
    fs, k = _dump(series, dump)
    total, zone, node = json.loads(drgn_eval(fs.vmlinux, fs.path(dump), _DRGN_MEMINFO, _drgn_args(fs, dump)))
    info = meminfo.mem_info(k)
    assert info.total == total
    stats = meminfo.vm_stat(k)
    assert [s.value for s in stats if s.group == "zone"] == zone[
        : len([s for s in stats if s.group == "zone"])
    ]
    assert [s.value for s in stats if s.group == "node"] == node[
        : len([s for s in stats if s.group == "node"])
    ]
    assert info.free == sum(z.free_pages for z in meminfo.zones(k))
    assert info.free == zone[0]  # NR_FREE_PAGES is the first zone_stat_item


@pytest.mark.parametrize("series", ALL_SERIES)
def test_kmem_json_records(series):
    _, k = _dump(series, DRGN_DUMP[series])
    for cmd, record in (("kmem -i", "mem_info"), ("kmem -s", "cache_stats"), ("kmem -v", "vmap_area")):
        out, err = _run_json(k, cmd)
        assert err == ""
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines and all(r["record"] == record and r["schema"] == 2 for r in lines), cmd


def _run_json(k, line):
    import io

    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    reg = Registry()
    reg.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(k, registry=reg, stdout=out, stderr=err)
    shell.settings.output = "json"
    shell.execute(line)
    return out.getvalue(), err.getvalue()


def test_kmem_bad_input(fixtures61):
    k = open_fixture_kernel(fixtures61, "kdump-zlib.kdump")
    out, err = run_command(k, "kmem -i -s")
    assert "only one flag allowed" in err
    out, err = run_command(k, "kmem -i ffff8ba982598400")
    assert "no address arguments allowed" in err
    out, err = run_command(k, "kmem -s 0x1234")
    assert err.strip() == "kmem: address is not allocated in slab subsystem: 1234"
    out, err = run_command(k, "kmem ffffffffffff0000")
    assert out.strip() == "ffffffffffff0000: kernel virtual address not found in mem map"


def test_kmem_on_an_excluded_free_page(fixtures61):
    """A free page is filtered out of a makedumpfile -d 31 dump: kmem still describes it from its struct
    page and the free lists, and -s says in one line that it is no slab object."""
    k = open_fixture_kernel(fixtures61, "kdump-zlib.kdump")
    zone = next(z for z in meminfo.zones(k) if z.free_pages)
    fl = next(f for f in meminfo.free_lists(k, zone) if f.blocks and f.order >= 1)
    head = k.read_u64(fl.address) - k.type("struct page").member("lru")[1] // 8
    vaddr = page_to_virt(k, head) + 4096
    out, err = run_command(k, f"rd {vaddr:x}")
    assert "page excluded" in err
    out, err = run_command(k, f"kmem -s {vaddr:x}")
    assert err.strip() == f"kmem: address is not allocated in slab subsystem: {vaddr:x}" and out == ""
    out, err = run_command(k, f"kmem {vaddr:x}")
    assert err == ""
    assert f"({vaddr:x} is 2nd of {1 << fl.order} pages)" in out
    assert out.rstrip().splitlines()[-1].startswith(f"{head + page_layout(k).page_size:x} ")
