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

KCRASH_SNIPPET = (
    "import sys; from kcrash.program import open_kernel; "
    "k = open_kernel(sys.argv[1], sys.argv[2]); print(k.object('init_task').comm.string())"
)


def run(cmd: list[str], env: dict | None = None, stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin, timeout=600)
    elapsed = time.perf_counter() - start
    return elapsed, proc.stdout + proc.stderr


def median_time(cmd, repeat, env=None, stdin=None, before=None, expect="swapper/0"):
    times = []
    out = ""
    for _ in range(repeat):
        if before:
            before()
        t, out = run(cmd, env=env, stdin=stdin)
        times.append(t)
    ok = expect in out
    return statistics.median(times), ok, out


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
        t, ok, _ = result
        return f"{t:8.2f}s" + ("" if ok else "!")

    print(f"kernel {manifest.get('kernel_release')}; median of {args.repeat}; '!' = did not print swapper/0")
    print(f"{'dump':28} {'kcrash cold':>11} {'kcrash warm':>11} {'drgn':>9} {'crash':>9}  drgn/kc  crash/kc")
    for name, cold, warm, drgn, crash in rows:
        ratio_d = f"{drgn[0] / warm[0]:7.1f}x" if drgn and drgn[1] else "     n/a"
        ratio_c = f"{crash[0] / warm[0]:8.1f}x" if crash and crash[1] else "      n/a"
        print(f"{name:28} {fmt(cold):>11} {fmt(warm):>11} {fmt(drgn):>9} {fmt(crash):>9} {ratio_d} {ratio_c}")
    shutil.rmtree(cache_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
