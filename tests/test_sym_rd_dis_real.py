"""`sym`, `rd`, `dis` and module symbols on the real Debian dumps, against crash 8.0.2 (5.10, 6.1) and drgn.

crash runs in the test on the 5.10 and 6.1 dumps (one session per dump, tests/oracles.py) and kcrash's output
(stdout then stderr) must equal crash's exactly, with these documented exceptions:
- `rd -a` with no count: crash ends the string without a newline (its next output continues on the same
  line); kcrash ends the line.  Checked with a separate crash run that keeps the glued text.
- `dis -u` on a dump without the user page: crash prints its read error twice (once from gdb); kcrash
  once.  Only the first is compared.
- crash picks among several names of one address through a hash-chain cache (symval_hash), so the name
  it prints at an address with aliases depends on the lookups before it (on one 5.10 build
  `__x86_indirect_thunk_array` in some dumps, `__x86_indirect_thunk_rax` in others).  The functions
  disassembled here have one name; for `sym ADDR` at an address with aliases any of its names is accepted,
  the rest of the line must be identical.
Inputs (addresses inside functions, an excluded page) are chosen with kcrash; every expected output comes
from crash.  On 6.12 (crash cannot open those dumps) drgn is the oracle: vmlinux symbols, module symbols
(drgn's module_kallsyms helper), memory contents, and the call targets the disassembly names.
"""

from __future__ import annotations

import functools
import re
import subprocess

import pytest
from conftest import DRGN_SERIES, fixture_set, open_fixture_kernel, run_command
from oracles import crash_outputs, drgn_eval

from kcrash.errors import MemoryReadError, PageExcludedError
from kcrash.kernel import modules as kmod

pytestmark = pytest.mark.fixture

CRASH_DUMPS = ["qemu.elf", "qemu-kdump.flat", "kdump-lzo.kdump", "kdump.elf"]
ALL_DUMPS = [
    "qemu.elf",
    "qemu-novmcoreinfo.elf",
    "qemu-kdump.flat",
    "qemu-kdump.zlib",
    "kdump.elf",
    "kdump-lzo.kdump",
    "kdump-zlib.kdump",
    "kdump-lzo.flat",
    "kdump-lzo-d23.kdump",
]
DRGN_DUMPS612 = ["qemu.elf", "kdump.elf", "kdump-lzo.kdump"]

# Candidates for the whole-function differential: entry code, scheduler, VFS, locking, string and copy
# routines (rep/alternatives), asm, thunks.  The first 20 with a single name at their address are used.
DIS_CANDIDATES = [
    "schedule", "__schedule", "vfs_read", "do_sys_openat2", "panic", "sysrq_handle_crash",
    "native_safe_halt", "_raw_spin_lock_irqsave", "mutex_lock", "kmem_cache_alloc", "__alloc_pages",
    "do_syscall_64", "entry_SYSCALL_64", "__switch_to_asm", "asm_exc_page_fault", "strlen",
    "clear_page_rep", "copy_page", "__x86_return_thunk", "crash_kexec", "copy_user_generic_string",
    "pipe_read", "__crash_kexec", "machine_kexec", "native_write_msr", "csum_partial", "ret_from_fork",
    "__fentry__", "memcpy", "memset",
]  # fmt: skip

SYM_NAMES = ["schedule", "jiffies", "linux_banner", "init_task", "_text", "_stext", "__per_cpu_start",
             "ksoftirqd", "__per_cpu_end", "modules", "__x86_indirect_thunk_rax", "edd"]  # fmt: skip


def kcrash(k, line: str) -> str:
    out, err = run_command(k, line)
    return (out + err).rstrip("\n")


@functools.cache
def dis_functions(fs_dir: str, dump: str, k) -> tuple[str, ...]:
    ks = kmod.kernel_symbols(k)
    chosen = []
    for name in DIS_CANDIDATES:
        named = ks.all_named(name)
        if len(named) != 1:
            continue
        same = _range(ks.table.addresses, named[0].address)
        if same.stop - same.start == 1:  # one name at the address: no alias choice (docstring)
            chosen.append(name)
    assert len(chosen) >= 20, chosen
    return tuple(chosen[:20])


