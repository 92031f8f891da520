"""What `mod` lists about each loaded module besides its symbols: the size crash counts, whether the module
kept its kallsyms, and its taint letters (struct module.taints read through the kernel's taint_flags[])."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.modules import Module, modules

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["ModuleInfo", "module_info", "module_taints", "core_size", "has_kallsyms"]

# Linux 6.4+ regions counted in crash's module size: everything before the init regions.
_CORE_KINDS = ("text", "data", "rodata", "ro_after_init")


@dataclass(frozen=True)
class ModuleInfo:
    """One loaded module as `mod` shows it."""

    module: Module
    size: int  # crash's mod_size: the core layout (6.4+: text + data + rodata + ro_after_init)
    kallsyms: bool  # the module kept its symbol table (CONFIG_KALLSYMS)


def core_size(mod: Module) -> int:
    """crash's module size: core_layout.size before Linux 6.4, the sum of the core regions after."""
    if not mod.split_layout:
        return mod.size
    return sum(r.size for r in mod.regions if r.kind in _CORE_KINDS)


def has_kallsyms(k: Kernel, mod: Module) -> bool:
    """True when the module's struct module points at a kallsyms copy with symbols in it."""
    try:
        obj = k.object_at("struct module", mod.address)
        if obj.type_.strip().find_member("kallsyms") is not None:
            ks = obj.member("kallsyms")
            return int(ks) != 0 and int(ks.deref().member("num_symtab")) > 0
        return int(obj.member("num_symtab")) > 0  # before 4.5 the counts sat in struct module
    except (KcrashError, MemoryReadError, LookupError):
        return bool(len(mod.symbols))


def module_info(k: Kernel) -> list[ModuleInfo]:
    """The loaded modules in crash's order, with what `mod` prints about each."""
    return [ModuleInfo(m, core_size(m), has_kallsyms(k, m)) for m in modules(k)]


def _taint_flags(k: Kernel) -> list[tuple[str, bool]] | None:
    """(letter when set, applies to modules) of each entry of taint_flags[], or None without it."""
    sym = k.symbols.lookup("taint_flags")
    t = k.find_type("struct taint_flag")
    if sym is None or t is None or not sym.size:
        return None
    size = t.sizeof()
    true_at = t.find_member("c_true") or t.find_member("true")
    module_at = t.find_member("module")
    if not size or true_at is None or module_at is None:
        return None
    raw = k.read(sym.address, sym.size - sym.size % size)
    out = []
    for i in range(len(raw) // size):
        entry = raw[i * size : (i + 1) * size]
        out.append((chr(entry[true_at[1] // 8]), bool(entry[module_at[1] // 8])))
    return out


def module_taints(k: Kernel, mod: Module) -> tuple[int, str]:
    """(struct module.taints, crash's letters for it): the letter of each set bit whose taint_flags[] entry
    applies to modules."""
    obj = k.object_at("struct module", mod.address)
    if obj.type_.strip().find_member("taints") is None:
        raise KcrashError("option not supported or applicable on this architecture or kernel: -t")
    taints = int(obj.member("taints"))
    flags = _taint_flags(k)
    if flags is None:
        return taints, f"{taints:x}"
    letters = "".join(
        letter for i, (letter, for_modules) in enumerate(flags) if for_modules and taints >> i & 1
    )
    return taints, letters
