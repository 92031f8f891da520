"""`--json` on the real dumps: every record-emitting command's lines parse with Debian's jq and Python's json,
carry their record name and schema, and every address read back through jq equals the text output's.

jq 1.6 reads numbers as doubles, so an address written as a number would come back with its last digits
wrong (issue: 18446744072591878720 became 18446744072591878000): addresses travel as "0x…" strings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, fixture_set
from fixtures.locate import SERIES

pytestmark = pytest.mark.fixture

DUMP = "qemu.elf"
SCHEMA = 2


def kcrash(fs, command: str, *, as_json: bool) -> str:
    cmd = [sys.executable, "-m", "kcrash.cli", "-s", "--no-rc", "-c", command, fs.vmlinux, fs.path(DUMP)]
    if as_json:
        cmd.insert(3, "--json")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def jq(text: str, program: str) -> list[str]:
    """jq -r over JSON lines: one output line per value."""
    if shutil.which("jq") is None:
        pytest.fail("jq is not installed (apt-get install jq; setup.sh installs it)")
    proc = subprocess.run(["jq", "-r", program], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def records(text: str, name: str) -> list[dict]:
    out = [json.loads(line) for line in text.splitlines()]
    assert out, "no records"
    for rec in out:
        assert rec["record"] == name and rec["schema"] == SCHEMA, rec
    return out


def hex_of(word: str) -> str:
    return f"0x{int(word, 16):x}"


@pytest.fixture(scope="module", params=list(SERIES))
def fs(request):
    return fixture_set(request.param)


def test_ps_task_addresses(fs) -> None:
    text, data = kcrash(fs, "ps", as_json=False), kcrash(fs, "ps", as_json=True)
    records(data, "ps")
    rows = [re.match(r"^..\s*(\d+)\s+-?\d+\s+\S+\s+([0-9a-f]{16}) ", line) for line in text.splitlines()[1:]]
    assert jq(data, ".task") == [hex_of(m.group(2)) for m in rows]
    assert jq(data, ".pid") == [m.group(1) for m in rows]


def test_bt_addresses(fs) -> None:
    text, data = kcrash(fs, "bt -a", as_json=False), kcrash(fs, "bt -a", as_json=True)
    recs = records(data, "backtrace")
    assert jq(data, ".task") == [hex_of(m) for m in re.findall(r"^PID: \d+ +TASK: ([0-9a-f]+)", text, re.M)]
    frames = re.findall(r"^ ?#\d+ \[([0-9a-f]+)\] \S+ at ([0-9a-f]+)", text, re.M)
    assert jq(data, '.frames[] | .stack_address + " " + .address') == [
        f"{hex_of(slot)} {hex_of(address)}" for slot, address in frames
    ]
    # Register blocks: every value a string, equal to the text's.
    rips = re.findall(r"^    RIP: ([0-9a-f]+)", text, re.M)
    assert jq(data, ".frames[] | select(.exception_registers) | .exception_registers.rip") == [
        hex_of(r) for r in rips
    ]
    assert all(
        isinstance(v, str)
        for r in recs
        for f in r["frames"]
        for v in (f["exception_registers"] or {}).values()
    )


def test_sym_rd_dis_struct_eval_addresses(fs) -> None:
    text = kcrash(fs, "sym init_task", as_json=False)
    data = kcrash(fs, "sym init_task", as_json=True)
    records(data, "symbol")
    init_task = hex_of(text.split()[0])
    assert jq(data, ".address") == [init_task]

    text, data = (
        kcrash(fs, "rd -64 linux_banner 4", as_json=False),
        kcrash(fs, "rd -64 linux_banner 4", as_json=True),
    )
    records(data, "memory_line")
    lines = [line.split() for line in text.splitlines()]
    assert jq(data, ".address") == [hex_of(words[0].rstrip(":")) for words in lines]
    assert jq(data, ".values[]") == [hex_of(w) for words in lines for w in words[1:3]]

    text, data = kcrash(fs, "dis schedule 8", as_json=False), kcrash(fs, "dis schedule 8", as_json=True)
    records(data, "dis_line")
    assert jq(data, ".address") == [line.split()[0] for line in text.splitlines()]

    data = kcrash(fs, "struct task_struct.pid init_task", as_json=True)
    records(data, "struct")
    assert jq(data, ".address") == [init_task]

    text, data = kcrash(fs, "task -R pid", as_json=False), kcrash(fs, "task -R pid", as_json=True)
    assert [json.loads(line)["record"] for line in data.splitlines()] == ["task_header", "struct"]
    header = re.match(r"PID: (\d+) +TASK: ([0-9a-f]+) +CPU: (\d+) +COMMAND: \"(.*)\"", text)
    assert jq(data, 'select(.record == "task_header") | "\\(.pid) \\(.task) \\(.cpu) \\(.command)"') == [
        f"{header.group(1)} {hex_of(header.group(2))} {header.group(3)} {header.group(4)}"
    ]

    data = kcrash(fs, f"eval {init_task}", as_json=True)
    records(data, "eval_result")
    assert jq(data, ".value") == [init_task]


def test_context_log_sys(fs) -> None:
    text, data = kcrash(fs, "set", as_json=False), kcrash(fs, "set", as_json=True)
    records(data, "context")
    assert jq(data, ".task") == [hex_of(re.search(r"TASK: ([0-9a-f]+)", text).group(1))]

    text, data = kcrash(fs, "log", as_json=False), kcrash(fs, "log", as_json=True)
    recs = records(data, "log")
    stamps = re.findall(r"^\[ *(\d+)\.(\d{6})\]", text, re.M)
    ts = [int(r["ts_nsec"]) for r in recs]
    assert len(stamps) <= len(ts)
    assert [int(s) * 1_000_000 + int(us) for s, us in stamps[:50]] == [t // 1000 for t in ts[:50]]

    text, data = kcrash(fs, "sys", as_json=False), kcrash(fs, "sys", as_json=True)
    records(data, "sys_info")
    assert jq(data, ".release") == [re.search(r"RELEASE: (\S+)", text).group(1)]


# Commands and options without a record type of their own yet print `text_line` records (docs/json.md).
EVERY_LINE_COMMANDS = [
    "bt -f",
    "bt -l",
    "ps -t",
    "ps -p",
    "ps -S",
    "ps -r 1",
    "log -m",
    "sys -t",
    "rd -s linux_banner 4",
    "dis -l schedule 3",
    "task",
    "whatis jiffies",
    "struct list_head",
    "help bt",
]


def test_every_stdout_line_is_json(fs) -> None:
    """Nothing but JSON lines on standard output, whatever the command prints."""
    for command in EVERY_LINE_COMMANDS:
        out = kcrash(fs, command, as_json=True)
        lines = out.splitlines()
        assert lines, command
        for line in lines:
            rec = json.loads(line)
            assert rec["schema"] == SCHEMA and rec["record"], (command, line)
        assert len(jq(out, ".record")) == len(lines), command


def test_sym_listings(fs) -> None:
    """sym -q and sym -l print one symbol record per row (the module's in `module`; crash's MODULE START/END
    lines are the module field's boundaries), each address equal to the text's."""
    text, data = kcrash(fs, "sym -q schedule", as_json=False), kcrash(fs, "sym -q schedule", as_json=True)
    records(data, "symbol")
    assert jq(data, ".address") == [hex_of(line.split()[0]) for line in text.splitlines()]
    text, data = kcrash(fs, "sym -l", as_json=False), kcrash(fs, "sym -l", as_json=True)
    rows = [line.split() for line in text.splitlines() if " MODULE " not in line]
    recs = records(data, "symbol")
    # The vmlinux rows in order; a 6.4+ module's text lists its blocks (text, data, …) apart, its records
    # come in table order: compared as sets of rows.
    ours = [(r["address"], r["type"], r["name"]) for r in recs]
    theirs = [(hex_of(a), t[1], n) for a, t, n, *_ in rows]
    assert sorted(ours) == sorted(theirs)
    kernel = [r for r in recs if r["module"] is None]
    assert [(r["address"], r["name"]) for r in kernel] == [(a, n) for a, _, n in theirs[: len(kernel)]]


def test_sys_taint_and_dmi(fs) -> None:
    text, data = kcrash(fs, "sys -t", as_json=False), kcrash(fs, "sys -t", as_json=True)
    records(data, "taint")
    mask, _, flags = text.rstrip("\n").removeprefix("TAINTED_MASK: ").partition("  ")
    assert jq(data, ".mask") == [hex_of(mask)] and jq(data, ".flags") == [flags]
    text, data = kcrash(fs, "sys -i", as_json=False), kcrash(fs, "sys -i", as_json=True)
    records(data, "dmi")
    assert jq(data, '.name + ": " + .value') == [line.lstrip() for line in text.splitlines()]
