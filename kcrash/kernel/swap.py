"""Swap devices: the kernel's swap_info[] array (struct swap_info_struct per swap file or partition), its
sizes and use, and the file each swap type is on."""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.fs import file_path
from kcrash.records import hex_field

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["SwapInfo", "swap_devices", "swap_file_name", "SWP_USED"]

SWP_USED = 1  # enum { SWP_USED = (1 << 0), ... } in include/linux/swap.h, unchanged since 2.6
_SWAP_MAP_BAD = 0x3F


@dataclass(frozen=True)
class SwapInfo:
    """One swap_info_struct in use."""

    address: int = hex_field()
    type: int = 0  # its index in swap_info[] (the swap type of its entries)
    partition: bool = False  # a block device (else a file)
    pages: int = 0  # usable pages
    inuse_pages: int = 0
    prio: int = 0
    filename: str = ""


@lru_cache(maxsize=8)
def _layout(k: Kernel) -> dict[str, tuple[int, int] | None]:
    t = k.type("struct swap_info_struct")

    def member(name: str) -> tuple[int, int] | None:
        hit = t.find_member(name)
        return None if hit is None else (hit[1] // 8, hit[0].type.strip().sizeof())

    return {
        "size": (0, t.sizeof()),
        "flags": member("flags"),
        "prio": member("prio"),
        "pages": member("pages"),
        "inuse_pages": member("inuse_pages"),
        "swap_file": member("swap_file"),
        "bdev": member("bdev"),
    }


def _swap_info_array(k: Kernel) -> tuple[int, int]:
    """(address, length) of swap_info[] — an array of pointers (2.6.33+)."""
    sym = k.symbols.lookup("swap_info")
    if sym is None or k.symbols.lookup("nr_swapfiles") is None:
        raise KcrashError("swap_info doesn't exist in this kernel!")
    try:
        _, vtype = k.variable_type("swap_info")
        length = (vtype.strip().sizeof() or 0) // 8
    except KcrashError:
        length = 0
    return sym.address, length or 32


def _field(raw: bytes, where: tuple[int, int] | None, signed: bool = False) -> int:
    if where is None:
        return 0
    offset, size = where
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
    return int(struct.unpack_from("<" + (fmt if signed else fmt.upper()), raw, offset)[0])


def _is_block_device(k: Kernel, file: int) -> bool:
    inode_t = k.find_type("struct file")
    hit = inode_t.find_member("f_inode") if inode_t is not None else None
    mode_t = k.find_type("struct inode")
    mode = mode_t.find_member("i_mode") if mode_t is not None else None
    if hit is None or mode is None:
        return False
    try:
        inode = k.read_u64(file + hit[1] // 8)
        return stat.S_ISBLK(k.read_u16(inode + mode[1] // 8))
    except MemoryReadError:
        return False


def swap_devices(k: Kernel) -> list[SwapInfo]:
    """The swap areas in use (SWP_USED), in swap_info[] order, as crash's `swap` lists them."""
    array, length = _swap_info_array(k)
    nr = k.read_u32(k.address_of("nr_swapfiles"))
    lay = _layout(k)
    out = []
    for i in range(min(nr, length)):
        try:
            address = k.read_u64(array + 8 * i)
            if not address:
                continue
            raw = k.read(address, lay["size"][1])  # type: ignore[index]
        except MemoryReadError:
            continue
        if not _field(raw, lay["flags"]) & SWP_USED:
            continue
        swap_file = _field(raw, lay["swap_file"])
        out.append(
            SwapInfo(
                address=address,
                type=i,
                partition=_is_block_device(k, swap_file) if swap_file else False,
                pages=_field(raw, lay["pages"]),
                inuse_pages=_field(raw, lay["inuse_pages"]),
                prio=_field(raw, lay["prio"], signed=True),
                filename=file_path(k, swap_file) if swap_file else "(unknown)",
            )
        )
    return out


def swap_file_name(k: Kernel, swap_type: int) -> str:
    """The file or device of a swap type, "(unknown swap location)" when there is none."""
    try:
        array, length = _swap_info_array(k)
        if swap_type >= length:
            return "(unknown swap location)"
        address = k.read_u64(array + 8 * swap_type)
        if not address:
            return "(unknown swap location)"
        lay = _layout(k)
        swap_file = _field(k.read(address, lay["size"][1]), lay["swap_file"])  # type: ignore[index]
    except (KcrashError, MemoryReadError):
        return "(unknown swap location)"
    return file_path(k, swap_file) if swap_file else "(unknown swap location)"
