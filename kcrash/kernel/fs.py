"""Files and paths: the path name of a dentry in its mount (what crash prints for a mapped file)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["dentry_path", "file_path"]

_MAX_DEPTH = 256


@lru_cache(maxsize=8)
def _offsets(k: Kernel) -> dict[str, int | None]:
    def off(type_name: str, path: str) -> int | None:
        t = k.find_type(type_name)
        total = 0
        for part in path.split("."):
            if t is None:
                return None
            hit = t.find_member(part)
            if hit is None:
                return None
            total += hit[1] // 8
            t = hit[0].type
        return total

    return {
        "d_parent": off("struct dentry", "d_parent"),
        "d_name": off("struct dentry", "d_name.name"),
        "f_dentry": off("struct file", "f_path.dentry"),
        "f_vfsmnt": off("struct file", "f_path.mnt"),
        "mnt": off("struct mount", "mnt"),
        "mnt_parent": off("struct mount", "mnt_parent"),
        "mnt_mountpoint": off("struct mount", "mnt_mountpoint"),
        "mnt_root": off("struct vfsmount", "mnt_root"),
    }


def dentry_path(k: Kernel, dentry: int, vfsmount: int = 0) -> str:
    """The path of `dentry`, crossing mount points up to the root when its vfsmount is known (d_path)."""
    o = _offsets(k)
    if o["d_parent"] is None or o["d_name"] is None:
        raise KcrashError("no struct dentry in the debug info")
    names: list[str] = []
    mount = vfsmount - o["mnt"] if vfsmount and o["mnt"] is not None else 0
    for _ in range(_MAX_DEPTH):
        parent = k.read_u64(dentry + o["d_parent"])
        root = vfsmount and o["mnt_root"] is not None and dentry == k.read_u64(vfsmount + o["mnt_root"])
        if root or parent == dentry:
            if mount and o["mnt_parent"] is not None and o["mnt_mountpoint"] is not None:
                up = k.read_u64(mount + o["mnt_parent"])
                if up and up != mount:
                    dentry = k.read_u64(mount + o["mnt_mountpoint"])
                    mount = up
                    vfsmount = up + (o["mnt"] or 0)
                    continue
            break
        names.append(k.read_cstring(k.read_u64(dentry + o["d_name"]), 256).decode("utf-8", "replace"))
        dentry = parent
    return "/" + "/".join(reversed(names))


def file_path(k: Kernel, file: int) -> str:
    """The path of an open file (struct file), "" when it cannot be read."""
    o = _offsets(k)
    if o["f_dentry"] is None:
        return ""
    try:
        dentry = k.read_u64(file + o["f_dentry"])
        mnt = k.read_u64(file + o["f_vfsmnt"]) if o["f_vfsmnt"] is not None else 0
        return dentry_path(k, dentry, mnt) if dentry else ""
    except MemoryReadError:
        return ""
