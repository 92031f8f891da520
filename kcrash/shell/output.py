"""Where a command's output goes: the terminal (through a pager when long), a shell pipeline, or a file;
and how records become JSON.

A sink is anything with `write(str)`, `close()` and `isatty`.  The shell opens one sink per command line.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, TextIO

from kcrash.errors import KcrashError
from kcrash.records import JSON_SCHEMA, json_dec, json_hex, json_kind

__all__ = [
    "Sink",
    "StreamSink",
    "PagerSink",
    "PipeSink",
    "FileSink",
    "pager_command",
    "to_jsonable",
    "json_line",
    "colour_allowed",
]


class Sink:
    """Base sink: text goes to `stream`."""

    isatty = False

    def write(self, text: str) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """The command was interrupted: stop what can be stopped, then close."""
        self.close()


class StreamSink(Sink):
    """Writes to an open text stream (stdout, a StringIO in tests). Never closes it."""

    def __init__(self, stream: TextIO, isatty: bool | None = None) -> None:
        self.stream = stream
        if isatty is None:
            try:
                isatty = stream.isatty()
            except (AttributeError, ValueError):
                isatty = False
        self.isatty = isatty

    def write(self, text: str) -> None:
        self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


def pager_command() -> list[str] | None:
    """The pager: $KCRASH_PAGER, else `less -E -X -R` (crash's default, plus -R for colour), else `more`."""
    configured = os.environ.get("KCRASH_PAGER")
    if configured is not None:
        return shlex.split(configured) or None
    if shutil.which("less"):
        return ["less", "-E", "-X", "-R"]
    if shutil.which("more"):
        return ["more"]
    return None


class PagerSink(Sink):
    """Terminal output that switches to a pager once it outgrows the screen.

    Output is held back until it has more lines than the terminal (minus the prompt line); short output
    is then written straight to the terminal, long output starts the pager and streams into it.  So that
    a slow command does not look stuck, what is held is shown when the command calls flush(), or when
    it writes again after HOLD_SECONDS; lines shown that way count towards the screenful.
    """

    isatty = True
    HOLD_SECONDS = 0.5

    def __init__(self, stream: TextIO, command: list[str], lines: int | None = None) -> None:
        self.stream = stream
        self.command = command
        self.limit = max(2, (lines or shutil.get_terminal_size().lines) - 1)
        self.held: list[str] = []
        self.lines = 0  # lines held or already shown
        self.since = 0.0
        self.process: subprocess.Popen[str] | None = None
        self.failed = False

    def write(self, text: str) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(text)
            return
        if self.failed:
            self.stream.write(text)
            return
        now = time.monotonic()
        if not self.held:
            self.since = now
        self.held.append(text)
        self.lines += text.count("\n")
        if self.lines > self.limit:
            self._start()
        elif now - self.since > self.HOLD_SECONDS:
            self._show_held()

    def _show_held(self) -> None:
        self.stream.write("".join(self.held))
        self.held.clear()
        self.stream.flush()

    def _start(self) -> None:
        self.stream.flush()
        try:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, text=True, encoding="utf-8", errors="replace"
            )
        except OSError:
            self.failed = True
            self._show_held()
            return
        assert self.process.stdin is not None
        self.process.stdin.write("".join(self.held))
        self.held.clear()

    def flush(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.flush()
        elif self.held:
            self._show_held()

    def close(self) -> None:
        if self.process is None:
            self._show_held()
            return
        _close_quietly(self.process.stdin)
        _wait(self.process)

    def abort(self) -> None:
        self.close()


class PipeSink(Sink):
    """`cmd | shell pipeline`: the pipeline is the user's own, run by /bin/sh as crash does."""

    def __init__(self, pipeline: str, stdout: TextIO | None = None) -> None:
        self.pipeline = pipeline
        out = stdout if stdout is not None else sys.stdout
        try:
            out.flush()
        except (OSError, ValueError):
            pass
        try:
            self.process = subprocess.Popen(
                pipeline, shell=True, stdin=subprocess.PIPE, text=True, encoding="utf-8", errors="replace"
            )
        except OSError as e:
            raise KcrashError(f"cannot run pipeline: {e.strerror}") from None

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)

    def flush(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.flush()

    def close(self) -> None:
        _close_quietly(self.process.stdin)
        _wait(self.process)

    def abort(self) -> None:
        _close_quietly(self.process.stdin)
        _wait(self.process, timeout=2.0)


class FileSink(Sink):
    """`cmd > file` and `cmd >> file`."""

    def __init__(self, path: str, append: bool) -> None:
        self.path = os.path.expanduser(path)
        try:
            self.file = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise KcrashError(f"{path}: {e.strerror}") from None

    def write(self, text: str) -> None:
        self.file.write(text)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _close_quietly(stream: Any) -> None:
    if stream is None:
        return
    try:
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _wait(process: subprocess.Popen[str], timeout: float | None = None) -> None:
    """Wait for a pager or pipeline. Ctrl-C here reaches it too (same process group): keep waiting."""
    while True:
        try:
            process.wait(timeout=timeout)
            return
        except KeyboardInterrupt:
            continue
        except subprocess.TimeoutExpired:
            process.kill()
            timeout = None


def colour_allowed(stream: TextIO) -> bool:
    """Colour only on a terminal, and not when the user opted out (NO_COLOR, TERM=dumb)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_SAFE_INT = 1 << 53  # beyond it a double (jq, JavaScript) loses digits


def to_jsonable(value: Any) -> Any:
    """A record (dataclass), or anything inside one, as plain JSON data: fields declared hex or dec
    (kcrash.records) as strings, and any other integer too large for a double as a decimal string."""
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return value if -_SAFE_INT < value < _SAFE_INT else str(value)
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_jsonable(to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            kind = json_kind(f)
            if kind == "hex":
                item = json_hex(item)
            elif kind == "dec":
                item = json_dec(item)
            out[f.name] = to_jsonable(item)
        return out
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def record_name(record: Any) -> str:
    """The "record" of a JSON line: the record's class name, snake case, less a "Record" suffix (PsRecord:
    "ps", BacktraceRecord: "backtrace", MemoryLine: "memory_line")."""
    name = type(record).__name__.removesuffix("Record")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def json_line(record: Any) -> str:
    """One record as one line of JSON, led by its record name and the layout's schema version."""
    data = to_jsonable(record)
    if isinstance(data, dict):
        data = {"record": record_name(record), "schema": JSON_SCHEMA, **data}
    return json.dumps(data, ensure_ascii=False) + "\n"
