"""Files: path names from dentries and mounts (crash's get_pathname(), the kernel's __d_path()), inode types,
a task's root and working directory, its open file table, and the mounts of a mount namespace."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.objects import rbtree_inorder
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = [
    "file_path",
    "OpenFile",
    "TaskFs",
    "FileTable",
    "DentryInfo",
    "dentry_path",
    "inode_type",
    "file_info",
    "task_fs",
    "task_files",
    "mount_list",
    "dentry_info",
    "mount_devname",
    "S_IFMT",
]

S_IFMT = 0o170000
_TYPES = {
    0o100000: "REG",
    0o120000: "LNK",
    0o040000: "DIR",
    0o020000: "CHR",
    0o060000: "BLK",
    0o010000: "FIFO",
    0o140000: "SOCK",
}
_MAX_PATH_STEPS = 4096  # a bound on a corrupted dentry/mount chain


def _off(k: Kernel, type_name: str, path: str) -> int | None:
    t = k.find_type(type_name)
    if t is None:
        return None
    try:
        return t.offsetof(path)
    except (KcrashError, KeyError, ValueError):
        return None


class _FsLayout:
    """Offsets of the members path walking and file tables use, read from the debug info."""

    def __init__(self, k: Kernel) -> None:
        def need(type_name: str, path: str) -> int:
            value = _off(k, type_name, path)
            if value is None:
                raise KcrashError(f"{type_name} has no member {path}")
            return value

        self.d_name_len = need("struct dentry", "d_name.len")
        self.d_name_name = need("struct dentry", "d_name.name")
        # The inline name: d_iname, a union d_shortname since 6.14.
        dentry = k.type("struct dentry")
        inline = dentry.find_member("d_iname") or dentry.find_member("d_shortname")
        if inline is None:
            raise KcrashError("struct dentry has neither d_iname nor d_shortname")
        self.d_iname = inline[1] // 8
        self.d_iname_size = inline[0].type.sizeof()
        self.d_parent = need("struct dentry", "d_parent")
        self.d_inode = need("struct dentry", "d_inode")
        self.d_sb = need("struct dentry", "d_sb")
        self.mount_mnt = need("struct mount", "mnt")
        self.mnt_mountpoint = need("struct mount", "mnt_mountpoint")
        self.mnt_parent = need("struct mount", "mnt_parent")
        self.mnt_devname = need("struct mount", "mnt_devname")
        self.mnt_sb = need("struct vfsmount", "mnt_sb")
        self.mnt_list = _off(k, "struct mount", "mnt_list")
        self.mnt_node = _off(k, "struct mount", "mnt_node")
        self.f_dentry = need("struct file", "f_path.dentry")
        self.f_mnt = need("struct file", "f_path.mnt")
        self.i_mode = need("struct inode", "i_mode")
        self.i_op = need("struct inode", "i_op")
        self.i_sb = need("struct inode", "i_sb")
        self.i_mapping = need("struct inode", "i_mapping")
        self.nrpages = need("struct address_space", "nrpages")
        self.mode_size = k.type("struct inode").find_member("i_mode")[0].type.sizeof()  # type: ignore[index]
        self.fs_root = need("struct fs_struct", "root")
        self.fs_pwd = need("struct fs_struct", "pwd")
        self.path_dentry = need("struct path", "dentry")
        self.path_mnt = need("struct path", "mnt")
        self.task_fs = need("struct task_struct", "fs")
        self.task_files = need("struct task_struct", "files")
        self.task_nsproxy = need("struct task_struct", "nsproxy")
        self.files_fdt = need("struct files_struct", "fdt")
        self.fdt_max_fds = need("struct fdtable", "max_fds")
        self.fdt_fd = need("struct fdtable", "fd")
        self.fdt_open_fds = need("struct fdtable", "open_fds")
        self.nsproxy_mnt_ns = need("struct nsproxy", "mnt_ns")
        self.ns_root = _off(k, "struct mnt_namespace", "root")
        self.ns_list = _off(k, "struct mnt_namespace", "list")
        self.ns_mounts = _off(k, "struct mnt_namespace", "mounts")
        self.ns_nr_mounts = _off(k, "struct mnt_namespace", "nr_mounts")


@per_kernel
def _layout(k: Kernel) -> _FsLayout:
    return _FsLayout(k)


def _ptr(k: Kernel, address: int) -> int:
    return k.read_u64(address)


def _component(k: Kernel, lay: _FsLayout, dentry: int, name: int, length: int) -> str | None:
    """A dentry's name if it has the length d_name says (crash's get_pathname_component)."""
    if name == dentry + lay.d_iname:
        raw = k.read(name, lay.d_iname_size).split(b"\0", 1)[0]
    else:
        raw = k.read_cstring(name, 4096)
    if len(raw) != length:
        return None
    return raw.decode("utf-8", "replace")


def dentry_path(k: Kernel, dentry: int, vfsmnt: int = 0, full: bool = True) -> str:
    """The path of `dentry` as crash's get_pathname() builds it: names up the d_parent chain, crossing from a
    mount's root to its mount point while `full` and `vfsmnt` (a struct vfsmount address) allow."""
    lay = _layout(k)
    pathname = ""
    parent = dentry
    mnt = vfsmnt
    for _ in range(_MAX_PATH_STEPS):
        current = parent
        length = k.read_u32(current + lay.d_name_len)
        if not length:
            break
        name = _ptr(k, current + lay.d_name_name)
        if not name:
            break
        part = _component(k, lay, current, name, length)
        if part is None:
            break
        if current != dentry:
            if (length > 1 or part != "/") and not pathname.startswith("/"):
                pathname = f"{part}/{pathname}"
            else:
                pathname = part + pathname
        else:
            pathname = part
        parent = _ptr(k, current + lay.d_parent)
        if current == parent and full and mnt:
            if pathname.startswith("//"):
                pathname = pathname[1:]
            mount = mnt - lay.mount_mnt
            parent = _ptr(k, mount + lay.mnt_mountpoint)
            mnt_parent = _ptr(k, mount + lay.mnt_parent)
            if mount == mnt_parent:
                break
            mnt = mnt_parent + lay.mount_mnt
            continue
        if current == parent or not parent:
            break
    if pathname != "/" and pathname.endswith("/"):
        pathname = pathname[:-1]
    return pathname


