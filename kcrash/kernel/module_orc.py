"""ORC unwind tables of loaded modules, read from the dump (struct module's x86_64 `arch` part:
orc_unwind_ip, orc_unwind, num_orcs), so that stack unwinds go through module code whether or not the
module's object file is at hand."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from kcrash.arch.orc import ChainedOrc, OrcTable
from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.modules import Module, module_at

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["module_orc_table", "module_text", "with_module_orc"]

_ORC_ENTRY_SIZE = 6
_MAX_ORCS = 1 << 22  # a sanity bound: the largest modules have some 10^5 entries

_tables: weakref.WeakKeyDictionary[Kernel, dict[int, OrcTable | None]] = weakref.WeakKeyDictionary()


def module_orc_table(k: Kernel, mod: Module, like: OrcTable) -> OrcTable | None:
    """The ORC table of `mod` from its struct module (None without one), in the format of `like` (the
    vmlinux's table: same kernel, same format)."""
    cache = _tables.setdefault(k, {})
    if mod.address in cache:
        return cache[mod.address]
    table = None
    try:
        obj = k.object_at("struct module", mod.address)
        if obj.type_.strip().find_member("arch") is not None:
            arch = obj.member("arch")
            at = arch.type_.strip()
            if all(at.find_member(n) is not None for n in ("num_orcs", "orc_unwind_ip", "orc_unwind")):
                count = int(arch.member("num_orcs"))
                ip_base = int(arch.member("orc_unwind_ip"))
                entries_base = int(arch.member("orc_unwind"))
                if 0 < count <= _MAX_ORCS and ip_base and entries_base:
                    ip_data = k.read(ip_base, 4 * count)
                    entries = k.read(entries_base, _ORC_ENTRY_SIZE * count)
                    table = like.sibling(ip_base, ip_data, entries)
    except (KcrashError, MemoryReadError, LookupError):
        table = None
    cache[mod.address] = table
    return table


def module_text(k: Kernel, address: int) -> bool:
    """True when `address` lies in the text of a loaded module."""
    mod = module_at(k, address)
    return mod is not None and mod.is_text(address)


def with_module_orc(k: Kernel, vmlinux: OrcTable, in_vmlinux: Callable[[int], bool]) -> ChainedOrc:
    """The vmlinux's ORC table (for addresses `in_vmlinux` accepts) chained with the modules' tables."""

    def other(ip: int) -> OrcTable | None:
        mod = module_at(k, ip)
        if mod is None or not mod.is_text(ip):
            return None
        return module_orc_table(k, mod, vmlinux)

    return ChainedOrc(vmlinux, in_vmlinux, other)
