"""The shell's own commands: help, alias, set, eval, extend, exit; and every command's help page."""

from __future__ import annotations

import json

import pytest
from shell_fakes import make_shell, run

from kcrash.commands import context_hook
from kcrash.commands.builtin_eval import evaluate, parse_number
from kcrash.errors import KcrashError
from kcrash.shell.core import FAILED, OK
from kcrash.shell.helppage import help_page, mentions
from kcrash.shell.registry import Registry


@pytest.fixture
def shell():
    return make_shell()


# --- help ---------------------------------------------------------------------------------------------


def test_help_menu_is_crash_layout(shell):
    status, out, _ = run(shell, "help")
    lines = out.splitlines()
    assert status == OK and lines[0] == ""
    names = sorted(s.name for s in shell.registry.commands())
    rows = (len(names) + 4) // 5
    assert lines[1] == "".join(f"{n:<15}" for n in names[0::rows]).rstrip()
    assert 'For help on any command above, enter "help <command>".' in lines
    assert out.endswith('For help on output options, enter "help output".\n\n')


def test_help_page_sections(shell):
    out = run(shell, "help eval")[1]
    assert out.startswith("\nNAME\n  eval - evaluate\n\nSYNOPSIS\n  eval [-b][-l] (expression) | value\n")
    assert "\nDESCRIPTION\n  This command evaluates" in out and "\nEXAMPLES\n  kcrash> eval" in out


def test_help_for_aliases_topics_and_unknown(shell):
    assert run(shell, "help q")[1] == run(shell, "help exit")[1]
    assert "NAME\n  help - get help" in run(shell, "help man")[1]  # a shell alias
    assert "Input to kcrash is a command line" in run(shell, "help input")[1]
    assert "set output json" in run(shell, "help output")[1]
    assert run(shell, "help nosuch") == (FAILED, "", 'help: no such command or help topic: "nosuch"\n')


def all_commands():
    registry = Registry()
    registry.load_entry_points()
    return registry.commands()


@pytest.mark.parametrize("spec", all_commands(), ids=lambda s: s.name)
def test_every_command_has_a_help_page_mentioning_each_option(spec):
    """Every registered command (built-in, entry-point plugins): NAME, SYNOPSIS, each option documented."""
    page = help_page(spec)
    assert f"NAME\n  {spec.name} - " in page
    assert spec.summary.strip(), f"{spec.name}: no one-line summary"
    assert "\nSYNOPSIS\n  " in page
    for opt in spec.options:
        assert opt.help.strip(), f"{spec.name}: option {opt.flags[0]} has no help text"
        for flag in opt.flags:
            assert mentions(page, flag), f"help {spec.name} does not mention {flag}"


def test_undescribed_options_are_listed_in_the_page():
    from kcrash.shell.spec import Argument, CommandSpec, Option

    spec = CommandSpec(
        "x",
        lambda c, a: None,
        "do x",
        options=(Option("-a", help="all of them"), Option("-c", metavar="cpu", help="one cpu")),
        arguments=(Argument("task", help="a task"),),
        help={"DESCRIPTION": "Does x. -a is fun."},
    )
    page = help_page(spec)
    assert "  Does x. -a is fun.\n\n          task  a task\n        -c cpu  one cpu\n" in page
    assert "all of them" not in page


# --- eval ---------------------------------------------------------------------------------------------


def test_eval_prints_crash_format(shell):
    # crash's print_number(): note the two trailing blanks after hexadecimal and decimal.
    assert run(shell, "eval 0x1000 + 16")[1] == (
        "hexadecimal: 1010  \n"
        "    decimal: 4112  \n"
        "      octal: 10020\n"
        "     binary: 0000000000000000000000000000000000000000000000000001000000010000\n"
    )
    assert run(shell, "eval 128m")[1].splitlines()[0] == "hexadecimal: 8000000  (128MB)"
    assert run(shell, "eval 4k")[1].splitlines()[0] == "hexadecimal: 1000  (4KB)"
    assert run(shell, "eval 0x40000000")[1].splitlines()[0] == "hexadecimal: 40000000  (1GB)"
    assert run(shell, "eval -1")[1].splitlines()[1] == "    decimal: 18446744073709551615  (-1)"


def test_eval_bits_set(shell):
    out = run(shell, "eval -b 0x8000000000000101")[1]
    assert out.splitlines()[-1] == "   bits set: 63 8 0 "
    many = run(shell, "eval -b -1")[1].splitlines()
    assert many[4].startswith("   bits set: 63 62 ") and many[5].startswith(" " * 13)
    assert all(len(line) <= 80 for line in many)


