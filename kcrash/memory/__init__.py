"""The physical-memory layer: open a crash dump of any supported format and read it by physical address.

    with open_dump("vmcore") as mem:
        page = mem.read(0x1000, mem.page_size)

Formats are recognised by their content: ELF64 vmcores, makedumpfile kdump-compressed ("KDUMP   ",
"DISKDUMP") and makedumpfile's flattened stream of either.
"""

from __future__ import annotations

import os
import stat
import struct

from kcrash.errors import DumpError

from .base import ElfSegment, Note, PhysicalMemory
from .elf import ELF_MAGIC, ElfMemory
from .flattened import FlattenedSource, is_flattened
from .kdump import KDUMP_SIGNATURES, KdumpMemory
from .source import ByteSource, FileSource

__all__ = ["PhysicalMemory", "Note", "ElfSegment", "open_dump"]


def open_dump(path: str, zero_excluded: bool = False) -> PhysicalMemory:
    """Open the dump at `path`; any problem with the file is a DumpError saying why."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise DumpError(path, "is a directory, not a crash dump")
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise DumpError(path, "not a seekable file; save the stream to a file first")
        source: ByteSource = FileSource(path)
    except OSError as exc:
        raise DumpError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        return _open_source(source, path, zero_excluded)
    except DumpError:
        source.close()
        raise
    except (struct.error, ValueError, IndexError, OverflowError, OSError, MemoryError) as exc:
        source.close()
        raise DumpError(path, f"corrupt dump ({type(exc).__name__}: {exc})") from exc


def _open_source(source: ByteSource, path: str, zero_excluded: bool) -> PhysicalMemory:
    head = source.pread(0, 16)
    if not head:
        raise DumpError(path, "empty file")
    flattened = is_flattened(head)
    if flattened:
        source = FlattenedSource(source, path)
        head = source.pread(0, 16)
        if not head:
            raise DumpError(path, "flattened stream holds no data")
    if head[:4] == ELF_MAGIC:
        return ElfMemory(source, path, zero_excluded, flattened=flattened)
    if head[:8] in KDUMP_SIGNATURES:
        return KdumpMemory(source, path, zero_excluded, flattened=flattened)
    if len(head) < 8 and (KDUMP_SIGNATURES[0].startswith(head) or ELF_MAGIC.startswith(head[:4])):
        raise DumpError(path, "truncated dump header")
    what = "not a crash dump (unknown format)"
    raise DumpError(path, what + (" inside the flattened stream" if flattened else ""))
