#!/usr/bin/env python3
"""Expression timings: kcrash's native `p`/`struct`/`whatis` (first run, then warm), the gdb fallback
(the first one includes starting gdb and loading the vmlinux; then warm), and crash's `p` on the same
dump, in one run.

    python3 bench/bench_expr.py [--kernel 6.1] [--dump qemu.elf] [--repeat 20] [--no-crash]

kcrash runs in-process on an open Kernel through the shell, output discarded; "warm" is the median of
--repeat further runs. crash: one session running each command once and one running it 1+N times; the
per-command time is the difference divided by N (crash's start-up cancels out). Prints seconds.
The acceptance target: `p init_task.comm` and `struct task_struct init_task` under 0.05 s warm.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
sys.path.insert(0, str(HERE.parent))
import locate  # noqa: E402

NATIVE = [
    "p init_task.comm",
    "struct task_struct init_task",
    "p jiffies",
    "p init_task.se",
    "p ((struct task_struct *)&init_task)->sched_class->enqueue_task",
    "struct task_struct.pid,comm,__state init_task",
    "whatis task_struct",
    "ptype struct list_head",
    "p sizeof(struct task_struct)",
]
FALLBACK = "p $_strlen(init_task.comm)"
CRASH = ["p init_task.comm", "struct task_struct init_task", "p jiffies", "p init_task.se"]
TARGET = {"p init_task.comm": 0.05, "struct task_struct init_task": 0.05}


def _timed(shell, line: str) -> float:
    t0 = time.perf_counter()
    shell.execute(line)
    return time.perf_counter() - t0


def kcrash_times(vmlinux: str, dump: str, repeat: int) -> dict[str, tuple[float, float]]:
    from kcrash.program import Kernel
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    registry = Registry()
    registry.load_entry_points()
    kernel = Kernel(vmlinux, dump)
    err = io.StringIO()
    shell = Shell(kernel, registry=registry, stdout=io.StringIO(), stderr=err)
    results = {}
    for cmd in NATIVE:
        first = _timed(shell, cmd)
        warm = statistics.median(_timed(shell, cmd) for _ in range(repeat))
        results[cmd] = (first, warm)
    if shutil.which("gdb"):
        first = _timed(shell, FALLBACK)
        warm = statistics.median(_timed(shell, FALLBACK) for _ in range(max(3, repeat // 4)))
        results[f"{FALLBACK}  (gdb fallback)"] = (first, warm)
    if err.getvalue():
        print("kcrash errors:\n" + err.getvalue(), file=sys.stderr)
    from kcrash.expr.session import expr_session

    class _Ctx:
        state = shell.state

    _Ctx.kernel = kernel
    expr_session(_Ctx()).close()
    return results


def crash_times(vmlinux: str, dump: str, repeat: int) -> dict[str, float]:
    def session(lines: list[str]) -> float:
        script = "\n".join(lines + ["q"]) + "\n"
        t0 = time.perf_counter()
        subprocess.run(
            ["crash", "-s", vmlinux, dump], input=script, capture_output=True, text=True, timeout=900
        )
        return time.perf_counter() - t0

    base = session([])
    out = {}
    for cmd in CRASH:
        many = session([cmd] * (1 + repeat))
        out[cmd] = max(0.0, (many - base) / (1 + repeat))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--dump", default="qemu.elf")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-crash", action="store_true")
    ns = ap.parse_args()
    directory = locate.fixture_dir(ns.kernel)
    if directory is None:
        print(f"no {ns.kernel} fixtures: run tests/fixtures/build.py --kernel {ns.kernel}", file=sys.stderr)
        return 1
    vmlinux, dump = str(directory / "vmlinux"), str(directory / ns.dump)
    ours = kcrash_times(vmlinux, dump, ns.repeat)
    theirs = {} if ns.no_crash or not shutil.which("crash") else crash_times(vmlinux, dump, ns.repeat)
    print(f"{'command':<66} {'kcrash first':>12} {'kcrash warm':>12} {'crash':>8}")
    for cmd, (first, warm) in ours.items():
        crash = theirs.get(cmd)
        mark = ""
        if cmd in TARGET:
            mark = "  ok" if warm < TARGET[cmd] else f"  SLOW (target {TARGET[cmd]} s)"
        crash_text = f"{crash:8.4f}" if crash is not None else f"{'-':>8}"
        print(f"{cmd:<66} {first:12.4f} {warm:12.4f} {crash_text}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
