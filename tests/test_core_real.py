"""Issue 2 acceptance on the real Debian fixture dumps, every format, through the public API only."""

from __future__ import annotations

import random

import pytest
from conftest import open_fixture_kernel

from kcrash.errors import PageExcludedError
from kcrash.kernel import task_state, tasks
from kcrash.objects import list_for_each_entry
from kcrash.program import Kernel, open_kernel

pytestmark = pytest.mark.fixture

DUMPS_61 = [
    "qemu.elf",
    "qemu-kdump.flat",
    "qemu-kdump.zlib",
    "kdump.elf",
    "kdump-lzo.kdump",
    "kdump-zlib.kdump",
    "kdump-lzo.flat",
]


@pytest.fixture(scope="module", params=DUMPS_61)
def dump61(request, fixtures_crash):
    if request.param not in fixtures_crash.dumps:
        pytest.fail(f"fixture set lacks {request.param}")
    return fixtures_crash, request.param, open_fixture_kernel(fixtures_crash, request.param)


def test_init_task_comm(dump61) -> None:
    _, _, k = dump61
    assert k.object("init_task").comm.string() == "swapper/0"


def test_linux_banner_names_debian_version(dump61) -> None:
    fs, _, k = dump61
    banner = k.read_cstring(k.address_of("linux_banner")).decode()
    assert banner.startswith(f"Linux version {fs.manifest['kernel_release']} ")
    assert fs.manifest["package_version"] in banner


def test_jiffies_same_in_every_format_of_a_boot(fixtures_crash) -> None:
    values: dict[str, set[int]] = {}
    for name, entry in fixtures_crash.dumps.items():
        k = open_fixture_kernel(fixtures_crash, name)
        jiffies = k.object("jiffies")
        assert jiffies.type_.strip().name == "long unsigned int"
        values.setdefault(entry["boot"], set()).add(jiffies.value())
    for boot, seen in values.items():
        assert len(seen) == 1 and seen.pop() != 0, f"jiffies differ between formats of the {boot} boot"


def test_marker_processes_on_task_list(dump61) -> None:
    fs, name, k = dump61
    boot = fs.dumps[name]["boot"]
    expected = fs.manifest["boots"][boot]["pids"]
    init = k.object("init_task")
    seen = {t.comm.string(): t.pid.value() for t in list_for_each_entry(init.type_, init.tasks, "tasks")}
    for comm, pid in expected.items():
        assert seen.get(comm) == pid, f"{comm} (pid {pid}) not on init_task.tasks of {name}"


def test_marker_states(dump61) -> None:
    fs, name, k = dump61
    by_comm = {tasks.task_comm(t): t for t in tasks.for_each_task(k)}
    assert task_state.task_state_code(k, by_comm["kc-sleeper"]) == "IN"
    assert task_state.task_state_code(k, by_comm["kc-fiforeader"]) == "IN"
    assert task_state.task_state_code(k, by_comm["kc-crasher"]) == "RU"


def test_either_argument_order(fixtures_crash) -> None:
    k = open_kernel(fixtures_crash.path("kdump-lzo.kdump"), fixtures_crash.vmlinux)
    try:
        assert k.vmlinux_path == fixtures_crash.vmlinux
    finally:
        k.close()


def test_same_pages_through_every_format(fixtures_crash) -> None:
    """10,000 random kernel pages (direct map) read identically through each format of the same boot."""
    by_boot: dict[str, list[str]] = {}
    for name, entry in fixtures_crash.dumps.items():
        by_boot.setdefault(entry["boot"], []).append(name)
    rng = random.Random(20261126)
    multi = {boot: names for boot, names in by_boot.items() if len(names) > 1}
    assert {"qemu", "kdump"} <= set(multi), f"expected several formats of each boot: {by_boot}"
    for boot, names in multi.items():
        kernels = [open_fixture_kernel(fixtures_crash, n) for n in names]
        # Sample from the most filtered dump's pages so most samples exist in every format.
        ref = max(kernels, key=lambda k: k.memory.dump_level or 0)
        ranges = ref.memory.ranges()
        total = sum(end - start for start, end in ranges)
        compared = attempts = 0
        while compared < 10_000 and attempts < 200_000:
            attempts += 1
            off = rng.randrange(total // 4096) * 4096
            for start, end in ranges:
                if off < end - start:
                    paddr = start + off
                    break
                off -= end - start
            if ref.memory.is_excluded(paddr):
                continue
            pages = []
            for k in kernels:
                try:
                    pages.append(k.read(paddr, 4096, physical=True))
                except PageExcludedError:
                    pages.append(None)
            present = [p for p in pages if p is not None]
            assert all(p == present[0] for p in present), f"page {paddr:#x} differs between {names} ({boot})"
            compared += len(present) > 1
        assert compared == 10_000, f"only {compared} pages of the {boot} boot found in several formats"


def test_mismatched_vmlinux_is_one_clear_error(fixtures61, fixtures612) -> None:
    from kcrash.errors import DebugInfoError

    with pytest.raises(DebugInfoError) as e:
        Kernel(fixtures612.vmlinux, fixtures61.path("kdump-lzo.kdump"))
    msg = str(e.value)
    assert "do not match" in msg
    assert fixtures61.manifest["kernel_release"] in msg and fixtures612.manifest["kernel_release"] in msg
