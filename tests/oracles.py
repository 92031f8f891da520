"""Run the reference tools (Debian's crash, drgn) on a fixture dump, once per session, for differential tests.

`crash_outputs(vmlinux, dump, commands)` runs every command in one crash session and splits the output per
command with `!echo` markers (crash's shell escape), so a dump costs one crash start (~7 s), not one per
command. `drgn_eval(vmlinux, dump, code)` runs a drgn script and returns its stdout.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

__all__ = ["crash_outputs", "drgn_eval", "have_crash", "have_drgn"]

_MARK = "===kcrash-oracle==="


def have_crash() -> bool:
    return shutil.which("crash") is not None


def have_drgn() -> bool:
    return shutil.which("drgn") is not None


@functools.lru_cache(maxsize=64)
def _crash_run(vmlinux: str, dump: str, commands: tuple[str, ...]) -> dict[str, str]:
    script = (
        "".join(f"!echo {_MARK}{i}\n{cmd}\n" for i, cmd in enumerate(commands)) + f"!echo {_MARK}end\nq\n"
    )
    proc = subprocess.run(
        ["crash", "-s", vmlinux, dump], input=script, capture_output=True, text=True, timeout=600
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
    """{command: crash's output} — one crash session for all of them."""
    return _crash_run(vmlinux, dump, tuple(commands))


@functools.lru_cache(maxsize=64)
def drgn_eval(vmlinux: str, dump: str, code: str, extra: tuple[str, ...] = ()) -> str:
    proc = subprocess.run(
        ["drgn", "-q", *extra, "-c", dump, "-s", vmlinux, "-e", code],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"drgn failed on {dump}: {proc.stderr.strip()[-500:]}")
    return proc.stdout
