"""`python -m kcrash.debuginfo.dwarf VMLINUX`: build the DWARF index cache (what
DwarfIndex.build_in_background runs in a child process)."""

from __future__ import annotations

import mmap
import os
import sys

from kcrash.debuginfo import cache
from kcrash.debuginfo.dwarf.index import INDEX_VERSION, DwarfIndex


def main(argv: list[str]) -> int:
    """Build the index cache of the vmlinux at argv[0] unless it exists or another process builds it."""
    path = argv[0]
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sections = cache.elf_sections(mm, path)
    key = cache.build_id(mm, sections)
    if key is None or cache.exists(key, "dwarf-index"):
        return 0
    lock = cache.mark_building(key, "dwarf-index")
    if lock is None:
        return 0
    try:
        os.nice(10)
        cache.store(key, "dwarf-index", INDEX_VERSION, DwarfIndex.build(path, mm, sections))
    finally:
        lock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
