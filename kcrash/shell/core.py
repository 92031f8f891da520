"""The shell proper: runs one command line at a time (aliases, `;`, pipes, redirects, `!`), turns every
failure into one line, and keeps the session's settings, aliases and state.  The REPL and the batch modes
feed it lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Iterable
from typing import Any, TextIO

from kcrash.errors import KcrashError
from kcrash.shell.context import Context, Settings
from kcrash.shell.grammar import (
    GrammarError,
    parse_command_line,
    split_commands,
    strip_comment,
    tokenize,
)
from kcrash.shell.output import (
    FileSink,
    PagerSink,
    PipeSink,
    Sink,
    StreamSink,
    colour_allowed,
    pager_command,
)
from kcrash.shell.registry import Registry
from kcrash.shell.spec import CommandFailed, CommandSpec, UsageError, parse_arguments

__all__ = ["Shell", "ExitShell", "OK", "FAILED", "INTERRUPTED", "BUILTIN_ALIASES"]

OK, FAILED, INTERRUPTED = 0, 1, 130
DEBUG_HINT = "(run with --debug for the traceback)"

# crash's built-in aliases (cmdline.c); an alias whose command does not exist yet just reports that.
BUILTIN_ALIASES = {
    "man": "help",
    "?": "help",
    "quit": "q",
    "sf": "set scroll off",
    "sn": "set scroll on",
    "hex": "set radix 16",
    "dec": "set radix 10",
    "g": "gdb",
    "px": "p -x",
    "pd": "p -d",
    "for": "foreach",
    "size": "*",
    "dmesg": "log",
    "lsmod": "mod",
    "last": "ps -l",
}


class ExitShell(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by `q`/`exit`: end the session after this command."""


