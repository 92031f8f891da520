"""Kernel: one crashed kernel = dump memory + x86_64 translation + vmlinux symbols and types.

This is the public API that helpers, commands and plugins use.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kcrash.arch.x86_64 import (
    NT_PRSTATUS,
    START_KERNEL_MAP,
    Registers,
    Translator,
    parse_prstatus,
    parse_qemu_cpu_state,
)
from kcrash.debuginfo.elffile import EM_X86_64, ElfImage
from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.debuginfo.types import Kind, Type, suggest
from kcrash.errors import (
    DebugInfoError,
    DumpError,
    FaultError,
    KcrashError,
    LookupFailedError,
    MemoryReadError,
)

if TYPE_CHECKING:
    from kcrash.debuginfo.btf import BtfTypes
    from kcrash.debuginfo.dwarf import DwarfIndex
    from kcrash.debuginfo.lines import LineTable
    from kcrash.memory.base import PhysicalMemory
    from kcrash.objects import Object

__all__ = ["Kernel", "parse_vmcoreinfo", "open_kernel", "identify", "per_kernel"]

ELF_MAGIC = b"\x7fELF"
ET_EXEC, ET_CORE = 2, 4


_T = TypeVar("_T")


class HasCache(Protocol):
    @property
    def cache(self) -> dict[str, Any]: ...


_K = TypeVar("_K", bound=HasCache)


def per_kernel(fn: Callable[[_K], _T]) -> Callable[[_K], _T]:
    """Cache a helper's answer in the Kernel it was computed from (`Kernel.cache`, as drgn's prog.cache):
    each dump keeps its own, and they go when it is closed and dropped."""
    key = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def cached(k: _K) -> _T:
        try:
            return k.cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = k.cache[key] = fn(k)
            return value

    return cached


def parse_vmcoreinfo(text: str | None) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


def identify(path: str) -> str:
    """'vmlinux' for an ELF executable, 'dump' for anything else that exists (checked later)."""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError as e:
        raise DumpError(path, f"cannot open: {e.strerror}") from None
    if head[:4] == ELF_MAGIC and len(head) >= 18:
        (e_type,) = struct.unpack_from("<H", head, 16)
        return "vmlinux" if e_type == ET_EXEC else "dump"
    return "dump"


def open_kernel(path_a: str, path_b: str, **kwargs: Any) -> Kernel:
    """Open a vmlinux and a dump given in either order, as crash accepts them."""
    kinds = (identify(path_a), identify(path_b))
    if kinds == ("vmlinux", "dump"):
        return Kernel(path_a, path_b, **kwargs)
    if kinds == ("dump", "vmlinux"):
        return Kernel(path_b, path_a, **kwargs)
    if kinds == ("vmlinux", "vmlinux"):
        raise DumpError(path_b, "two kernel images given; need a vmlinux and a dump")
    raise DumpError(path_a, "no vmlinux given (neither file is an ELF executable)")


class Kernel:
    """A crashed kernel. `read`, `symbol`, `type`, `object` are the core API."""

    def __init__(
        self,
        vmlinux: str,
        dump: str,
        *,
        zero_excluded: bool = False,
        force_mismatch: bool = False,
        memory: PhysicalMemory | None = None,
    ) -> None:
        from kcrash.memory import open_dump

        self.vmlinux_path = vmlinux
        self.dump_path = dump
        self.warnings: list[str] = []
        # What helpers derive from this dump, by helper (see per_kernel): a dump does not change.
        self.cache: dict[str, Any] = {}
        self.elf = ElfImage(vmlinux)
        if self.elf.e_type != ET_EXEC:
            raise DebugInfoError(vmlinux, "not a kernel image (ELF type is not EXEC)")
        if self.elf.e_machine != EM_X86_64:
            raise DebugInfoError(
                vmlinux, f"unsupported machine {self.elf.e_machine} (kcrash supports x86_64)"
            )
        if self.elf.section(".symtab") is None:
            raise DebugInfoError(vmlinux, "no symbol table (stripped kernel image? use the -dbg vmlinux)")
        if self.elf.section(".debug_info") is None and self.elf.section(".BTF") is None:
            raise DebugInfoError(
                vmlinux, "no debug info (neither DWARF nor BTF): use the vmlinux of the kernel's -dbg package"
            )
        self.memory = memory if memory is not None else open_dump(dump, zero_excluded=zero_excluded)
        self.vmcoreinfo = parse_vmcoreinfo(self.memory.vmcoreinfo)
        self._link_symbols: SymbolTable | None = None
        # Debug info of modules whose object files were loaded (kcrash.kernel.module_debug, `mod -s`):
        # each has find_type(name) and find_variable(name), asked after the vmlinux's.
        self.module_debuginfo: list[Any] = []
        self._setup_translation()
        self.symbols = SymbolTable.from_elf(self.elf, self.kaslr_offset)
        self._check_match(force_mismatch)
        self._finish_translation()

    # --- set-up ---------------------------------------------------------------------------------------
    def _vmlinux_symbol(self, name: str) -> int | None:
        """Link-time address of a vmlinux symbol (before relocation), without building the full table."""
        if self._link_symbols is None:
            self._link_symbols = SymbolTable.from_elf(self.elf, 0)
        sym = self._link_symbols.lookup(name)
        return sym.address if sym else None

    def _setup_translation(self) -> None:
        info = self.vmcoreinfo
        mem = self.memory
        kaslr: int | None = None
        phys_base: int | None = None
        if "KERNELOFFSET" in info:
            kaslr = int(info["KERNELOFFSET"], 16)
        elif "SYMBOL(_stext)" in info:
            link = self._vmlinux_symbol("_stext")
            if link is not None:
                kaslr = int(info["SYMBOL(_stext)"], 16) - link
        # phys_base is where the kernel was loaded minus where it was linked: negative when the kernel
        # sits below its link address (KASLR). Keep it signed so the text-mapping arithmetic stays exact.
        if "NUMBER(phys_base)" in info:
            phys_base = _signed64(int(info["NUMBER(phys_base)"]))
        elif (dump_phys_base := getattr(mem, "phys_base", None)) is not None and kaslr is not None:
            phys_base = _signed64(dump_phys_base)
        if kaslr is None or phys_base is None:
            found = self._find_kernel_text()
            if found is None:
                raise DumpError(
                    self.dump_path,
                    "cannot locate the kernel in the dump (no VMCOREINFO, no CPU state with CR3, "
                    "no kernel-text segment)",
                )
            vaddr, paddr = found
            text = self._vmlinux_symbol("_text") or self._vmlinux_symbol("_stext")
            if text is None:
                raise DumpError(self.dump_path, "the vmlinux has neither _text nor _stext")
            kaslr = vaddr - text if kaslr is None else kaslr
            phys_base = paddr - (vaddr - START_KERNEL_MAP)
            self.warnings.append("no VMCOREINFO: kernel location found from the dump's page tables")
        self.kaslr_offset = kaslr
        self.phys_base = phys_base
        l5 = info.get("NUMBER(pgtable_l5_enabled)", "0") not in ("0", "")
        if "NUMBER(pgtable_l5_enabled)" not in info:
            cr4 = next((r.control.get("cr4", 0) for r in self.cpu_registers_raw if r.control), 0)
            l5 = bool(cr4 & (1 << 12))
        bits = int(info.get("NUMBER(MAX_PHYSMEM_BITS)", "52" if l5 else "46"))
        image_size = int(info.get("NUMBER(KERNEL_IMAGE_SIZE)", str(1 << 30)))
        self.translator = Translator(
            self._read_phys,
            phys_base,
            kaslr,
            None,
            l5=l5,
            max_physmem_bits=bits,
            kernel_image_size=image_size,
        )
        root = info.get("SYMBOL(init_top_pgt)")
        root_v: int | None
        if root is not None:
            root_v = int(root, 16)
        else:
            link = self._vmlinux_symbol("init_top_pgt")
            root_v = link + kaslr if link is not None else None
        if root_v is not None:
            self.translator.pgd_paddr = self.translator.kernel_text_to_phys(root_v)

    def _find_kernel_text(self) -> tuple[int, int] | None:
        # kdump's ELF: the PT_LOAD of the kernel image carries its virtual address.
        for seg in getattr(self.memory, "elf_segments", None) or ():
            paddr, vaddr = seg[0], seg[1]
            if START_KERNEL_MAP <= vaddr < START_KERNEL_MAP + (1 << 30):
                return vaddr, paddr
        for regs in self.cpu_registers_raw:
            cr3 = regs.control.get("cr3")
            if cr3:
                l5 = bool(regs.control.get("cr4", 0) & (1 << 12))
                found = Translator.find_kernel_text(self._read_phys, cr3, l5)
                if found:
                    return found
        return None

    def _check_match(self, force: bool) -> None:
        """The vmlinux must be the kernel that crashed: compare linux_banner in both."""
        sym = self.symbols.lookup("linux_banner")
        if sym is None:
            return
        link_addr = sym.address - self.kaslr_offset
        on_disk = self.elf.read_at_address(link_addr, min(sym.size or 256, 256))
        if on_disk is None:
            return
        on_disk = on_disk.split(b"\0", 1)[0]
        try:
            in_dump = self.read(sym.address, len(on_disk))
        except MemoryReadError:
            in_dump = None
        if in_dump == on_disk:
            return
        dump_release = self.vmcoreinfo.get("OSRELEASE") or _banner_release(in_dump) or "unknown"
        file_release = _banner_release(on_disk) or "unknown"
        why = f"vmlinux and dump do not match: vmlinux is {file_release}, dump is {dump_release}"
        if dump_release == file_release:
            why += " (same release, different build)"
        if not force:
            raise DebugInfoError(self.vmlinux_path, why)
        self.warnings.append(f"WARNING: {why}")

    def _finish_translation(self) -> None:
        t = self.translator
        for name, attr in (("page_offset_base", "page_offset"),):
            sym = self.symbols.lookup(name)
            if sym is not None:
                try:
                    setattr(t, attr, self.read_u64(sym.address))
                except MemoryReadError:
                    self.warnings.append(f"cannot read {name}; assuming the default")
        # With CONFIG_RANDOMIZE_MEMORY the direct map is sized by the RAM (plus padding), and vmalloc_base
        # may follow it well within 2^MAX_PHYSMEM_BITS: stacks there must be walked, not taken for the
        # direct map (seen on Debian's 5.10: vmalloc_base 0x1c91_0000_0000 above page_offset_base, 28.6 TiB).
        sym = self.symbols.lookup("vmalloc_base")
        if sym is not None:
            try:
                vmalloc = self.read_u64(sym.address)
            except MemoryReadError:
                vmalloc = 0
            if vmalloc > t.page_offset:
                t.direct_map_size = min(t.direct_map_size, vmalloc - t.page_offset)
        sme = self.symbols.lookup("sme_me_mask")
        if sme is not None:
            try:
                t.sme_mask = self.read_u64(sme.address)
            except MemoryReadError:
                pass

    # --- memory -----------------------------------------------------------------------------------
    def _read_phys(self, paddr: int, size: int) -> bytes:
        return self.memory.read(paddr, size)

    def read(self, address: int, size: int, physical: bool = False) -> bytes:
        """`size` bytes at kernel virtual (or physical) `address`."""
        if address < 0 or size < 0:
            raise FaultError(address & 0xFFFFFFFFFFFFFFFF, "invalid address")
        if physical:
            return self.memory.read(address, size)
        return self.translator.read(address, size)

    def read_u8(self, address: int) -> int:
        return self.read(address, 1)[0]

    def read_u16(self, address: int) -> int:
        return int.from_bytes(self.read(address, 2), "little")

    def read_u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), "little")

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            chunk = min(limit - len(out), 4096 - (address & 4095))
            data = self.read(address, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                break
            out += data
            address += chunk
        return bytes(out)

    def vtop(self, address: int) -> int:
        return self.translator.vtop(address)

    # --- CPUs -------------------------------------------------------------------------------------
    @cached_property
    def cpu_registers_raw(self) -> list[Registers]:
        """Registers saved in the dump's notes, in note order (one per CPU)."""
        prstatus = [
            r
            for n in self.memory.notes
            if n.type == NT_PRSTATUS and n.name == "CORE"
            for r in [parse_prstatus(n.desc)]
            if r is not None
        ]
        qemu = [
            r
            for n in self.memory.notes
            if n.name == "QEMU"
            for r in [parse_qemu_cpu_state(n.desc)]
            if r is not None
        ]
        if prstatus and qemu and len(prstatus) == len(qemu):
            # QEMU writes both: the state of every vCPU when the dump was taken, in CPU order.
            for p, q in zip(prstatus, qemu, strict=True):
                p.control = q.control
                p.source = "QEMU"
        return prstatus or qemu

    # --- symbols ----------------------------------------------------------------------------------
    def symbol(self, name: str) -> Symbol:
        sym = self.symbols.lookup(name)
        if sym is None:
            raise LookupFailedError(self._unknown("symbol", name, self.symbols.by_name))
        return sym

    def address_of(self, name: str) -> int:
        return self.symbol(name).address

    def resolve(self, address: int) -> tuple[Symbol, int] | None:
        return self.symbols.resolve(address)

    @staticmethod
    def _unknown(what: str, name: str, names: Iterable[str]) -> str:
        msg = f'no {what} "{name}"'
        if len(name) > 2:
            prefix = [n for n in names if n.startswith(name[:3])][:5000]
            near = suggest(name, prefix)
            if near:
                msg += f'; did you mean "{near}"?'
        return msg

    # --- debug info -------------------------------------------------------------------------------
    @cached_property
    def btf(self) -> BtfTypes | None:
        from kcrash.debuginfo.btf import BtfTypes

        data = self.elf.section_data(".BTF")
        return BtfTypes(data) if data is not None else None

    @cached_property
    def dwarf(self) -> DwarfIndex | None:
        if self.elf.section(".debug_info") is None:
            return None
        from kcrash.debuginfo.dwarf import DwarfIndex

        return DwarfIndex.open(self.vmlinux_path, self.elf)

    def prefetch_debuginfo(self) -> bool:
        """Start building the DWARF name index in the background when it is not cached yet (the first
        open of a vmlinux), so start-up does not wait for it. True if a build was started."""
        if "dwarf" in self.__dict__ or self.elf.section(".debug_info") is None:
            return False
        from kcrash.debuginfo.dwarf import DwarfIndex

        return DwarfIndex.build_in_background(self.vmlinux_path, self.elf)

    @cached_property
    def lines(self) -> LineTable | None:
        if self.dwarf is None:
            return None
        from kcrash.debuginfo.lines import LineTable

        return LineTable(self.elf, self.dwarf)

    def source_line(self, address: int) -> tuple[str, int] | None:
        """(file, line) of a kernel text address, from the DWARF line tables."""
        if self.lines is None:
            return None
        link = address - self.kaslr_offset if address >= START_KERNEL_MAP else address
        return self.lines.lookup(link)

    def find_type(self, name: str) -> Type | None:
        name = _normalise_type_name(name)
        base, stars = _split_pointer(name)
        t = None
        if self.btf is not None:
            t = self.btf.find_type(base)
        if t is None and self.dwarf is not None:
            t = self.dwarf.find_type(base)
        for extra in self.module_debuginfo:
            if t is not None:
                break
            t = extra.find_type(base)
        if t is None:
            return None
        for _ in range(stars):
            t = Type(Kind.POINTER, size=8, target=t)
        return t

    def enumerator_value(self, name: str) -> int | None:
        """The value of an enumeration constant by name (`MM_SHMEMPAGES`, `NR_VM_ZONE_STAT_ITEMS`), from
        BTF, else DWARF; None when this kernel has no such constant."""
        for source in (self.btf, self.dwarf):
            hit = source.find_enumerator(name) if source is not None else None
            if hit is not None:
                return hit[1]
        return None

    def type(self, name: str) -> Type:
        """A type by C name: `struct task_struct`, `unsigned long`, `pid_t`, `struct page *`."""
        t = self.find_type(name)
        if t is None:
            raise LookupFailedError(f"no type named {_normalise_type_name(name)!r}")
        return t

    def variable_type(self, name: str) -> tuple[int, Type]:
        """(run-time address, type) of a global or per-cpu variable."""
        sym = self.symbols.lookup(name)
        if sym is not None and sym.address < START_KERNEL_MAP and self.btf is not None:
            percpu = self.btf.percpu_variables().get(name)
            if percpu is not None:
                return sym.address, percpu[1]
        if self.dwarf is not None:
            found = self.dwarf.find_variable(name)
            if found is not None:
                address, vtype = found
                if sym is not None:
                    address = sym.address
                elif address is not None and address >= START_KERNEL_MAP:
                    address += self.kaslr_offset
                if address is None:
                    raise LookupFailedError(f'variable "{name}" has no address (optimised out?)')
                return address, vtype
        if sym is None:
            for extra in self.module_debuginfo:
                found = extra.find_variable(name)
                if found is not None and found[0] is not None:
                    return found[0], found[1]
        if sym is not None:
            raise LookupFailedError(f'no debug info for symbol "{name}"')
        raise LookupFailedError(self._unknown("symbol", name, self.symbols.by_name))

    def object(self, name: str) -> Object:
        """The kernel variable `name` as an Object."""
        from kcrash.objects import Object

        address, vtype = self.variable_type(name)
        return Object(self, vtype, address=address)

    def object_at(self, type_: Type | str, address: int) -> Object:
        from kcrash.objects import Object

        if isinstance(type_, str):
            type_ = self.type(type_)
        return Object(self, type_, address=address)

    # --- per-cpu ----------------------------------------------------------------------------------
    @cached_property
    def per_cpu_offsets(self) -> list[int]:
        n = self.nr_cpu_ids
        base = self.address_of("__per_cpu_offset")
        return list(struct.unpack(f"<{n}Q", self.read(base, 8 * n)))

    @cached_property
    def nr_cpu_ids(self) -> int:
        sym = self.symbols.lookup("nr_cpu_ids")
        if sym is None:
            return max(1, len(self.cpu_registers_raw))
        return self.read_u32(sym.address)

    def per_cpu_address(self, address: int, cpu: int) -> int:
        if not 0 <= cpu < self.nr_cpu_ids:
            raise KcrashError(f"invalid cpu {cpu} (this kernel has {self.nr_cpu_ids})")
        return (address + self.per_cpu_offsets[cpu]) & 0xFFFFFFFFFFFFFFFF

    def per_cpu(self, name: str, cpu: int) -> Object:
        from kcrash.objects import Object

        address, vtype = self.variable_type(name)
        return Object(self, vtype, address=self.per_cpu_address(address, cpu))

    # --- identity ---------------------------------------------------------------------------------
    @cached_property
    def release(self) -> str:
        return self.vmcoreinfo.get("OSRELEASE") or self.object("init_uts_ns").name.release.string()

    def close(self) -> None:
        """Close the dump and the vmlinux. Debug-info readers holding views of the vmlinux mapping are
        dropped first; if a caller still holds one, the mapping is left for the process exit to unmap."""
        self.memory.close()
        for name in ("lines", "dwarf", "btf"):
            reader = self.__dict__.pop(name, None)
            closer = getattr(reader, "close", None)
            if closer is not None:
                try:
                    closer()
                except BufferError:
                    pass
        try:
            self.elf.close()
        except BufferError:
            pass

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _signed64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >> 63 else value


def _banner_release(banner: bytes | None) -> str | None:
    if not banner:
        return None
    m = re.match(rb"Linux version (\S+)", banner)
    return m.group(1).decode("ascii", "replace") if m else None


def _normalise_type_name(name: str) -> str:
    name = " ".join(name.replace("*", " * ").split())
    return name.replace(" *", "*").replace("* ", "*")


def _split_pointer(name: str) -> tuple[str, int]:
    stars = len(name) - len(name.rstrip("*"))
    return name.rstrip("*").strip(), stars