def _range(addresses, addr) -> slice:
    import bisect

    return slice(bisect.bisect_left(addresses, addr), bisect.bisect_right(addresses, addr))


def excluded_page(k) -> int | None:
    """A physical page the dump says was filtered out (makedumpfile), found by reading."""
    for pfn in range(0x100, 0x40000):
        try:
            k.read(pfn * 4096, 1, physical=True)
        except PageExcludedError:
            return pfn * 4096
        except MemoryReadError:
            continue
    return None


def user_entry(k) -> int:
    """The entry point of the panic task's program (e_entry of the ELF header mapped at 0x400000), or
    0x401000 when that page is not in the dump."""
    from kcrash.kernel.pagetable import task_pgd
    from kcrash.kernel.panic import panic_task

    try:
        header = k.translator.read(0x400000, 64, pgd_paddr=task_pgd(k, panic_task(k)))
    except MemoryReadError:
        return 0x401000
    return int.from_bytes(header[24:32], "little")


def first_module(k) -> kmod.Module:
    mods = kmod.modules(k)
    assert mods, "no module loaded in the fixture guest (the module tests need one)"
    return mods[0]


def commands(fs, dump: str, k) -> tuple[str, ...]:
    """Every command compared with crash on this dump (inputs chosen with kcrash, see the docstring)."""
    sched = kmod.lookup_any(k, "schedule").address
    thunk = kmod.lookup_any(k, "__x86_indirect_thunk_array").address
    mod = first_module(k)
    mfunc = next(mod.symbols.at(i) for i in range(len(mod.symbols)) if mod.symbols.types[i] in "tT")
    banner = kmod.lookup_any(k, "linux_banner").address
    cmds = ["mod"] + [f"sym {n}" for n in SYM_NAMES]
    cmds += [
        f"sym {sched + 16:x}",
        f"sym {thunk:x}",
        f"sym {thunk + 1:x}",
        f"sym -n {sched + 16:x}",
        f"sym -p {sched + 16:x}",
        "sym -n schedule yield",
        "sym -np __x86_indirect_thunk_rax",
        "sym -p ksoftirqd",
        "sym -n __per_cpu_end",
        "sym -q vfs_rea",
        "sym -q nosuchstring",
        "sym nosuchsym",
        "sym init_module",
        f"sym {mfunc.address + 16:x}",
        f"sym {mfunc.name}",
        f"sym -m {mod.name}",
        "sym -M",
        "sym 0",
        f"sym {mod.end:x}",
        "sym -l",
    ]
    cmds += [
        "rd jiffies",
        "rd linux_banner 20",
        "rd -s init_task 12",
        "rd -8 linux_banner 40",
        "rd -16 linux_banner 20",
        "rd -32 linux_banner 20",
        "rd -64 linux_banner 5",
        "rd -d jiffies 4",
        "rd -D jiffies 4",
        "rd -x linux_banner 6",
        "rd -N -32 linux_banner 4",
        "rd -N -16 linux_banner 9",
        "rd -R linux_banner 4",
        "rd -p 1000 4",
        f"rd linux_banner -e {banner + 0x18:x}",
        f"rd -32 linux_banner -e {banner + 0x1C:x}",
        "rd -d -8 linux_banner 20",
        "rd -D -16 linux_banner 10",
        "rd -d -32 linux_banner 6",
        "rd -s -x jiffies 2",
        "rd -o 8 linux_banner 2",
        "rd linux_banner 1a",
        "rd -a linux_banner 100",
        "rd -a linux_banner 200",
        f"rd -s {mod.address:x} 40",
        "rd nosuchsymbol",
        "rd 0",
        "rd -p 0",
        "rd -p 40000000000",
        f"rd {k.translator.page_offset:x}",
        "rd -u 400000 4",
        f"rd -u {user_entry(k):x} 4",
    ]
    page = excluded_page(k)
    if page is not None:
        po = k.translator.page_offset
        cmds += [
            f"rd -p {page:x}",
            f"rd {po + page:x}",
            f"rd -p {page - 0x10:x} 4",
            f"rd -p {page - 0x20:x} 5",
            f"rd {po + page - 0x10:x} 4",
            f"rd -8 -p {page - 8:x} 12",
            f"rd -a -p {page - 8:x} 12",
            f"rd -32 -p {page - 0x10:x} 7",
        ]
    cmds += [f"dis {name}" for name in dis_functions(str(fs.dir), dump, k)]
    cmds += [
        "dis -l schedule",
        "dis -l vfs_read",
        "dis -r schedule+16",
        "dis -r schedule+10",
        "dis -f schedule+140",
        "dis -x vfs_read 10",
        "dis -d vfs_read 3",
        "dis schedule 5",
        "dis schedule+16",
        "dis schedule+0x10",
        "dis (schedule+0x10)",
        f"dis {sched + 5:x} 3",
        f"dis -f {sched + 5:x} 2",
        f"dis {mfunc.name}",
        f"dis -l {mfunc.name}",
        "dis nosuchfunc",
        f"dis -u {user_entry(k):x} 5",
    ]
    return tuple(cmds)


