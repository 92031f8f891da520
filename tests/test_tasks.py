"""kcrash.kernel.tasks and kcrash.kernel.mm: state codes for every kernel layout, time formatting, task
lookup rules, the task table's relations (synthetic), and the helpers on the real dumps of every series."""

from __future__ import annotations

import pytest
from fixtures.locate import SERIES

from kcrash.commands import _crashtext as crashtext
from kcrash.commands import ps as psmod
from kcrash.kernel import cpus
from kcrash.kernel import panic as kpanic
from kcrash.kernel import tasks as th
from kcrash.kernel import time as ktime
from kcrash.kernel.task_state import TaskStates
from kcrash.kernel.tasks import TaskInfo, TaskTable

ARRAY_4_14 = [
    "R (running)",
    "S (sleeping)",
    "D (disk sleep)",
    "T (stopped)",
    "t (tracing stop)",
    "X (dead)",
    "Z (zombie)",
    "P (parked)",
    "I (idle)",
]
ARRAY_2_6_32 = [
    "R (running)",
    "S (sleeping)",
    "D (disk sleep)",
    "T (stopped)",
    "t (tracing stop)",
    "Z (zombie)",
    "X (dead)",
]


# --- state codes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, code",
    [
        (0, "RU"),
        (0x1, "IN"),
        (0x2001, "IN"),  # TASK_INTERRUPTIBLE | TASK_FREEZABLE
        (0x2, "UN"),
        (0x402, "ID"),  # TASK_IDLE = UNINTERRUPTIBLE | NOLOAD
        (0x4, "ST"),
        (0x8, "TR"),
        (0x20, "ZO"),  # exit_state EXIT_ZOMBIE
        (0x10, "DE"),  # exit_state EXIT_DEAD
        (0x80, "DE"),  # TASK_DEAD
        (0x80 | 0x10, "DE"),
        (0x40, "PA"),
        (0x200, "WA"),
        (0x800, "NE"),
        (0x1000, "??"),  # TASK_RTLOCK_WAIT alone: crash has no name for it
    ],
)
def test_state_codes_4_14_and_later(value, code) -> None:
    assert TaskStates(ARRAY_4_14).code(value) == code


def test_state_bits_4_14_follow_parked() -> None:
    s = TaskStates(ARRAY_4_14)
    assert (s.running, s.interruptible, s.uninterruptible, s.stopped, s.traced) == (0, 1, 2, 4, 8)
    assert (s.dead, s.zombie, s.parked) == (0x10 | 0x80, 0x20, 0x40)
    assert (s.wakekill, s.waking, s.noload, s.new) == (0x100, 0x200, 0x400, 0x800)


def test_state_bits_2_6_32_follow_dead() -> None:
    s = TaskStates(ARRAY_2_6_32)
    assert (s.zombie, s.dead, s.wakekill, s.waking) == (0x10, 0x20 | 0x40, 0x80, 0x100)
    assert s.parked == TaskStates.UNSET and s.code(0x402) == "UN"


def test_state_bits_from_stat_nam() -> None:
    s = TaskStates(ARRAY_2_6_32, stat_nam="RSDTtXZxKWPNn")  # 4.13's TASK_STATE_TO_CHAR_STR wins
    assert (s.uninterruptible, s.stopped, s.traced, s.dead, s.zombie) == (2, 4, 8, 0x10 | 0x40, 0x20)
    assert (s.wakekill, s.waking, s.parked, s.noload, s.new) == (0x80, 0x100, 0x200, 0x400, 0x800)


def test_state_old_defaults_without_array() -> None:
    s = TaskStates([])
    assert (s.running, s.interruptible, s.uninterruptible, s.zombie, s.stopped) == (0, 1, 2, 4, 8)
    assert s.code(16) == "SW" and s.code(1 | 32) == "INEX"


@pytest.mark.parametrize(
    "value, name",
    [
        (0, "TASK_RUNNING"),
        (1, "TASK_INTERRUPTIBLE"),
        (0x402, "TASK_UNINTERRUPTIBLE|TASK_NOLOAD"),
        (0x10, "EXIT_DEAD"),
        (0x90, "EXIT_DEAD|TASK_DEAD"),
        (0x20, "EXIT_ZOMBIE"),
        (0x40, "TASK_PARKED"),
        (0x102, "TASK_UNINTERRUPTIBLE|TASK_WAKEKILL"),
    ],
)
def test_verbose_state_names(value, name) -> None:
    assert TaskStates(ARRAY_4_14).name(value) == name


# --- times ------------------------------------------------------------------------------------------------


def test_format_jiffies() -> None:
    assert crashtext.format_jiffies(858, 250) == "00:00:03"
    assert crashtext.format_jiffies(250 * (86400 * 2 + 3723), 250) == "2 days, 01:02:03"


def test_format_nanoseconds() -> None:
    assert crashtext.format_nanoseconds(5_756_000_000) == "0 00:00:05.756"
    assert (
        crashtext.format_nanoseconds(((3 * 24 + 4) * 3600 + 5 * 60 + 6) * 10**9 + 7_000_000)
        == "3 04:05:06.007"
    )


