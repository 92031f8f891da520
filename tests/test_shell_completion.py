"""Tab completion (commands, options, symbols, files, variables) and the prompt_toolkit REPL, driven
through a pipe input: no terminal needed."""

from __future__ import annotations

import time

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from shell_fakes import FakeKernel, make_shell

from kcrash.debuginfo.symbols import Symbol
from kcrash.shell.completion import MAX_COMPLETIONS, KcrashCompleter, SymbolIndex
from kcrash.shell.repl import make_session, run_repl


def complete(shell, text: str) -> list[str]:
    completer = KcrashCompleter(shell)
    event = CompleteEvent(completion_requested=True)
    return [c.text for c in completer.get_completions(Document(text, len(text)), event)]


@pytest.fixture
def shell():
    return make_shell()


def test_command_names_and_aliases(shell):
    assert complete(shell, "he") == ["help", "hex"]
    assert complete(shell, "ex") == ["exit", "extend"]
    assert complete(shell, "sys; ev") == ["eval"]


def test_options(shell):
    assert complete(shell, "extend -") == ["-u"]
    assert complete(shell, "set -") == ["-v", "-c", "-p", "-a"]


def test_symbols(shell):
    assert complete(shell, "eval jiff") == ["jiffies", "jiffies_64"]
    assert complete(shell, "eval 1 + sched") == ["schedule", "schedule_timeout"]
    assert complete(shell, "eval ") == []  # never the whole symbol table on an empty word
    assert complete(shell, "nosuchcmd jiff") == []


def test_other_argument_kinds(shell, tmp_path):
    assert complete(shell, "help ev") == ["eval"]
    assert complete(shell, "help in") == ["input"]
    assert complete(shell, "set ra") == ["radix"]
    assert complete(shell, "alias ") == []
    assert complete(shell, "alias x ev") == ["eval"]
    (tmp_path / "plugin_one.py").write_text("")
    assert complete(shell, f"extend {tmp_path}/plug") == ["in_one.py"]
    assert complete(shell, f"eval 1 > {tmp_path}/plu") == ["gin_one.py"]
    assert complete(shell, "eval 1 | gre") == []
    assert complete(shell, "!ls jiff") == []


def test_symbol_index_prefix_search():
    names = ["b", "abc", "abd", "ab", "a", "abc", "ac", "b\u00ff"]
    index = SymbolIndex(lambda: names)
    assert index.prefixed("ab") == ["ab", "abc", "abd"]
    assert index.prefixed("b") == ["b", "b\u00ff"]
    assert index.prefixed("z") == []
    assert index.count("a") == 5
    names.append("abz")  # the source grew (module symbols): rebuilt once
    assert index.prefixed("ab") == ["ab", "abc", "abd", "abz"]


def test_completion_stays_instant_with_a_vmlinux_worth_of_symbols():
    words = ["sched", "task", "kmem", "vfs", "tcp", "ext4", "irq", "rcu", "mm", "x86"]
    symbols = [
        Symbol(f"{words[i % 10]}_{i:06d}_{words[(i // 10) % 10]}", 0xFFFFFFFF81000000 + i * 16, 16, "T")
        for i in range(130_000)
    ]
    shell = make_shell(kernel=FakeKernel(symbols))
    completer = KcrashCompleter(shell)
    event = CompleteEvent(completion_requested=True)
    start = time.perf_counter()
    list(completer.get_completions(Document("eval s", 6), event))  # builds the index once
    build = time.perf_counter() - start
    start = time.perf_counter()
    for prefix in ("sched_0001", "tcp_12", "x86_129999", "rcu_", "zzz"):
        text = f"eval {prefix}"
        found = list(completer.get_completions(Document(text, len(text)), event))
        assert len(found) <= MAX_COMPLETIONS
    per_query = (time.perf_counter() - start) / 5
    assert build < 1.0, f"building the index took {build:.3f}s"
    assert per_query < 0.02, f"a completion took {per_query * 1000:.1f} ms"


def test_repl_reads_runs_and_exits_on_eof(shell, tmp_path, monkeypatch):
    monkeypatch.setenv("KCRASH_HISTORY", str(tmp_path / "history"))
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("eval 0x10\r")
        pipe.send_text("nosuch\r")
        pipe.send_text("\x04")  # Ctrl-D on an empty line
        run_repl(shell, make_session(shell, input=pipe, output=DummyOutput()))
    assert "hexadecimal: 10  \n" in shell.stdout.getvalue()
    assert shell.stderr.getvalue() == "kcrash: command not found: nosuch\n"
    assert (tmp_path / "history").read_text().count("+eval 0x10") == 1
    assert not shell.interactive


def test_repl_tab_completes_and_q_exits(shell, tmp_path, monkeypatch):
    monkeypatch.setenv("KCRASH_HISTORY", str(tmp_path / "history"))
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("eval init_t\t\r")
        pipe.send_text("q\r")
        pipe.send_text("eval 1\r")  # never read: q ended the session
        run_repl(shell, make_session(shell, input=pipe, output=DummyOutput()))
    out = shell.stdout.getvalue()
    assert out.startswith("hexadecimal: ffffffff8261a940  \n")
    assert shell.exited and out.count("hexadecimal") == 1
