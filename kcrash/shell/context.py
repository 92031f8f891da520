"""What a running command sees: the Kernel, its output, the shell's settings, and session state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kcrash.kernel.panic import default_task
from kcrash.shell.output import Sink, json_line

if TYPE_CHECKING:
    from kcrash.objects import Object
    from kcrash.program import Kernel
    from kcrash.shell.core import Shell
    from kcrash.shell.spec import CommandSpec

__all__ = ["Settings", "Context", "TextLine"]


@dataclass(frozen=True)
class TextLine:
    """In JSON mode, a line of text a command printed without a record for it (so that standard output
    stays JSON lines): the command and crash's line."""

    command: str
    text: str


@dataclass
class Settings:
    """The shell variables `set` shows and changes (crash's names)."""

    radix: int = 10  # output radix of p/struct and friends: 10 or 16
    scroll: bool = True  # page long terminal output
    output: str = "text"  # "text" or "json"
    zero_excluded: bool = False  # read filtered-out pages as zeroes
    debug: bool = False  # print tracebacks of unexpected errors
    gdb: bool = True  # allow the gdb fallback (--no-gdb turns it off)
    colour: bool = True  # colour on terminals (never elsewhere)


class Context:
    """Passed to every command as `ctx`.

    Output: `ctx.print(...)` / `ctx.write(text)` for text; `ctx.emit(record)` for a structured record
    (a dataclass), printed as one JSON line in JSON mode and as text otherwise (the `text` argument, the
    command's `render` function, or `str(record)`).  `ctx.json` tells whether JSON was asked for, so a
    command can leave out headers.  Errors: raise a KcrashError (the shell prints `cmd: message`);
    `ctx.warn(message)` prints the same kind of line and carries on.
    """

    def __init__(self, shell: Shell, spec: CommandSpec | None, sink: Sink, name: str | None = None) -> None:
        self.shell = shell
        self.spec = spec
        self.out = sink
        self.name = name or (spec.name if spec else "kcrash")

    # --- what the command works on ------------------------------------------------------------------
    @property
    def kernel(self) -> Kernel:
        return self.shell.kernel

    @property
    def settings(self) -> Settings:
        return self.shell.settings

    @property
    def state(self) -> dict[str, Any]:
        """Session-wide storage for commands and plugins (value history, a gdb child, caches)."""
        return self.shell.state

    @property
    def task(self) -> Any:
        """The current context task (crash's `set PID`), or None until the task code sets one."""
        return self.shell.task

    @task.setter
    def task(self, value: Any) -> None:
        self.shell.task = value

    @property
    def context_task(self) -> Object:
        """The task commands work on (crash's current context): the one `set` chose, else the task the
        session starts in (the panic task, else CPU 0's idle task)."""
        if self.shell.task is not None:
            return self.shell.task
        return default_task(self.kernel)

    # --- output -------------------------------------------------------------------------------------
    @property
    def json(self) -> bool:
        return self.shell.settings.output == "json"

    @property
    def colour(self) -> bool:
        """True when output may carry ANSI colour: a terminal (or the pager), and colour not turned off."""
        return self.shell.colour_enabled and self.out.isatty

    def write(self, text: str) -> None:
        if self.json:
            for line in text.splitlines():
                if line.strip():
                    self.out.write(json_line(TextLine(self.name, line)))
            return
        self.out.write(text)

    def print(self, *values: object, sep: str = " ", end: str = "\n") -> None:
        self.write(sep.join(str(v) for v in values) + end)

    def emit(self, record: Any, text: str | Callable[[Any], str] | None = None) -> None:
        """Output one record: JSON in JSON mode, else its crash-style text."""
        if self.json:
            self.out.write(json_line(record))
            return
        if callable(text):
            rendered = text(record)
        elif text is not None:
            rendered = text
        elif self.spec is not None and self.spec.render is not None:
            rendered = self.spec.render(record)
        else:
            rendered = str(record)
        self.out.write(rendered if rendered.endswith("\n") else rendered + "\n")

    def warn(self, message: str) -> None:
        """A non-fatal error line, `cmd: message`, on stderr (crash's error(INFO, ...))."""
        self.out.flush()
        self.shell.error_line(self.name, message)

    def highlight(self, text: str, language: str) -> str:
        """`text` coloured by the pygments lexer for `language` when colour is on, else unchanged."""
        if not self.colour:
            return text
        from kcrash.shell.colour import highlight

        return highlight(text, language)

    def run(self, line: str) -> int:
        """Run another command line, its output going where this command's output goes."""
        return self.shell.execute(line, sink=self.out)

    @property
    def interactive(self) -> bool:
        """True when the line came from the prompt (not a batch): a command may ask questions."""
        return self.shell.interactive
