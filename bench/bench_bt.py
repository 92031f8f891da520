#!/usr/bin/env python3
"""`bt` timing on a fixture dump: kcrash warm (in-process), drgn (stack traces in one drgn process), crash
(a session running the command N times, minus a session that only quits, divided by N).

    python3 bench/bench_bt.py [--kernel 6.1] [--dump kdump-lzo.kdump] [-n 20]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
import locate  # noqa: E402
from harness import crash_session, kcrash_times  # noqa: E402

DRGN = """
import time
from drgn.helpers.linux.pid import find_task
t = time.perf_counter()
for _ in range({n}):
    trace = prog.stack_trace(prog.crashed_thread().object)
    [f.name for f in trace]
t1 = time.perf_counter()
for _ in range({n}):
    [f.name for f in prog.stack_trace(find_task(prog, {pid}))]
t2 = time.perf_counter()
print((t1 - t) / {n}, (t2 - t1) / {n})
"""


def crash_time(vmlinux: str, dump: str, cmd: str, n: int) -> float | None:
    if not shutil.which("crash"):
        return None
    base = crash_session(vmlinux, dump, [])
    full = crash_session(vmlinux, dump, [cmd] * n)
    return max(0.0, (full - base) / n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--dump", default="kdump-lzo.kdump")
    ap.add_argument("-n", type=int, default=20)
    args = ap.parse_args()
    d = locate.fixture_dir(args.kernel)
    if d is None:
        print("no fixtures", file=sys.stderr)
        return 1
    manifest = json.loads((d / "manifest.json").read_text())
    vmlinux, dump = str(d / "vmlinux"), str(d / args.dump)
    entry = next(e for e in manifest["dumps"] if e["file"] == args.dump)
    pid = manifest["boots"][entry["boot"]]["pids"]["kc-sleeper"]
    ours = kcrash_times(vmlinux, dump, ["bt", "bt -a", f"bt {pid}"], args.n)
    drgn = (None, None)
    if shutil.which("drgn"):
        proc = subprocess.run(
            ["drgn", "-q", "-c", dump, "-s", vmlinux, "-e", DRGN.format(n=args.n, pid=pid)],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            drgn = tuple(float(x) for x in proc.stdout.split()[:2])
    print(f"{manifest['kernel_release']} {args.dump}; kcrash in-process (first / warm median of {args.n});")
    print("drgn: prog.stack_trace in one process, per call; crash: (session with N commands - empty) / N")
    print(f"{'command':14} {'kcrash 1st':>10} {'kcrash warm':>11} {'drgn':>8} {'crash':>8}")
    rows = [("bt", drgn[0]), ("bt -a", None), (f"bt {pid}", drgn[1])]
    for cmd, dt in rows:
        first, warm = ours[cmd]
        ct = (
            crash_time(vmlinux, dump, cmd, args.n) if cmd != f"bt {pid}" else None
        )  # crash 8.0.2 cannot see it
        fmt = lambda v: f"{v * 1000:7.1f}ms" if v is not None else "     n/a"  # noqa: E731
        print(f"{cmd:14} {fmt(first):>10} {fmt(warm):>11} {fmt(dt):>8} {fmt(ct):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
