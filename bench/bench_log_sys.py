#!/usr/bin/env python3
"""`log` and `sys` timings: kcrash in-process (first run after opening the dump, then warm), crash and drgn
doing the same work on the same dump, in one run.

    python3 bench/bench_log_sys.py [--kernel 6.1] [--dump kdump-lzo.kdump] [--repeat 5]

kcrash: the command run through the shell in-process on an open Kernel; "first" includes reading the log
buffer, "warm" is the median of --repeat further runs (the parsed records are cached per Kernel).
crash: a session running the command once and one running it 1+N times; the per-command time is the
difference divided by N (N >= 20; crash's ~6 s start-up cancels out). drgn: get_dmesg() / its `sys` command timed
inside one drgn process, first and warm. Prints a table in seconds.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
sys.path.insert(0, str(HERE.parent))
import locate  # noqa: E402
from harness import crash_session, kcrash_times  # noqa: E402

COMMANDS = ["log", "log -T", "log -m", "sys"]

DRGN_SNIPPET = """
import json, sys, time, io, contextlib
from drgn.helpers.linux.printk import get_dmesg
def timed(fn, repeat):
    t0 = time.perf_counter(); fn(); first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); warm.append(time.perf_counter() - t0)
    warm.sort()
    return first, warm[len(warm) // 2]
repeat = int(sys.argv[-1]) if sys.argv[-1].isdigit() else 5
out = {"log": timed(lambda: get_dmesg(prog), repeat)}
try:
    from drgn.commands._crash._sys import _print_sys
    def sys_cmd():
        with contextlib.redirect_stdout(io.StringIO()):
            _print_sys(prog)
    out["sys"] = timed(sys_cmd, repeat)
except Exception as e:
    out["sys_error"] = str(e)
print(json.dumps(out))
"""


def crash_times(vmlinux: str, dump: str, repeat: int) -> dict[str, float]:
    if shutil.which("crash") is None:
        return {}
    out = {}
    crash_session(vmlinux, dump, [])  # warm the page cache for crash too
    n = max(20, 4 * repeat)  # enough runs that the command outweighs the noise of crash's start-up
    for cmd in COMMANDS:
        once = crash_session(vmlinux, dump, [cmd])
        many = crash_session(vmlinux, dump, [cmd] * (1 + n))
        out[cmd] = max(0.0, (many - once) / n)
    return out


def drgn_times(vmlinux: str, dump: str, repeat: int, extra: list[str]) -> dict:
    if shutil.which("drgn") is None:
        return {}
    proc = subprocess.run(
        ["drgn", "-q", *extra, "-c", dump, "-s", vmlinux, "-e", DRGN_SNIPPET, str(repeat)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (proc.stderr or proc.stdout)[-300:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--dump", default="kdump-lzo.kdump")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    directory = locate.fixture_dir(args.kernel)
    if directory is None:
        print(
            f"no {args.kernel} fixtures: run tests/fixtures/build.py --kernel {args.kernel}", file=sys.stderr
        )
        return 1
    manifest = json.loads((directory / "manifest.json").read_text())
    vmlinux = str(directory / manifest["vmlinux"]["file"])
    dump = str(directory / args.dump)
    entry = next(d for d in manifest["dumps"] if d["file"] == args.dump)
    drgn_extra = entry.get("checks", {}).get("drgn", {}).get("args", [])

    mine = kcrash_times(vmlinux, dump, COMMANDS, args.repeat)
    theirs = crash_times(vmlinux, dump, args.repeat) if args.kernel == "6.1" else {}
    drgn = drgn_times(vmlinux, dump, args.repeat, drgn_extra)

    print(f"{manifest['kernel_release']} {args.dump}  (seconds; kcrash open {mine['open'][0]:.3f})")
    print(
        f"{'command':<10} {'kcrash first':>12} {'kcrash warm':>12} {'crash':>8} {'drgn first':>11} {'drgn warm':>10}"
    )
    for cmd in COMMANDS:
        first, warm = mine[cmd]
        crash = theirs.get(cmd)
        d = drgn.get("log" if cmd == "log" else "sys" if cmd == "sys" else "", None)
        print(
            f"{cmd:<10} {first:12.3f} {warm:12.3f} {crash if crash is not None else float('nan'):8.3f} "
            f"{d[0] if d else float('nan'):11.3f} {d[1] if d else float('nan'):10.3f}"
        )
    if "error" in drgn or "sys_error" in drgn:
        print(f"drgn: {drgn.get('error') or drgn.get('sys_error')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
