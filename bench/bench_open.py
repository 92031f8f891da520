#!/usr/bin/env python3
"""Start-up benchmark: process start -> ready kernel -> `init_task.comm` printed, for kcrash, drgn and crash
on the same dumps, in one run. Cold = kcrash's on-disk index cache emptied first (the page cache of the files
is warm for every tool alike: each is run once before timing).

    python3 bench/bench_open.py [--kernel 6.1] [--repeat 3]

Prints a table (seconds, median of --repeat runs) and the ratios to kcrash warm.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
import locate  # noqa: E402

# Prints "swapper/0 READY VARIABLE": seconds from process start to a ready Kernel (dump and vmlinux open,
# KASLR resolved, symbols loaded, linux_banner read) and then to the first typed variable (init_task.comm,
# which needs the DWARF index: built on a cold cache, loaded from it when warm).
KCRASH_SNIPPET = (
    "import sys, time; t0 = time.perf_counter(); from kcrash.program import open_kernel; "
    "k = open_kernel(sys.argv[1], sys.argv[2]); k.read_cstring(k.address_of('linux_banner')); "
    "t1 = time.perf_counter(); comm = k.object('init_task').comm.string(); t2 = time.perf_counter(); "
    "print(comm, f'{t1 - t0:.3f}', f'{t2 - t0:.3f}')"
)


def run(cmd: list[str], env: dict | None = None, stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin, timeout=600)
    elapsed = time.perf_counter() - start
    return elapsed, proc.stdout + proc.stderr


def median_time(cmd, repeat, env=None, stdin=None, before=None, expect="swapper/0"):
    """(median wall seconds, printed `expect`?, output, [median in-process phase times if printed])."""
    times = []
    phases: list[list[float]] = []
    out = ""
    for _ in range(repeat):
        if before:
            before()
        t, out = run(cmd, env=env, stdin=stdin)
        times.append(t)
        words = out.split()
        if len(words) >= 3 and words[0] == expect:
            try:
                phases.append([float(w) for w in words[1:3]])
            except ValueError:
                pass
    ok = expect in out
    phase = [statistics.median(p[i] for p in phases) for i in range(2)] if phases else None
    return statistics.median(times), ok, out, phase


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dumps", nargs="*", help="dump file names in the fixture dir (default: all)")
    args = ap.parse_args()
    d = locate.fixture_dir(args.kernel)
    if d is None:
        print(
            f"no {args.kernel} fixtures; run tests/fixtures/build.py --kernel {args.kernel}", file=sys.stderr
        )
        return 1
    manifest = json.loads((d / "manifest.json").read_text())
    vmlinux = str(d / manifest["vmlinux"]["file"])
    dumps = [e["file"] for e in manifest["dumps"]]
    if args.dumps:
        dumps = [x for x in dumps if x in args.dumps]
    cache_dir = tempfile.mkdtemp(prefix="kcrash-bench-cache-")
    env = dict(os.environ, KCRASH_CACHE_DIR=cache_dir)
    py = sys.executable
    rows = []
    for name in dumps:
        dump = str(d / name)
        kc = [py, "-c", KCRASH_SNIPPET, vmlinux, dump]

        def clear_cache():
            shutil.rmtree(cache_dir, ignore_errors=True)
            os.makedirs(cache_dir, exist_ok=True)

        run(kc, env=env)  # warm the OS page cache of the files
        cold = median_time(kc, args.repeat, env=env, before=clear_cache)
        run(kc, env=env)
        warm = median_time(kc, args.repeat, env=env)
        drgn = None
        if shutil.which("drgn"):
            dcmd = [
                "drgn",
                "-q",
                "-c",
                dump,
                "-s",
                vmlinux,
                "-e",
                "print(prog['init_task'].comm.string_().decode())",
            ]
            run(dcmd)
            drgn = median_time(dcmd, args.repeat)
            if not drgn[1]:
                dcmd = dcmd[:1] + ["--architecture", "x86_64"] + dcmd[1:]
                drgn = median_time(dcmd, args.repeat)
        crash = None
        if shutil.which("crash"):
            ccmd = ["crash", "-s", vmlinux, dump]
            crash = median_time(ccmd, max(1, args.repeat // 2), stdin="p init_task.comm\nq\n")
        rows.append((name, cold, warm, drgn, crash))

    def fmt(result):
        if result is None:
            return "      n/a"
        t, ok = result[0], result[1]
        return f"{t:8.2f}s" + ("" if ok else "!")

    def phase(result, i):
        return f"{result[3][i]:6.2f}s" if result and result[3] else "    n/a"

    print(f"kernel {manifest.get('kernel_release')}; median of {args.repeat}; '!' = did not print swapper/0")
    print("kcrash ready = process start to an open Kernel (KASLR, symbols, linux_banner read);")
    print("kcrash var = process start to init_task.comm (DWARF index built when cold, loaded when warm);")
    print("total = whole process wall time; drgn and crash: whole process printing init_task.comm.")
    print(
        f"{'dump':22} {'ready cold':>10} {'var cold':>9} {'ready warm':>10} {'var warm':>9} "
        f"{'total warm':>10} {'drgn':>9} {'crash':>9}  drgn/kc  crash/kc"
    )
    for name, cold, warm, drgn, crash in rows:
        ratio_d = f"{drgn[0] / warm[0]:7.1f}x" if drgn and drgn[1] else "     n/a"
        ratio_c = f"{crash[0] / warm[0]:8.1f}x" if crash and crash[1] else "      n/a"
        print(
            f"{name:22} {phase(cold, 0):>10} {phase(cold, 1):>9} {phase(warm, 0):>10} {phase(warm, 1):>9} "
            f"{fmt(warm):>10} {fmt(drgn):>9} {fmt(crash):>9} {ratio_d} {ratio_c}"
        )
    shutil.rmtree(cache_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
