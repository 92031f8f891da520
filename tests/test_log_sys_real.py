"""`log` and `sys` on the real Debian dumps, against crash (5.10, 6.1) and drgn (every series).

crash 8.0.2 runs in the test on every 5.10 and 6.1 dump (one session per dump, tests/oracles.py); its output must
equal kcrash's exactly, with these documented exceptions:
- TASKS: crash 8.0.2 builds only part of the task table on these kernels (it counts 4 of ~60), so TASKS
  is compared with drgn's count of every task, idle tasks included, instead.
- errors (`sys config` on a kernel without IKCONFIG): crash prints `sys: ...` on stdout, kcrash on stderr
  (every kcrash error goes there); the text is the same.
- `log -c`: crash 8.0.2 has no -c (added in 8.0.3); its format is checked against drgn's caller ids.
- `set` (crash's show_context) aligns the names to 7 columns, the banner to 12: the context block is
  compared with `set`'s output at width 7, the banner's is the same block at width 12.
drgn gives the printk records (text, level, sequence, time, caller, device info) and, on 6.12, where crash
cannot open the dumps, the `sys` fields it knows.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import DRGN_SERIES, fixture_set, open_fixture_kernel, run_command
from oracles import crash9_outputs, crash_outputs, drgn_eval

from kcrash.commands.sys import banner_lines, sys_lines, sys_record
from kcrash.commands.task import context_lines, context_record
from kcrash.kernel.cpus import active_tasks
from kcrash.kernel.panic import panic_task
from kcrash.kernel.printk import log_records
from kcrash.kernel.sysinfo import system_info
from kcrash.kernel.task_state import task_state_code, task_state_name
from kcrash.kernel.tasks import task_table

LOG_COMMANDS = [
    "log",
    "log -m",
    "log -t",
    "log -T",
    "log -d",
    "log -a",
    "log -s",
    "log -tm",
    "log -Tm",
    "log -Td",
]
SYS_COMMANDS = ["sys", "sys -t", "sys -i", "sys config", "set"]
DUMPS_61 = [
    "qemu.elf",
    "qemu-kdump.flat",
    "qemu-kdump.zlib",
    "qemu-novmcoreinfo.elf",
    "kdump-lzo.kdump",
    "kdump-zlib.kdump",
    "kdump-lzo.flat",
    "kdump-lzo-d23.kdump",
    "kdump.elf",
]
DUMPS_612 = DUMPS_61
# drgn 0.3.0 cannot open QEMU's ELF dump without VMCOREINFO ("unrecognized QEMU memory dump"): the drgn
# comparisons leave it out (the crash comparisons on 6.1 cover it).
DRGN_DUMPS = [d for d in DUMPS_61 if d != "qemu-novmcoreinfo.elf"]


def _dumps(fs, wanted):
    return [d for d in wanted if d in fs.dumps]


def _crash(fs, dump):
    return crash_outputs(fs.vmlinux, fs.path(dump), LOG_COMMANDS + SYS_COMMANDS)


def _drgn_args(fs, dump) -> tuple[str, ...]:
    return tuple(fs.dumps[dump].get("checks", {}).get("drgn", {}).get("args", []))


def _drgn_ok(fs, dump) -> bool:
    return fs.dumps[dump].get("checks", {}).get("drgn", {}).get("status") == "ok"


def _drgn(fs, dump, code):
    """drgn's output for `code` on a dump (DRGN_DUMPS only: drgn cannot open the others)."""
    return drgn_eval(fs.vmlinux, fs.path(dump), code, _drgn_args(fs, dump))


def _normalise_tasks(text: str) -> str:
    return re.sub(r"(?m)^( +TASKS: )\d+$", r"\1N", text)


