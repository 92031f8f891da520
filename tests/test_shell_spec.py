"""The command declaration and its getopt-style argument parser."""

from __future__ import annotations

import pytest

from kcrash.shell.spec import Argument, CommandSpec, Option, UsageError, parse_arguments, parse_help_text


def spec(options=(), arguments=(), **kw) -> CommandSpec:
    return CommandSpec(
        "cmd", lambda ctx, args: None, "a command", options=tuple(options), arguments=tuple(arguments), **kw
    )


RD = spec(
    options=[
        Option("-x", help="no ascii"),
        Option("-s", help="symbolic"),
        Option("-64", help="64-bit words"),
        Option("-e", metavar="end", help="end address"),
        Option("-F", count=True, help="frames"),
        Option("-c", metavar="cpu", multiple=True, type=int, help="cpus"),
        Option("--long", help="a long option"),
        Option("--name", metavar="NAME", help="a long option with a value"),
    ],
    arguments=[Argument("address"), Argument("count", nargs="?", type=int)],
)


def test_flags_cluster_and_values_attach_or_follow():
    args = parse_arguments(RD, ["-sx", "ffff", "-eabc", "4"])
    assert (args.s, args.x, args.e, args.address, args.count) == (True, True, "abc", "ffff", 4)
    args = parse_arguments(RD, ["-e", "abc", "ffff"])
    assert args.e == "abc" and args.count is None


def test_defaults():
    args = parse_arguments(RD, ["ffff"])
    assert (args.x, args.e, args.F, args.c, args.opt_64, args.long, args.name) == (
        False,
        None,
        0,
        [],
        False,
        False,
        None,
    )


def test_whole_token_options_count_and_multiple():
    args = parse_arguments(RD, ["-64", "-FF", "-F", "-c", "1", "-c2", "ffff"])
    assert args.opt_64 is True and args.F == 3 and args.c == [1, 2]


def test_options_anywhere_and_double_dash():
    args = parse_arguments(RD, ["ffff", "-x", "2"])
    assert args.x and args.address == "ffff" and args.count == 2
    args = parse_arguments(RD, ["--", "-x"])
    assert args.address == "-x" and not args.x


def test_negative_numbers_are_arguments():
    args = parse_arguments(spec(arguments=[Argument("n", nargs="*")]), ["-5", "-0x10", "-"])
    assert args.n == ["-5", "-0x10", "-"]


def test_long_options():
    args = parse_arguments(RD, ["--long", "--name=x", "a"])
    assert args.long and args.name == "x"
    args = parse_arguments(RD, ["--name", "y", "a"])
    assert args.name == "y"
    with pytest.raises(UsageError, match="unrecognized option '--nope'"):
        parse_arguments(RD, ["--nope", "a"])
    with pytest.raises(UsageError, match="doesn't allow an argument"):
        parse_arguments(RD, ["--long=1", "a"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-z", "a"], "invalid option -- 'z'"),
        (["a", "-e"], "option requires an argument -- 'e'"),
        ([], "missing argument: address"),
        (["a", "1", "2"], "unexpected argument: 2"),
        (["a", "many"], "invalid count value: many"),
        (["-c", "x", "a"], "invalid -c value: x"),
    ],
)
def test_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(RD, argv)


def test_nargs_assignment():
    s = spec(arguments=[Argument("a"), Argument("rest", nargs="*"), Argument("last")])
    args = parse_arguments(s, ["1", "2", "3", "4"])
    assert (args.a, args.rest, args.last) == ("1", ["2", "3"], "4")
    s = spec(arguments=[Argument("opt", nargs="?"), Argument("req")])
    args = parse_arguments(s, ["x"])
    assert (args.opt, args.req) == (None, "x")
    s = spec(arguments=[Argument("many", nargs="+")])
    with pytest.raises(UsageError, match="missing argument: many"):
        parse_arguments(s, [])


def test_choices():
    s = spec(options=[Option("-o", metavar="fmt", choices=["text", "json"], help="format")])
    assert parse_arguments(s, ["-o", "json"]).o == "json"
    with pytest.raises(UsageError, match="choose from text, json"):
        parse_arguments(s, ["-o", "xml"])


def test_raw_commands_take_every_token():
    s = spec(options=[Option("-b", help="bits")], arguments=[Argument("expr", nargs="+")], raw=True)
    args = parse_arguments(s, ["-b", "-1", "+", "2"], raw="-b -1 + 2")
    assert args.expr == ["-b", "-1", "+", "2"] and args.raw == "-b -1 + 2" and args.b is False


def test_synopsis_is_generated_from_the_spec():
    assert RD.synopsis() == "cmd [-xsF] [-64] [-e end] [-c cpu] [--long] [--name NAME] address [count]"
    given = spec(help={"SYNOPSIS": "cmd [-x] addr"})
    assert given.synopsis() == "cmd [-x] addr"


def test_bad_declarations_fail_at_import_time():
    with pytest.raises(ValueError):
        Option("x", help="no dash")
    with pytest.raises(ValueError):
        spec(options=[Option("-a", help="1"), Option("-a", help="2")])
    with pytest.raises(ValueError):
        Argument("a", nargs=2)
    with pytest.raises(ValueError):
        Argument("a", complete="bogus")


def test_help_text_sections():
    sections = parse_help_text(
        """
        Intro line.

        SYNOPSIS
        cmd [-x]

        EXAMPLES
          kcrash> cmd
        """
    )
    assert sections == {"DESCRIPTION": "Intro line.", "SYNOPSIS": "cmd [-x]", "EXAMPLES": "kcrash> cmd"}