class FakeSymbol:
    def __init__(self, address: int) -> None:
        self.address = address
        self.size = 8


class FakeSymbols:
    def __init__(self, names: dict[str, int]) -> None:
        self.names = names

    def lookup(self, name: str):
        return FakeSymbol(self.names[name]) if name in self.names else None


class FakeKernel:
    """Just enough of Kernel for the jiffies helpers: two symbols and their values."""

    def __init__(self, tick_nsec: int, jiffies_64: int) -> None:
        self.symbols = FakeSymbols({"tick_nsec": 0x1000, "jiffies_64": 0x2000})
        self.cache: dict = {}  # Kernel.cache
        self.memory = {0x1000: tick_nsec, 0x2000: jiffies_64}

    def read_u64(self, address: int) -> int:
        return self.memory[address]

    def read(self, address: int, size: int) -> bytes:
        return self.memory[address].to_bytes(size, "little")

    def address_of(self, name: str) -> int:
        return self.symbols.names[name]


def test_uptime_from_initial_jiffies() -> None:
    k = FakeKernel(4_000_000, (1 << 32) - 300 * 250 + 858)  # HZ=250, 3.43 s after boot
    assert ktime.hz(k) == 250
    assert ktime.uptime_jiffies(k) == 858
    wrapped = FakeKernel(1_000_000, (1 << 32) + 5000)  # HZ=1000, past the 32-bit wrap
    assert ktime.uptime_jiffies(wrapped) == 5000 + 300 * 1000


# --- the task table -----------------------------------------------------------------------------------------


def task(
    address: int, pid: int, parent: int, comm: str = "t", tgid: int | None = None, cpu: int = 0, **kw
) -> TaskInfo:
    fields = dict(
        address=address,
        pid=pid,
        tgid=pid if tgid is None else tgid,
        comm=comm,
        state=0,
        exit_state=0,
        flags=0,
        cpu=cpu,
        mm=0,
        parent=parent,
        real_parent=parent,
        group_leader=address,
        start_time=0,
        utime=0,
        stime=0,
        last_run=0,
        policy=0,
        prio=120,
        static_prio=120,
        normal_prio=120,
        rt_priority=0,
        stack=0,
        ksp=0,
        signal=0,
        thread_info=address,
    )
    fields.update(kw)
    return TaskInfo(**fields)


INIT, IDLE1, PID1, SHELL, THREAD, HEXPID = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000


@pytest.fixture
def table(monkeypatch) -> TaskTable:
    infos = [
        task(SHELL, 20, PID1, "sh"),
        task(THREAD, 21, PID1, "sh", tgid=20),
        task(IDLE1, 0, INIT, "swapper/1", cpu=1),
        task(PID1, 1, INIT, "init"),
        task(INIT, 0, INIT, "swapper/0"),
        task(HEXPID, 0x20, PID1, "hexpid"),  # PID 32: "20" names PID 20 (decimal wins), "0x20" this one
    ]
    t = TaskTable(None, infos)
    monkeypatch.setattr(th, "task_table", lambda k: t)
    return t


def test_table_order_and_relations(table) -> None:
    assert [t.address for t in table] == [INIT, IDLE1, PID1, SHELL, THREAD, HEXPID]
    assert [t.address for t in table.children(PID1)] == [SHELL, THREAD, HEXPID]
    assert [t.address for t in table.children(INIT)] == [INIT, IDLE1, PID1]  # init_task is its own parent
    assert table.leader(20).address == SHELL
    assert [t.pid for t in table.thread_group(20)] == [20, 21]
    assert table.ancestry(table.get(THREAD)) == [INIT, PID1, THREAD]
    assert table.ppid(table.get(SHELL)) == 1


def test_lookup_rules(table) -> None:
    assert th.lookup_tasks(None, "20") == ("pid", [table.get(SHELL)])
    assert th.lookup_tasks(None, "0x20") == ("pid", [table.get(HEXPID)])
    assert th.lookup_tasks(None, "0") == ("pid", [table.get(INIT), table.get(IDLE1)])
    assert th.lookup_tasks(None, "4000") == ("task", [table.get(SHELL)])  # no PID 4000, task 0x4000
    assert th.lookup_tasks(None, "99") == ("invalid", [])
    assert th.lookup_tasks(None, "init") == ("invalid", [])


# --- ps formatting ------------------------------------------------------------------------------------------


def test_mkstring_centering() -> None:
    assert psmod.center("TASK", 16) == "      TASK      "
    assert psmod.center("KSTACKP", 16, rjust=True) == "     KSTACKP    "
    assert psmod.center("--", 16, rjust=True) == "       --       "
    assert psmod.center("0.0", 4, rjust=True) == " 0.0"
    assert psmod.center("3024", 11, ljust=True) == "   3024    "


