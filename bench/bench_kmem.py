#!/usr/bin/env python3
"""`kmem` benchmark: `kmem -i` and `kmem -s` in kcrash next to crash 9.0.2 on the same dump, in one run.

    python3 bench/bench_kmem.py [--kernel 6.1] [--dumps kdump-zlib.kdump qemu-kdump.zlib] [--repeat 20]

kcrash: in-process, after the Kernel is open (bench/harness.py); "first" is the command's first run in the
session (loads the types it needs), "warm" the median of the next --repeat runs. Neither command caches its
result: every run reads the counters (and for -s every cache's slabs and freelists) from the dump again.
crash 9.0.2: (session with the command typed --crash-repeat times - session with none) / --crash-repeat,
start-up (the median of three empty sessions) not counted; crash gathers its slab cache list once at start-up.
Targets (issue 10): kmem -i <= 0.1 s, kmem -s <= 0.5 s warm.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
sys.path.insert(0, str(HERE))
from harness import crash_session, fixture, kcrash_times  # noqa: E402

COMMANDS = ["kmem -i", "kmem -s"]


def crash9() -> str | None:
    try:
        import crash9 as c9
    except ImportError:
        return None
    found = c9.cached()
    return str(found) if found else None


def crash_time(binary: str, vmlinux: str, dump: str, command: str, repeat: int) -> float:
    crash_session(vmlinux, dump, [], binary)  # page cache
    base = statistics.median(crash_session(vmlinux, dump, [], binary) for _ in range(3))
    full = crash_session(vmlinux, dump, [command] * repeat, binary)
    return max(full - base, 0.0) / repeat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--crash-repeat", type=int, default=50)
    ap.add_argument("--dumps", nargs="*", default=["kdump-zlib.kdump", "qemu-kdump.zlib"])
    args = ap.parse_args()
    found = fixture(args.kernel)
    if found is None:
        return 1
    d, manifest, vmlinux = found
    binary = crash9()
    print(f"kernel {manifest.get('kernel_release')}; warm = median of {args.repeat}; crash 9.0.2 per command")
    print(f"{'dump':20} {'command':10} {'kc first':>9} {'kc warm':>9} {'crash9':>9}")
    for name in args.dumps:
        dump = str(d / name)
        if not pathlib.Path(dump).exists():
            continue
        times = kcrash_times(vmlinux, dump, COMMANDS, args.repeat)
        for cmd in COMMANDS:
            first, warm = times[cmd]
            crash = crash_time(binary, vmlinux, dump, cmd, args.crash_repeat) if binary else None
            c = f"{crash * 1000:7.1f}ms" if crash is not None else f"{'n/a':>9}"
            print(f"{name:20} {cmd:10} {first * 1000:7.1f}ms {warm * 1000:7.1f}ms {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
