#!/usr/bin/env python3
"""`search` timings: kcrash in-process against crash 9.0.2 on the same dump, in one run.

    python3 bench/bench_search.py [--kernel 6.1] [--dump qemu.elf] [--string "Linux version"]

kcrash: the command run through the shell on an open Kernel, first and second run (the search reads the
dump in bulk and caches nothing of it, so the second run is as warm as the file system's cache).  crash 9: a session running the search minus an empty
session (start-up cancels out).  Both search all kernel memory (`search -k -c STRING`: the direct map,
vmalloc and module space, vmemmap, the kernel text map) of the fixture's 1 GiB guest.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))
import locate  # noqa: E402
from harness import crash_session, kcrash_times  # noqa: E402
from oracles import crash9_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument(
        "--dump", action="append", help="fixture dump file(s) (default: qemu.elf, kdump-lzo.kdump)"
    )
    ap.add_argument("--string", default="Linux version")
    args = ap.parse_args()
    directory = locate.fixture_dir(args.kernel)
    if directory is None:
        sys.exit(f"no {args.kernel} fixtures (tests/fixtures/build.py --kernel {args.kernel})")
    vmlinux = str(directory / "vmlinux")
    command = f'search -k -c "{args.string}"'
    crash9 = crash9_path()
    print("| dump | size | kcrash | crash 9.0.2 |")
    print("|---|---|---|---|")
    for name in args.dump or ["qemu.elf", "kdump-lzo.kdump"]:
        dump = str(directory / name)
        size = pathlib.Path(dump).stat().st_size >> 20
        first, again = kcrash_times(vmlinux, dump, [command], 1)[command]
        if crash9 is None:
            cr = "—"
        else:
            empty = crash_session(vmlinux, dump, [], binary=crash9)
            full = crash_session(vmlinux, dump, [command], binary=crash9)
            cr = f"{full - empty:.1f} s"
        print(f"| {name} | {size} MiB | {first:.1f} s (again {again:.1f} s) | {cr} |", flush=True)


if __name__ == "__main__":
    main()