# --- crash, 6.1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", DUMPS_61)
@pytest.mark.parametrize("cmd", LOG_COMMANDS)
def test_log_matches_crash(fixtures_crash, dump, cmd):
    if dump not in fixtures_crash.dumps:
        pytest.fail(f"{dump} missing from the 6.1 fixture set")
    k = open_fixture_kernel(fixtures_crash, dump)
    want = _crash(fixtures_crash, dump)[cmd]
    out, err = run_command(k, cmd)
    assert err == ""
    assert out.rstrip("\n") == want.rstrip("\n")  # the marker split keeps crash's last blank line as "\n"


@pytest.mark.parametrize("dump", DUMPS_61)
def test_sys_matches_crash(fixtures_crash, dump):
    k = open_fixture_kernel(fixtures_crash, dump)
    crash = _crash(fixtures_crash, dump)
    out, err = run_command(k, "sys")
    assert err == ""
    assert _normalise_tasks(out.rstrip("\n")) == _normalise_tasks(crash["sys"])
    for cmd in ("sys -t", "sys -i"):
        out, err = run_command(k, cmd)
        assert (out + err).rstrip("\n") == crash[cmd], cmd
    out, err = run_command(k, "sys config")
    assert (out + err).rstrip("\n") == crash["sys config"]


@pytest.mark.parametrize("dump", DUMPS_61)
def test_panic_context_matches_crash(fixtures_crash, dump):
    k = open_fixture_kernel(fixtures_crash, dump)
    task = panic_task(k)
    assert task is not None
    boot = fixtures_crash.dumps[dump]["boot"]
    assert int(task.pid) == fixtures_crash.manifest["boots"][boot]["panic_pid"]
    context = context_record(k, task_table(k).get(task.address))
    assert "\n".join(context_lines(context, width=7)) == _crash(fixtures_crash, dump)["set"]
    banner = banner_lines(k)
    assert banner[:13] == sys_lines(sys_record(system_info(k)))
    assert banner[13:] == context_lines(context, width=12)
    assert [line.split(":")[0] for line in banner[13:]] == [
        f"{name:>12}" for name in ("PID", "COMMAND", "TASK", "CPU", "STATE")
    ]


@pytest.mark.parametrize("dump", ["kdump-lzo.kdump", "qemu.elf"])
def test_context_of_tasks_not_running_matches_crash9(fixtures_crash, dump):
    """The context block (`set PID`, the banner's renderer) of tasks that are not running: a sleeping one
    (every kernel has some) and, where the kernel has them, an idle kworker (TASK_UNINTERRUPTIBLE |
    TASK_NOLOAD) and a task in uninterruptible sleep. The banner's copy of the verbose state name once read
    state bits TaskStates does not have and failed on any task that was not running; crash 9 is the oracle."""
    k = open_fixture_kernel(fixtures_crash, dump)
    active = active_tasks(k)
    picked = {}
    for t in task_table(k):
        code = task_state_code(k, t)
        if t.pid > 1 and t.address not in active and code in ("IN", "ID", "UN") and code not in picked:
            picked[code] = t
    assert "IN" in picked
    commands = [f"set {t.address:x}" for t in picked.values()]
    want = crash9_outputs(fixtures_crash.vmlinux, fixtures_crash.path(dump), commands)
    for code, t in picked.items():
        expected = want[f"set {t.address:x}"]
        assert "TASK_RUNNING" not in expected
        out, err = run_command(k, f"set {t.address:x}")
        assert err == ""
        assert out.rstrip("\n") == expected, code
        assert "\n".join(context_lines(context_record(k, t), width=7)) == expected, code
        assert f"STATE: {task_state_name(k, t)} " in expected


# --- drgn: records and task counts ----------------------------------------------------------------------

_DRGN_RECORDS = """
import json
from drgn.helpers.linux.printk import get_printk_records
out = []
for r in get_printk_records(prog):
    out.append([r.seq, r.timestamp, r.level, r.facility, r.text.decode('latin-1'), r.caller_tid, r.caller_cpu,
                r.continuation, {k.decode(): v.decode('latin-1') for k, v in r.context.items()}])
print(json.dumps(out))
"""


