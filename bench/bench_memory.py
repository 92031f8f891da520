"""Throughput of kcrash.memory: read every dumped page of each dump, page by page over ranges().

    python bench/bench_memory.py                    # every complete fixture set found
    python bench/bench_memory.py DIR_OR_DUMP ...    # fixture directories or dump files
    python bench/bench_memory.py --max-mib 256 ...  # stop each dump after 256 MiB
    python bench/bench_memory.py --oracles ...      # also drgn and crash reading the same memory

Excluded pages are skipped (is_excluded); pages that fail to read are counted, not fatal.
Fixture sets are found in $KCRASH_FIXTURE_DIR and $KCRASH_FIXTURES_DIR / ~/.cache/kcrash/fixtures.
Stdlib only, besides kcrash itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kcrash.errors import DumpError, MemoryReadError  # noqa: E402
from kcrash.memory import open_dump  # noqa: E402


def fixture_dumps() -> list[Path]:
    roots = []
    for var in ("KCRASH_FIXTURE_DIR", "KCRASH_FIXTURES_DIR"):
        if os.environ.get(var):
            roots.append(Path(os.environ[var]).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    roots.append(Path(cache) / "kcrash" / "fixtures")
    dumps: list[Path] = []
    for root in roots:
        for manifest in sorted([*root.glob("manifest.json"), *root.glob("*/manifest.json")]):
            dumps.extend(dumps_of(manifest.parent))
    return list(dict.fromkeys(dumps))


def dumps_of(directory: Path) -> list[Path]:
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return []
    if not manifest.get("complete"):
        return []
    return [directory / entry["file"] for entry in manifest.get("dumps", [])]


def bench(path: Path, max_bytes: int | None) -> dict:
    t0 = time.perf_counter()
    mem = open_dump(str(path))
    opened = time.perf_counter()
    page_size = mem.page_size
    read = excluded = errors = 0
    done = False
    for start, end in mem.ranges():
        for paddr in range(start, end, page_size):
            # spans may start or end mid-page (ELF segments): reads stay within the span
            if mem.is_excluded(paddr):
                excluded += 1
                continue
            try:
                mem.read(paddr, min(page_size, end - paddr))  # ELF segments may end mid-page
                read += 1
            except MemoryReadError:
                errors += 1
            if max_bytes is not None and read * page_size >= max_bytes:
                done = True
                break
        if done:
            break
    elapsed = time.perf_counter() - opened
    result = {
        "dump": f"{path.parent.name}/{path.name}",
        "format": mem.format_name,
        "open_ms": (opened - t0) * 1e3,
        "pages": read,
        "excluded": excluded,
        "errors": errors,
        "mib": read * page_size / 2**20,
        "seconds": elapsed,
        "ranges": mem.ranges(),
    }
    mem.close()
    return result


DRGN_READ_ALL = """
import sys, time
from drgn import FaultError
spans = [tuple(int(x, 16) for x in s.split("-")) for s in sys.argv[1].split(",")]
t = time.perf_counter(); n = 0
for start, end in spans:
    for paddr in range(start, end, 4096):
        try:
            prog.read(paddr, min(4096, end - paddr), True); n += 1
        except FaultError:
            pass
print(n, time.perf_counter() - t)
"""


def oracle_times(path: Path, mem_ranges: list[tuple[int, int]]) -> tuple[str, str]:
    """Seconds for drgn to read the same physical spans page by page, and for crash's `search -p` (which
    reads all physical memory) beyond crash's own start-up; '-' where a tool cannot open the dump."""
    import shutil
    import subprocess

    vmlinux = path.parent / "vmlinux"
    spans = ",".join(f"{a:x}-{b:x}" for a, b in mem_ranges)
    drgn = crash = "-"
    if shutil.which("drgn") and vmlinux.exists():
        for extra in ([], ["--architecture", "x86_64"]):
            proc = subprocess.run(
                ["drgn", "-q", *extra, "-c", str(path), "-s", str(vmlinux), "-e", DRGN_READ_ALL, spans],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0 and proc.stdout.split():
                drgn = f"{float(proc.stdout.split()[1]):.2f}"
                break
    if shutil.which("crash") and vmlinux.exists():

        def crash_run(script: str) -> float:
            t = time.perf_counter()
            subprocess.run(
                ["crash", "-s", str(vmlinux), str(path)], input=script, capture_output=True, text=True
            )
            return time.perf_counter() - t

        base = crash_run("q\n")
        full = crash_run("search -p deadbeefcafef00d\nq\n")
        crash = f"{max(0.0, full - base):.2f}"
    return drgn, crash


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="fixture directories or dump files")
    parser.add_argument("--max-mib", type=float, help="read at most this much of each dump")
    parser.add_argument("--oracles", action="store_true", help="time drgn and crash reading the same memory")
    args = parser.parse_args()
    dumps: list[Path] = []
    for arg in args.paths:
        p = Path(arg)
        dumps.extend(dumps_of(p) if p.is_dir() else [p])
    if not args.paths:
        dumps = fixture_dumps()
    if not dumps:
        print("no dumps: build fixtures with tests/fixtures/build.py or name dump files", file=sys.stderr)
        return 1
    max_bytes = int(args.max_mib * 2**20) if args.max_mib else None
    header = (
        f"{'dump':40} {'format':24} {'open ms':>8} {'pages':>8} {'excl':>8} {'err':>5} "
        f"{'MiB':>8} {'s':>7} {'MiB/s':>8} {'pages/s':>9}" + ("  drgn s  crash s" if args.oracles else "")
    )
    print(header)
    print("-" * len(header))
    for path in dumps:
        try:
            r = bench(path, max_bytes)
        except DumpError as exc:
            print(f"{path.name:40} {exc.why}")
            continue
        rate = r["mib"] / r["seconds"] if r["seconds"] else 0.0
        pages_rate = r["pages"] / r["seconds"] if r["seconds"] else 0.0
        print(
            f"{r['dump'][-40:]:40} {r['format']:24} {r['open_ms']:8.1f} {r['pages']:8d} {r['excluded']:8d} "
            f"{r['errors']:5d} {r['mib']:8.1f} {r['seconds']:7.2f} {rate:8.1f} {pages_rate:9.0f}"
            + ("  {:>6}  {:>7}".format(*oracle_times(path, r["ranges"])) if args.oracles else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