@per_kernel
def _pipe_ops(k: Kernel) -> tuple[int | None, int | None]:
    def addr(name: str) -> int | None:
        sym = k.symbols.lookup(name)
        return sym.address if sym is not None else None

    return addr("pipe_inode_operations"), addr("rdwr_pipe_fops")


def inode_type(k: Kernel, inode: int, pathname: str = "") -> tuple[str, str]:
    """crash's inode_type(): REG, LNK, DIR, CHR, BLK, FIFO, PIPE, SOCK or UNKN, and the path name as
    crash shows it beside that type (none for a pipe, none for a socket whose name is "/")."""
    lay = _layout(k)
    raw = k.read(inode + lay.i_mode, lay.mode_size)
    mode = int.from_bytes(raw, "little")
    kind = _TYPES.get(mode & S_IFMT, "UNKN")
    if kind == "FIFO":
        pipe_iops, pipe_fops = _pipe_ops(k)
        if pipe_iops is not None and _ptr(k, inode + lay.i_op) == pipe_iops:
            return "PIPE", ""
        if pipe_iops is None and pipe_fops is not None:
            i_fop = _off(k, "struct inode", "i_fop")
            if i_fop is not None and _ptr(k, inode + i_fop) == pipe_fops:
                return "PIPE", ""
    if kind == "SOCK" and pathname == "/":
        return kind, ""
    return kind, pathname


