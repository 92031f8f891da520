"""Random-access byte sources that dump parsers read through: a real file (mmap) or a rearranged view."""

from __future__ import annotations

import mmap
import os
from abc import ABC, abstractmethod

__all__ = ["ByteSource", "FileSource"]


class ByteSource(ABC):
    """A read-only file-like object addressed by offset; parsers never seek.

    `pread` returns fewer bytes than asked only at the end of the source, so a short answer means
    "beyond end of file".  `buffer` is the whole content as a buffer when one exists (mmap), so hot
    paths can `struct.unpack_from` it without copying; None otherwise.
    """

    name: str
    size: int
    buffer: mmap.mmap | None = None

    @abstractmethod
    def pread(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset` (short only at the end of the source)."""

    @abstractmethod
    def close(self) -> None:
        """Release the file; further reads are invalid."""


class FileSource(ByteSource):
    """A file on disk, mapped when it can be (regular files) and read with os.pread otherwise."""

    def __init__(self, path: str) -> None:
        self.name = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self.size = os.fstat(self._fd).st_size
            self.buffer = None
            if self.size > 0:
                try:
                    self.buffer = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    self.buffer = None  # not mappable (a device or pipe): fall back to pread
        except BaseException:
            os.close(self._fd)
            raise

    def pread(self, offset: int, size: int) -> bytes:
        if self.buffer is not None:
            return self.buffer[offset : offset + size]
        if size <= 0 or offset >= self.size:
            return b""
        return os.pread(self._fd, min(size, self.size - offset), offset)

    def close(self) -> None:
        if self.buffer is not None:
            self.buffer.close()
            self.buffer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