@pytest.fixture(scope="module", params=CRASH_DUMPS)
def crash61(request, fixtures_crash):
    name = request.param
    assert name in fixtures_crash.dumps, f"{name} missing from the 6.1 fixture manifest"
    k = open_fixture_kernel(fixtures_crash, name)
    cmds = commands(fixtures_crash, name, k)
    crash = crash_outputs(fixtures_crash.vmlinux, fixtures_crash.path(name), cmds)
    assert crash.get("sym schedule", "").strip(), "crash printed no sym output"
    return fixtures_crash, name, k, cmds, crash


def _mismatches(k, crash, cmds, prefix: str) -> list[str]:
    """The commands (starting with `prefix`) whose kcrash output differs from crash's."""
    bad = []
    for cmd in cmds:
        if not cmd.startswith(prefix):
            continue
        want = crash[cmd]
        got = kcrash(k, cmd)
        if cmd.startswith("dis -u") and "gdb_readmem_callback" in want:
            want = want.split("\n")[0]  # crash prints the read error twice (docstring)
        if got != want and cmd.startswith("sym ") and _alias_of(k, got, want):
            continue
        if got != want:
            bad.append(f"{cmd}:\n--- crash\n{want}\n--- kcrash\n{got}")
    return bad


def _alias_of(k, got: str, want: str) -> bool:
    """One `sym ADDR` line each, equal but for a name, both names of that very address (module docstring)."""
    ours, theirs = got.splitlines(), want.splitlines()
    if len(ours) != 1 or len(theirs) != 1:
        return False
    m, n = _SYM_LINE.match(ours[0]), _SYM_LINE.match(theirs[0])
    if not m or not n or (m.group(1), m.group(3)) != (n.group(1), n.group(3)):
        return False
    table = kmod.kernel_symbols(k).table
    at = _range(table.addresses, int(m.group(1).split()[0], 16))
    names = table.names[at.start : at.stop]
    return m.group(2) in names and n.group(2) in names


_SYM_LINE = re.compile(r"^([0-9a-f]+ \([a-zA-Z]\)) (\S+)(.*)$")


def test_sym_matches_crash(crash61):
    _fs, _dump, k, cmds, crash = crash61
    bad = _mismatches(k, crash, cmds, "sym ")
    assert not bad, "\n".join(bad)


def test_rd_matches_crash(crash61):
    _fs, _dump, k, cmds, crash = crash61
    bad = _mismatches(k, crash, cmds, "rd ")
    assert not bad, "\n".join(bad)


def test_dis_matches_crash(crash61):
    fs, dump, k, cmds, crash = crash61
    assert len(dis_functions(str(fs.dir), dump, k)) == 20
    bad = _mismatches(k, crash, cmds, "dis ")
    assert not bad, "\n".join(bad)


def test_dis_whole_function_line_counts(crash61):
    """Every one of the 20 functions disassembled over its whole range, not just its first lines."""
    fs, dump, k, _cmds, crash = crash61
    for name in dis_functions(str(fs.dir), dump, k):
        lines = crash[f"dis {name}"].splitlines()
        assert len(lines) > 1 and all(line.startswith("0x") for line in lines), name


