"""The kcrash command line: options, batch modes (-c, -i, stdin), rc files, exit statuses, start-up cost.
The dump is a FakeKernel here; tests/test_cli_fixture.py runs the real executable on real dumps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest
from shell_fakes import FakeKernel

from kcrash import cli
from kcrash.commands import sys as sys_command
from kcrash.errors import DumpError

_REAL_BANNER = sys_command.banner_lines


def _plain_banner(kernel) -> list[str]:
    return [f"{'KERNEL':>12}: {kernel.vmlinux_path}", f"{'DUMPFILE':>12}: {kernel.dump_path}"]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """main() over a FakeKernel, in an empty HOME and working directory, stdin not a terminal."""
    kernel = FakeKernel()
    opened = {}

    def open_dump(a, b, **kwargs):
        opened.update(files=(a, b), **kwargs)
        return kernel

    monkeypatch.setattr(cli, "open_dump", open_dump)
    # A fake kernel has no system information: give it the KERNEL/DUMPFILE-only banner.
    monkeypatch.setattr(sys_command, "banner_lines", _plain_banner)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KCRASH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    kernel.opened = opened
    return kernel


def main(*argv: str) -> int:
    return cli.main(["vmlinux", "vmcore", *argv])


def test_banner_and_batch(fake, capsys):
    assert main("-c", "eval 1; eval 2") == 0
    out = capsys.readouterr().out
    assert out.startswith("kcrash 0.1.0\n\n      KERNEL: /fake/vmlinux\n    DUMPFILE: /fake/vmcore\n\n")
    assert out.count("hexadecimal:") == 2
    assert fake.closed


def test_silent_and_options_reach_open_kernel(fake, capsys):
    assert main("-s", "--zero-excluded", "--force-mismatch", "-c", "set zero_excluded") == 0
    assert capsys.readouterr().out == "zero_excluded: on\n"
    assert fake.opened == {"files": ("vmlinux", "vmcore"), "zero_excluded": True, "force_mismatch": True}


def test_warnings_go_to_stderr(fake, capsys):
    fake.warnings.append("no VMCOREINFO: kernel location found from the dump's page tables")
    main("-s", "-c", "eval 1")
    assert capsys.readouterr().err == (
        "kcrash: WARNING: no VMCOREINFO: kernel location found from the dump's page tables\n"
    )


def test_json_option(fake, capsys):
    assert main("-s", "--json", "-c", "eval 3") == 0
    assert capsys.readouterr().out == (
        '{"record": "eval_result", "schema": 2, "value": "0x3", "signed": "3", "bits_set": [1, 0], "show_bits": false}\n'
    )


def test_failed_command_in_a_batch_exits_3(fake, capsys):
    assert main("-s", "-c", "eval 1; nosuch; eval 2") == cli.EXIT_COMMAND_FAILED
    captured = capsys.readouterr()
    assert captured.err == "kcrash: command not found: nosuch\n"
    assert captured.out.count("hexadecimal") == 2


def test_stdin_batch(fake, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("eval 1\n# comment\n\neval 2\nq\neval 3\n"))
    assert main("-s") == 0
    assert capsys.readouterr().out.count("hexadecimal") == 2


def test_input_file_then_stdin(fake, capsys, monkeypatch, tmp_path):
    script = tmp_path / "cmds"
    script.write_text("eval 1\nalias e1 eval 1\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("e1\n"))
    assert main("-s", "-i", str(script)) == 0
    assert capsys.readouterr().out.count("hexadecimal: 1  ") == 2


def test_input_file_quit_ends_the_session(fake, capsys, monkeypatch, tmp_path):
    script = tmp_path / "cmds"
    script.write_text("eval 1\nquit\neval 2\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("eval 3\n"))
    assert main("-s", "-i", str(script)) == 0
    assert capsys.readouterr().out.count("hexadecimal") == 1


def test_missing_input_file(fake, capsys):
    assert main("-s", "-i", "/nonexistent/cmds") == cli.EXIT_COMMAND_FAILED
    assert capsys.readouterr().err == "kcrash: /nonexistent/cmds: No such file or directory\n"


def test_rc_files_run_home_then_cwd(fake, capsys, tmp_path):
    (tmp_path / "home" / ".kcrashrc").write_text("alias one eval 1\nset radix 16\n")
    (tmp_path / ".kcrashrc").write_text("alias two eval 2\n")
    assert main("-s", "-c", "one; two; alias two") == 0
    out = capsys.readouterr().out
    assert out.startswith("hexadecimal: 1  ")
    assert out.endswith("ORIGIN   ALIAS    COMMAND\nrcfile   two      eval 2\n")
    assert main("-s", "--no-rc", "-c", "one") == cli.EXIT_COMMAND_FAILED


def test_untrusted_rc_file_is_ignored(fake, capsys, tmp_path):
    rc = tmp_path / ".kcrashrc"
    rc.write_text("eval 99\n")
    rc.chmod(0o666)
    assert main("-s", "-c", "eval 1") == 0
    captured = capsys.readouterr()
    assert f"kcrash: ignoring {rc}: writable by group or others\n" == captured.err
    assert "99" not in captured.out


def test_plugins_from_the_environment(fake, capsys, monkeypatch, tmp_path):
    plugin = tmp_path / "hi.py"
    plugin.write_text(
        textwrap.dedent("""
        from kcrash.commands import command
        @command("hi", summary="hi")
        def hi(ctx, args):
            ctx.print("hi there")
    """)
    )
    monkeypatch.setenv("KCRASH_PLUGINS", f"{plugin}{os.pathsep}/nonexistent.py")
    assert main("-s", "-c", "hi") == 0
    captured = capsys.readouterr()
    assert captured.out == "hi there\n"
    assert captured.err == "kcrash: plugin /nonexistent.py: no such file\n"


def test_open_errors_are_one_line(monkeypatch, capsys):
    def fail(a, b, **kwargs):
        raise DumpError(a, "not a dump (no ELF, kdump or flattened header)")

    monkeypatch.setattr(cli, "open_dump", fail)
    assert cli.main(["a", "b"]) == cli.EXIT_OPEN_FAILED
    assert capsys.readouterr().err == "kcrash: a: not a dump (no ELF, kdump or flattened header)\n"

    def bug(a, b, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "open_dump", bug)
    assert cli.main(["a", "b"]) == cli.EXIT_OPEN_FAILED
    assert capsys.readouterr().err == (
        "kcrash: unexpected error while opening the dump: ZeroDivisionError: division by zero "
        "(run with --debug for the traceback)\n"
    )
    assert cli.main(["--debug", "a", "b"]) == cli.EXIT_OPEN_FAILED
    assert "Traceback" in capsys.readouterr().err


def test_banner_survives_a_failing_sysinfo(fake, capsys, monkeypatch):
    def system_info(kernel):
        raise RuntimeError("boom")

    monkeypatch.setattr(sys_command, "system_info", system_info)
    monkeypatch.setattr(sys_command, "banner_lines", _REAL_BANNER)
    assert main("-c", "eval 1") == 0
    captured = capsys.readouterr()
    assert "      KERNEL: /fake/vmlinux\n" in captured.out
    assert "unexpected error while reading the system information: RuntimeError: boom" in captured.err


def run_kcrash(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["kcrash", *argv], capture_output=True, text=True, timeout=60, **kwargs)


def test_executable_usage_and_version():
    result = run_kcrash("--version")
    assert result.returncode == 0 and result.stdout == "kcrash 0.1.0\n"
    result = run_kcrash()
    assert result.returncode == 2 and "usage: kcrash [options] VMLINUX VMCORE" in result.stderr
    result = run_kcrash("-h")
    assert result.returncode == 0 and "-i FILE" in result.stdout and "Exit status" in result.stdout


def test_executable_reports_open_errors_without_traceback(tmp_path):
    result = run_kcrash("/nonexistent/vmlinux", "/nonexistent/vmcore")
    assert result.returncode == 1
    assert result.stderr == "kcrash: /nonexistent/vmlinux: cannot open: No such file or directory\n"
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a dump at all" * 100)
    result = run_kcrash(str(junk), str(junk))
    assert result.returncode == 1 and result.stderr.startswith("kcrash: ")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_cli_import_is_light():
    code = (
        "import sys, kcrash.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prompt_toolkit', 'pygments', 'kcrash')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kcrash', 'kcrash.cli']"


def test_batch_mode_imports_no_prompt_toolkit_or_pygments(fake, capsys):
    for name in [m for m in sys.modules if m.startswith(("prompt_toolkit", "pygments"))]:
        del sys.modules[name]  # restored by nothing: later imports simply reload them
    main("-s", "-c", "eval 1; help; set -v; alias")
    loaded = [m for m in sys.modules if m.startswith(("prompt_toolkit", "pygments"))]
    assert loaded == []


def test_gdbserver_hands_the_kernel_over(fake, capsys, monkeypatch):
    import types

    served = {}
    module = types.ModuleType("kcrash.gdb.server")
    module.serve = lambda kernel, address: served.update(kernel=kernel, address=address) or 0
    monkeypatch.setitem(sys.modules, "kcrash.gdb.server", module)
    assert main("--gdbserver", "unix:/tmp/x.sock") == 0
    assert served == {"kernel": fake, "address": "unix:/tmp/x.sock"}
    assert capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "kcrash.gdb.server", None)
    assert main("--gdbserver", "unix:/tmp/x.sock") == 1
    assert "gdb server is not available" in capsys.readouterr().err
