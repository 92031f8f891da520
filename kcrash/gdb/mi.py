"""kcrash's gdb: a `gdb --interpreter=mi3` child loaded with the vmlinux at the KASLR offset, whose
target is kcrash's own RSP server (kcrash.gdb.server) on a socket in a private directory.

Results come back as MI records: console stream records (`~"..."`) carry what gdb prints, the result
record (`^done` / `^error,msg="..."`) says whether the command worked. Started on first use, kept for
the session, started again if it died.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from typing import Any

from kcrash.errors import KcrashError

__all__ = ["GdbSession", "GdbError", "GdbMissing", "parse_c_string", "parse_record"]

STARTUP_TIMEOUT = 600.0
COMMAND_TIMEOUT = 120.0


class GdbError(KcrashError):
    """gdb reported an error (its message), or the gdb child failed."""


class GdbMissing(GdbError):
    """No gdb to fall back to."""


_ESC = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "e": "\x1b",
}


def parse_c_string(text: str, pos: int = 0) -> tuple[str, int]:
    """An MI C string starting at text[pos] == '"': (value, index after the closing quote)."""
    if text[pos : pos + 1] != '"':
        raise GdbError(f"malformed MI output: {text!r}")
    out: list[str] = []
    raw = bytearray()
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            if raw:
                out.append(raw.decode("utf-8", "replace"))
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567":
                j = i + 1
                while j < len(text) and j < i + 4 and text[j] in "01234567":
                    j += 1
                raw.append(int(text[i + 1 : j], 8) & 0xFF)
                i = j
                continue
            if raw:
                out.append(raw.decode("utf-8", "replace"))
                raw = bytearray()
            out.append(_ESC.get(nxt, nxt))
            i += 2
            continue
        if raw:
            out.append(raw.decode("utf-8", "replace"))
            raw = bytearray()
        out.append(c)
        i += 1
    raise GdbError(f"unterminated MI string: {text!r}")


def _mi_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RESULT = re.compile(r"^(\d*)\^(done|running|connected|error|exit)(,.*)?$")


def parse_record(line: str) -> tuple[str, Any]:
    """("stream", (kind, text)) | ("result", (token, class, fields text)) | ("async", line) | ("prompt", None)."""
    if line.startswith("(gdb)"):
        return "prompt", None
    if line[:1] in "~@&" and line[1:2] == '"':
        return "stream", (line[0], parse_c_string(line, 1)[0])
    m = _RESULT.match(line)
    if m:
        return "result", (m.group(1), m.group(2), (m.group(3) or "")[1:])
    return "async", line


def _field(fields: str, name: str) -> str | None:
    m = re.search(rf'(?:^|,){name}="', fields)
    if not m:
        return None
    return parse_c_string(fields, m.end() - 1)[0]


class GdbSession:
    """One gdb child for one Kernel."""

    def __init__(self, kernel: Any, task: Any = None, gdb_path: str | None = None) -> None:
        self.kernel = kernel
        path = gdb_path or os.environ.get("KCRASH_GDB") or shutil.which("gdb")
        if not path:
            raise GdbMissing("gdb is not installed: only the native evaluator is available")
        from kcrash.gdb.server import start_private_server

        self.socket_path, self.target, self._server, self._dir = start_private_server(kernel, task)
        self._token = 0
        self._lock = threading.Lock()
        self._lines: list[str] = []
        try:
            self.proc = subprocess.Popen(
                [path, "--interpreter=mi3", "-nx", "-q"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as e:
            self._cleanup_dir()
            raise GdbMissing(f"cannot start gdb ({path}): {e.strerror}") from None
        self._reader = _LineReader(self.proc.stdout)
        self.startup_seconds = 0.0
        started = time.monotonic()
        try:
            self._configure()
        except GdbError:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - started

    # --- start-up ---------------------------------------------------------------------------------------
    def _configure(self) -> None:
        k = self.kernel
        cache_dir = os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kcrash", "gdb"
        )
        for setting in (
            "pagination off",
            "confirm off",
            "width 0",
            "height 0",
            "print pretty on",
            "print elements 256",
            "print repeats unlimited",
            "may-call-functions off",
            "auto-load safe-path /nonexistent",
        ):
            self.run(f"-gdb-set {setting}", timeout=STARTUP_TIMEOUT)
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            self.console(f"set index-cache directory {cache_dir}", timeout=STARTUP_TIMEOUT)
            self.console("set index-cache enabled on", timeout=STARTUP_TIMEOUT)
        except (GdbError, OSError):
            pass  # an older gdb without the index cache: slower start, same answers
        offset = getattr(k, "kaslr_offset", 0) or 0
        vmlinux = k.vmlinux_path
        # Every section moves by the KASLR offset, the per-cpu one (linked at 0) too: left at 0, gdb
        # would name every small number (NULL included) `<fixed_percpu_data>`.
        self.console(f"symbol-file -o {offset:#x} {vmlinux}", timeout=STARTUP_TIMEOUT)
        self.console(f"target remote {self.socket_path}", timeout=STARTUP_TIMEOUT)

    # --- commands -----------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(
        self, mi_command: str, timeout: float = COMMAND_TIMEOUT
    ) -> tuple[str, str, list[tuple[str, str]]]:
        """Send one MI command: (result class, result fields, stream records [(kind, text)])."""
        if "\n" in mi_command or "\r" in mi_command or "\0" in mi_command:
            raise GdbError("a gdb command must be one line")
        with self._lock:
            if not self.alive():
                raise GdbError("gdb exited")
            self._token += 1
            token = str(self._token)
            assert self.proc.stdin is not None  # started with stdin=PIPE
            try:
                self.proc.stdin.write(f"{token}{mi_command}\n".encode())
                self.proc.stdin.flush()
            except OSError:
                raise GdbError("gdb exited") from None
            streams: list[tuple[str, str]] = []
            deadline = time.monotonic() + timeout
            while True:
                line = self._reader.readline(deadline - time.monotonic())
                if line is None:
                    if not self.alive():
                        raise GdbError("gdb exited")
                    raise GdbError(f"gdb did not answer within {timeout:.0f} s")
                kind, value = parse_record(line)
                if kind == "stream":
                    streams.append(value)
                elif kind == "result" and value[0] == token:
                    return value[1], value[2], streams

    def console(self, line: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """A CLI command through MI: what gdb printed; GdbError with gdb's message on failure."""
        result, fields, streams = self.run(f"-interpreter-exec console {_mi_quote(line)}", timeout)
        text = "".join(t for kind, t in streams if kind in "~@")
        if result == "error":
            message = _field(fields, "msg") or "gdb request failed"
            raise GdbError(message)
        return text

    def set_task(self, task: Any) -> None:
        """Make `task` the thread gdb sees (its registers); gdb's register cache is flushed on a change."""
        before = getattr(self.target.task, "address", None)
        self.target.set_task(task)
        if getattr(task, "address", None) != before:
            try:
                self.console("maintenance flush register-cache")
            except GdbError:
                pass

    def print_value(self, expression: str, fmt: str | None = None, radix: int = 10) -> str:
        """gdb's `print` of an expression: the value text after gdb's own `$N = `."""
        command = f"print/{fmt} {expression}" if fmt else f"print {expression}"
        if radix == 16:
            self.console("set output-radix 16")
        try:
            text = self.console(command)
        finally:
            if radix == 16:
                self.console("set output-radix 10")
        text = text.rstrip("\n")
        m = re.match(r"\$\d+ = ", text)
        return text[m.end() :] if m else text

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.write(b"-gdb-exit\n")
                proc.stdin.flush()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        path = getattr(self, "socket_path", None)
        directory = getattr(self, "_dir", None)
        for p in (path,):
            if p and os.path.exists(p):
                try:
                    os.unlink(p)
                except OSError:
                    pass
        if directory and os.path.isdir(directory):
            try:
                os.rmdir(directory)
            except OSError:
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _LineReader:
    """Lines from gdb's stdout with a timeout (a reader thread feeding a list)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False
        self.thread = threading.Thread(target=self._run, name="kcrash-gdb-mi", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        while True:
            try:
                chunk = (
                    self.stream.read1(65536)
                    if hasattr(self.stream, "read1")
                    else os.read(self.stream.fileno(), 65536)
                )
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                with self.cond:
                    self.eof = True
                    self.cond.notify_all()
                return
            buf += chunk
            *complete, buf = buf.split(b"\n")
            if complete:
                with self.cond:
                    self.lines.extend(line.decode("utf-8", "replace").rstrip("\r") for line in complete)
                    self.cond.notify_all()

    def readline(self, timeout: float) -> str | None:
        with self.cond:
            end = time.monotonic() + max(timeout, 0)
            while not self.lines:
                if self.eof:
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.lines.pop(0)