def mount_devname(k: Kernel, vfsmnt: int) -> str:
    """A mount's device name (mount->mnt_devname), "" when it cannot be read."""
    lay = _layout(k)
    try:
        name = _ptr(k, vfsmnt - lay.mount_mnt + lay.mnt_devname)
        return k.read_cstring(name, 256).decode("utf-8", "replace") if name else ""
    except MemoryReadError:
        return ""


def _root_vfsmount(k: Kernel, vfsmnt: int) -> int:
    """crash's get_root_vfsmount(): a devtmpfs (or udev) mount on a mount of the same device names its path
    from the parent."""
    lay = _layout(k)
    name = mount_devname(k, vfsmnt)
    if name not in ("udev", "devtmpfs"):
        return vfsmnt
    try:
        parent = _ptr(k, vfsmnt - lay.mount_mnt + lay.mnt_parent)
    except MemoryReadError:
        return vfsmnt
    return parent if mount_devname(k, parent) == name else vfsmnt


@dataclass(frozen=True)
class OpenFile:
    """One open file: its descriptor, struct file, dentry, inode, type and path (dentry and inode 0, type
    "?" where the file has none), with the inode's page cache (mapping, nrpages)."""

    fd: int
    file: int
    dentry: int
    inode: int
    type: str
    path: str
    mapping: int = 0
    nrpages: int = 0


def file_path(k: Kernel, file: int) -> str:
    """The full path of the struct file at `file` ("" when it has no dentry)."""
    lay = _layout(k)
    dentry = _ptr(k, file + lay.f_dentry)
    if not dentry:
        return ""
    return dentry_path(k, dentry, _root_vfsmount(k, _ptr(k, file + lay.f_mnt)))


def file_info(k: Kernel, file: int, fd: int = -1) -> OpenFile:
    """The dentry, inode, type and full path of the struct file at `file` (crash's file_dump())."""
    lay = _layout(k)
    dentry = _ptr(k, file + lay.f_dentry)
    if not dentry:
        return OpenFile(fd, file, 0, 0, "?", "?")
    inode = _ptr(k, dentry + lay.d_inode)
    if not inode:
        return OpenFile(fd, file, dentry, 0, "?", "?")
    vfsmnt = _root_vfsmount(k, _ptr(k, file + lay.f_mnt))
    path = dentry_path(k, dentry, vfsmnt)
    if path.startswith("/pts/") and mount_devname(k, vfsmnt) == "devpts":
        path = "/dev" + path
    kind, path = inode_type(k, inode, path)
    mapping = _ptr(k, inode + lay.i_mapping)
    nrpages = _ptr(k, mapping + lay.nrpages) if mapping else 0
    return OpenFile(fd, file, dentry, inode, kind, path, mapping, nrpages)


@dataclass(frozen=True)
class TaskFs:
    """A task's fs_struct: root and working directory (dentry, inode, path)."""

    fs: int
    root_dentry: int
    root_inode: int
    root: str
    cwd_dentry: int
    cwd_inode: int
    cwd: str


def task_fs(k: Kernel, task: int) -> TaskFs | None:
    """The root and current directory of the task at `task`, None when it has no fs_struct."""
    lay = _layout(k)
    fs = _ptr(k, task + lay.task_fs)
    if not fs:
        return None

    def one(path_at: int) -> tuple[int, int, str]:
        dentry = _ptr(k, path_at + lay.path_dentry)
        if not dentry:
            return 0, 0, ""
        mnt = _ptr(k, path_at + lay.path_mnt)
        return dentry, _ptr(k, dentry + lay.d_inode), dentry_path(k, dentry, mnt)

    root = one(fs + lay.fs_root)
    cwd = one(fs + lay.fs_pwd)
    return TaskFs(fs, root[0], root[1], root[2], cwd[0], cwd[1], cwd[2])