def _crash_glued(fs, dump: str, cmd: str) -> str:
    """crash's output of one command whose output may end without a newline."""
    script = f"!echo BEGIN-KCRASH\n{cmd}\n!echo END-KCRASH\nq\n"
    proc = subprocess.run(
        ["crash", "-s", fs.vmlinux, fs.path(dump)], input=script, capture_output=True, text=True, timeout=600
    )
    text = proc.stdout
    return text[text.index("BEGIN-KCRASH\n") + len("BEGIN-KCRASH\n") : text.index("END-KCRASH")]


def test_rd_ascii_unlimited(fixtures_crash):
    dump = "kdump-lzo.kdump"
    k = open_fixture_kernel(fixtures_crash, dump)
    want = _crash_glued(fixtures_crash, dump, "rd -a linux_banner")
    assert not want.endswith("\n")  # crash's missing newline, see the docstring
    out, err = run_command(k, "rd -a linux_banner")
    assert err == ""
    assert out == want + "\n"


# --- kcrash alone, every 6.1 dump --------------------------------------------------------------------


@pytest.mark.parametrize("dump", ALL_DUMPS)
def test_symbols_relocated_like_the_manifest(fixtures_crash, dump):
    """The vmlinux table is the ELF symtab moved by the KASLR offset the fixture script recorded."""
    k = open_fixture_kernel(fixtures_crash, dump)
    boot = fixtures_crash.manifest["boots"][fixtures_crash.dumps[dump]["boot"]]
    offset = int(boot["kaslr_offset"], 16)
    ks = kmod.kernel_symbols(k)
    link = k._vmlinux_symbol("schedule")
    assert ks.table.lookup("schedule").address == link + offset
    out = kcrash(k, "sym schedule")
    assert out.startswith(f"{link + offset:x} (T) schedule ")
    assert ks.table.lookup("__per_cpu_start").address == 0  # per-cpu offsets are not relocated


MOD_ROW = re.compile(r"^([0-9a-f]+)  (\S+) +([0-9a-f]+) +(\d+)  ")


def crash_modules(text: str) -> list[tuple[int, str, int, int]]:
    """(struct module, name, base, size) rows of crash's `mod`."""
    rows = []
    for line in text.splitlines():
        m = MOD_ROW.match(line)
        if m:
            rows.append((int(m.group(1), 16), m.group(2), int(m.group(3), 16), int(m.group(4))))
    return rows


@pytest.mark.parametrize("dump", ALL_DUMPS)
def test_modules_match_crash(fixtures_crash, dump):
    """The module list (struct module, name, base, size) equals crash's `mod`; module addresses resolve
    through the module's own kallsyms with ` [module]`."""
    k = open_fixture_kernel(fixtures_crash, dump)
    cmds = commands(fixtures_crash, dump, k) if dump in CRASH_DUMPS else ("mod",)
    want = crash_modules(crash_outputs(fixtures_crash.vmlinux, fixtures_crash.path(dump), cmds)["mod"])
    ours = kmod.modules(k)
    assert [(m.address, m.name, m.base, m.size) for m in ours] == want
    for mod in ours:
        assert len(mod.symbols) > 10
        sym, off = kmod.resolve_any(k, mod.base + 16)
        assert sym.module == mod.name and off == 16
        assert kcrash(k, f"sym {mod.base + 16:x}").endswith(f"+16 [{mod.name}] ")


# --- 6.12 and the newest kernel: drgn ------------------------------------------------------------------------------------


