"""`bt` on the real Debian dumps: against crash 8.0.2 on the series it reads (5.10, 6.1: frame lines, register
blocks) and drgn on every series (function order).

Normalisation, documented: crash 8.0.2 finds frames by scanning stack words, so it also prints return
addresses left over from calls that already returned (on these dumps `exit_to_user_mode_prepare`, and in
the QEMU dumps `do_fault`, `__handle_mm_fault`, …, below `do_syscall_64`). kcrash unwinds with ORC and does
not print those. So kcrash's frame lines must appear in crash's output in the same order, identical except
for the frame number, and every frame crash prints that kcrash omits must be one that kcrash's unwinder
skipped between two frames it did print (never a frame before kcrash's first or after its last). Register
blocks must be identical. On QEMU dumps kcrash starts at the real CPU position (e.g. `delay_tsc` inside
panic's wait loop, from QEMU's CPU state); crash starts at the first return address it finds (`panic`):
kcrash may print frames before crash's first one only when they come from saved registers.
"""

from __future__ import annotations

import re

import pytest
from conftest import CRASH_SERIES, DRGN_SERIES, fixture_set, open_fixture_kernel, run_command
from oracles import crash_outputs, drgn_eval
from synth.dumps import exclude_kdump_pages

from kcrash.program import Kernel

pytestmark = pytest.mark.fixture

DUMPS = ["kdump-lzo.kdump", "kdump-zlib.kdump", "kdump.elf", "kdump-lzo.flat", "qemu.elf", "qemu-kdump.flat"]
FRAME = re.compile(r"^ ?#(\d+) \[([0-9a-f]+)\] (\S+) at ([0-9a-f]+)(.*)$")
CRASH_COMMANDS = ["bt", "bt -a", "bt -s", "bt -sx", "bt -f", "bt -l"]