def _kcrash_records(k):
    out = []
    for r in log_records(k):
        if r.dataless:
            continue  # drgn skips data-less records; crash prints them as empty lines
        tid = cpu = None
        if r.caller_id is not None:
            if r.caller_id & 0x80000000:
                cpu = r.caller_id & 0x7FFFFFFF
            else:
                tid = r.caller_id
        ctx = {key.decode(): value.decode("latin-1") for key, value in r.context}
        out.append(
            [r.seq, r.ts_nsec, r.level, r.facility, r.text.decode("latin-1"), tid, cpu, r.continuation, ctx]
        )
    return out


def _check_records(fs, dump):
    want = json.loads(_drgn(fs, dump, _DRGN_RECORDS))
    k = open_fixture_kernel(fs, dump)
    got = _kcrash_records(k)
    assert len(got) == len(want)
    assert got == want


@pytest.mark.parametrize("dump", DRGN_DUMPS)
def test_records_match_drgn_61(fixtures_crash, dump):
    _check_records(fixtures_crash, dump)


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("dump", DRGN_DUMPS)
def test_records_match_drgn_newer(series, dump):
    _check_records(fixture_set(series), dump)


_DRGN_SYS = """
import json, time
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.cpumask import num_online_cpus, num_present_cpus
from drgn.helpers.linux.panic import panic_message, panic_task
from drgn.helpers.linux.sched import loadavg
from drgn.helpers.linux.timekeeping import ktime_get_real_seconds, ktime_get_boottime_seconds
uts = prog["init_uts_ns"].name
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.sched import idle_task
try:
    # Every CPU's idle task (for_each_task(idle=True) gives only the online CPUs') and every PID's task.
    tasks = len({idle_task(prog, cpu).value_() for cpu in for_each_possible_cpu(prog)}
                | {t.value_() for t in for_each_task(prog)})
except Exception:
    tasks = None
try:
    panic_pid = panic_task(prog).pid.value_()
except Exception:  # drgn finds the crashed thread by walking every task: not on the filtered 6.12 dumps
    panic_pid = None
print(json.dumps({
    "nodename": uts.nodename.string_().decode(), "release": uts.release.string_().decode(),
    "version": uts.version.string_().decode(), "machine": uts.machine.string_().decode(),
    "present": num_present_cpus(prog), "online": num_online_cpus(prog),
    "date": ktime_get_real_seconds(prog).value_(), "uptime": ktime_get_boottime_seconds(prog).value_(),
    "load": list(loadavg(prog)), "tasks": tasks,
    "panic": (panic_message(prog) or b"").decode(), "panic_pid": panic_pid,
    "cpu_khz": prog["cpu_khz"].value_(),
}))
"""


def _drgn_sys(fs, dump):
    return json.loads(_drgn(fs, dump, _DRGN_SYS))


@pytest.mark.parametrize("series", DRGN_SERIES)
@pytest.mark.parametrize("dump", DRGN_DUMPS)
def test_sys_matches_drgn_newer(series, dump):
    """6.12 and the newest kernel (where the timekeeper moved into timekeeper_data[]): sys against drgn."""
    fs = fixture_set(series)
    want = _drgn_sys(fs, dump)
    k = open_fixture_kernel(fs, dump)
    info = sys_record(system_info(k))
    assert info.warnings == []
    assert (info.nodename, info.release, info.version, info.machine) == (
        want["nodename"],
        want["release"],
        want["version"],
        want["machine"],
    )
    assert (info.cpus, info.cpus - info.offline) == (want["present"], want["online"])
    assert info.mhz == want["cpu_khz"] // 1000
    assert info.panic == want["panic"]
    # The panic task: its pid is the manifest's (read from the boot's unfiltered dump: makedumpfile 1.7.2
    # filtered some slab pages of these 6.12 kernels out, this task_struct's among them).
    boot = fs.dumps[dump]["boot"]
    unfiltered = open_fixture_kernel(fs, "kdump.elf" if boot == "kdump" else "qemu.elf")
    assert panic_task(k).address == panic_task(unfiltered).address
    assert int(panic_task(unfiltered).pid) == fs.manifest["boots"][boot]["panic_pid"]
    assert want["panic_pid"] in (None, fs.manifest["boots"][boot]["panic_pid"])
    # Load averages: crash's fixed-point rounding against drgn's float.
    for mine, theirs in zip(info.load_average.split(", "), want["load"], strict=True):
        assert abs(float(mine) - theirs) <= 0.011
    # DATE from CRASHTIME (or the timekeeper), UPTIME from jiffies; drgn reads the timekeeper clocks.
    h, m, s = (int(x) for x in info.uptime.split(":"))
    assert abs(h * 3600 + m * 60 + s - want["uptime"]) <= 1
    date = want["date"]
    assert info.date in {sys_date(date + d) for d in (-1, 0, 1)}


