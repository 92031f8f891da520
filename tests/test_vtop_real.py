"""`vtop`, `ptov`, `pte`, `btop`, `ptob`, `swap` on the real Debian dumps: kcrash's text must equal crash 9.0.2's
(5.10, 6.1, 6.12), and its translations drgn's on unstable's kernel (crash cannot read it).

The addresses are chosen with kcrash from facts every build has: the panic task's task_struct (direct map)
and stack (vmalloc), `schedule` and `jiffies` (kernel text map), the first struct page (vmemmap, mapped by
2 MB pages), the first page and the last page of the direct map, a module's text, an unmapped address deep
in vmalloc space and one in the text map below the kernel (KASLR leaves it unmapped; crash still prints
its arithmetic translation and the page line); for PID 1, the first page of each VMA (file and anonymous)
and a page of a VMA that is not present, and an address in no VMA. Every expected line comes from crash.

Differences judged and left: none on these inputs.  crash prints "WARNING: sparsemem: invalid section
number" for a text-map address whose arithmetic translation lies beyond memory; kcrash prints no page line
there (no such address is among the inputs).
"""

from __future__ import annotations

import functools
import json

import locate
import pytest
from conftest import CRASH9_SERIES, fixture_set, open_fixture_kernel, run_command
from oracles import crash9_outputs, drgn_eval

from kcrash.errors import MemoryReadError
from kcrash.kernel import modules as kmod
from kcrash.kernel import pagetable as pt
from kcrash.kernel.panic import panic_task
from kcrash.kernel.tasks import find_task
from kcrash.kernel.vma import mm_vmas

pytestmark = pytest.mark.fixture

CRASH9_DUMPS = ("kdump.elf", "kdump-lzo.kdump", "qemu.elf", "kdump-lzo-d23.kdump")


def kcrash(k, line: str) -> str:
    out, err = run_command(k, line)
    return (out + err).rstrip("\n")


@functools.cache
def user_addresses(k) -> tuple[int, ...]:
    """PID 1: the first page of every VMA, the first non-present page of a VMA, and an address in no VMA."""
    init = find_task(k, 1)
    mm = int(init.member("mm"))
    vmas = mm_vmas(k, mm)
    pgd = pt.task_pgd(k, init)
    chosen = [v.start for v in vmas]
    for v in vmas:
        hole = next((a for a in range(v.start, v.end, 4096) if pt.translate(k, a, pgd).paddr is None), None)
        if hole is not None:
            chosen.append(hole)
            break
    chosen.append(0x1000)
    return tuple(chosen)


@functools.cache
def kernel_addresses(k) -> tuple[int, ...]:
    lay = pt.kernel_layout(k)
    task = panic_task(k)
    chosen = [
        task.address,
        k.address_of("schedule"),
        k.address_of("jiffies"),
        lay.vmemmap_start,
        lay.page_offset,
        lay.high_memory - 4096,
        lay.vmalloc_start + (8 << 40),
    ]
    below_text = pt.START_KERNEL_MAP + (1 << 20) - k.phys_base  # the text map's address of physical 1 MiB
    if below_text >= pt.START_KERNEL_MAP:
        chosen.append(below_text)
    try:
        chosen.append(int(task.member("stack")))  # vmalloc
    except MemoryReadError:
        pass  # the task_struct itself was filtered out of this dump (seen on a 6.12 kdump)
    mods = kmod.modules(k)
    if mods:
        chosen.append(mods[0].base)
    return tuple(chosen)


def vtop_commands(k) -> list[str]:
    cmds = [f"vtop {a:x}" for a in kernel_addresses(k)]
    cmds += [f"vtop -c 1 {a:x}" for a in user_addresses(k)]
    task = panic_task(k)
    cmds += [f"vtop -k {task.address:x}", f"vtop -c 1 {task.address:x}", f"vtop -u {task.address:x}"]
    cmds.append(f"vtop {kernel_addresses(k)[0]:x} {kernel_addresses(k)[2]:x}")
    return cmds


def other_commands(k) -> list[str]:
    tr = pt.translate(k, panic_task(k).address)
    user = pt.translate(k, user_addresses(k)[0], pt.task_pgd(k, find_task(k, 1)))
    return [
        f"ptov {tr.paddr:x}",
        f"ptov {tr.paddr:x} {user.paddr:x}",
        f"pte {tr.leaf.value:x}",
        f"pte {user.leaf.value:x}",
        "pte 0",
        "pte 100",  # PROT_NONE, not present
        "pte 7fffffffffe00",  # a swap entry, and no swap device: crash gives up half-way through
        "ptov 1a000:a",  # a per-cpu offset on every CPU
        "ptov 1a000:0 2000",
        "ptov 1a000:",  # the context task's CPU
        f"btop {tr.paddr:x}",
        f"ptob {tr.paddr >> 12}",
        f"ptob {tr.paddr >> 12:#x}",
        "swap",
    ]


