"""The gdb fallback and `kcrash --gdbserver` on the real 6.1 fixture, with the installed gdb.

The fallback is forced with gdb-only constructs (convenience functions, registers); where kcrash can
answer too, gdb's value (read through kcrash's RSP server) must equal the native one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import REPO, open_fixture_kernel

DUMP = "qemu.elf"

# Values whose text must be the same from kcrash's formatter and from gdb (with crash's print settings).
# Not linux_banner: gdb 13 takes its declaration `const char []` and prints a pointer, where crash's
# gdb 10 (and kcrash) print the 204-character string.
SAME_BOTH_WAYS = [
    "init_task.comm",
    "jiffies",
    "&init_task",
    "init_task.se",
    "init_task.sched_class",
    "*init_task.thread_pid",
    "init_uts_ns.name.release",
    "saved_command_line",
    "init_task.pid_links",
    "init_task.restart_block",  # a struct holding an anonymous union, in every kernel
    "(char)200",
    "sizeof(struct task_struct)",
    "init_task.tasks.next->next",
    "&init_task.comm[1]",
]


def _need_gdb() -> None:
    if shutil.which("gdb") is None:
        pytest.fail("gdb is not installed (apt-get install gdb)")


@pytest.fixture(scope="module")
def shell(fixtures61):
    _need_gdb()
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    k = open_fixture_kernel(fixtures61, DUMP)
    registry = Registry()
    registry.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(k, registry=registry, stdout=out, stderr=err)
    yield sh, out, err
    from kcrash.expr.session import expr_session

    class _Ctx:
        state = sh.state
        kernel = k

    expr_session(_Ctx()).close()


def run(shell, line: str) -> tuple[str, str]:
    sh, out, err = shell
    out.seek(0)
    out.truncate()
    err.seek(0)
    err.truncate()
    sh.execute(line)
    return out.getvalue(), err.getvalue()


def _value(text: str) -> str:
    first, _, rest = text.partition(" = ")
    return rest.rstrip("\n") if first.startswith("$") else text.rstrip("\n")


@pytest.mark.fixture
def test_fallback_answers_what_only_gdb_can(shell):
    out, err = run(shell, "p $_strlen(init_task.comm)")
    assert not err
    assert _value(out) == "9"  # "swapper/0"
    out, err = run(shell, "p $_strlen(init_task.comm) + init_task.pid")
    assert _value(out) == "9"


@pytest.mark.fixture
@pytest.mark.parametrize("expression", SAME_BOTH_WAYS)
def test_gdb_and_native_agree(shell, expression):
    native, err = run(shell, f"p {expression}")
    assert not err
    through_gdb, err = run(shell, f"gdb print {expression}")
    assert not err
    assert _value(native.split(" = ", 1)[1] if native.startswith(expression) else native) == _value(
        through_gdb
    )


@pytest.mark.fixture
def test_registers_are_the_context_tasks(shell):
    from kcrash.kernel.panic import default_task
    from kcrash.kernel.stack import task_start_registers

    sh = shell[0]
    regs, _slot, _source = task_start_registers(sh.kernel, default_task(sh.kernel))
    out, err = run(shell, "p/x $rip")
    assert not err
    assert _value(out) == f"0x{regs['rip']:x}"
    out, _ = run(shell, "p/x $sp")
    assert _value(out) == f"0x{regs['rsp']:x}"
    out, _ = run(shell, "whatis $rip")
    assert out == "void (*)()\n"


@pytest.mark.fixture
def test_gdb_passthrough_and_bt(shell):
    out, err = run(shell, "gdb bt 6")
    assert not err
    assert "panic" in out or "delay_tsc" in out
    out, err = run(shell, "gdb info symbol &init_task")
    assert out.startswith("init_task in section .data")


@pytest.mark.fixture
def test_gdb_errors_are_one_line(shell):
    out, err = run(shell, "p $_strlen(nosuchsym)")
    assert not out
    assert err.strip() == 'p: No symbol "nosuchsym" in current context.'
    out, err = run(shell, "p nosuchsym")  # a wrong expression gets the native error, not gdb's
    assert err.strip().startswith('p: no symbol "nosuchsym"')


@pytest.mark.fixture
def test_gdb_is_restarted_when_it_dies(shell):
    from kcrash.expr.session import expr_session

    sh = shell[0]

    class _Ctx:
        state = sh.state
        kernel = sh.kernel

    run(shell, "p $_strlen(init_task.comm)")
    gdb = expr_session(_Ctx())._gdb
    gdb.proc.kill()
    gdb.proc.wait(10)
    out, err = run(shell, "p $_strlen(init_task.comm)")
    assert not err and _value(out) == "9"
    assert expr_session(_Ctx())._gdb is not gdb


@pytest.mark.fixture
def test_gdbserver_with_a_real_gdb(fixtures61):
    _need_gdb()
    boot = fixtures61.dumps[DUMP]["boot"]
    offset = fixtures61.manifest["boots"][boot]["kaslr_offset"]
    directory = tempfile.mkdtemp(prefix="kcrash-test-")
    path = os.path.join(directory, "sock")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kcrash.cli",
            "--gdbserver",
            f"unix:{path}",
            fixtures61.vmlinux,
            fixtures61.path(DUMP),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(path):
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not create its socket"
            time.sleep(0.1)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        proc = subprocess.run(
            [
                "gdb", "-nx", "-q", "-batch",
                "-ex", f"symbol-file -o {offset} {fixtures61.vmlinux}",
                "-ex", f"target remote {path}",
                "-ex", "p init_task.comm",
                "-ex", "bt",
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert '$1 = "swapper/0\\000\\000\\000\\000\\000\\000"' in proc.stdout
        frames = [line for line in proc.stdout.splitlines() if line.startswith("#")]
        assert len(frames) >= 5
        assert any(" panic " in f or "panic (" in f for f in frames)
        assert any("sysrq" in f for f in frames)
    finally:
        server.terminate()
        server.wait(30)
        for p in (path,):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(directory)
    assert server.returncode == 0
    assert json.dumps(offset)  # the offset came from the manifest