def frames(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in text.splitlines():
        m = FRAME.match(line)
        if m:
            out.append((m.group(2), m.group(3), m.group(4), m.group(5)))
    return out


def register_blocks(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if re.match(r"^    (RIP|RAX|RDX|RBP|R10|R13|ORIG_RAX|\[exception)", line)
    ]


def ends_at_orc_end(k, ours: list) -> bool:
    """kcrash's last frame is where ORC marks the end of the stack below its top: objtool marks the
    retpoline thunks (__x86_indirect_thunk_*) so in 5.10. kcrash stops there; crash's stack scan goes on,
    and where an NMI caught a CPU inside a thunk it prints the frames beyond."""
    from kcrash.kernel.stack import unwinder

    if not ours:
        return False
    orc = unwinder(k).orc
    address = int(ours[-1][2], 16)
    return any((e := orc.find(ip)) is not None and e.type == "end" for ip in (address, address - 1))


def assert_frames_within(ours: list, theirs: list, from_registers_allowed: int = 0, k=None) -> None:
    """Our frames are an in-order sub-list of crash's, with crash's extra frames only between ours (and after
    our last where it is an ORC end of stack: ends_at_orc_end)."""
    ours_tail = ours[from_registers_allowed:]
    positions = []
    start = 0
    for fr in ours_tail:
        try:
            idx = theirs.index(fr, start)
        except ValueError:
            raise AssertionError(f"kcrash frame {fr} not in crash's frames {theirs}") from None
        positions.append(idx)
        start = idx + 1
    assert positions, "no frames compared"
    assert positions[0] == 0, f"crash has frames before kcrash's first: {theirs[: positions[0]]}"
    assert positions[-1] == len(theirs) - 1 or (k is not None and ends_at_orc_end(k, ours)), (
        f"crash has frames after kcrash's last: {theirs[positions[-1] + 1 :]}"
    )


@pytest.fixture(scope="module", params=DUMPS)
def dump(request, fixtures_crash):
    name = request.param
    k = open_fixture_kernel(fixtures_crash, name)
    crash = crash_outputs(fixtures_crash.vmlinux, fixtures_crash.path(name), CRASH_COMMANDS)
    return fixtures_crash, name, k, crash


def _register_frames(k, name: str) -> int:
    """How many leading frames come from QEMU's saved CPU state rather than the stack (see module doc)."""
    return 1 if name.startswith("qemu") else 0


@pytest.mark.parametrize("cmd", ["bt", "bt -s", "bt -sx"])
def test_panic_task_frames_match_crash(dump, cmd) -> None:
    fs, name, k, crash = dump
    ours, err = run_command(k, cmd)
    assert not err
    assert ours.splitlines()[0] == crash[cmd].strip().splitlines()[0]  # the PID/TASK/CPU/COMMAND header
    assert_frames_within(frames(ours), frames(crash[cmd]), _register_frames(k, name))
    assert register_blocks(ours) == register_blocks(crash[cmd])


def test_panic_trace_shape(dump) -> None:
    """Starts in the panic/crash path, ends at the syscall entry with the user-mode register block."""
    fs, name, k, _ = dump
    out, _ = run_command(k, "bt")
    names = [f[1] for f in frames(out)]
    assert "panic" in names[:4]
    assert names[-1].startswith("entry_SYSCALL_64")
    assert "CS: 0033" in out.splitlines()[-1]
    boot = fs.dumps[name]["boot"]
    assert f"PID: {fs.manifest['boots'][boot]['pids']['kc-crasher']} " in out.splitlines()[0]


def test_bt_all_cpus_match_crash(dump) -> None:
    _, name, k, crash = dump
    ours, _ = run_command(k, "bt -a")
    our_blocks = [b for b in ours.split("\n\n") if b.strip()]
    their_blocks = [b for b in crash["bt -a"].split("\n\n") if b.strip().startswith("PID:")]
    assert len(our_blocks) == len(their_blocks) == 2
    for ob, tb in zip(our_blocks, their_blocks, strict=True):
        assert ob.splitlines()[0] == tb.strip().splitlines()[0]
        if "\nbt: " in tb:
            # crash 8.0.2 cannot read the stack of a CPU the panic took offline (QEMU dumps: "bt: read of
            # stack at fffffe0000014000 failed"); kcrash unwinds it from QEMU's saved CPU state.
            assert len(frames(ob)) >= 2 and "CS: 0033" in ob.splitlines()[-1]
            continue
        assert_frames_within(frames(ob), frames(tb), _register_frames(k, name), k)
        if not ends_at_orc_end(k, frames(ob)):
            assert register_blocks(ob) == register_blocks(tb)
        else:  # up to where kcrash stopped
            assert register_blocks(tb)[: len(register_blocks(ob))] == register_blocks(ob)


def test_bt_f_frame_words_match_crash(dump) -> None:
    """Every frame both print carries the same stack words."""
    _, name, k, crash = dump
    ours, _ = run_command(k, "bt -f")

    def words(text: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        current = None
        for line in text.splitlines():
            m = FRAME.match(line)
            if m:
                current = m.group(2)
                out[current] = []
            elif current and re.match(r"^    [0-9a-f]+: ", line):
                out[current].append(line)
            else:
                current = None
        return out

    ow, tw = words(ours), words(crash["bt -f"])
    # A frame after which crash shows a stale frame ends its word dump earlier: compare the common prefix.
    common = [slot for slot in ow if slot in tw]
    assert len(common) >= 4
    for slot in common:
        n = min(len(ow[slot]), len(tw[slot]))
        assert ow[slot][: n - 1] == tw[slot][: n - 1], f"bt -f words differ at frame [{slot}]"


def test_bt_l_lines_match_crash(dump) -> None:
    _, name, k, crash = dump
    ours, _ = run_command(k, "bt -l")

    def lines_by_frame(text: str) -> dict[str, str]:
        out = {}
        prev = None
        for line in text.splitlines():
            m = FRAME.match(line)
            if m:
                prev = m.group(2)
            elif prev and re.match(r"^    \S+: \d+$", line):
                out[prev] = line
                prev = None
        return out

    ol, tl = lines_by_frame(ours), lines_by_frame(crash["bt -l"])
    common = [slot for slot in ol if slot in tl]
    assert len(common) >= 5
    for slot in common:
        assert ol[slot] == tl[slot], f"bt -l differs at frame [{slot}]"


DRGN_TRACES = """
from drgn.helpers.linux.pid import for_each_task
for t in for_each_task(prog):
    comm = t.comm.string_().decode()
    if not comm.startswith("kc-"):
        continue
    try:
        names = [f.name for f in prog.stack_trace(t) if not f.is_inline]
    except Exception as e:
        names = ["ERROR " + str(e)]
    print(comm, t.pid.value_(), " ".join(n or "?" for n in names))
"""


@pytest.mark.parametrize(
    "series,names",
    [(s, ("kdump-lzo.kdump", "qemu.elf")) for s in CRASH_SERIES]
    + [(s, ("kdump-lzo-d23.kdump", "qemu.elf")) for s in DRGN_SERIES],
)
def test_marker_traces_match_drgn(series, names) -> None:
    """Sleeping marker tasks (crash 8.0.2 cannot see them on 6.1 and cannot open 6.12 and later at all):
    function order equals drgn's."""
    fs = fixture_set(series)
    for name in names:
        k = open_fixture_kernel(fs, name)
        drgn = drgn_eval(fs.vmlinux, fs.path(name), DRGN_TRACES)
        checked = 0
        for line in drgn.splitlines():
            comm, pid, *names = line.split()
            if comm not in ("kc-sleeper", "kc-fiforeader"):
                continue
            out, err = run_command(k, f"bt {pid}")
            assert not err
            ours = frames(out)
            # drgn also lists the user-space frame (a bare address) and names an address by the sized
            # symbol containing it (entry_SYSCALL_64), where crash and kcrash name the nearest label
            # (entry_SYSCALL_64_after_hwframe): accept a name whose function contains our address.
            names = [n for n in names if not n.startswith("0x")]
            assert len(ours) == len(names), f"{name} {comm}: kcrash {ours} drgn {names}"
            for (_, our_name, address, _), theirs in zip(ours, names, strict=True):
                if our_name != theirs:
                    sym = k.symbols.lookup(theirs)
                    assert sym and sym.address <= int(address, 16) < sym.address + sym.size, (
                        f"{name} {comm}: kcrash {our_name} at {address}, drgn {theirs}"
                    )
            checked += 1
        assert checked == 2


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize(
    "name", ["qemu.elf", "qemu-kdump.flat", "qemu-novmcoreinfo.elf", "kdump.elf", "kdump-lzo-d23.kdump"]
)
def test_panic_trace_on_newer_kernels(series, name) -> None:
    """6.12 and the newest kernel (crash 8.0.2 cannot open these): the panic task's trace runs from the panic
    path to the syscall entry, and the panicking PID is the one the guest reported."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, name)
    out, err = run_command(k, "bt")
    assert not err
    names = [f[1] for f in frames(out)]
    assert "panic" in names[:4] and names[-1].startswith("entry_SYSCALL_64")
    assert "CS: 0033" in out.splitlines()[-1]
    boot = fs.dumps[name]["boot"]
    assert f"PID: {fs.manifest['boots'][boot]['pids']['kc-crasher']} " in out.splitlines()[0]


@pytest.mark.parametrize("series", ["6.1", *DRGN_SERIES])
def test_excluded_task_memory_is_one_clear_line(tmp_path, series) -> None:
    """A dump whose filter dropped the panic task's stack (makedumpfile 1.7.2 does that to 6.12's task memory
    at -d 31 on some builds, not on others): bt says which page is missing, as crash would, in one line and
    without a traceback. The premise is made certain by writing such a dump: the kdump-compressed fixture
    with every page of the panic task's stack excluded."""
    fs = fixture_set(series)
    name = "kdump-lzo-d23.kdump"
    k = open_fixture_kernel(fs, name)
    out, err = run_command(k, "bt")
    assert not err
    stack_pages = {int(slot, 16) & ~0xFFF for slot, *_ in frames(out)}
    assert len(frames(out)) >= 5 and stack_pages
    filtered = tmp_path / "filtered.kdump"
    exclude_kdump_pages(fs.path(name), filtered, {k.vtop(page) >> 12 for page in stack_pages})
    with Kernel(fs.vmlinux, str(filtered)) as cut:
        out, err = run_command(cut, "bt")
    # Frame #0 comes from the registers kdump saved; nothing that needs the stack can follow.
    assert len(frames(out)) <= 1, out
    m = re.fullmatch(r"bt: page excluded: kernel virtual address: ([0-9a-f]+)\n", err)
    assert m, err
    assert int(m.group(1), 16) & ~0xFFF in stack_pages


DRGN_ALL_TRACES = """
from drgn.helpers.linux.pid import for_each_task
for t in for_each_task(prog):
    try:
        names = [f.name or "?" for f in prog.stack_trace(t) if not f.is_inline]
    except Exception as e:
        continue
    print(hex(t.value_()), " ".join(names))
"""


@pytest.mark.parametrize(
    "series,name",
    [(s, n) for s in CRASH_SERIES for n in ("kdump-lzo.kdump", "qemu.elf")]
    + [(s, n) for s in DRGN_SERIES for n in ("kdump-lzo-d23.kdump", "qemu.elf")],
)
def test_every_task_trace_matches_drgn(series, name) -> None:
    """Every task drgn can unwind: the same functions in the same order. Normalisation: drgn also lists the
    user-space frame (a bare address), names a label by its containing function (see above) and a GCC
    split-off part (foo.cold) by its source function; for a
    task running on a CPU, kcrash may start deeper (the calls made after kdump saved the registers, which
    crash shows too), so drgn's trace must be a suffix of kcrash's there."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, name)
    from kcrash.kernel.cpus import active_task_cpu

    drgn = drgn_eval(fs.vmlinux, fs.path(name), DRGN_ALL_TRACES)
    checked = 0
    for line in drgn.splitlines():
        address, *names = line.split()
        names = [n for n in names if not n.startswith("0x")]
        if not names:
            continue
        out, err = run_command(k, f"bt {address[2:]}")
        assert not err, err
        ours = frames(out)
        task = k.object_at("struct task_struct", int(address, 16))
        if active_task_cpu(k, task) is not None:
            ours = ours[len(ours) - len(names) :] if len(ours) >= len(names) else ours
        assert len(ours) == len(names), f"{name} task {address}: kcrash {ours} drgn {names}"
        for (_, our_name, addr, _), theirs in zip(ours, names, strict=True):
            # drgn names GCC's split-off parts (foo.cold, foo.isra.0) by the source function.
            if our_name != theirs and our_name.split(".")[0] != theirs:
                sym = k.symbols.lookup(theirs)
                assert sym and sym.address <= int(addr, 16) < sym.address + sym.size, (
                    f"{name} task {address}: kcrash {our_name} at {addr}, drgn {theirs}"
                )
        checked += 1
    assert checked >= 40, f"only {checked} tasks compared"


DRGN_ACTIVE = """
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.sched import cpu_curr
for cpu in for_each_online_cpu(prog):
    t = cpu_curr(prog, cpu)
    try:
        names = [f.name or "?" for f in prog.stack_trace(t) if not f.is_inline]
    except Exception:
        names = []
    print(cpu, t.pid.value_(), " ".join(n for n in names if not n.startswith("0x")))
"""


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("name", ["qemu.elf", "kdump.elf"])
def test_bt_all_cpus_match_drgn(series, name) -> None:
    """`bt -a` on kernels crash cannot read: a block per CPU that was running (the CPUs the panic stopped
    included, as crash shows them), each the task drgn finds on that CPU, whose trace ends as drgn's does
    (kcrash may start deeper: see test_every_task_trace_matches_drgn)."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, name)
    out, err = run_command(k, "bt -a")
    assert not err, err
    blocks = {}
    for block in (b for b in out.split("\n\n") if b.strip()):
        m = re.match(r"PID: (\d+) +TASK: [0-9a-f]+ +CPU: (\d+) ", block)
        assert m, block
        blocks[int(m.group(2))] = (int(m.group(1)), [(f[1], int(f[2], 16)) for f in frames(block)])
    assert len(blocks) == fs.manifest["guest"]["smp"]
    for line in drgn_eval(fs.vmlinux, fs.path(name), DRGN_ACTIVE).splitlines():
        cpu, pid, *theirs = line.split()
        assert blocks[int(cpu)][0] == int(pid)
        ours = blocks[int(cpu)][1]
        assert len(ours) >= len(theirs), (cpu, ours, theirs)
        for (our_name, address), their_name in zip(ours[len(ours) - len(theirs) :], theirs, strict=True):
            # The normalisations of test_every_task_trace_matches_drgn: foo.cold is foo, and drgn names a
            # label (entry_SYSCALL_64_after_hwframe) by the sized symbol containing it.
            if our_name.split(".")[0] != their_name:
                sym = k.symbols.lookup(their_name)
                assert sym and sym.address <= address < sym.address + sym.size, (cpu, our_name, their_name)
