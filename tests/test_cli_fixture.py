"""The real `kcrash` executable on the real fixture dumps, in batch mode: banner, -c, -i, stdin, exit
statuses, JSON, and no terminal escapes when output is not a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

ANSI = re.compile(r"\x1b[\[\]()]")


def kcrash(
    fs, *argv: str, dump: str | None = None, stdin: str | None = None, home=None
) -> subprocess.CompletedProcess:
    dump = dump or "kdump-lzo.kdump"
    env = dict(os.environ, HOME=str(home) if home else os.environ.get("HOME", "/"))
    env.pop("KCRASH_PLUGINS", None)
    return subprocess.run(
        ["kcrash", fs.vmlinux, fs.path(dump), *argv],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_banner(fixtures61, tmp_path):
    result = kcrash(fixtures61, "-c", "eval 1", home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "kcrash 0.1.0" and lines[1] == ""
    assert f"      KERNEL: {fixtures61.vmlinux}" in lines
    assert any(line.startswith(f"    DUMPFILE: {fixtures61.path('kdump-lzo.kdump')}") for line in lines)
    block = lines[2 : lines.index("", 2)]
    assert all(re.match(r"^ *[A-Z][A-Z ]*: ", line) for line in block), block
    assert "Traceback" not in result.stderr


def test_dump_and_vmlinux_in_either_order(fixtures61, tmp_path):
    dump = fixtures61.path("kdump-lzo.kdump")
    result = subprocess.run(
        ["kcrash", "-s", dump, fixtures61.vmlinux, "-c", "eval jiffies"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.startswith("hexadecimal: ffffffff")


@pytest.mark.parametrize(
    "dump",
    ["kdump.elf", "kdump-zlib.kdump", "kdump-lzo.flat", "kdump-lzo-d23.kdump", "qemu-novmcoreinfo.elf"],
)
def test_every_dump_format_opens_to_a_working_shell(fixtures61, dump, tmp_path):
    if dump not in fixtures61.dumps:
        pytest.fail(f"fixture set has no {dump}")
    result = kcrash(fixtures61, "-c", "eval jiffies; extend", dump=dump, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr
    assert "hexadecimal: ffffffff" in result.stdout


def test_silent_batch_and_exit_status(fixtures61, tmp_path):
    ok = kcrash(fixtures61, "-s", "-c", "eval init_task; help eval", home=tmp_path)
    assert ok.returncode == 0 and ok.stdout.startswith("hexadecimal: ") and ok.stderr == ""
    failed = kcrash(fixtures61, "-s", "-c", "eval 1; nosuchcommand; eval 2", home=tmp_path)
    assert failed.returncode == 3
    assert failed.stderr == "kcrash: command not found: nosuchcommand\n"
    assert failed.stdout.count("hexadecimal") == 2
    bad_expression = kcrash(fixtures61, "-s", "-c", "eval no_such_symbol_here", home=tmp_path)
    assert bad_expression.returncode == 3
    assert bad_expression.stderr == "eval: invalid expression: no_such_symbol_here\n"


def test_stdin_batch(fixtures61, tmp_path):
    result = kcrash(fixtures61, "-s", stdin="eval 1\n# comment\nset radix 16\nq\neval 2\n", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.count("hexadecimal") == 1 and "output radix: 16 (hex)" in result.stdout
    assert "kcrash>" not in result.stdout  # no prompt in a batch


def test_input_file(fixtures61, tmp_path):
    script = tmp_path / "cmds"
    script.write_text("alias j eval jiffies\nj\nexit\neval 99\n")
    result = kcrash(fixtures61, "-s", "-i", str(script), stdin="eval 98\n", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("hexadecimal") == 1 and "jiffies" in result.stdout


def test_no_terminal_escapes_outside_a_terminal(fixtures61, tmp_path):
    result = kcrash(fixtures61, "-c", "help; help eval; set -v; alias; nosuch", home=tmp_path)
    assert result.returncode == 3
    assert not ANSI.search(result.stdout) and not ANSI.search(result.stderr)


def test_json_output(fixtures61, tmp_path):
    result = kcrash(fixtures61, "-s", "--json", "-c", "eval jiffies; extend", home=tmp_path)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert int(records[0]["value"], 16) >= 0xFFFFFFFF80000000  # addresses are "0x…" strings (docs/json.md)
    assert records[1]["name"] == "kcrash" and "eval" in records[1]["commands"]


def test_output_reader_going_away(fixtures61, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run(
        f"kcrash -s {fixtures61.vmlinux} {fixtures61.path('kdump-lzo.kdump')} -c 'help; help eval; set -v'"
        " | head -2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0 and result.stderr == ""