@pytest.mark.parametrize(
    "expr, value",
    [
        ("0x10 + 10", 26),
        ("ff", 255),
        ("10", 10),
        ("2 * 3 + 4", 10),
        ("2 * (3 + 4)", 14),
        ("(1 << 32)", 1 << 32),
        ("~0", (1 << 64) - 1),
        ("-1 + 2", 1),
        ("7 % 4", 3),
        ("0xf0 & 0x3c", 0x30),
        ("(0xf0 | 0x0f)", 0xFF),
        ("0xf0 ^ 0xff", 0x0F),
        ("2 # 10", 1024),
        ("jiffies", 0xFFFFFFFF82A05000),
        ("jiffies + 8", 0xFFFFFFFF82A05008),
        ("1g", 1 << 30),
    ],
)
def test_evaluate(expr, value):
    from shell_fakes import FakeKernel

    assert evaluate(expr, FakeKernel()) == value


@pytest.mark.parametrize("expr", ["1 +", "(1", "1 / 0", "nosuchsymbol", "1 $ 2", ""])
def test_evaluate_errors(expr):
    with pytest.raises(KcrashError):
        evaluate(expr, None)


def test_parse_number():
    assert parse_number("10") == 10 and parse_number("10", hex_default=True) == 16
    assert parse_number("0x10") == 16 and parse_number("ffff") == 0xFFFF and parse_number("xyz") is None


def test_eval_errors_and_json(shell):
    assert run(shell, "eval 1 +") == (FAILED, "", "eval: invalid expression: 1 +\n")
    shell.settings.output = "json"
    assert json.loads(run(shell, "eval 5")[1]) == {
        "record": "eval_result",
        "schema": 2,
        "value": "0x5",  # 64-bit values are strings: a double (jq, JavaScript) would lose digits
        "signed": "5",
        "bits_set": [2, 0],
        "show_bits": False,
    }


# --- alias --------------------------------------------------------------------------------------------


def test_alias_list_create_show_delete(shell):
    out = run(shell, "alias")[1].splitlines()
    assert out[0] == "ORIGIN   ALIAS    COMMAND"
    assert "builtin  man      help" in out and "builtin  sf       set scroll off" in out
    assert run(shell, "alias ev eval -b") == (
        OK,
        "ORIGIN   ALIAS    COMMAND\nruntime  ev       eval -b\n",
        "",
    )
    assert run(shell, "alias ev")[1] == "ORIGIN   ALIAS    COMMAND\nruntime  ev       eval -b\n"
    assert run(shell, 'alias evp "eval 1 | cat"')[0] == OK
    assert shell.aliases["evp"] == ("eval 1 | cat", "runtime")
    assert run(shell, 'alias ev ""') == (OK, "alias deleted: ev\n", "")
    assert run(shell, "alias ll ls -l") == (
        FAILED,
        "",
        "alias: invalid alias attempt on non-existent command: ls\n",
    )
    assert run(shell, "alias help eval")[0] == FAILED
    assert run(shell, "alias nosuch")[0] == FAILED


# --- set ----------------------------------------------------------------------------------------------


def test_set_variables(shell):
    assert run(shell, "set radix 16") == (OK, "output radix: 16 (hex)\n", "")
    assert shell.settings.radix == 16
    assert run(shell, "dec")[1] == "output radix: 10 (decimal)\n"  # crash's built-in alias
    assert run(shell, "sf")[1].startswith("scroll: off (")
    assert shell.settings.scroll is False
    assert run(shell, "set scroll")[1].startswith("scroll: off")
    assert (
        run(shell, "set output json")[1]
        == '{"record": "setting", "schema": 2, "name": "output", "value": "json"}\n'
    )
    assert run(shell, "set output text")[1] == "output: text\n"
    assert run(shell, "set zero_excluded on")[1] == "zero_excluded: on\n"
    assert shell.kernel.memory.zero_excluded is True
    assert run(shell, "set radix 7") == (FAILED, "", "set: invalid command: set radix 7\n")
    assert run(shell, "set namelist x") == (FAILED, "", "set: namelist cannot be changed\n")
    assert run(shell, "set bogus") == (FAILED, "", "set: unknown variable or task: bogus\n")


def test_set_v_shows_all_variables_like_crash(shell):
    out = run(shell, "set -v")[1].splitlines()
    assert "         radix: 10 (decimal)" in out
    assert " zero_excluded: off" in out
    assert "      namelist: /fake/vmlinux" in out
    assert run(shell, "set")[1].splitlines() == out  # no task-context hook loaded


@context_hook
def fake_task_context(ctx, words):
    if words == []:
        ctx.print("PID: 1  (current context)")
        return True
    if words and words[0].isdigit():
        ctx.task = int(words[0])
        ctx.print(f"PID: {words[0]}")
        return True
    return False


def test_set_context_hooks():
    registry = Registry()
    registry.load_module("kcrash.commands", "kcrash", builtin=True)
    registry.load_module(__name__, "tests")
    shell = make_shell(registry)
    assert run(shell, "set")[1] == "PID: 1  (current context)\n"
    assert run(shell, "set 42")[1] == "PID: 42\n" and shell.task == 42
    assert run(shell, "set bogus")[0] == FAILED
    assert run(shell, "set radix 16")[1] == "output radix: 16 (hex)\n"


# --- exit ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["q", "quit", "exit"])
def test_exit(shell, word):
    assert run(shell, word)[0] == OK and shell.exited