BAD_INPUT = [
    "vtop -c 99999999 400000",  # no such PID
    "vtop jiffies",  # crash takes hexadecimal only
    "vtop 900000000000",  # neither a user nor a kernel address
    "vtop -u -k 400000",
]


@pytest.mark.parametrize("series", CRASH9_SERIES)
@pytest.mark.parametrize("dump", CRASH9_DUMPS)
def test_vtop_like_crash9(series, dump):
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, dump)
    if not locate.crash9_reads(fs.manifest, dump):
        # crash 9 cannot read this dump (6.12 at -d 31: it dies gathering the task table): drgn is the
        # oracle instead.
        check_with_drgn(fs, dump)
        return
    commands = vtop_commands(k) + other_commands(k) + BAD_INPUT
    expected = crash9_outputs(fs.vmlinux, fs.path(dump), commands)
    for cmd in commands:
        assert kcrash(k, cmd) == expected[cmd].rstrip("\n"), cmd


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_vtop_json(series):
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, "kdump.elf")
    from kcrash.shell.core import Shell

    task = panic_task(k)
    lines = _json(k, Shell, f"vtop {task.address:x}")
    (rec,) = lines
    assert rec["record"] == "vtop" and rec["vaddr"] == f"0x{task.address:x}"
    tr = pt.translate(k, task.address)
    assert rec["paddr"] == f"0x{tr.paddr:x}"
    assert [lv["level"] for lv in rec["levels"]] == [e.level for e in tr.entries]
    assert rec["page"]["paddr"] == f"0x{tr.paddr & ~0xFFF:x}"
    (pte,) = _json(k, Shell, f"pte {tr.leaf.value:x}")
    assert pte["record"] == "pte_translation" and "PRESENT" in pte["flags"]
    (conv,) = _json(k, Shell, "btop 1250000")
    assert conv == {**conv, "record": "page_conversion", "value": "0x1250000", "result": "0x1250"}
    (ptov,) = _json(k, Shell, f"ptov {tr.paddr:x}")
    assert ptov["vaddr"] == f"0x{pt.kernel_layout(k).page_offset + tr.paddr:x}"
    assert _json(k, Shell, "swap") == []  # no swap on the fixtures: no records, no header


def _json(k, shell_cls, line: str) -> list[dict]:
    """The JSON records of one command line (run_command's shell, in JSON mode)."""
    import io

    import conftest

    run_command(k, "btop 0")  # loads conftest's command registry
    out, err = io.StringIO(), io.StringIO()
    shell = shell_cls(k, registry=conftest._registry, stdout=out, stderr=err)
    shell.settings.output = "json"
    shell.execute(line)
    assert not err.getvalue(), err.getvalue()
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_vtop_against_drgn_sid():
    """Unstable's kernel: kcrash's physical address of every chosen address equals drgn's follow_phys()."""
    fs = fixture_set("sid")
    for dump in ("kdump.elf", "kdump-lzo.kdump"):
        check_with_drgn(fs, dump)


def check_with_drgn(fs, dump: str) -> None:
    """kcrash's translations of the chosen kernel and user addresses against drgn's follow_phys()."""
    k = open_fixture_kernel(fs, dump)
    kern = list(kernel_addresses(k))
    user = list(user_addresses(k))
    init = find_task(k, 1)  # found by kcrash: drgn's PID lookup may meet a filtered-out page
    code = (
        "from drgn import Object\n"
        "from drgn.helpers.linux.mm import follow_phys\n"
        f"mm1 = Object(prog, 'struct task_struct *', {init.address}).mm\n"
        "def tr(mm, a):\n"
        "    try:\n"
        "        return hex(follow_phys(mm, a))\n"
        "    except Exception:\n"
        "        return 'none'\n"
        f"for a in {kern!r}: print(tr(prog['init_mm'].address_of_(), a))\n"
        f"for a in {user!r}: print(tr(mm1, a))\n"
    )
    expected = drgn_eval(fs.vmlinux, fs.path(dump), code).split()
    got = [pt.translate(k, a).paddr for a in kern]
    got += [pt.translate(k, a, pt.task_pgd(k, init)).paddr for a in user]
    # drgn walks the page tables only: an unmapped text-map address has no translation there, while
    # crash and kcrash give the text mapping's arithmetic one (judged: the walk is the truth).
    for a, want, have in zip(kern + user, expected, got, strict=True):
        walked = pt.translate(k, a) if a in kern else None
        if walked is not None and walked.leaf is not None and want == "none":
            assert walked.method == "kernel text" or walked.paddr is None, hex(a)
            continue
        assert want == (hex(have) if have is not None else "none"), hex(a)
    out = kcrash(k, f"vtop -c 1 {user[0]:x}")
    assert f"{user[0]:x}" in out and "PAGE:" in out and "VMA" in out
