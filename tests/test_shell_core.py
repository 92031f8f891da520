"""The shell's line runner: dispatch, errors as one line, Ctrl-C, pipes, redirects, JSON, aliases."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from shell_fakes import FakeKernel, make_shell, run

from kcrash.commands import Argument, CommandFailed, KcrashError, Option, UsageError, command
from kcrash.shell.core import FAILED, INTERRUPTED, OK
from kcrash.shell.registry import Registry


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@command(
    "say",
    summary="print words",
    options=[Option("-u", help="upper case")],
    arguments=[Argument("words", nargs="*")],
)
def say(ctx, args):
    text = " ".join(args.words)
    ctx.print(text.upper() if args.u else text)


@command("fail", summary="raise a kcrash error")
def fail(ctx, args):
    ctx.print("partial output")
    raise KcrashError("page excluded: kernel virtual address: ffff888000000000")


@command("boom", summary="a bug")
def boom(ctx, args):
    return {}["missing"]


@command("interrupt", summary="as if Ctrl-C hit it")
def interrupt(ctx, args):
    ctx.print("started")
    raise KeyboardInterrupt


@command("points", summary="records", render=lambda p: f"({p.x}, {p.y})")
def points(ctx, args):
    if not ctx.json:
        ctx.print("POINTS")
    ctx.emit(Point(1, 2))
    ctx.emit(Point(3, 4), text="three-four")


@command("gen", summary="a generator command")
def gen(ctx, args):
    yield "HEADER"
    yield Point(5, 6)


@command("many", summary="many lines", arguments=[Argument("n", type=int)])
def many(ctx, args):
    for i in range(args.n):
        ctx.print(f"line {i}")


@command("nested", summary="runs another command")
def nested(ctx, args):
    ctx.print("outer")
    ctx.run("say inner")


@command("p", summary="print", arguments=[Argument("expr", nargs="*")], suffix=True, raw=True)
def p(ctx, args):
    ctx.print(f"p[{args.suffix}] {args.raw}")


@command("struct", summary="struct", arguments=[Argument("name"), Argument("rest", nargs="*")])
def struct(ctx, args):
    ctx.print(f"struct {args.name} {args.rest}")


@command("usage", summary="raises a usage error")
def usage(ctx, args):
    raise UsageError("need something")


@command("quiet", summary="fails after warning")
def quiet(ctx, args):
    ctx.warn("something is off")
    raise CommandFailed()


@pytest.fixture
def shell():
    registry = Registry()
    # Only the shell's own commands: this module defines stand-in `p` and `struct` for bare-name routing.
    registry.load_module("kcrash.commands.builtin", "kcrash", builtin=True)
    registry.load_module("kcrash.commands.builtin_eval", "kcrash-eval", builtin=True)
    registry.load_module(__name__, "tests")
    assert not registry.errors
    return make_shell(registry, FakeKernel(types={"struct task_struct"}))


def test_runs_a_command(shell):
    assert run(shell, "say -u hello world") == (OK, "HELLO WORLD\n", "")


def test_unknown_command(shell):
    assert run(shell, "nosuch 1 2") == (FAILED, "", "kcrash: command not found: nosuch\n")


def test_kcrash_error_is_one_line_after_the_output(shell):
    status, out, err = run(shell, "fail")
    assert status == FAILED
    assert out == "partial output\n"
    assert err == "fail: page excluded: kernel virtual address: ffff888000000000\n"


def test_unexpected_exception_is_one_line_with_a_hint(shell):
    status, out, err = run(shell, "boom")
    assert status == FAILED
    assert err == "boom: unexpected error: KeyError: 'missing' (run with --debug for the traceback)\n"


def test_debug_prints_the_traceback(shell):
    shell.settings.debug = True
    status, _, err = run(shell, "boom")
    assert status == FAILED and "Traceback (most recent call last)" in err and "KeyError" in err


def test_usage_errors_print_the_synopsis(shell):
    status, _, err = run(shell, "say -z")
    assert status == FAILED
    assert (
        err == "say: invalid option -- 'z'\nUsage:\n  say [-u] [words ...]\nEnter \"help say\" for details.\n"
    )
    status, _, err = run(shell, "usage")
    assert err.startswith("usage: need something\nUsage:\n  usage\n")


def test_command_failed_prints_only_the_warning(shell):
    assert run(shell, "quiet") == (FAILED, "", "quiet: something is off\n")


def test_keyboard_interrupt_returns_to_the_shell(shell):
    status, out, err = run(shell, "interrupt")
    assert status == INTERRUPTED and out == "started\n\n" and err == ""
    assert run(shell, "say still alive")[1] == "still alive\n"


def test_a_batch_stops_at_ctrl_c_and_at_exit(shell):
    assert shell.run_lines(["say a", "interrupt", "say b"]) == INTERRUPTED
    assert shell.stdout.getvalue().splitlines() == ["a", "started", ""]
    assert shell.run_lines(["say c", "q", "say d"]) == OK
    assert shell.exited and shell.stdout.getvalue().splitlines()[-1] == "c"


def test_batch_status_is_the_worst(shell):
    assert shell.run_lines(["say a", "nosuch", "say b"]) == FAILED
    assert shell.stdout.getvalue().endswith("a\nb\n")


def test_semicolons_and_comments(shell):
    assert run(shell, "say a; say b # c; say d") == (OK, "a\nb\n", "")
    assert run(shell, "# nothing") == (OK, "", "")
    assert run(shell, "   ") == (OK, "", "")


def test_pipe_to_a_shell_pipeline(shell, tmp_path):
    target = tmp_path / "out"
    assert run(shell, f"many 5 | grep 'line [13]' | tr a-z A-Z > {target}")[0] == OK
    assert target.read_text() == "LINE 1\nLINE 3\n"


def test_pipe_reader_going_away_is_not_an_error(shell, tmp_path):
    target = tmp_path / "out"
    assert run(shell, f"many 200000 | head -1 > {target}") == (OK, "", "")
    assert target.read_text() == "line 0\n"


def test_redirect_and_append(shell, tmp_path):
    target = tmp_path / "out.txt"
    assert run(shell, f"say one > {target}") == (OK, "", "")
    assert run(shell, f"say two >> {target}") == (OK, "", "")
    assert target.read_text() == "one\ntwo\n"
    status, _, err = run(shell, "say x > /nonexistent/dir/file")
    assert status == FAILED and err == "say: /nonexistent/dir/file: No such file or directory\n"


def test_shell_escape(shell, tmp_path):
    target = tmp_path / "esc"
    assert run(shell, f"!echo hi; echo there > {target}")[0] == OK
    assert target.read_text() == "there\n"


def test_records_as_text_and_json(shell):
    assert run(shell, "points")[1] == "POINTS\n(1, 2)\nthree-four\n"
    assert run(shell, "gen")[1] == "HEADER\nPoint(x=5, y=6)\n"
    shell.settings.output = "json"
    lines = run(shell, "points")[1].splitlines()
    head = {"record": "point", "schema": 2}
    assert [json.loads(line) for line in lines] == [{**head, "x": 1, "y": 2}, {**head, "x": 3, "y": 4}]
    assert [json.loads(line) for line in run(shell, "gen")[1].splitlines()] == [{**head, "x": 5, "y": 6}]


def test_ctx_run_shares_the_output(shell, tmp_path):
    target = tmp_path / "n"
    run(shell, f"nested > {target}")
    assert target.read_text() == "outer\ninner\n"


def test_aliases_expand_the_first_word(shell):
    run(shell, "alias shout say -u")
    assert run(shell, "shout hi | cat")[0] == OK
    assert run(shell, "shout hey")[1] == "HEY\n"
    shell.aliases["loop"] = ("loop", "runtime")
    assert run(shell, "loop")[2] == "kcrash: command not found: loop\n"


def test_slash_suffix_and_bare_names(shell):
    assert run(shell, "p/x jiffies")[1] == "p[x] jiffies\n"
    assert run(shell, "say/x")[2] == "kcrash: command not found: say/x\n"
    # crash runs a bare symbol as `p SYMBOL`, a bare struct name as `struct NAME`.
    assert run(shell, "jiffies")[1] == "p[None] jiffies\n"
    assert run(shell, "task_struct 1")[1] == "struct task_struct ['1']\n"
    assert run(shell, "not_a_symbol")[2] == "kcrash: command not found: not_a_symbol\n"


def test_grammar_errors(shell):
    assert run(shell, "say 'open")[2] == "say: unbalanced quotes\n"
    assert run(shell, "| grep x")[2] == "kcrash: missing command before the redirection\n"


def test_no_colour_outside_a_terminal(shell):
    shell.interactive = True
    run(shell, "fail")
    assert "\x1b" not in shell.stderr.getvalue()


def test_pager_only_for_interactive_terminal_lines(shell, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    shell.stdout = Tty()
    assert type(shell.terminal_sink()).__name__ == "StreamSink"
    shell.interactive = True
    assert type(shell.terminal_sink()).__name__ == "PagerSink"
    shell.settings.scroll = False
    assert type(shell.terminal_sink()).__name__ == "StreamSink"
