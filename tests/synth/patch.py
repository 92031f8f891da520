"""Copies of real ELF dumps with words rewritten: corrupt lists and trees (loops) for the walkers' tests."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

from kcrash.program import Kernel


def file_offsets(kernel: Kernel, vaddr: int) -> list[int]:
    """Where the byte at kernel virtual address `vaddr` lies in the ELF dump `kernel` was opened on:
    every copy (/proc/vmcore maps the kernel image's pages twice, and readers differ on which wins)."""
    paddr = kernel.vtop(vaddr)
    found = [
        seg.offset + paddr - seg.paddr
        for seg in kernel.memory.elf_segments
        if seg.paddr <= paddr < seg.paddr + seg.filesz
    ]
    if not found:
        raise ValueError(f"{vaddr:#x} (physical {paddr:#x}) is not in the dump's file")
    return found


def patched_elf_copy(kernel: Kernel, source: str | Path, dest: str | Path, words: Mapping[int, int]) -> Path:
    """Copy the ELF dump `source` (the one `kernel` reads) to `dest`, with each 64-bit word at a kernel
    virtual address in `words` replaced by its value."""
    dest = Path(dest)
    offsets = {offset: value for vaddr, value in words.items() for offset in file_offsets(kernel, vaddr)}
    shutil.copyfile(source, dest)
    with open(dest, "r+b") as f:
        for offset, value in offsets.items():
            f.seek(offset)
            f.write(struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))
    return dest
