"""On-disk cache of debug-info indexes, keyed by the vmlinux build-id, plus the few ELF facts it needs
(section table, build-id note) read straight from an mmap of the vmlinux."""

from __future__ import annotations

import gc
import marshal
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcrash.errors import DebugInfoError

__all__ = [
    "Section",
    "elf_sections",
    "build_id",
    "cache_dir",
    "load",
    "store",
    "exists",
    "builder_running",
    "mark_building",
    "wait_for_builder",
]

_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int  # in the file
    size: int
    link: int = 0
    info: int = 0
    index: int = 0


def elf_sections(elf: Any, path: str = "vmlinux") -> dict[str, Section]:
    """The section table of a little-endian ELF64 file (an mmap or bytes), by section name."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF":
        raise DebugInfoError(path, "not an ELF file")
    if elf[4] != 2 or elf[5] != 1:
        raise DebugInfoError(path, "not a little-endian 64-bit ELF file")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    if shoff == 0 or shnum == 0 or shoff + shnum * shentsize > len(elf):
        raise DebugInfoError(path, "ELF section table missing or truncated")
    raw = [struct.unpack_from("<IIQQQQII", elf, shoff + i * shentsize) for i in range(shnum)]
    if shstrndx >= shnum:
        raise DebugInfoError(path, "ELF section-name table index out of range")
    str_off = raw[shstrndx][4]
    sections: dict[str, Section] = {}
    for index, (name_off, sh_type, _flags, addr, offset, size, link, info) in enumerate(raw):
        start = str_off + name_off
        name = bytes(elf[start : elf.find(b"\0", start)]).decode("latin-1")
        if offset + size > len(elf) and sh_type != 8:  # SHT_NOBITS occupies no file space
            raise DebugInfoError(path, f"section {name} extends past the end of the file (truncated?)")
        sections.setdefault(name, Section(name, sh_type, addr, offset, size, link, info, index))
    return sections


def build_id(elf: Any, sections: dict[str, Section]) -> str | None:
    """The GNU build-id (hex) from any SHT_NOTE section; the kernel keeps it in `.notes`."""
    for sec in sections.values():
        if sec.type != _SHT_NOTE:
            continue
        pos, end = sec.offset, sec.offset + sec.size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name_end = pos + 12 + ((namesz + 3) & ~3)
            desc_end = name_end + ((descsz + 3) & ~3)
            if ntype == _NT_GNU_BUILD_ID and bytes(elf[pos + 12 : pos + 12 + namesz]) == b"GNU\0":
                return bytes(elf[name_end : name_end + descsz]).hex()
            pos = desc_end
    return None


def cache_dir(build_id_hex: str) -> Path:
    """~/.cache/kcrash/index/<build-id>/, or $KCRASH_CACHE_DIR/<build-id>/."""
    root = os.environ.get("KCRASH_CACHE_DIR")
    base = (
        Path(root)
        if root
        else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kcrash" / "index"
    )
    return base / build_id_hex


def load(build_id_hex: str, name: str, version: int) -> Any | None:
    """A cached object, or None when absent, unreadable or written by another format version."""
    path = cache_dir(build_id_hex) / name
    # Unmarshalling ~10^5 containers would trigger the cyclic GC dozens of times (0.4 s for the symbol
    # table instead of 0.05 s); nothing loaded here forms cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb") as f:
            data = f.read()  # marshal.load(file) reads in tiny chunks: 10x slower than loads(bytes)
        header, value = marshal.loads(data)
        if header != (name, version, build_id_hex):
            return None
        return value
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        if gc_was_enabled:
            gc.enable()


def store(build_id_hex: str, name: str, version: int, value: Any) -> None:
    """Write a cache entry atomically (temp file + rename); a read-only home just means no cache."""
    directory = cache_dir(build_id_hex)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(((name, version, build_id_hex), value)))
            os.replace(tmp, directory / name)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def exists(build_id_hex: str, name: str) -> bool:
    return (cache_dir(build_id_hex) / name).is_file()


def _lock_path(build_id_hex: str, name: str) -> Path:
    return cache_dir(build_id_hex) / f".{name}.building"


def builder_running(build_id_hex: str, name: str) -> bool:
    """Whether another process is building this entry right now (its pid is in the lock file and alive)."""
    try:
        pid = int(_lock_path(build_id_hex, name).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def mark_building(build_id_hex: str, name: str) -> Path | None:
    """Claim the build of an entry for this process; None if another live process holds it."""
    if builder_running(build_id_hex, name):
        return None
    path = _lock_path(build_id_hex, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(os.getpid()))
    except OSError:
        return None
    return path


def wait_for_builder(build_id_hex: str, name: str, timeout: float = 60.0) -> None:
    """Wait (bounded) while another process finishes building an entry we are about to need."""
    import time

    deadline = time.monotonic() + timeout
    while builder_running(build_id_hex, name) and time.monotonic() < deadline:
        time.sleep(0.05)
