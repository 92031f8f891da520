#!/usr/bin/env python3
"""`ps` benchmark: the time of one `ps` (every task, crash's columns) in kcrash, next to crash and drgn doing
the same work on the same dump, in one run.

    python3 bench/bench_ps.py [--kernel 6.1] [--dumps kdump-lzo.kdump qemu.elf] [--repeat 20]

kcrash: in-process, after the Kernel is open; "cold" is the first `ps` of the session (walks the task lists
and reads every task_struct and mm_struct), "warm" the median of the next --repeat runs (the task table is
cached: a dump does not change). crash: (session with `ps` typed --repeat times - session with none) /
--crash-repeat (start-up, the median of three empty sessions, is not counted); crash 8.0.2 lists only the tasks its table has (4 on the 6.1 dumps),
so its figure is for less work (and noisy: start-up varies by ~0.1 s). drgn: in-process, for_each_task() with pid, comm, state letter, parent pid,
total_vm and the mm's RSS counters of every task: the first pass ("cold") and the median of --repeat passes.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
import locate  # noqa: E402

DRGN_SNIPPET = """
import statistics, sys, time
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_state_to_char
def once():
    rows = []
    for t in for_each_task(prog):
        mm = t.mm
        vm = rss = 0
        if mm.value_():
            vm = mm.total_vm.value_()
            st = mm.rss_stat
            try:
                rss = st.count[0].counter.value_() + st.count[1].counter.value_()
            except (AttributeError, LookupError):
                rss = st[0].count.value_() + st[1].count.value_()
        rows.append((t.pid.value_(), t.comm.string_(), task_state_to_char(t), t.parent.pid.value_(), vm, rss))
    return rows
t0 = time.perf_counter(); n = len(once()); cold = time.perf_counter() - t0
times = []
for _ in range(int(sys.argv[-1]) if sys.argv[-1].isdigit() else REPEAT):
    t0 = time.perf_counter(); once(); times.append(time.perf_counter() - t0)
print("DRGN", n, f"{cold:.4f}", f"{statistics.median(times):.4f}")
"""


def kcrash_times(vmlinux: str, dump: str, repeat: int) -> tuple[float, float, float, int]:
    """(open seconds, first ps, median warm ps, rows)."""
    from kcrash.program import open_kernel
    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    t0 = time.perf_counter()
    k = open_kernel(vmlinux, dump)
    opened = time.perf_counter() - t0
    registry = Registry()
    registry.load_entry_points()
    out = io.StringIO()
    shell = Shell(k, registry=registry, stdout=out, stderr=io.StringIO())
    t0 = time.perf_counter()
    shell.execute("ps")
    cold = time.perf_counter() - t0
    rows = len(out.getvalue().splitlines()) - 1
    warm = []
    for _ in range(repeat):
        out.seek(0)
        out.truncate()
        t0 = time.perf_counter()
        shell.execute("ps")
        warm.append(time.perf_counter() - t0)
    return opened, cold, statistics.median(warm), rows


def crash_time(vmlinux: str, dump: str, repeat: int) -> tuple[float, int] | None:
    if not shutil.which("crash"):
        return None

    def session(n: int) -> tuple[float, str]:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["crash", "-s", vmlinux, dump],
            input="ps\n" * n + "q\n",
            capture_output=True,
            text=True,
            timeout=900,
        )
        return time.perf_counter() - t0, proc.stdout

    session(0)  # page cache
    base = statistics.median(session(0)[0] for _ in range(3))
    full, out = session(repeat)
    if "PID    PPID" not in out:
        return None
    rows = out.count("\n") // repeat - 1
    return max(full - base, 0.0) / repeat, rows


def drgn_time(vmlinux: str, dump: str, repeat: int, extra: list[str]) -> tuple[float, float, int] | None:
    if not shutil.which("drgn"):
        return None
    code = DRGN_SNIPPET.replace("REPEAT", str(repeat))
    proc = subprocess.run(
        ["drgn", "-q", *extra, "-c", dump, "-s", vmlinux, "-e", code],
        capture_output=True,
        text=True,
        timeout=900,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("DRGN "):
            _, n, cold, warm = line.split()
            return float(cold), float(warm), int(n)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--crash-repeat", type=int, default=200, help="ps commands in the timed crash session")
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
    entries = manifest["dumps"]
    if args.dumps:
        entries = [e for e in entries if e["file"] in args.dumps]
    print(f"kernel {manifest.get('kernel_release')}; ps of every task; warm = median of {args.repeat}")
    print(
        f"{'dump':22} {'open':>7} {'kc cold':>8} {'kc warm':>8} {'rows':>5} "
        f"{'crash/ps':>9} {'rows':>5} {'drgn cold':>9} {'drgn warm':>9} {'tasks':>5}"
    )
    for entry in entries:
        name = entry["file"]
        dump = str(d / name)
        opened, cold, warm, rows = kcrash_times(vmlinux, dump, args.repeat)
        crash = crash_time(vmlinux, dump, args.crash_repeat) if args.kernel == "6.1" else None
        drgn_info = entry.get("checks", {}).get("drgn", {})
        drgn = (
            drgn_time(vmlinux, dump, args.repeat, drgn_info.get("args", []))
            if drgn_info.get("status") == "ok"
            else None
        )
        c = f"{crash[0] * 1000:7.1f}ms {crash[1]:5}" if crash else f"{'n/a':>9} {'':5}"
        g = (
            f"{drgn[0] * 1000:7.1f}ms {drgn[1] * 1000:7.1f}ms {drgn[2]:5}"
            if drgn
            else f"{'n/a':>9} {'n/a':>9} {'':5}"
        )
        print(f"{name:22} {opened:6.2f}s {cold * 1000:6.1f}ms {warm * 1000:6.1f}ms {rows:5} {c} {g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
