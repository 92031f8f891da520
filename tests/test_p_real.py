"""Differential test of p, struct, union, whatis and ptype against Debian's crash (which prints through
its embedded gdb) on the qemu.elf of each series crash reads (5.10, 6.1), over the corpus in tests/data/expr_corpus.txt.

Normalisation, and only this: the value history number in `$N = ` is replaced by `$N` — kcrash and
crash number the same successful prints, but one command failing in one tool would shift every later
number (the numbering itself is checked by test_history_numbering). Addresses in the corpus come from
the dump's symbol table plus BTF member offsets (never hard-coded).
"""

from __future__ import annotations

import io
import pathlib
import re

import pytest
from conftest import fixture_set, open_fixture_kernel, run_command
from fixtures.locate import SERIES
from oracles import crash_outputs, drgn_eval, have_crash

CORPUS = pathlib.Path(__file__).parent / "data" / "expr_corpus.txt"
DUMP = "qemu.elf"
_HISTORY = re.compile(r"\$\d+ = ")


def corpus_lines() -> list[str]:
    lines = []
    for line in CORPUS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.strip())
    return lines


def placeholders(k) -> dict[str, str]:
    """Addresses the corpus refers to, from the symbol table and BTF offsets (not the evaluator)."""
    from kcrash.kernel.tasks import find_task

    task_t = k.type("struct task_struct")
    init_task = k.address_of("init_task")
    tasks_off = task_t.member("tasks")[1] // 8
    sched_off = task_t.member("sched_class")[1] // 8
    task1 = find_task(k, 1)
    return {
        "init_task": f"{init_task:x}",
        "tasks": f"{init_task + tasks_off:x}",
        "sched_class": f"{k.read_u64(init_task + sched_off):x}",
        "task1": f"0x{task1.address:x}",
    }


def fill(line: str, values: dict[str, str]) -> str:
    """Replace the {placeholders} the corpus defines (and leave gdb's `{type}` alone)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), line)


_CRASH_ERROR = re.compile(
    r"^\w+: (gdb request failed|invalid data structure reference|cannot resolve|no symbol)", re.M
)


def crash_failed(text: str) -> bool:
    """crash's answer is an error (a name this kernel does not have)."""
    return bool(_CRASH_ERROR.search(text))


def normalise(text: str) -> str:
    return _HISTORY.sub("$N = ", text).rstrip("\n")


def run_kcrash(k, commands: list[str]) -> dict[str, tuple[str, str]]:
    """Run the commands in order in one in-process kcrash shell: {command: (stdout, stderr)}."""
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    registry = Registry()
    registry.load_entry_points()
    out: dict[str, tuple[str, str]] = {}
    stdout, stderr = io.StringIO(), io.StringIO()
    shell = Shell(k, registry=registry, stdout=stdout, stderr=stderr)
    for cmd in commands:
        shell.execute(cmd)
        out[cmd] = (stdout.getvalue(), stderr.getvalue())
        stdout.seek(0)
        stdout.truncate()
        stderr.seek(0)
        stderr.truncate()
    return out


@pytest.fixture(scope="module")
def outputs(fixtures_crash):
    if not have_crash():
        pytest.fail("Debian's crash is not installed (apt-get install crash)")
    k = open_fixture_kernel(fixtures_crash, DUMP)
    values = placeholders(k)
    commands = [fill(line, values) for line in corpus_lines()]
    theirs = crash_outputs(fixtures_crash.vmlinux, fixtures_crash.path(DUMP), commands)
    ours = run_kcrash(k, commands)
    return commands, theirs, ours


def test_corpus_is_large_enough():
    lines = corpus_lines()
    assert len(lines) >= 40
    kinds = {line.split()[0].split("/")[0] for line in lines}
    assert {"p", "px", "pd", "whatis", "ptype", "struct", "union"} <= kinds


