"""End-to-end: the real `kcrash` executable in a pseudo-terminal, on a real fixture dump, driven as a user
would — banner and prompt, Tab completion of a symbol, commands, a pipe through grep, a redirect, the
pager, Ctrl-C of a long command, Ctrl-D to leave."""

from __future__ import annotations

import io
import os
import re
import textwrap

import pexpect
import pytest

# prompt_toolkit draws the trailing blank of "kcrash> " as a cursor movement.
PROMPT = "kcrash>"
TEST_PLUGIN = """
import time
from kcrash.commands import Argument, command

@command("spin", summary="run until interrupted")
def spin(ctx, args):
    ctx.print("spinning")
    ctx.out.flush()
    while True:
        time.sleep(0.05)

@command("lines", summary="print N lines", arguments=[Argument("n", type=int)])
def lines(ctx, args):
    for i in range(args.n):
        ctx.print(f"line {i:05d}")
"""


class Session:
    """A kcrash child in a 24x80 pseudo-terminal; everything it printed is kept in .log."""

    def __init__(self, fs, tmp_path, dump: str = "kdump-lzo.kdump", extra_env: dict | None = None) -> None:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        plugin = tmp_path / "testcmds.py"
        plugin.write_text(textwrap.dedent(TEST_PLUGIN))
        self.history = tmp_path / "history"
        env = dict(os.environ)
        for name in ("LESS", "LESSOPEN", "KCRASH_PAGER", "NO_COLOR", "PAGER"):
            env.pop(name, None)
        env.update(
            HOME=str(home),
            TERM="xterm",
            KCRASH_HISTORY=str(self.history),
            KCRASH_PLUGINS=str(plugin),
            PROMPT_TOOLKIT_NO_CPR="1",  # no terminal here answers cursor-position requests
        )
        env.update(extra_env or {})
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            "kcrash",
            [fs.vmlinux, fs.path(dump)],
            env=env,
            cwd=str(tmp_path),
            encoding="utf-8",
            timeout=120,
            dimensions=(24, 80),
        )
        self.child.logfile_read = self.log

    def prompt(self) -> str:
        """Wait for the prompt; returns what came before it."""
        self.child.expect_exact(PROMPT)
        return self.child.before

    def enter(self) -> str:
        """Press Enter, wait for the next prompt; returns the output (with terminal escapes removed).

        prompt_toolkit redraws the accepted line, prompt included, before the newline: wait for that
        newline first so the redraw is not taken for the next prompt.
        """
        self.child.send("\r")
        self.child.expect_exact("\r\n")
        self.prompt()
        return strip_escapes(self.child.before)

    def command(self, line: str) -> str:
        """Type a line and press Enter; returns its output."""
        self.child.send(line)
        return self.enter()

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def strip_escapes(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-9]|\x1b[=>]|\r", "", text)


@pytest.fixture
def session(fixtures61, tmp_path):
    s = Session(fixtures61, tmp_path)
    yield s
    s.close()


def test_interactive_session(session, fixtures61, tmp_path):
    child = session.child
    # Banner, then the prompt.
    child.expect_exact("kcrash 0.1.0")
    child.expect(r"KERNEL: \S*vmlinux")
    child.expect(r"DUMPFILE: \S*kdump-lzo\.kdump")
    session.prompt()

    # A command.
    out = session.command("eval init_uts_ns")
    address = re.search(r"hexadecimal: (ffffffff[0-9a-f]{8})", out).group(1)

    # Tab completes a kernel symbol name (unique prefix) in place.
    # (Without the completion the line would be "eval init_uts_n": an invalid expression.)
    child.send("eval init_uts_n\t")
    assert f"hexadecimal: {address}" in session.enter()

    # Through a shell pipeline.
    out = session.command("eval init_uts_ns | grep decimal")
    assert re.search(r"^    decimal: \d+ ", out, re.M) and "binary:" not in out

    # Into a file, then appended (relative to the working directory; lines shorter than the terminal
    # so that prompt_toolkit does not wrap them).
    session.command("eval 0x1000 > eval.txt")
    session.command("eval 4k >> eval.txt")
    assert (tmp_path / "eval.txt").read_text().count("hexadecimal: 1000  (4KB)\n") == 2

    # Errors are one line and the prompt comes back.
    out = session.command("nosuchcommand")
    assert "kcrash: command not found: nosuchcommand" in out
    out = session.command("eval 1 +")
    assert "eval: invalid expression: 1 +" in out

    # Ctrl-C cancels a long-running command and returns to the prompt.
    child.send("spin\r")
    child.expect_exact("spinning")
    child.sendintr()
    session.prompt()
    out = session.command("eval 7")
    assert "hexadecimal: 7" in out

    # Ctrl-D leaves.
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in session.log.getvalue()
    history = session.history.read_text()
    assert "+eval init_uts_ns | grep decimal" in history and "+spin" in history


def test_long_output_goes_through_the_pager(session):
    session.prompt()
    session.child.send("lines 200\r")
    session.child.expect_exact("line 00000")
    session.child.expect(r"line 000(1\d|2[0-2])")
    assert "line 00150" not in session.log.getvalue()  # less waits for the user
    session.child.send("q")
    session.prompt()
    out = session.command("set scroll off")
    assert "scroll: off" in out
    session.child.send("lines 200\r")
    session.child.expect_exact("line 00199")
    session.prompt()
    session.child.send("q\r")
    session.child.expect(pexpect.EOF)


def test_ctrl_c_at_the_prompt_drops_the_line(session):
    session.prompt()
    session.child.send("eval 12345")
    session.child.sendintr()
    session.child.expect_exact("\r\n")  # the dropped line is left on the screen
    session.prompt()
    out = session.command("eval 1")
    assert "12345" not in out and "hexadecimal: 1" in out
    session.child.send("quit\r")
    session.child.expect(pexpect.EOF)
    session.child.close()
    assert session.child.exitstatus == 0


def test_help_and_completion_of_commands(session):
    session.prompt()
    out = session.command("help")
    assert 'For help on any command above, enter "help <command>".' in out
    assert "spin" in out and "eval" in out  # the plugin from $KCRASH_PLUGINS is listed
    session.child.send("exte\t")
    assert "testcmds" in session.enter()
    session.child.sendcontrol("d")
    session.child.expect(pexpect.EOF)
