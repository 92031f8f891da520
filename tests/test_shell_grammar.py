"""crash's command-line grammar: `;`, `#`, `|`, `>`, `>>`, quotes and parentheses."""

from __future__ import annotations

import pytest

from kcrash.shell.grammar import (
    CommandLine,
    GrammarError,
    parse_command_line,
    split_commands,
    strip_comment,
    tokenize,
)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("sys; bt", ["sys", "bt"]),
        ("sys ;; bt ;", ["sys", "bt"]),
        ("alias x 'a; b'; sys", ["alias x 'a; b'", "sys"]),
        ("eval (1;2); sys", ["eval (1;2)", "sys"]),
        ("", []),
    ],
)
def test_split_commands(line, expected):
    assert split_commands(line) == expected


@pytest.mark.parametrize(
    "line, expected",
    [
        ("# all comment", ""),
        ("sys # trailing", "sys "),
        ("eval 2#3", "eval 2#3"),
        ("ps 'a #b'", "ps 'a #b'"),
    ],
)
def test_comments(line, expected):
    assert strip_comment(line) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ps | grep bash", CommandLine("ps", pipe="grep bash")),
        ("ps | grep a | wc -l > f", CommandLine("ps", pipe="grep a | wc -l > f")),
        ("log > /tmp/log.txt", CommandLine("log", redirect="/tmp/log.txt")),
        ("log >> '/tmp/my log'", CommandLine("log", redirect="/tmp/my log", append=True)),
        ("eval (1 | 2)", CommandLine("eval (1 | 2)")),
        ("eval (1 >> 2)", CommandLine("eval (1 >> 2)")),
        ("p task->comm", CommandLine("p task->comm")),
        ("p a[1] | cat", CommandLine("p a[1]", pipe="cat")),
        ('alias k "kmem | grep x"', CommandLine('alias k "kmem | grep x"')),
    ],
)
def test_pipes_and_redirects(text, expected):
    assert parse_command_line(text) == expected


@pytest.mark.parametrize("text", ["ps |", "ps >", "ps > a b", "ps > 'a"])
def test_bad_redirections(text):
    with pytest.raises(GrammarError):
        parse_command_line(text)


def test_word_and_argtext():
    cl = parse_command_line("  rd   -64  jiffies 4 ")
    assert cl.word == "rd" and cl.argtext == "-64  jiffies 4"


def test_tokenize():
    assert tokenize("-x 'a b' \"c d\" e\\ f") == ["-x", "a b", "c d", "e f"]
    assert tokenize("a ''") == ["a", ""]
    with pytest.raises(GrammarError):
        tokenize("'open")
