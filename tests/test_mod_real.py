"""`mod` and module debug info on the real Debian dumps, against crash 9.0.2 (5.10, 6.1, 6.12) and drgn.

The guest's first kernel loads one module, qemu_fw_cfg (the boot without VMCOREINFO loads none). Its debug
file comes from the fixture directory or, for sets built before build.py kept it, from the cached -dbg
package (tests/moddebug.py).

Differences from crash 9.0.2, judged and kept:
- `mod -s UNKNOWN` and `mod -d UNKNOWN`: crash prints only its usage; kcrash says why first
  (`mod: UNKNOWN: not a loaded module name`), then the same usage.
- `mod -S DIR` with object files of several builds of a module in DIR: crash loads the first it finds
  (another kernel's qemu_fw_cfg.ko, whose symbols then sit at wrong addresses); kcrash takes the file
  whose build-id is the module's in the dump, and refuses a named file of another build.
- `dis` of module code: crash 9's gdb 16 spells some instructions differently from the gdb crash 8 has
  (no padding after the mnemonic, `data16 cs nopw`), the spelling kcrash follows (tests/test_sym_rd_dis_real.py);
  here the source lines and the instruction addresses of `dis -l` are compared.
Module frames are absent from every dump's stacks (no module code runs at the crash), so `bt` through a
module is checked by starting an unwind inside module text, on a real stack, against drgn's unwind of the
same registers, and the module's ORC table (read from the dump) against the DWARF CFI of its debug file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, fixture_set, open_fixture_kernel, run_command
from moddebug import module_debug_dir, module_debug_file
from oracles import crash9_outputs, drgn_eval

from kcrash.arch.dwarf_cfi import CfiTable
from kcrash.arch.orc import REG_SP, REG_UNDEFINED, TYPE_CALL
from kcrash.kernel import module_debug, modules
from kcrash.kernel.module_orc import module_orc_table
from kcrash.kernel.stack import backtrace, unwinder
from kcrash.kernel.tasks import for_each_process
from kcrash.program import Kernel
from kcrash.shell.core import Shell
from kcrash.shell.registry import Registry

pytestmark = pytest.mark.fixture

CRASH9_SERIES = ["5.10", "6.1", "6.12"]
# crash 9 reads one dump of each boot on every series (not 6.12's makedumpfile -d 31 dumps): kcrash's list on
# every dump of a boot is compared with crash's on that one.
BOOT_REFERENCE = {"qemu": "qemu.elf", "qemu-novmci": "qemu-novmcoreinfo.elf", "kdump": "kdump-lzo-d23.kdump"}
MODULE = "qemu_fw_cfg"


def kcrash(k, line: str) -> str:
    out, err = run_command(k, line)
    return (out + err).rstrip("\n")


def session(k):
    """One shell for several lines (the value history counts on, as in crash's session): line → output."""
    registry = Registry()
    registry.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(k, registry=registry, stdout=out, stderr=err)

    def run(line: str) -> str:
        out.seek(0), out.truncate(), err.seek(0), err.truncate()
        shell.execute(line)
        return (out.getvalue() + err.getvalue()).rstrip("\n")

    return run


def fresh_kernel(fs, dump: str = "qemu.elf") -> Kernel:
    """A Kernel of its own: `mod -s` changes the session's module symbols, which other tests must not see."""
    return Kernel(fs.vmlinux, fs.path(dump))


def crash9(fs, dump: str, commands: list[str]) -> dict[str, str]:
    return crash9_outputs(fs.vmlinux, fs.path(dump), commands)


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_mod_list_and_taints_match_crash9(series):
    fs = fixture_set(series)
    for dump, entry in fs.dumps.items():  # every dump format of the set
        k = open_fixture_kernel(fs, dump)
        want = crash9(fs, BOOT_REFERENCE[entry["boot"]], ["mod", "mod -t"])
        assert want["mod"], "crash printed no module list"
        assert kcrash(k, "mod") == want["mod"], dump
        assert kcrash(k, "mod -t") == want["mod -t"], dump


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_mod_s_symbols_lines_types_match_crash9(series):
    fs = fixture_set(series)
    ko = str(module_debug_file(fs, MODULE))
    lines = [
        f"mod -s {MODULE} {ko}",
        "mod",
        f"sym -m {MODULE}",
        "sym fw_cfg_sysfs_attr_show",
        "sym fw_cfg_rev",
        "p fw_cfg_rev",
        "p &fw_cfg_rev",
        "whatis fw_cfg_rev",
        "p fw_cfg_sysfs_attr_show",
        "p fw_cfg_sysfs_entry_attrs",
        "struct fw_cfg_sysfs_entry",
        "dis -l fw_cfg_showrev",
        f"mod -d {MODULE}",
        "mod -r",  # the list again (-r is a no-op for both): the oracle's answers are keyed by line
        "sym -M",
    ]
    want = crash9(fs, "qemu.elf", lines)
    k = fresh_kernel(fs)
    run = session(k)
    try:
        for line in lines:
            got = run(line)
            if line.startswith("dis"):  # the docstring says why
                assert _dis_skeleton(got) == _dis_skeleton(want[line]), line
                assert any(row.startswith("debian/build/") for row in got.splitlines())
                continue
            assert got == want[line], line
        # The table after `mod -s` has the object file's letters (t, r, d, b...) where kallsyms had "?".
        assert "(b) fw_cfg_rev" in want[f"sym -m {MODULE}"] or "(?) fw_cfg_rev" in want[f"sym -m {MODULE}"]
    finally:
        k.close()


def _dis_skeleton(text: str) -> list[str]:
    """`dis -l` output less the instructions' spelling: source lines and `0xADDR <symbol+off>:` prefixes."""
    return [row.split(":\t")[0] for row in text.splitlines()]


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_mod_S_directory_and_bad_input_match_crash9(series):
    fs = fixture_set(series)
    directory = str(module_debug_dir(fs, [MODULE]))
    lines = [
        "mod -S /etc/passwd",
        "mod -s nosuch",
        f"mod -s {MODULE} /etc/passwd",
        f"mod -s {MODULE} /nonexistent/{MODULE}.ko",
        f"mod -S {directory}",
        f"mod -s {MODULE}",  # loaded already, but its file is not in the default places: crash says so
        "mod -S",  # loaded already: listed without a search
        "mod -D",
        "mod",
    ]
    want = crash9(fs, "qemu.elf", lines)
    k = fresh_kernel(fs)
    try:
        for line in lines:
            got = kcrash(k, line)
            if line == "mod -s nosuch":
                # crash prints only its usage (docstring); kcrash says why first.
                assert got.splitlines()[0] == "mod: nosuch: not a loaded module name"
                got = "\n".join(got.splitlines()[1:])
            assert got == want[line], line
    finally:
        k.close()


@pytest.mark.parametrize("series", CRASH9_SERIES)
def test_mod_s_finds_the_object_file_by_name_and_build_id(series, tmp_path):
    fs = fixture_set(series)
    ko = module_debug_file(fs, MODULE)
    k = fresh_kernel(fs)
    try:
        mod = modules.find_module(k, MODULE)
        want = module_debug.module_build_id(k, mod)
        assert want is not None and want == module_debug.file_build_id(str(ko))
        # Another build of the module first in the search order: skipped for its build-id.
        other = tmp_path / "other" / f"{MODULE}.ko"
        other.parent.mkdir()
        other.write_bytes(_other_build(ko))
        module_debug.add_debug_dirs(k, [str(tmp_path / "other"), str(module_debug_dir(fs, [MODULE]))])
        out = kcrash(k, f"mod -s {MODULE}")
        assert out.splitlines()[1].endswith(f"  {ko} ")
        assert "debian/build" in kcrash(k, "sym fw_cfg_sysfs_attr_show")
        assert kcrash(k, f"mod -d {MODULE}") == ""
        # Named explicitly, the other build is refused with one line.
        out = kcrash(k, f"mod -s {MODULE} {other}")
        assert out == f"mod: {other}: build-id {'0' * 40} is not the loaded {MODULE}'s ({want})"
        assert "(not loaded)" in kcrash(k, "mod")
    finally:
        k.close()


def _other_build(ko) -> bytes:
    """The module's file with another build-id (zeros), as a file of another kernel build would have."""
    data = bytearray(ko.read_bytes())
    pos = data.find(b"GNU\0", data.find(b"\x03\x00\x00\x00GNU\0") if b"\x03\x00\x00\x00GNU\0" in data else 0)
    assert pos > 0
    data[pos + 4 : pos + 24] = bytes(20)
    return bytes(data)


@pytest.mark.parametrize("series", ["6.1", "sid"])
def test_mod_without_object_file_says_so(series, tmp_path):
    fs = fixture_set(series)
    k = fresh_kernel(fs)
    try:
        if modules.find_module(k, MODULE) is None:
            pytest.fail(f"no {MODULE} in {fs.path('qemu.elf')}")
        if any(
            module_debug._search_tree(d, [f"{MODULE}.ko"])
            for d in module_debug.debug_dirs(k)
            if os.path.isdir(d)
        ):
            # A set built with the modules' debug files: the search finds them beside the vmlinux.
            assert kcrash(k, f"mod -s {MODULE}").splitlines()[0].split()[0] == "MODULE"
            return
        assert kcrash(k, f"mod -s {MODULE}") == f"mod: cannot find or load object file for {MODULE} module"
        assert kcrash(k, f"mod -S {tmp_path}") == f"mod: cannot find or load object file for {MODULE} module"
        assert "(not loaded)" in kcrash(k, "mod")
    finally:
        k.close()


def cli(fs, command: str, *options: str) -> str:
    cmd = [
        sys.executable,
        "-m",
        "kcrash.cli",
        "-s",
        "--no-rc",
        *options,
        "-c",
        command,
        fs.vmlinux,
        fs.path("qemu.elf"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_mod_json_records_and_debug_dir_option(series):
    """`--json` gives one record per module whose fields are the text columns; `--debug-dir` is searched
    for the object file (before it, the set's own tree: the file found there has the same build-id)."""
    fs = fixture_set(series)
    text = cli(fs, "mod").splitlines()[1:]
    records = [json.loads(line) for line in cli(fs, "mod", "--json").splitlines()]
    assert len(records) == len(text) >= 1
    for rec, line in zip(records, text, strict=True):
        module, name, base, size = line.split()[:4]
        assert rec["record"] == "module"
        assert rec["module"] == f"0x{module}" and rec["name"] == name and rec["base"] == f"0x{base}"
        assert rec["size"] == int(size) and rec["object_file"] is None and rec["kallsyms"] is True
    directory = module_debug_dir(fs, [MODULE])
    loaded = [
        json.loads(line)
        for line in cli(fs, f"mod -s {MODULE}", "--json", "--debug-dir", str(directory)).splitlines()
    ]
    assert [r["name"] for r in loaded] == [MODULE]
    path = loaded[0]["object_file"]
    assert path.endswith(f"/{MODULE}.ko") and os.path.isfile(path)
    assert module_debug.file_build_id(path) == module_debug.file_build_id(str(module_debug_file(fs, MODULE)))


def test_mod_list_matches_drgn_on_sid():
    """Debian unstable's kernel (7.x): crash cannot read it; drgn gives each module's struct, text base and
    the size crash would count (the core regions: text, data, rodata, ro_after_init)."""
    fs = fixture_set("sid")
    k = open_fixture_kernel(fs, "qemu.elf")
    code = (
        "from drgn.helpers.linux.module import for_each_module\n"
        "for m in for_each_module(prog):\n"
        "    mem = m.mem\n"
        "    size = sum(int(mem[i].size) for i in range(4))\n"
        "    print(hex(m.value_()), m.name.string_().decode(), hex(mem[0].base.value_()), size)\n"
    )
    want = sorted(drgn_eval(fs.vmlinux, fs.path("qemu.elf"), code).split("\n"))
    got = []
    for line in kcrash(k, "mod").splitlines()[1:]:
        module, name, base, size = line.split()[:4]
        got.append(f"0x{module} {name} 0x{base} {size}")
    assert [w for w in want if w] == sorted(got)
    assert kcrash(k, "mod").splitlines()[0].split()[2] == "TEXT_BASE"


# --- module ORC ---------------------------------------------------------------------------------------


def _module_orc(k):
    mod = modules.find_module(k, MODULE)
    uw = unwinder(k)
    table = module_orc_table(k, mod, uw.orc.main)
    assert table is not None and len(table.ips) > 10
    return mod, uw, table


@pytest.mark.parametrize("series", ["5.10", "6.1", "6.12", "sid"])
def test_module_orc_from_the_dump_agrees_with_the_debug_files_cfi(series):
    """Every SP-based CALL entry of the module's ORC table (read from the dump) gives the frame size the
    module's own DWARF call-frame information (from its debug file, relocated to the module's addresses)
    gives at that address."""
    fs = fixture_set(series)
    k = fresh_kernel(fs)
    try:
        mod, uw, table = _module_orc(k)
        assert sum(mod.is_text(ip) for ip in table.ips) >= len(table.ips) // 2
        info = module_debug.load_module_debuginfo(k, mod, str(module_debug_file(fs, MODULE)))
        offset, size = info.dwarf.section(".debug_frame")
        assert size, "no .debug_frame in the module's debug file"
        cfi = CfiTable(bytes(info.dwarf.mm[offset : offset + size]), 0)
        compared = 0
        for ip in table.ips:
            entry, row = table.find(ip), cfi.row(ip)
            if entry.type != TYPE_CALL or entry.sp_reg != REG_SP or row is None or row.cfa_reg != 7:
                continue
            assert row.cfa_offset == entry.sp_offset, hex(ip)
            compared += 1
        assert compared >= 20
    finally:
        k.close()


@pytest.mark.parametrize("series", ["5.10", "6.1", "6.12", "sid"])
def test_bt_unwinds_through_module_text_as_drgn_does(series):
    """An unwind started inside a module function, on a real task stack (the module frame's return slot
    is that of the task's first return address), goes through the module frame and on as the task's own
    unwind does; drgn unwinds the same registers to the same frames."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, "qemu.elf")
    mod, uw, table = _module_orc(k)
    ip = next(
        a
        for a in table.ips
        if (e := table.find(a)).type == TYPE_CALL
        and e.sp_reg == REG_SP
        and e.sp_offset > 8
        and e.bp_reg == REG_UNDEFINED
    )
    entry = table.find(ip)
    init = next(t for t in for_each_process(k) if int(t.pid) == 1)
    real = backtrace(k, init).frames
    assert len(real) >= 3
    sp = real[1].sp - entry.sp_offset
    frames = uw.unwind({"rip": ip, "rsp": sp, "rbp": 0})
    assert frames[0].ip == ip and frames[0].reliable
    assert [(f.ip, f.sp) for f in frames[1:]] == [(f.ip, f.sp) for f in real[1:]]
    code = (
        "from drgn import Object\n"
        f'regs = Object(prog, "struct pt_regs", value={{"ip": {ip}, "sp": {sp}, "bp": 0, "cs": 0x10}})\n'
        "for f in prog.stack_trace(regs): print(hex(f.pc), hex(f.sp))\n"
    )
    drgn_frames = []
    for line in drgn_eval(fs.vmlinux, fs.path("qemu.elf"), code).split("\n"):
        if line:
            pc, fsp = (int(x, 16) for x in line.split())
            if not drgn_frames or drgn_frames[-1] != (pc, fsp):  # drgn repeats a frame per inlined call
                drgn_frames.append((pc, fsp))
    kernel_frames = [(f.ip, f.sp) for f in frames]
    assert drgn_frames[: len(kernel_frames)] == kernel_frames