@dataclass(frozen=True)
class FileTable:
    """A task's files_struct and fdtable (0 when absent), max_fds, and its open files in fd order."""

    files: int
    fdtable: int
    max_fds: int
    open: list[OpenFile]


def task_files(k: Kernel, task: int) -> FileTable:
    """The open file descriptors of the task at `task` (fdtable->open_fds bits whose fd[] slot is set)."""
    lay = _layout(k)
    files = _ptr(k, task + lay.task_files)
    if not files:
        return FileTable(0, 0, 0, [])
    fdt = _ptr(k, files + lay.files_fdt)
    if not fdt:
        return FileTable(files, 0, 0, [])
    max_fds = k.read_u32(fdt + lay.fdt_max_fds)
    open_fds = _ptr(k, fdt + lay.fdt_open_fds)
    fd_array = _ptr(k, fdt + lay.fdt_fd)
    if not max_fds or not open_fds or not fd_array:
        return FileTable(files, fdt, max_fds, [])
    words = (max_fds + 63) // 64
    bitmap = struct.unpack(f"<{words}Q", k.read(open_fds, words * 8))
    result = []
    for word_index, word in enumerate(bitmap):
        while word:
            bit = (word & -word).bit_length() - 1
            word &= word - 1
            fd = word_index * 64 + bit
            file = _ptr(k, fd_array + fd * 8)
            if file:
                result.append(file_info(k, file, fd))
    return FileTable(files, fdt, max_fds, result)


def mount_list(k: Kernel, task: int) -> list[int]:
    """The struct mount addresses of the task's mount namespace: its rbtree (6.8+) or its list."""
    lay = _layout(k)
    nsproxy = _ptr(k, task + lay.task_nsproxy)
    if not nsproxy:
        return []
    ns = _ptr(k, nsproxy + lay.nsproxy_mnt_ns)
    if not ns:
        return []
    if lay.ns_mounts is not None and lay.mnt_node is not None:
        root = k.object_at("struct rb_root", ns + lay.ns_mounts)
        return [node - lay.mnt_node for node in rbtree_inorder(root)]
    if lay.ns_list is None or lay.mnt_list is None:
        return []
    head = ns + lay.ns_list
    return list(_list_entries(k, head, lay.mnt_list))


def _list_entries(k: Kernel, head: int, member: int) -> Iterator[int]:
    node = _ptr(k, head)
    for _ in range(1 << 16):
        if node == head or not node:
            return
        yield node - member
        node = _ptr(k, node)


@dataclass(frozen=True)
class DentryInfo:
    """A dentry's inode, superblock, type and path (`files -d`)."""

    dentry: int
    inode: int
    superblock: int
    type: str
    path: str


def dentry_info(k: Kernel, dentry: int, namespace_task: int) -> DentryInfo:
    """crash's display_dentry_info(): the path through the (last) mount of `namespace_task`'s namespace
    whose superblock is the dentry's, else through pipe_mnt or sock_mnt."""
    lay = _layout(k)
    inode = _ptr(k, dentry + lay.d_inode)
    sb = _ptr(k, inode + lay.i_sb) if inode else _ptr(k, dentry + lay.d_sb)
    path = ""
    if sb:
        found = False
        for mount in mount_list(k, namespace_task):
            vfsmnt = mount + lay.mount_mnt
            if _ptr(k, vfsmnt + lay.mnt_sb) == sb:
                path = dentry_path(k, dentry, vfsmnt)
                found = True
        for name in ("pipe_mnt", "sock_mnt"):
            sym = k.symbols.lookup(name)
            if found or sym is None:
                continue
            vfsmnt = _ptr(k, sym.address)
            if vfsmnt and _ptr(k, vfsmnt + lay.mnt_sb) == sb:
                path = dentry_path(k, dentry, vfsmnt)
                found = True
    kind = "N/A"
    if inode:
        kind, path = inode_type(k, inode, path)
    return DentryInfo(dentry, inode, sb, kind, path)