def test_ps_row_layout() -> None:
    rec = psmod.PsRecord(106, 1, 1, 0xFFFF88B9421F3000, "RU", 0.0061, 2260, 56, "kc-spinner", True, False)
    assert (
        psmod._Ps.row(rec)
        == ">     106       1   1  ffff88b9421f3000  RU   0.0     2260       56  kc-spinner"
    )
    rec = psmod.PsRecord(3, 2, 0, 0xFFFF88B9411FB000, "INEX", 12.25, 0, 0, "rcu_gp", False, True, kstackp=0)
    assert (
        psmod._Ps.row(rec) == "        3       2   0         --        INEX 12.2        0        0  [rcu_gp]"
    )


def test_arg_and_env_text() -> None:
    assert psmod._arg_text(b"sh\0-c\0while :; do :; done\0") == "sh -c while :; do :; done "
    assert psmod._arg_text(b"a\0\0b") == "a b"
    assert psmod._env_text(b"A=1\0B=2\0") == ("A=1\n     B=2\n", 6)
    assert psmod._env_text(b"") == ("", 0)


def test_quoted_arguments_are_regexes() -> None:
    assert psmod._quoted_words("-G 'kc-.*' 12 \"x\"") == {"kc-.*"}


def test_scheduling_policies() -> None:
    assert psmod._Ps._policy("normal") == 1
    assert psmod._Ps._policy("0,FIFO,6") == 1 | 2 | 64
    with pytest.raises(psmod.KcrashError, match="BOGUS: invalid scheduling policy"):
        psmod._Ps._policy("BOGUS")


# --- real dumps -------------------------------------------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[(series, name) for series in SERIES for name in ("kdump-lzo-d23.kdump", "qemu.elf")],
    ids=lambda p: f"{p[0]}:{p[1]}",
)
def real(request):
    from conftest import fixture_set, open_fixture_kernel

    series, name = request.param
    fs = fixture_set(series)
    return fs, name, open_fixture_kernel(fs, name)


@pytest.mark.fixture
def test_table_equals_the_kernel_lists(real) -> None:
    """The table holds exactly the idle tasks plus every thread of the process list, walked through the
    Object API (an independent path from the table's own link walk)."""
    _, _, k = real
    expected = {t.address for t in th.idle_tasks(k)}
    for leader in th.for_each_process(k):
        expected.update(t.address for t in th.for_each_thread(leader))
    table = th.task_table(k)
    assert set(table.by_address) == expected
    assert not table.unreadable
    for info in table.tasks[:5] + table.tasks[-5:]:
        obj = info.object(k)
        assert (info.pid, info.tgid, info.comm, info.cpu) == (
            th.task_pid(obj),
            th.task_tgid(obj),
            th.task_comm(obj),
            th.task_cpu(obj),
        )


@pytest.mark.fixture
def test_panic_task_and_lookup(real) -> None:
    fs, name, k = real
    boot = fs.manifest["boots"][fs.dumps[name]["boot"]]
    panic = kpanic.panic_task_info(k)
    assert (panic.pid, panic.comm) == (boot["panic_pid"], boot["panic_comm"])
    assert panic.address in cpus.active_tasks(k)
    assert th.resolve_task(k, str(panic.pid)).address == panic.address
    assert th.resolve_task(k, f"{panic.address:x}").address == panic.address
    assert th.resolve_task(k, "kc-crasher").address == panic.address
    with pytest.raises(th.KcrashError, match="invalid task or pid value: 99999"):
        th.resolve_task(k, "99999")
    assert th.find_task(k, 0).address == k.address_of("init_task")


@pytest.mark.fixture
def test_hz_and_uptime(real) -> None:
    """CONFIG_HZ=250 on Debian's cloud kernels; the uptime agrees with the last printk timestamp."""
    from kcrash.kernel.printk import log_records

    _, _, k = real
    assert ktime.hz(k) == 250
    last = max(r.ts_nsec for r in log_records(k)) / 1e9
    assert abs(ktime.uptime_jiffies(k) / 250 - last) < 1.0


@pytest.mark.fixture
def test_total_pages_is_the_end_of_ram(real) -> None:
    from kcrash.kernel import mm

    _, _, k = real
    high = int(k.object_at("void *", k.address_of("high_memory")).value())
    assert mm.total_pages(k) == (high - k.read_u64(k.address_of("page_offset_base"))) >> 12
    assert 0 < mm.totalram_pages(k) <= mm.total_pages(k)


@pytest.mark.fixture
def test_set_errors(real) -> None:
    from conftest import run_command

    _, _, k = real
    assert run_command(k, "set 99999") == ("", "set: invalid task or pid value: 99999\n")
    assert run_command(k, "set -c 9")[1] == "set: invalid cpu number: system has only 2 cpus\n"
    assert run_command(k, "set -c x")[1] == 'set: x: "x" is not a digit 0 - 9\n'
    assert run_command(k, "ps -S 1")[1] == "ps: -S option takes no arguments\n"
    assert run_command(k, "ps -k -u")[1] == "ps: -u and -k are mutually exclusive\n"
    assert "mutually-exclusive" in run_command(k, "ps -a -t")[1]
    assert run_command(k, "ps -y BOGUS")[1] == "ps: BOGUS: invalid scheduling policy\n"
    out, err = run_command(k, "ps nosuchtask")  # crash: the header, no rows, no error
    assert (out, err) == ("      PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM\n", "")
