"""Module debug info and module ORC without a dump: object-file search and build-id choice, crash's name
clean-up, and the chaining of a module's ORC table after the vmlinux's."""

from __future__ import annotations

import struct
from array import array

from kcrash.arch.orc import TYPE_CALL, ChainedOrc, OrcTable, _layout_from_type
from kcrash.kernel import module_debug
from kcrash.kernel.modules import Module


def elf_with_build_id(build_id: bytes, e_type: int = 1) -> bytes:
    """A minimal little-endian ELF64 file: a .note.gnu.build-id section and the section-name table."""
    note = struct.pack("<III", 4, len(build_id), 3) + b"GNU\0" + build_id
    names = b"\0.note.gnu.build-id\0.shstrtab\0"
    body_off = 64
    note_off, names_off = body_off, body_off + len(note)
    shoff = (names_off + len(names) + 7) & ~7
    header = bytearray(64)
    header[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, e_type, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    sections = bytes(64)
    sections += struct.pack("<IIQQQQIIQQ", 1, 7, 2, 0, note_off, len(note), 0, 0, 4, 0)
    sections += struct.pack("<IIQQQQIIQQ", 20, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
    data = bytes(header) + note + names
    return data + bytes(shoff - len(data)) + sections


def fake_module(name: str) -> Module:
    return Module(
        address=0xFFFFFFFFC0001000,
        name=name,
        base=0xFFFFFFFFC0000000,
        size=0x1000,
        text_size=0x800,
        regions=(),
    )


def test_build_id_of_a_file(tmp_path) -> None:
    path = tmp_path / "m.ko"
    path.write_bytes(elf_with_build_id(bytes(range(20))))
    assert module_debug.file_build_id(str(path)) == bytes(range(20)).hex()
    (tmp_path / "junk.ko").write_text("not an ELF file")
    assert module_debug.file_build_id(str(tmp_path / "junk.ko")) is None


def test_search_takes_the_file_of_the_modules_build(tmp_path, monkeypatch) -> None:
    """dm_mod is looked for as dm_mod.ko, dm-mod.ko, then .ko.debug; another build's file is skipped."""
    wanted, other = bytes([1]) * 20, bytes([2]) * 20
    (tmp_path / "a" / "kernel").mkdir(parents=True)
    (tmp_path / "b" / "drivers" / "md").mkdir(parents=True)
    (tmp_path / "a" / "kernel" / "dm_mod.ko").write_bytes(elf_with_build_id(other))
    (tmp_path / "b" / "drivers" / "md" / "dm-mod.ko").write_bytes(elf_with_build_id(wanted))
    (tmp_path / "b" / ".hidden").mkdir()
    (tmp_path / "b" / ".hidden" / "dm_mod.ko").write_bytes(elf_with_build_id(wanted))
    monkeypatch.setattr(module_debug, "module_build_id", lambda k, mod: wanted.hex())
    monkeypatch.setattr(module_debug, "debug_dirs", lambda k: [str(tmp_path / "a"), str(tmp_path / "b")])
    found, skipped = module_debug.find_module_file(None, fake_module("dm_mod"))
    assert found == str(tmp_path / "b" / "drivers" / "md" / "dm-mod.ko")
    assert skipped == [str(tmp_path / "a" / "kernel" / "dm_mod.ko")]
    # A directory given to `mod -S DIR` is the only place searched.
    found, skipped = module_debug.find_module_file(None, fake_module("dm_mod"), str(tmp_path / "a"))
    assert found is None and skipped == [str(tmp_path / "a" / "kernel" / "dm_mod.ko")]
    # Without a build-id in the dump, the first file found is taken (crash's behaviour).
    monkeypatch.setattr(module_debug, "module_build_id", lambda k, mod: None)
    found, _ = module_debug.find_module_file(None, fake_module("dm_mod"))
    assert found == str(tmp_path / "a" / "kernel" / "dm_mod.ko")


def test_crash_strips_old_modversion_suffixes() -> None:
    strip = module_debug._strip_modversion
    assert strip("printk_R1b7d4074") == "printk"
    assert strip("kfree_Rsmp_037a0cba") == "kfree"
    assert strip("fw_cfg_sysfs_attr_raw") == "fw_cfg_sysfs_attr_raw"
    assert strip("CONFIG_R") == "CONFIG_R"
    assert strip("FOO_RX") == "FOO_RX"


def _table(ips: list[int], entries: bytes) -> OrcTable:
    layout, new = _layout_from_type(None)  # the layout of 4.14-6.2 kernels
    return OrcTable(ips, entries, layout, new, "4.14")


def test_module_table_chained_after_the_vmlinux() -> None:
    """An address in module text is looked up in that module's table (from its self-relative ips), any
    other outside the vmlinux finds nothing, and the vmlinux's own text stays with the vmlinux table."""
    call_sp8 = struct.pack("<hhH", 8, 0, 5)  # sp_reg SP, type CALL (old layout): the entry of a function
    call_sp24 = struct.pack("<hhH", 24, -16, 5 | 1 << 4)  # after three pushes, bp saved at prev_sp-16
    vmlinux = _table([0xFFFFFFFF81000000, 0xFFFFFFFF81000010], call_sp8 * 2)
    module = vmlinux.sibling(
        0xFFFFFFFFC0002000,
        array(
            "i", [0xFFFFFFFFC0000000 - 0xFFFFFFFFC0002000, 0xFFFFFFFFC0000004 - 0xFFFFFFFFC0002004]
        ).tobytes(),
        call_sp8 + call_sp24,
    )
    assert module.ips == [0xFFFFFFFFC0000000, 0xFFFFFFFFC0000004] and module.numbering == "4.14"

    def other(ip: int) -> OrcTable | None:
        return module if 0xFFFFFFFFC0000000 <= ip < 0xFFFFFFFFC0001000 else None

    chained = ChainedOrc(vmlinux, lambda ip: 0xFFFFFFFF81000000 <= ip < 0xFFFFFFFF82000000, other)
    assert chained.numbering == "4.14"
    inside = chained.find(0xFFFFFFFFC0000010)
    assert (
        inside is not None and inside.type == TYPE_CALL and inside.sp_offset == 24 and inside.bp_offset == -16
    )
    assert chained.find(0xFFFFFFFFC0000001).sp_offset == 8
    assert chained.find(0xFFFFFFFFC0002000) is None  # past the module's text
    assert chained.find(0xFFFFFFFF81000011).sp_offset == 8