def sys_date(seconds: int) -> str:
    from kcrash.commands._crashtext import ctime_tz

    return ctime_tz(seconds)


@pytest.mark.parametrize("series", ["6.1", *DRGN_SERIES])
def test_task_count_matches_drgn(series):
    """TASKS counts every thread and every CPU's idle task, as crash does when it sees them all (crash 8.0.2
    does not on these kernels). Filtered 6.12 dumps lost task pages to makedumpfile
    1.7.2 (which does not support 6.12), so counts are compared on the unfiltered ELF dumps."""
    fs = fixture_set(series)
    seen = 0
    for dump in fs.dumps:
        if fs.dumps[dump]["format"] != "elf" or not _drgn_ok(fs, dump):
            continue
        k = open_fixture_kernel(fs, dump)
        assert system_info(k).tasks == _drgn_sys(fs, dump)["tasks"], dump
        seen += 1
    assert seen


def test_log_caller_ids(fixtures_crash):
    """`log -c`: crash 8.0.3's `[%*s] ` caller column, width 6 for pid_max <= 99999, after the time."""
    k = open_fixture_kernel(fixtures_crash, "kdump-lzo.kdump")
    out, err = run_command(k, "log -c")
    assert err == ""
    lines = out.splitlines()
    records = [r for r in log_records(k) if not r.dataless]
    first = [line for line in lines if line.startswith("[")]
    assert len(first) == len(records)
    for line, rec in zip(first, records, strict=True):
        caller = f"C{rec.caller_id & 0x7FFFFFFF}" if rec.caller_id & 0x80000000 else f"T{rec.caller_id}"
        assert line[15:24] == f"[{caller:>6}] "
    assert any(line[15:24] == "[    T0] " for line in first)


def test_log_json(fixtures_crash):
    k = open_fixture_kernel(fixtures_crash, "qemu.elf")
    out, _ = run_command(k, "set output json; log")
    rows = [row for row in map(json.loads, out.splitlines()) if "seq" in row]
    assert rows and rows[0]["text"].startswith("Linux version")


def test_log_from_vmcoreinfo_alone(fixtures_crash):
    """The log needs no debug info: with every type lookup failing, VMCOREINFO's layout still reads it."""
    from kcrash.program import Kernel

    k = open_fixture_kernel(fixtures_crash, "kdump-lzo.kdump")

    class NoTypes:
        def __init__(self, kernel):
            self._k = kernel
            self.vmcoreinfo = kernel.vmcoreinfo
            self.symbols = kernel.symbols
            self.read = kernel.read
            self.cache = {}  # its own Kernel.cache: nothing derived with types may leak in

        def find_type(self, name):
            return None

        def type(self, name):
            raise AssertionError(f"type {name} looked up")

    assert isinstance(k, Kernel)
    got = log_records(NoTypes(k))
    assert [(r.seq, r.text, r.level, r.caller_id) for r in got] == [
        (r.seq, r.text, r.level, r.caller_id) for r in log_records(k)
    ]