@pytest.mark.fixture
def test_corpus_matches_crash(outputs):
    commands, theirs, ours = outputs
    failures = []
    for cmd in commands:
        expected = theirs.get(cmd)
        if expected is None:
            failures.append(f"{cmd}: crash gave no output block")
            continue
        got, err = ours[cmd]
        if crash_failed(expected):
            # The corpus names members and symbols of the 6.1 kernel; on a kernel that lacks one (5.10 has
            # no task_struct.__state, no _printk) crash fails, and kcrash must fail too, in its own words.
            if not err:
                failures.append(f"{cmd}: crash failed ({expected.splitlines()[-1]}), kcrash printed:\n{got}")
            continue
        if err:
            failures.append(f"{cmd}: kcrash error: {err.strip()}")
            continue
        if normalise(got) != normalise(expected):
            failures.append(
                f"{cmd}:\n--- crash\n{normalise(expected)[:1500]}\n--- kcrash\n{normalise(got)[:1500]}"
            )
    assert not failures, f"{len(failures)} of {len(commands)} differ:\n" + "\n".join(failures)


@pytest.mark.fixture
def test_history_numbering(outputs):
    """$N counts the successful prints, as gdb's history does."""
    commands, theirs, ours = outputs
    numbers = []
    for cmd in commands:
        numbers += [int(n) for n in re.findall(r"\$(\d+) = ", ours[cmd][0])]
    assert numbers == list(range(1, len(numbers) + 1))
    for cmd in commands:
        mine = [int(n) for n in re.findall(r"\$(\d+) = ", ours[cmd][0])]
        crash = [int(n) for n in re.findall(r"\$(\d+) = ", theirs.get(cmd, ""))]
        assert mine == crash, f"{cmd}: kcrash numbered {mine}, crash {crash}"


@pytest.mark.fixture
def test_p_user_addresses(fixtures_crash):
    """`p -u` reads the context task's user memory: PID 1's argv[0], located through its mm."""
    from conftest import run_command

    from kcrash.kernel.mm import mm_info
    from kcrash.kernel.tasks import find_task

    k = open_fixture_kernel(fixtures_crash, DUMP)
    task = find_task(k, 1)
    mm = mm_info(k, int(task.mm))
    out, err = run_command(k, f"set 1 > /dev/null; p -u (char *){mm.arg_start:#x}")
    assert not err
    from kcrash.kernel.mm import read_user

    expected = read_user(k, mm, mm.arg_start, mm.arg_end - mm.arg_start).split(b"\0")[0].decode()
    assert out == f'$1 = {mm.arg_start:#x} "{expected}"\n'


DRGN_PER_CPU = """
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.percpu import per_cpu
for cpu in for_each_possible_cpu(prog):
    print(cpu, per_cpu(prog["this_cpu_off"], cpu).value_(), per_cpu(prog["runqueues"], cpu).cpu.value_())
"""


@pytest.mark.fixture
@pytest.mark.parametrize("series", SERIES)
def test_per_cpu_values_match_drgn(series):
    """`p SYMBOL:a` and `p SYMBOL:N` read each CPU's copy of a per-cpu variable, on every kernel series."""
    fs = fixture_set(series)
    k = open_fixture_kernel(fs, DUMP)
    rows = [line.split() for line in drgn_eval(fs.vmlinux, fs.path(DUMP), DRGN_PER_CPU).splitlines()]
    assert len(rows) >= 2
    out, err = run_command(k, "p this_cpu_off:a")
    assert not err
    assert out.splitlines() == [
        f"per_cpu(this_cpu_off, {cpu}) = $N = {offset}".replace("$N", f"${i + 1}")
        for i, (cpu, offset, _) in enumerate(rows)
    ]
    out, err = run_command(k, "struct rq.cpu runqueues:a")
    assert not err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[::2]] == [f"[{cpu}]" for cpu, _, _ in rows]
    assert lines[1::2] == [f"  cpu = {rq_cpu}," for _, _, rq_cpu in rows]
