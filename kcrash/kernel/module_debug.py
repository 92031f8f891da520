"""Debug info of loaded modules (`mod -s`, `mod -S`): finding a module's object file, checking it is the one
the dump ran, and loading its symbols, types and line numbers at the addresses the module was loaded at.

A module's `.ko` is a relocatable object: its symbols are section offsets and its DWARF holds relocations
instead of addresses. The kernel records where each section went (struct module.sect_attrs); the object's
symbol values are moved there and its `.rela.debug_*` applied over that, so the DWARF reads run-time
addresses. Debian's -dbg package keeps the files at usr/lib/debug/lib/modules/<release>/…/<name>.ko.
"""

from __future__ import annotations

import os
import struct
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcrash.debuginfo.dwarf import DwarfIndex
from kcrash.debuginfo.elffile import ElfImage
from kcrash.debuginfo.lines import LineTable
from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.errors import DebugInfoError, KcrashError, MemoryReadError
from kcrash.kernel.modules import Module, bfd_letter, ordered_table, strip_symbol_end

if TYPE_CHECKING:
    from kcrash.debuginfo.types import Type
    from kcrash.program import Kernel

__all__ = [
    "ModuleDebugInfo",
    "add_debug_dirs",
    "debug_dirs",
    "find_module_file",
    "section_addresses",
    "module_build_id",
    "file_build_id",
    "load_module_debuginfo",
    "unload_module_debuginfo",
    "loaded_debuginfo",
    "source_line",
]

ET_REL = 1
SHF_ALLOC = 2
SHN_LORESERVE = 0xFF00
_ELF64_SYM = struct.Struct("<IBBHQQ")
STT_SECTION, STT_FILE = 3, 4
_WALK_LIMIT = 200_000  # directory entries looked at per tree search: a vmlinux in $HOME must not hang it


@dataclass
class ModuleDebugInfo:
    """A module's object file loaded at the module's addresses."""

    module: Module
    path: str
    build_id: str | None
    sections: dict[str, int]  # allocated section → run-time address
    symbols: SymbolTable  # crash's table after `mod -s`: the object's symbols, then kallsyms' extras
    dwarf: DwarfIndex | None = None
    _lines: LineTable | None = field(default=None, repr=False)

    # The lookups Kernel.find_type / variable_type make in module debug info.
    def find_type(self, name: str) -> Type | None:
        return self.dwarf.find_type(name) if self.dwarf is not None else None

    def find_variable(self, name: str) -> tuple[int | None, Type] | None:
        return self.dwarf.find_variable(name) if self.dwarf is not None else None

    def find_function(self, name: str) -> Type | None:
        return self.dwarf.find_function(name) if self.dwarf is not None else None

    def find_enumerator(self, name: str) -> tuple[Type, int] | None:
        return self.dwarf.find_enumerator(name) if self.dwarf is not None else None

    def source_line(self, address: int) -> tuple[str, int] | None:
        """(file, line) of a run-time text address of this module."""
        if self.dwarf is None:
            return None
        if self._lines is None:
            self._lines = LineTable(None, self.dwarf)
        return self._lines.lookup(address)


@dataclass
class _State:
    dirs: list[str] = field(default_factory=list)
    loaded: dict[str, ModuleDebugInfo] = field(default_factory=dict)


_states: weakref.WeakKeyDictionary[Kernel, _State] = weakref.WeakKeyDictionary()


def _state(k: Kernel) -> _State:
    found = _states.get(k)
    if found is None:
        found = _states[k] = _State()
    return found


def add_debug_dirs(k: Kernel, dirs: list[str]) -> None:
    """Directories searched first for module object files (the `--debug-dir` option)."""
    _state(k).dirs.extend(dirs)


def debug_dirs(k: Kernel) -> list[str]:
    """Where `mod -s`/`-S` look for a module's object file, in order: the --debug-dir trees, Debian's and
    Red Hat's debug trees for the release, $CRASH_MODULE_PATH, /lib/modules/<release>, and the tree that
    holds the vmlinux (a fixture or an unpacked -dbg package keeps the modules beside it)."""
    release = k.release
    dirs = list(_state(k).dirs)
    dirs += [f"/usr/lib/debug/lib/modules/{release}", f"/usr/lib/debug/usr/lib/modules/{release}"]
    env = os.environ.get("CRASH_MODULE_PATH")
    if env:
        dirs.append(env)
    dirs += [f"/lib/modules/{release}/updates", f"/lib/modules/{release}"]
    dirs.append(os.path.dirname(os.path.realpath(k.vmlinux_path)))
    return dirs


