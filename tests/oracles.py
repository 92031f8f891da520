"""Run the reference tools (Debian's crash, drgn) on a fixture dump, once per session, for differential tests.

`crash_outputs(vmlinux, dump, commands)` runs every command in one session of Debian 12's crash (8.0.2) and
splits the output per command with `!echo` markers (crash's shell escape), so a dump costs one crash start
(~7 s), not one per command. `crash9_outputs` does the same with unstable's crash 9.0.2 (set up by
tests/fixtures/crash9.py, the main oracle for the commands born after 8.0.2 stopped reading Debian's
kernels). `drgn_eval(vmlinux, dump, code)` runs a drgn script and returns its stdout.

Answers are kept on disk beside the dump (`oracle-cache/` in its fixture directory), keyed by the tool's
binary (path, size, mtime; drgn's version), the vmlinux and dump files (path, size, mtime) and the exact
input: a rebuilt fixture set or another tool version asks again, a second run of the suite does not.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys

__all__ = ["crash9_outputs", "crash_outputs", "drgn_eval", "have_crash", "have_crash9", "have_drgn"]

_MARK = "===kcrash-oracle==="


def have_crash() -> bool:
    return shutil.which("crash") is not None


def crash9_path() -> str | None:
    """The crash 9 wrapper when tests/fixtures/crash9.py has set it up (setup.sh and the fixture build do)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parent / "fixtures"))
    try:
        import crash9
    finally:
        sys.path.pop(0)
    found = crash9.cached()
    return str(found) if found else None


def have_crash9() -> bool:
    return crash9_path() is not None


def have_drgn() -> bool:
    return shutil.which("drgn") is not None


def _file_identity(path: str) -> list:
    real = os.path.realpath(path)
    st = os.stat(real)
    return [real, st.st_size, st.st_mtime_ns]


def _tool_identity(tool: str) -> list:
    if tool == "drgn":
        return ["drgn", importlib.metadata.version("drgn")]
    if tool == "crash9":
        wrapper = crash9_path()
        if wrapper is None:
            return [tool, None]
        return [*_file_identity(wrapper), (pathlib.Path(wrapper).parents[1] / "version").read_text().strip()]
    found = shutil.which(tool)
    return _file_identity(found) if found else [tool, None]


def _disk_cached(tool: str, vmlinux: str, dump: str, request: list, compute):
    """compute()'s JSON-able answer, from oracle-cache/ beside the dump when this exact question was asked."""
    key = json.dumps([_tool_identity(tool), _file_identity(vmlinux), _file_identity(dump), request])
    directory = pathlib.Path(dump).parent / "oracle-cache"
    path = directory / f"{tool}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    answer = compute()
    if not answer:
        return answer  # a session that printed nothing is not an answer worth keeping
    directory.mkdir(exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(answer))
    tmp.replace(path)  # atomic: parallel test workers may race to write the same answer
    return answer


@functools.lru_cache(maxsize=64)
def _crash_run(tool: str, vmlinux: str, dump: str, commands: tuple[str, ...]) -> dict[str, str]:
    binary = "crash" if tool == "crash" else crash9_path()
    if binary is None:
        raise RuntimeError("crash 9 is not set up: run python3 tests/fixtures/crash9.py")
    return _disk_cached(
        tool, vmlinux, dump, list(commands), lambda: _crash_session(binary, vmlinux, dump, commands)
    )


def _crash_session(binary: str, vmlinux: str, dump: str, commands: tuple[str, ...]) -> dict[str, str]:
    script = (
        "".join(f"!echo {_MARK}{i}\n{cmd}\n" for i, cmd in enumerate(commands)) + f"!echo {_MARK}end\nq\n"
    )
    # crash's gdb prints a char array's UTF-8 characters as such under a UTF-8 locale, as octal escapes
    # under C: the oracle answers under C.UTF-8 wherever the suite runs.
    env = dict(os.environ, LC_ALL="C.UTF-8")
    proc = subprocess.run(
        [binary, "-s", vmlinux, dump], input=script, capture_output=True, text=True, timeout=600, env=env
    )
    out: dict[str, str] = {}
    current = None
    lines: list[str] = []
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            if current is not None:
                out[commands[current]] = "\n".join(lines)
            tag = line[len(_MARK) :]
            current = None if tag == "end" else int(tag)
            lines = []
        elif current is not None:
            lines.append(line)
    return out


def crash_outputs(vmlinux: str, dump: str, commands: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{command: crash 8.0.2's output} — one crash session for all of them."""
    return _crash_run("crash", vmlinux, dump, tuple(commands))


def crash9_outputs(vmlinux: str, dump: str, commands: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{command: crash 9's output} — one session of unstable's crash for all of them."""
    return _crash_run("crash9", vmlinux, dump, tuple(commands))


@functools.lru_cache(maxsize=64)
def drgn_eval(vmlinux: str, dump: str, code: str, extra: tuple[str, ...] = ()) -> str:
    return _disk_cached(
        "drgn", vmlinux, dump, [code, list(extra)], lambda: _drgn_run(vmlinux, dump, code, extra)
    )


def _drgn_run(vmlinux: str, dump: str, code: str, extra: tuple[str, ...]) -> str:
    proc = subprocess.run(
        ["drgn", "-q", *extra, "-c", dump, "-s", vmlinux, "-e", code],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"drgn failed on {dump}: {proc.stderr.strip()[-500:]}")
    return proc.stdout