class Shell:
    """A kcrash session over one Kernel."""

    def __init__(
        self,
        kernel: Any,
        *,
        registry: Registry | None = None,
        settings: Settings | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.kernel = kernel
        if registry is None:
            registry = Registry()
            registry.load_entry_points()
        self.registry = registry
        self.settings = settings or Settings()
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.aliases: dict[str, tuple[str, str]] = {k: (v, "builtin") for k, v in BUILTIN_ALIASES.items()}
        self.state: dict[str, Any] = {}
        self.task: Any = None
        self.interactive = False  # True while lines come from the REPL: pager and colour allowed
        # Where lines come from: "runtime", or "rcfile" while ~/.kcrashrc runs (alias/set are quiet then).
        self.source = "runtime"
        self.exited = False
        self.failures = 0

    # --- reporting ----------------------------------------------------------------------------------
    @property
    def colour_enabled(self) -> bool:
        return self.interactive and self.settings.colour and colour_allowed(self.stdout)

    def error_line(self, name: str, message: str) -> None:
        """Print `name: message` on stderr, after whatever the command already printed."""
        try:
            self.stdout.flush()
        except (OSError, ValueError):
            pass
        text = f"{name}: {message}" if name else message
        if self.interactive and self.settings.colour and colour_allowed(self.stderr):
            text = f"\x1b[31m{text}\x1b[0m"
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        self.error_line("kcrash", message)

    # --- running lines ------------------------------------------------------------------------------
    def run_lines(self, lines: Iterable[str]) -> int:
        """Run lines as a batch: stops at `q`/`exit` or Ctrl-C; returns the worst status."""
        worst = OK
        for line in lines:
            status = self.execute(line)
            if status == INTERRUPTED:
                return INTERRUPTED
            worst = max(worst, status)
            if self.exited:
                break
        return worst

    def execute(self, line: str, sink: Sink | None = None) -> int:
        """Run one input line; returns OK, FAILED or INTERRUPTED. Never raises (except SystemExit)."""
        text = line.strip()
        if text.startswith("!"):
            return self._shell_escape(text[1:].strip())
        worst = OK
        for part in split_commands(strip_comment(text)):
            if part.startswith("!"):
                status = self._shell_escape(part[1:].strip())
            else:
                status = self._execute_one(part, sink)
            if status == FAILED:
                self.failures += 1
            if status == INTERRUPTED:
                return INTERRUPTED
            worst = max(worst, status)
            if self.exited:
                break
        return worst

    def expand_alias(self, text: str) -> str:
        seen: set[str] = set()
        while True:
            word, _, rest = text.partition(" ")
            entry = self.aliases.get(word)
            if entry is None or word in seen:
                return text
            seen.add(word)
            text = f"{entry[0]} {rest}".strip()

    def resolve(self, word: str) -> tuple[CommandSpec | None, str | None]:
        """The command a word names, and the `/suffix` part of `p/x`-style words."""
        spec = self.registry.lookup(word)
        if spec is not None:
            return spec, None
        base, slash, suffix = word.partition("/")
        if slash and base:
            spec = self.registry.lookup(base)
            if spec is not None and spec.suffix:
                return spec, suffix
        return None, None

    def _bare_name(self, word: str) -> CommandSpec | None:
        """crash runs a bare symbol as `p SYMBOL` and a bare struct/union name as `struct NAME`."""
        kernel = self.kernel
        if kernel is None or not word.isidentifier():
            return None
        try:
            p = self.registry.lookup("p")
            if p is not None and kernel.symbols.lookup(word) is not None:
                return p
            for kind in ("struct", "union"):
                spec = self.registry.lookup(kind)
                if spec is not None and kernel.find_type(f"{kind} {word}") is not None:
                    return spec
        except (KcrashError, AttributeError):
            return None
        return None

    def _execute_one(self, text: str, sink: Sink | None) -> int:
        text = self.expand_alias(text)
        try:
            cl = parse_command_line(text)
        except GrammarError as e:
            self.error_line("kcrash", str(e))
            return FAILED
        word, argtext = cl.word, cl.argtext
        if not word:
            if cl.pipe or cl.redirect:
                self.error_line("kcrash", "missing command before the redirection")
                return FAILED
            return OK
        spec, suffix = self.resolve(word)
        if spec is None:
            spec = self._bare_name(word)
            if spec is None:
                self.error_line("kcrash", f"command not found: {word}")
                return FAILED
            argtext = cl.text.strip()
        try:
            tokens = tokenize(argtext)
            args = parse_arguments(spec, tokens, argtext, suffix)
        except UsageError as e:
            self._usage(spec, str(e))
            return FAILED
        except GrammarError as e:
            self.error_line(spec.name, str(e))
            return FAILED
        try:
            if cl.pipe is not None:
                out: Sink = PipeSink(cl.pipe, self.stdout)
            elif cl.redirect is not None:
                out = FileSink(cl.redirect, cl.append)
            elif sink is not None:
                out = sink
            else:
                out = self.terminal_sink()
        except KcrashError as e:
            self.error_line(spec.name, str(e))
            return FAILED
        return self._invoke(spec, args, out, owned=out is not sink)

    def terminal_sink(self) -> Sink:
        if self.interactive and self.settings.scroll and _isatty(self.stdout):
            command = pager_command()
            if command:
                return PagerSink(self.stdout, command)
        return StreamSink(self.stdout)

    def _invoke(self, spec: CommandSpec, args: Any, out: Sink, owned: bool) -> int:
        ctx = Context(self, spec, out)
        failure: BaseException | None = None
        status = OK
        try:
            result = spec.function(ctx, args)
            if result is not None and hasattr(result, "__next__"):
                for item in result:
                    if isinstance(item, str):
                        if not ctx.json:
                            ctx.write(item if item.endswith("\n") else item + "\n")
                    else:
                        ctx.emit(item)
            out.flush()
        except KeyboardInterrupt:
            status = INTERRUPTED
        except BrokenPipeError:
            pass  # the reader (pager, `| head`) went away: not an error
        except ExitShell:
            self.exited = True
        except Exception as e:  # reported below, after the output is closed
            failure = e
            status = FAILED
        if owned:
            self._close(out, aborted=status != OK)
        if status == INTERRUPTED:
            self._interrupted()
        elif failure is not None:
            self.report(spec.name, failure)
        return status

    def _close(self, out: Sink, aborted: bool) -> None:
        try:
            out.abort() if aborted else out.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        except KeyboardInterrupt:
            pass

    def _interrupted(self) -> None:
        try:
            self.stdout.write("\n")
            self.stdout.flush()
        except (OSError, ValueError):
            pass

    def report(self, name: str, e: BaseException) -> None:
        """One line for a failed command; a traceback only when debugging."""
        if isinstance(e, UsageError):
            spec = self.registry.lookup(name)
            if spec is not None:
                self._usage(spec, str(e))
                return
        if isinstance(e, CommandFailed) and not str(e):
            return
        if isinstance(e, KcrashError):
            self.error_line(name, str(e) or type(e).__name__)
            if self.settings.debug:
                traceback.print_exception(e, file=self.stderr)
            return
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        what = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        if self.settings.debug:
            self.error_line(name, f"unexpected error: {what}")
            traceback.print_exception(e, file=self.stderr)
        else:
            self.error_line(name, f"unexpected error: {what} {DEBUG_HINT}")

    def _usage(self, spec: CommandSpec, message: str) -> None:
        if message:  # crash prints the bare usage for a wrong combination of options
            self.error_line(spec.name, message)
        synopsis = "\n  ".join(spec.synopsis().splitlines())  # continuation lines keep the help's indent
        self.stderr.write(f'Usage:\n  {synopsis}\nEnter "help {spec.name}" for details.\n')
        self.stderr.flush()

    def _shell_escape(self, command: str) -> int:
        """`!cmd` runs a shell command; `!` alone starts an interactive shell."""
        try:
            self.stdout.flush()
        except (OSError, ValueError):
            pass
        argv = command or os.environ.get("SHELL") or "/bin/sh"
        try:
            process = subprocess.Popen(argv, shell=True)
        except OSError as e:
            self.error_line("kcrash", f"cannot run shell: {e.strerror}")
            return FAILED
        while True:
            try:
                process.wait()
                return OK
            except KeyboardInterrupt:
                continue  # the child got the same SIGINT; let it decide


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