def _file_names(name: str) -> list[str]:
    """The object file names a module may have: `dm_mod` comes from dm-mod.ko (crash's order of tries)."""
    stems = [name]
    if "_" in name:
        stems.append(name.replace("_", "-"))
    return [f"{stem}{ext}" for stem in stems for ext in (".ko", ".ko.debug")]


def _module_files(directory: str) -> dict[str, list[str]]:
    """Module object files (*.ko, *.ko.debug) in the tree under `directory`, by file name, paths sorted."""
    found: dict[str, list[str]] = {}
    seen = 0
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        seen += len(dirs) + len(files)
        for f in files:
            if f.endswith((".ko", ".ko.debug")):
                found.setdefault(f, []).append(os.path.join(root, f))
        if seen > _WALK_LIMIT:
            break
    return {name: sorted(paths) for name, paths in found.items()}


def _search_tree(
    directory: str, names: list[str], trees: dict[str, dict[str, list[str]]] | None = None
) -> list[str]:
    """Every file in the tree under `directory` with one of these names, names in order; `trees` keeps
    each tree's walk for the next module (`mod -S` searches the same trees for every module)."""
    if trees is None:
        trees = {}
    if directory not in trees:
        trees[directory] = _module_files(directory)
    files = trees[directory]
    return [p for n in names for p in files.get(n, [])]


def find_module_file(
    k: Kernel, mod: Module, directory: str | None = None, trees: dict[str, dict[str, list[str]]] | None = None
) -> tuple[str | None, list[str]]:
    """(the object file of `mod`, files skipped because their build-id is another module's).

    Searched in `directory` only when given, else in debug_dirs(); the first file whose build-id matches
    the module's in the dump wins (any file when the dump does not tell). Pass the same `trees` dict to
    several calls to walk each directory tree once."""
    want = module_build_id(k, mod)
    names = _file_names(mod.name)
    skipped: list[str] = []
    for d in [directory] if directory else debug_dirs(k):
        if not os.path.isdir(d):
            continue
        for path in _search_tree(d, names, trees):
            if want is None or file_build_id(path) in (want, None):
                return path, skipped
            skipped.append(path)
    return None, skipped


def file_build_id(path: str) -> str | None:
    try:
        elf = ElfImage(path)
    except DebugInfoError:
        return None
    try:
        return elf.build_id()
    finally:
        elf.close()


# --- where the kernel put the sections -------------------------------------------------------------


def _sect_attrs(k: Kernel, mod: Module) -> dict[str, int]:
    """struct module.sect_attrs: the /sys/module/<name>/sections table, name → address."""
    obj = k.object_at("struct module", mod.address)
    if obj.type_.strip().find_member("sect_attrs") is None or int(obj.member("sect_attrs")) == 0:
        return {}
    attrs = obj.member("sect_attrs").deref()
    t = attrs.type_.strip()
    out: dict[str, int] = {}
    if t.find_member("nsections") is not None:
        count = int(attrs.member("nsections"))
        for i in range(min(count, 4096)):
            attr = attrs.member("attrs")[i]
            battr = attr.member("battr")
            name = battr.member("attr").member("name").string(256)
            if attr.type_.strip().find_member("address") is not None:
                address = int(attr.member("address"))
            else:  # 6.14+: the address sits in the bin_attribute's private pointer
                address = int(battr.member("private"))
            out[name] = address
        return out
    # Without a count: the group's NULL-terminated list of bin_attribute pointers.
    grp = attrs.member("grp")
    gt = grp.type_.strip()
    list_name = next((n for n in ("bin_attrs", "bin_attrs_new") if gt.find_member(n) is not None), None)
    if list_name is None:
        return {}
    base = int(grp.member(list_name))
    for i in range(4096):
        ptr = k.read_u64(base + 8 * i) if base else 0
        if not ptr:
            break
        battr = k.object_at("struct bin_attribute", ptr)
        out[battr.member("attr").member("name").string(256)] = int(battr.member("private"))
    return out


def section_addresses(k: Kernel, mod: Module) -> dict[str, int]:
    """Section name → run-time address of a loaded module, from the kernel's sysfs table of them."""
    try:
        return _sect_attrs(k, mod)
    except (KcrashError, MemoryReadError, LookupError):
        return {}


