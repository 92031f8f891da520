"""What the command benchmarks share: timing kcrash commands in one in-process shell, and timing a crash
session (crash's per-command time is measured as the difference of two sessions)."""

from __future__ import annotations

import io
import statistics
import subprocess
import time


def kcrash_times(vmlinux: str, dump: str, commands: list[str], repeat: int) -> dict[str, tuple[float, float]]:
    """{command: (first run, warm median of `repeat` runs)} in one shell; "open" is the Kernel's open time."""
    from kcrash.program import Kernel
    from kcrash.shell.context import Settings
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    registry = Registry()
    registry.load_entry_points()
    results: dict[str, tuple[float, float]] = {}
    t0 = time.perf_counter()
    kernel = Kernel(vmlinux, dump)
    results["open"] = (time.perf_counter() - t0, 0.0)
    shell = Shell(kernel, registry=registry, settings=Settings(), stdout=io.StringIO(), stderr=io.StringIO())
    for cmd in commands:
        t0 = time.perf_counter()
        shell.execute(cmd)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            shell.execute(cmd)
            warm.append(time.perf_counter() - t0)
        results[cmd] = (first, statistics.median(warm))
    return results


def crash_session(vmlinux: str, dump: str, lines: list[str], binary: str = "crash") -> float:
    """Wall seconds of one `crash -s` session running `lines` and quitting (`binary`: which crash)."""
    start = time.perf_counter()
    subprocess.run(
        [binary, "-s", vmlinux, dump],
        input="\n".join(lines + ["q"]) + "\n",
        capture_output=True,
        text=True,
        timeout=900,
    )
    return time.perf_counter() - start