DRGN_MODULES = """
from drgn.helpers.linux.kallsyms import load_module_kallsyms
from drgn.helpers.linux.module import for_each_module
for mod in for_each_module(prog):
    print("MOD", mod.name.string_().decode(), hex(mod.mem[0].base), int(mod.mem[0].size))
for s in load_module_kallsyms(prog)(prog, None, None, False):
    print("SYM", s.name, hex(s.address), s.size, s.kind.name)
for name in NAMES:
    s = prog.symbol(name)
    print("VMLINUX", s.name, hex(s.address), s.size)
"""


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("dump", DRGN_DUMPS612)
def test_symbols_match_drgn_newer(series, dump):
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, dump)
    names = ["schedule", "vfs_read", "jiffies", "init_task", "panic", "linux_banner"]
    text = drgn_eval(fs.vmlinux, fs.path(dump), DRGN_MODULES.replace("NAMES", repr(names)))
    mods = [line.split()[1:] for line in text.splitlines() if line.startswith("MOD ")]
    ours = kmod.modules(k)
    assert [(m.name, m.base, m.size) for m in ours] == [(n, int(b, 16), int(s)) for n, b, s in mods]
    drgn_syms = {}
    for line in text.splitlines():
        if line.startswith("SYM "):
            _, name, addr, size, kind = line.split()
            drgn_syms.setdefault((name, int(addr, 16)), (int(size), kind))
    ours_syms = {}
    for mod in ours:
        t = mod.symbols
        for i in range(len(t)):
            ours_syms[(t.names[i], t.addresses[i])] = (t.sizes[i], t.types[i])
    # drgn keeps the names crash strips (.isra/.part); compare on what both have
    common = set(ours_syms) & set(drgn_syms)
    assert len(common) >= 0.9 * len(drgn_syms)
    for key in common:
        size, letter = ours_syms[key]
        assert size == drgn_syms[key][0], key
        assert (letter in "tT") == (drgn_syms[key][1] == "FUNC"), key
    for line in text.splitlines():
        if line.startswith("VMLINUX "):
            _, name, addr, _size = line.split()
            assert kcrash(k, f"sym {name}").split()[0] == addr[2:], name


DRGN_READ = """
addr = prog.symbol("linux_banner").address
print(prog.read(addr, 48).hex())
print(prog["jiffies"].value_())
"""


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("dump", DRGN_DUMPS612)
def test_rd_matches_drgn_newer(series, dump):
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, dump)
    raw_hex, jiffies = drgn_eval(fs.vmlinux, fs.path(dump), DRGN_READ).split()
    raw = bytes.fromhex(raw_hex)
    lines = kcrash(k, "rd -64 linux_banner 6").splitlines()
    values = [int(v, 16) for line in lines for v in line.split(":", 1)[1].split()[:2]]
    assert values == [int.from_bytes(raw[i : i + 8], "little") for i in range(0, 48, 8)]
    assert lines[0].endswith("  " + raw[:16].decode())
    assert kcrash(k, "rd -d jiffies").split()[-1] == str(
        int(jiffies) if int(jiffies) < 1 << 63 else int(jiffies) - (1 << 64)
    )


DRGN_CALLS = """
for name in NAMES:
    s = prog.symbol(name)
    print("FN", name, hex(s.address), s.size)
"""
CALL = re.compile(r"\tcall   0x([0-9a-f]+) <([^>]+)>$")


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("dump", DRGN_DUMPS612)
def test_dis_matches_drgn_newer(series, dump):
    """Whole functions decode without (bad), end where drgn's symbol size says, and each call target is
    named as drgn names that address (7.x's absolute constants past _end once hid every name)."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, dump)
    names = ["schedule", "vfs_read", "panic", "do_syscall_64", "kmem_cache_alloc_noprof", "__schedule"]
    text = drgn_eval(fs.vmlinux, fs.path(dump), DRGN_CALLS.replace("NAMES", repr(names)))
    targets = {}
    for line in text.splitlines():
        _, name, addr, size = line.split()
        start, size = int(addr, 16), int(size)
        out = kcrash(k, f"dis {name}").splitlines()
        assert out[0].startswith(f"0x{start:x} <{name}>:\t")
        assert "(bad)" not in "\n".join(out)
        last = int(out[-1].split()[0], 16)
        assert start < last < start + size
        for line_ in out:
            m = CALL.search(line_)
            if m and "+" not in m.group(2):
                targets[int(m.group(1), 16)] = m.group(2)
    assert targets
    script = "\n".join(
        [
            f"for a in {sorted(targets)!r}:",
            "    s = prog.symbol(a)",
            "    print(hex(a), s.name, hex(s.address))",
        ]
    )
    out = drgn_eval(fs.vmlinux, fs.path(dump), script)
    table = kmod.kernel_symbols(k).table
    for line in out.splitlines():
        addr, drgn_name, drgn_addr = line.split()
        assert drgn_addr == addr  # every named call target is a symbol's start for drgn too
        at = _range(table.addresses, int(addr, 16))
        assert targets[int(addr, 16)] in table.names[at.start : at.stop]
        assert kmod.strip_symbol_end(drgn_name) in table.names[at.start : at.stop]