def _parse_build_id(notes: bytes) -> str | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, typ = struct.unpack_from("<III", notes, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        if typ == 3 and notes[name_start : name_start + 4] == b"GNU\0":
            return notes[desc_start : desc_start + descsz].hex() or None
        pos = desc_start + ((descsz + 3) & ~3)
    return None


def module_build_id(k: Kernel, mod: Module) -> str | None:
    """The GNU build-id of a loaded module, read from its .note.gnu.build-id in the dump (None if unknown)."""
    address = section_addresses(k, mod).get(".note.gnu.build-id")
    if not address:
        return None
    try:
        return _parse_build_id(k.read(address, 36))  # 16-byte header + "GNU\0" + a 20-byte SHA-1
    except MemoryReadError:
        return None


def _kallsyms_addresses(
    mod: Module, elf: ElfImage, symbols: list[tuple[str, int, int, int, int]]
) -> dict[str, int]:
    """crash's way to place sections: the first kallsyms symbol of each section that the object also
    defines gives the section's address. crash takes symbols only from the sections found so."""
    by_name: dict[str, tuple[int, int]] = {}
    for name, _info, shndx, value, _size in symbols:
        by_name.setdefault(name, (shndx, value))
    out: dict[str, int] = {}
    table = mod.symbols
    for name, address in zip(table.names, table.addresses, strict=True):
        hit = by_name.get(name)
        if hit is not None and hit[0] < len(elf.sections):
            out.setdefault(elf.sections[hit[0]].name, address - hit[1])
    return out


# --- symbols ---------------------------------------------------------------------------------------


def _elf_symbols(elf: ElfImage) -> tuple[list[tuple[str, int, int, int, int]], int]:
    """(name, st_info, st_shndx, st_value, st_size) of the object's defined, named symbols; and the symtab's
    offset."""
    sec = elf.section(".symtab")
    data = elf.section_data(".symtab")
    if sec is None or data is None:
        raise DebugInfoError(elf.path, "no symbols in object file")
    strsec = elf.sections[sec.link]
    strtab = bytes(elf.data[strsec.offset : strsec.offset + strsec.size])
    out = []
    for name_off, info, _other, shndx, value, size in _ELF64_SYM.iter_unpack(data):
        if info & 0xF == STT_FILE or shndx == 0 or shndx >= min(SHN_LORESERVE, len(elf.sections)):
            continue
        if info & 0xF == STT_SECTION:
            name = elf.sections[shndx].name  # bfd names a section symbol after its section
        elif name_off:
            name = strtab[name_off : strtab.find(b"\0", name_off)].decode("utf-8", "replace")
        else:
            continue
        out.append((name, info, shndx, value, size))
    return out, sec.offset


def _strip_modversion(name: str) -> str:
    """crash's strip_module_symbol_end: `name_R<hex>` (old modversions) and `name_Rsmp_…` lose the tail."""
    pos = name.rfind("R")
    if pos < 1 or name[pos - 1] != "_":
        return name
    tail = name[pos + 1 :]
    if name.startswith("_Rsmp_", pos - 1):
        return name[: pos - 1]
    digits = tail[2:] if tail[:2].lower() == "0x" else tail
    if digits and all(c in "0123456789abcdefABCDEF" for c in digits):
        return name[: pos - 1]
    return name


def _load_table(
    mod: Module,
    elf: ElfImage,
    symbols: list[tuple[str, int, int, int, int]],
    found: dict[str, int],
    placed: dict[str, int],
) -> SymbolTable:
    """crash's module symbol table after `mod -s`: every named symbol of the object (section symbols named
    after their section, names starting with "." left out) in a section kallsyms located (`found`), with
    its nm letter, at kallsyms' address when kallsyms has the name (first unused match) or the section's
    address plus its offset; then the kallsyms symbols the object did not name; sorted by address, equal
    addresses by name."""
    kallsyms = mod.symbols
    unused: dict[str, list[int]] = {}
    for i, name in enumerate(kallsyms.names):
        unused.setdefault(name, []).append(i)
    # crash looks kallsyms up with the raw object name, and strips the name it shows.
    rows: list[tuple[int, str, str, str, int]] = []  # (address, raw name, shown name, letter, size)
    for name, info, shndx, value, size in symbols:
        sec = elf.sections[shndx]
        if name.startswith(".") or not sec.flags & SHF_ALLOC or sec.name not in found:
            continue
        hits = unused.get(name)
        if hits:
            address = kallsyms.addresses[hits.pop(0)]
        else:
            address = placed.get(sec.name, found[sec.name]) + value
        shown = strip_symbol_end(_strip_modversion(name))
        rows.append((address, name, shown, bfd_letter(info, shndx, elf.sections), size))
    rows.sort(key=lambda r: (r[0], r[1]))
    named = {r[2] for r in rows}
    result = [Symbol(shown, address, size, letter) for address, _raw, shown, letter, size in rows]
    result += [kallsyms.at(i) for i in range(len(kallsyms)) if kallsyms.names[i] not in named]
    return ordered_table(result, mod.name)


# --- loading ---------------------------------------------------------------------------------------


def _relocated_dwarf(
    path: str, elf: ElfImage, symtab_offset: int, bases: dict[int, int]
) -> DwarfIndex | None:
    """The object's DWARF with its relocations applied at run-time section addresses: each symbol's value
    moves by its section's address, then the object's own .rela.debug_* are applied (DwarfIndex.open does
    that for a relocatable file)."""
    if elf.section(".debug_info") is None:
        return None
    image = bytearray(elf.data)
    symtab = elf.section(".symtab")
    assert symtab is not None
    for pos in range(symtab_offset, symtab_offset + symtab.size - _ELF64_SYM.size + 1, _ELF64_SYM.size):
        shndx = struct.unpack_from("<H", image, pos + 6)[0]
        base = bases.get(shndx)
        if base:
            value = struct.unpack_from("<Q", image, pos + 8)[0]
            struct.pack_into("<Q", image, pos + 8, (value + base) & 0xFFFFFFFFFFFFFFFF)
    return DwarfIndex.open(path, bytes(image))


def load_module_debuginfo(k: Kernel, mod: Module, path: str) -> ModuleDebugInfo:
    """Load `path` as the object file of the loaded module `mod`; a module whose object file is loaded
    already keeps it (crash's `mod -s` does the same: `mod -d` first to load another)."""
    already = _state(k).loaded.get(mod.name)
    if already is not None:
        return already
    try:
        elf = ElfImage(path)
    except DebugInfoError as e:
        raise DebugInfoError(path, "not an ELF format object file") from e
    try:
        if elf.e_type != ET_REL:
            raise DebugInfoError(path, "not a kernel module (not a relocatable ELF object)")
        want = module_build_id(k, mod)
        have = elf.build_id()
        if want is not None and have is not None and want != have:
            raise DebugInfoError(path, f"build-id {have} is not the loaded {mod.name}'s ({want})")
        symbols, symtab_offset = _elf_symbols(elf)
        found = _kallsyms_addresses(mod, elf, symbols)
        placed = {n: a for n, a in section_addresses(k, mod).items() if a} or found
        index = {s.name: i for i, s in enumerate(elf.sections)}
        bases = {
            index[n]: a for n, a in placed.items() if n in index and elf.sections[index[n]].flags & SHF_ALLOC
        }
        table = _load_table(mod, elf, symbols, found, placed)
        dwarf = _relocated_dwarf(path, elf, symtab_offset, bases)
    finally:
        elf.close()
    info = ModuleDebugInfo(mod, path, have, placed, table, dwarf)
    _state(k).loaded[mod.name] = info
    mod.replace_symbols(table)
    k.module_debuginfo.append(info)
    return info


def unload_module_debuginfo(k: Kernel, mod: Module | None = None) -> None:
    """Forget the object file loaded for `mod` (every module's when None): back to kallsyms' symbols."""
    state = _state(k)
    for name in list(state.loaded) if mod is None else [mod.name]:
        info = state.loaded.pop(name, None)
        if info is None:
            continue
        info.module.replace_symbols(None)
        k.module_debuginfo[:] = [d for d in k.module_debuginfo if d is not info]


def loaded_debuginfo(k: Kernel, name: str) -> ModuleDebugInfo | None:
    """The object file loaded for the module `name`, if any."""
    return _state(k).loaded.get(name)


def source_line(k: Kernel, address: int) -> tuple[str, int] | None:
    """(file, line) of a module text address whose module has its object file loaded."""
    for info in _state(k).loaded.values():
        if address in info.module:
            return info.source_line(address)
    return None
