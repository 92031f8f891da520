#!/usr/bin/env python3
"""`sym`, `rd` and `dis` timings: kcrash in-process (first run after opening the dump, then warm), crash and
drgn doing the same commands on the same dump, in one run.

    python3 bench/bench_sym_rd_dis.py [--kernel 6.1] [--dump kdump-lzo.kdump] [--repeat 5]

kcrash: the command run through the shell in-process on an open Kernel; "first" is the first run of that
command in the session (the first command also builds crash's view of the symbol table, cached on disk
after the first session), "warm" the median of --repeat further runs.  crash: a session running the
command once and one running it 1+N times; the per-command time is the difference divided by N (N >= 20;
crash's start-up cancels out).  drgn: its crash-compatible `sym` and `rd` (drgn.commands.run_command
"crash sym ..."), first and warm, timed inside one drgn process; drgn has no `dis`.
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

COMMANDS = [
    "sym schedule",
    "sym {sched16}",
    "sym -q vfs_rea",
    "rd linux_banner 64",
    "rd -s init_task 64",
    "rd -a linux_banner",
    "dis schedule",
    "dis -l schedule",
    "dis __schedule",
    "dis -r {sched16}",
]
DRGN_COMMANDS = [
    "sym schedule",
    "sym {sched16}",
    "sym -q vfs_rea",
    "rd linux_banner 64",
    "rd -s init_task 64",
]

DRGN_SNIPPET = """
import contextlib, io, json, sys, time
from drgn.commands import run_command
def timed(cmd, repeat):
    def once():
        with contextlib.redirect_stdout(io.StringIO()):
            run_command(prog, "crash " + cmd)
    t0 = time.perf_counter(); once(); first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter(); once(); warm.append(time.perf_counter() - t0)
    warm.sort()
    return first, warm[len(warm) // 2]
cmds = json.loads(sys.argv[-2]); repeat = int(sys.argv[-1])
out = {}
for cmd in cmds:
    try:
        out[cmd] = timed(cmd, repeat)
    except Exception as e:
        out[cmd] = str(e)
print(json.dumps(out))
"""


def crash_times(vmlinux: str, dump: str, commands: list[str], repeat: int) -> dict[str, float]:
    if shutil.which("crash") is None:
        return {}
    out = {}
    crash_session(vmlinux, dump, [])
    n = max(20, 4 * repeat)
    for cmd in commands:
        # `rd -a` with no count leaves crash's output line open; a following `!echo` keeps runs apart.
        lines = [cmd, "!echo"] if cmd.startswith("rd -a") else [cmd]
        once = crash_session(vmlinux, dump, lines)
        many = crash_session(vmlinux, dump, lines * (1 + n))
        out[cmd] = max(0.0, (many - once) / n)
    return out


def drgn_times(vmlinux: str, dump: str, commands: list[str], repeat: int, extra: list[str]) -> dict:
    if shutil.which("drgn") is None:
        return {}
    proc = subprocess.run(
        [
            "drgn",
            "-q",
            *extra,
            "-c",
            dump,
            "-s",
            vmlinux,
            "-e",
            DRGN_SNIPPET,
            json.dumps(commands),
            str(repeat),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (proc.stderr or proc.stdout)[-300:]}


def schedule_plus_16(vmlinux: str, dump: str) -> str:
    from kcrash.program import Kernel

    with Kernel(vmlinux, dump) as k:
        return f"{k.address_of('schedule') + 16:x}"


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
    sched16 = schedule_plus_16(vmlinux, dump)
    commands = [c.format(sched16=sched16) for c in COMMANDS]
    drgn_commands = [c.format(sched16=sched16) for c in DRGN_COMMANDS]

    mine = kcrash_times(vmlinux, dump, commands, args.repeat)
    theirs = crash_times(vmlinux, dump, commands, args.repeat) if args.kernel == "6.1" else {}
    drgn = drgn_times(vmlinux, dump, drgn_commands, args.repeat, drgn_extra)

    nan = float("nan")
    print(f"{manifest['kernel_release']} {args.dump}  (seconds; kcrash open {mine['open'][0]:.3f})")
    print(
        f"{'command':<30} {'kcrash first':>12} {'kcrash warm':>12} {'crash':>8} {'drgn first':>11} {'drgn warm':>10}"
    )
    for cmd in commands:
        first, warm = mine[cmd]
        crash = theirs.get(cmd, nan)
        d = drgn.get(cmd)
        d = d if isinstance(d, list) else None
        print(
            f"{cmd:<30} {first:12.4f} {warm:12.4f} {crash:8.4f} "
            f"{d[0] if d else nan:11.4f} {d[1] if d else nan:10.4f}"
        )
    if "error" in drgn:
        print(f"drgn: {drgn['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
