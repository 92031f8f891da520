"""kcrash.memory on synthetic dumps: every format branch, compression, and bad input (real dumps: test_memory_fixtures)."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kcrash.errors import DumpError, MemoryReadError, PageExcludedError, PageNotInDumpError
from kcrash.memory import Note, PhysicalMemory, open_dump
from kcrash.memory.flattened import FlattenedSource
from kcrash.memory.source import FileSource
from tests.synth.dumps import (
    EM_AARCH64,
    PAGE_SIZE,
    LoadSegment,
    paginate,
    prstatus_x86_64,
    write_elf,
    write_flattened,
    write_kdump,
)

PS = PAGE_SIZE
HIGH = 0x1_0000_0000  # a page above 4 GiB: 64-bit pfns and offsets
VMCOREINFO = "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\n"
NOTES = [
    ("CORE", 1, prstatus_x86_64(1, {"rip": 0xFFFFFFFF81000000, "rsp": 0xFFFFC90000003F00})),
    ("CORE", 1, prstatus_x86_64(0, {"rip": 0xFFFFFFFF81000010})),
    ("QEMU", 0, b"\x01" * 456),
]
CODECS = ["zlib", "lzo", "snappy", "zstd", "none"]


def make_pages() -> dict[int, bytes]:
    """Pages 1-40 and 100-103 and one above 4 GiB; compressible, random and all-zero ones."""
    rng = random.Random(7)
    pages = {}
    for pfn in [*range(1, 41), *range(100, 104)]:
        if pfn % 7 == 0:
            pages[pfn * PS] = bytes(PS)
        elif pfn % 5 == 0:
            pages[pfn * PS] = rng.randbytes(PS)  # incompressible: stored raw even under a codec
        else:
            pages[pfn * PS] = (struct.pack("<Q", pfn) + rng.randbytes(56)) * (PS // 64)
    pages[HIGH] = b"high page".ljust(PS, b"\xee")
    return pages


PAGES = make_pages()
EXCLUDED = {10 * PS, 11 * PS, 102 * PS}


def check_all_pages(mem: PhysicalMemory, pages: dict[int, bytes], excluded: set[int] = frozenset()) -> None:
    for paddr, data in pages.items():
        if paddr in excluded:
            continue
        assert mem.read(paddr, PS) == data, hex(paddr)
        assert mem.read(paddr + 100, 8) == data[100:108]


# --- ELF ----------------------------------------------------------------------------------------


@pytest.fixture
def elf_path(tmp_path: Path) -> Path:
    write_elf(tmp_path / "vmcore", PAGES, notes=NOTES, vmcoreinfo=VMCOREINFO, vaddr_offset=0xFFFF888000000000)
    return tmp_path / "vmcore"


def test_elf_reads_every_page_and_metadata(elf_path: Path) -> None:
    with open_dump(str(elf_path)) as mem:
        check_all_pages(mem, PAGES)
        assert mem.format_name == "ELF"
        assert mem.machine == "x86_64" and mem.page_size == PS
        assert mem.vmcoreinfo == VMCOREINFO
        assert mem.cpu_count == 2
        assert [(n.name, n.type) for n in mem.notes] == [
            ("CORE", 1),
            ("CORE", 1),
            ("QEMU", 0),
            ("VMCOREINFO", 0),
        ]
        assert isinstance(mem.notes[0], Note) and len(mem.notes[0].desc) == 336
        assert mem.phys_base is None and mem.dump_level is None and not mem.incomplete
        assert mem.ranges() == [(PS, 41 * PS), (100 * PS, 104 * PS), (HIGH, HIGH + PS)]
        seg = mem.elf_segments[0]
        assert (seg.paddr, seg.vaddr, seg.filesz, seg.memsz) == (
            PS,
            0xFFFF888000000000 + PS,
            40 * PS,
            40 * PS,
        )
        assert not mem.is_excluded(PS)


def test_elf_hole_and_spans(elf_path: Path) -> None:
    mem = open_dump(str(elf_path))
    with pytest.raises(PageNotInDumpError) as err:
        mem.read(0x50, 8)
    assert err.value.address == 0x50 and err.value.physical
    # A read running from the last page of a segment into a hole reports the hole's first byte.
    with pytest.raises(PageNotInDumpError) as err:
        mem.read(41 * PS - 8, 16)
    assert err.value.address == 41 * PS
    assert (
        mem.read(3 * PS - 5, PS + 10) == (PAGES[2 * PS] + PAGES[3 * PS] + PAGES[4 * PS])[PS - 5 : 2 * PS + 5]
    )
    assert mem.read(0, 0) == b""
    mem.close()


def test_elf_read_across_segments_and_zero_tail(tmp_path: Path) -> None:
    a, b = b"A" * PS, b"B" * PS
    write_elf(
        tmp_path / "vmcore",
        segments=[
            LoadSegment(0x10000, a),
            LoadSegment(0x11000, b, memsz=3 * PS),  # two zero-filled pages after b
            LoadSegment(0x20000, b"", memsz=PS),  # all zero, nothing in the file
        ],
    )
    mem = open_dump(str(tmp_path / "vmcore"))
    assert mem.read(0x10FF0, 0x20) == b"A" * 16 + b"B" * 16
    assert mem.read(0x11FF0, 0x20) == b"B" * 16 + bytes(16)
    assert mem.read(0x13000, PS) == bytes(PS)
    assert mem.read(0x20000, PS) == bytes(PS)
    assert mem.ranges() == [(0x10000, 0x14000), (0x20000, 0x21000)]
    with pytest.raises(PageNotInDumpError) as err:
        mem.read(0x13FF8, 16)
    assert err.value.address == 0x14000


def test_elf_kernel_text_alias_segment(tmp_path: Path) -> None:
    # /proc/vmcore maps kernel text twice: its own PT_LOAD and the direct-map one, same p_paddr.
    pages = {0x100000 + i * PS: bytes([i]) * PS for i in range(8)}
    text = LoadSegment(0x102000, pages[0x102000] + pages[0x103000], vaddr=0xFFFFFFFF81000000)
    write_elf(tmp_path / "vmcore", pages, segments=[text], vaddr_offset=0xFFFF888000000000)
    mem = open_dump(str(tmp_path / "vmcore"))
    check_all_pages(mem, pages)
    assert mem.ranges() == [(0x100000, 0x108000)]
    assert {s.vaddr for s in mem.elf_segments} == {0xFFFF888000100000, 0xFFFFFFFF81000000}


def test_elf_truncated_file(tmp_path: Path) -> None:
    write_elf(tmp_path / "vmcore", PAGES, vmcoreinfo=VMCOREINFO, truncate_at=20 * PS + 123)
    mem = open_dump(str(tmp_path / "vmcore"))
    assert mem.incomplete
    assert mem.read(19 * PS, PS) == PAGES[19 * PS]
    for paddr in (20 * PS, 20 * PS + 200, 30 * PS, 100 * PS, HIGH):
        with pytest.raises(PageNotInDumpError, match="truncated") as err:
            mem.read(paddr, 8)
        assert err.value.address == paddr
    with pytest.raises(PageNotInDumpError) as err:
        mem.read(19 * PS + 8, PS)
    assert err.value.address == 20 * PS
    assert mem.ranges() == [(PS, 20 * PS)]
    # Only excluded pages read as zeros: a truncated range still fails.
    mem.zero_excluded = True
    with pytest.raises(PageNotInDumpError):
        mem.read(30 * PS, 8)


def test_elf_pn_xnum(tmp_path: Path) -> None:
    write_elf(tmp_path / "vmcore", PAGES, vmcoreinfo=VMCOREINFO, pn_xnum=True)
    mem = open_dump(str(tmp_path / "vmcore"))
    check_all_pages(mem, PAGES)
    assert mem.vmcoreinfo == VMCOREINFO


def test_elf_not_core_and_other_machines(tmp_path: Path) -> None:
    write_elf(tmp_path / "exec", PAGES, e_type=2)
    with pytest.raises(DumpError, match="not a crash dump"):
        open_dump(str(tmp_path / "exec"))
    write_elf(tmp_path / "arm", PAGES, machine=EM_AARCH64)
    with pytest.raises(DumpError, match=r"unsupported machine aarch64 \(kcrash supports x86_64\)"):
        open_dump(str(tmp_path / "arm"))
    raw = bytearray((tmp_path / "exec").read_bytes())
    raw[4] = 1  # ELFCLASS32, x86_64 machine
    raw[16] = 4
    (tmp_path / "elf32").write_bytes(raw)
    with pytest.raises(DumpError, match="ELF64"):
        open_dump(str(tmp_path / "elf32"))


# --- kdump-compressed ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_kdump_each_compression(tmp_path: Path, codec: str) -> None:
    write_kdump(
        tmp_path / "dump", PAGES, compression=codec, excluded=EXCLUDED, notes=NOTES, vmcoreinfo=VMCOREINFO,
        phys_base=0x3C000000, dump_level=31,
    )  # fmt: skip
    with open_dump(str(tmp_path / "dump")) as mem:
        check_all_pages(mem, PAGES, EXCLUDED)
        assert mem.format_name == ("KDUMP" if codec == "none" else f"KDUMP ({codec})")
        assert mem.machine == "x86_64" and mem.page_size == PS
        assert mem.phys_base == 0x3C000000 and mem.dump_level == 31
        assert mem.vmcoreinfo == VMCOREINFO
        assert [n.name for n in mem.notes] == ["CORE", "CORE", "QEMU", "VMCOREINFO"]
        assert mem.cpu_count == 1  # the header's nr_cpus
        assert mem.elf_segments == []
        assert mem.ranges() == [(PS, 41 * PS), (100 * PS, 104 * PS), (HIGH, HIGH + PS)]


def test_kdump_mixed_codecs_and_shared_zero_page(tmp_path: Path) -> None:
    per_page = {paddr: CODECS[i % len(CODECS)] for i, paddr in enumerate(PAGES)}
    write_kdump(tmp_path / "dump", PAGES, compression=per_page)
    mem = open_dump(str(tmp_path / "dump"))
    check_all_pages(mem, PAGES)
    assert mem.format_name == "KDUMP (zlib/lzo/snappy/zstd)"
    # All-zero pages share one data block, as makedumpfile writes them.
    layout = write_kdump(tmp_path / "lzo", PAGES, compression="lzo")
    raw = (tmp_path / "lzo").read_bytes()
    zero_pfns = [p // PS for p, d in PAGES.items() if d == bytes(PS)]
    offsets = {struct.unpack_from("<Q", raw, layout.desc_of[pfn])[0] for pfn in zero_pfns}
    assert len(zero_pfns) > 1 and len(offsets) == 1
    check_all_pages(open_dump(str(tmp_path / "lzo")), PAGES)


def test_kdump_excluded_pages(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, excluded=EXCLUDED | {50 * PS})
    mem = open_dump(str(tmp_path / "dump"))
    assert mem.is_excluded(10 * PS + 5) and mem.is_excluded(50 * PS)
    assert not mem.is_excluded(9 * PS) and not mem.is_excluded(60 * PS)
    with pytest.raises(PageExcludedError) as err:
        mem.read(10 * PS + 0x123, 4)
    assert err.value.address == 10 * PS + 0x123 and err.value.physical
    assert "page excluded" in str(err.value)
    with pytest.raises(PageExcludedError) as err:
        mem.read(9 * PS + PS - 4, 8)  # runs from a dumped page into an excluded one
    assert err.value.address == 10 * PS
    assert mem.ranges() == [(PS, 41 * PS), (50 * PS, 51 * PS), (100 * PS, 104 * PS), (HIGH, HIGH + PS)]
    mem.zero_excluded = True
    assert mem.read(10 * PS, 2 * PS) == bytes(2 * PS)
    assert mem.read(9 * PS + PS - 4, 8) == PAGES[9 * PS][-4:] + bytes(4)
    with pytest.raises(PageNotInDumpError):  # holes stay errors
        mem.read(60 * PS, 8)
    zeroed = open_dump(str(tmp_path / "dump"), zero_excluded=True)
    assert zeroed.read(102 * PS, PS) == bytes(PS)


def test_kdump_holes(tmp_path: Path) -> None:
    low = {p: d for p, d in PAGES.items() if p < HIGH}
    write_kdump(tmp_path / "dump", low, max_pfn=300)
    mem = open_dump(str(tmp_path / "dump"))
    for paddr in (0, 41 * PS + 8, 200 * PS, 5000 * PS, HIGH):
        with pytest.raises(PageNotInDumpError) as err:
            mem.read(paddr, 8)
        assert err.value.address == paddr
        assert not mem.is_excluded(paddr)
    with pytest.raises(PageNotInDumpError) as err:
        mem.read(41 * PS - 8, 16)
    assert err.value.address == 41 * PS


def test_kdump_read_spanning_pages(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, compression="lzo")
    mem = open_dump(str(tmp_path / "dump"))
    whole = b"".join(PAGES[p * PS] for p in range(1, 41))
    assert mem.read(PS, 40 * PS) == whole
    assert mem.read(PS + 77, 3 * PS + 5) == whole[77 : 77 + 3 * PS + 5]


def test_kdump_page_cache_is_bounded_and_used(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, compression="zstd")
    mem = open_dump(str(tmp_path / "dump"))
    mem.cache_pages = 8
    for pfn in range(1, 41):
        mem.read(pfn * PS, 8)
        assert len(mem._cache) <= 8
    misses = mem.cache_misses
    mem.read(40 * PS + 16, 8)  # most recently used: a hit, not decompressed again
    assert mem.cache_misses == misses and mem.cache_hits >= 1
    mem.read(PS, 8)  # evicted long ago: decompressed again
    assert mem.cache_misses == misses + 1
    assert len(mem._cache) == 8


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_kdump_header_versions(tmp_path: Path, version: int) -> None:
    write_kdump(
        tmp_path / "dump",
        PAGES,
        header_version=version,
        notes=NOTES,
        vmcoreinfo=VMCOREINFO,
        phys_base=0x1000000,
    )
    mem = open_dump(str(tmp_path / "dump"))
    check_all_pages(mem, PAGES)
    assert mem.phys_base == 0x1000000 and mem.dump_level == 31
    assert mem.vmcoreinfo == (VMCOREINFO if version >= 3 else None)
    assert len(mem.notes) == (4 if version >= 4 else 0)


def test_kdump_v6_uses_64bit_max_mapnr(tmp_path: Path) -> None:
    # The 32-bit max_mapnr says 3 pfns; a v6 reader must take max_mapnr_64 and see the high page.
    write_kdump(tmp_path / "dump", PAGES, header_version=6, max_mapnr32=3)
    mem = open_dump(str(tmp_path / "dump"))
    assert mem.read(HIGH, 9) == b"high page"
    check_all_pages(mem, PAGES)


def test_kdump_vmcoreinfo_from_notes(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, notes=NOTES, vmcoreinfo=VMCOREINFO, vmcoreinfo_in_subheader=False)
    assert open_dump(str(tmp_path / "dump")).vmcoreinfo == VMCOREINFO


def test_old_diskdump_single_bitmap(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, signature=b"DISKDUMP", single_bitmap=True, header_version=0)
    mem = open_dump(str(tmp_path / "dump"))
    assert mem.format_name == "DISKDUMP (zlib)"
    check_all_pages(mem, PAGES)
    assert mem.phys_base is None and mem.vmcoreinfo is None
    with pytest.raises(PageNotInDumpError):
        mem.read(50 * PS, 8)


def test_kdump_split_and_incomplete_flags(tmp_path: Path) -> None:
    write_kdump(tmp_path / "split", PAGES, split=(0, 30), status=0x1 | 0x8)
    mem = open_dump(str(tmp_path / "split"))
    assert mem.partial and mem.incomplete
    assert mem.read(29 * PS, PS) == PAGES[29 * PS]
    with pytest.raises(PageNotInDumpError, match="split"):
        mem.read(30 * PS, 8)
    assert mem.ranges() == [(PS, 30 * PS)]
    write_kdump(tmp_path / "whole", PAGES)
    mem = open_dump(str(tmp_path / "whole"))
    assert not mem.partial and not mem.incomplete


def test_kdump_other_machine(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES, machine="aarch64")
    with pytest.raises(DumpError, match=r"unsupported machine aarch64 \(kcrash supports x86_64\)"):
        open_dump(str(tmp_path / "dump"))


def test_kdump_truncated_header(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES)
    raw = (tmp_path / "dump").read_bytes()
    for cut in (8, 100, 463):
        (tmp_path / "cut").write_bytes(raw[:cut])
        with pytest.raises(DumpError, match="truncated kdump header"):
            open_dump(str(tmp_path / "cut"))
    (tmp_path / "cut").write_bytes(raw[: PS + 20])  # header whole, sub-header cut
    with pytest.raises(DumpError, match="truncated kdump header"):
        open_dump(str(tmp_path / "cut"))
    (tmp_path / "cut").write_bytes(raw[:5])
    with pytest.raises(DumpError, match="truncated"):
        open_dump(str(tmp_path / "cut"))


def _patch(path: Path, offset: int, fmt: str, *values: int) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(raw)


def test_kdump_corrupt_bitmap(tmp_path: Path) -> None:
    write_kdump(tmp_path / "dump", PAGES)
    _patch(tmp_path / "dump", 436, "<I", 0x7FFFFFFF)  # bitmap_blocks far past the end of the file
    with pytest.raises(DumpError, match="corrupt bitmap"):
        open_dump(str(tmp_path / "dump"))
    write_kdump(tmp_path / "dump", PAGES, header_version=5)
    _patch(tmp_path / "dump", 440, "<I", 1 << 31)  # max_mapnr larger than the bitmap covers
    with pytest.raises(DumpError, match="corrupt bitmap"):
        open_dump(str(tmp_path / "dump"))
    write_kdump(tmp_path / "dump", PAGES)
    _patch(tmp_path / "dump", 428, "<i", 1000)  # block_size not a power of two
    with pytest.raises(DumpError, match="block_size"):
        open_dump(str(tmp_path / "dump"))


def test_kdump_bad_descriptors_are_read_errors(tmp_path: Path) -> None:
    layout = write_kdump(tmp_path / "dump", PAGES, compression="zlib")
    path = tmp_path / "dump"
    _patch(path, layout.desc_of[2], "<Q", 1 << 40)  # data offset past EOF
    _patch(path, layout.desc_of[3] + 8, "<I", 100)  # wrong compressed size: corrupt stream
    _patch(path, layout.desc_of[4] + 8, "<I", PS + 1)  # larger than a page
    _patch(path, layout.desc_of[6] + 8, "<II", 100, 0)  # neither compressed nor a whole page
    _patch(path, layout.desc_of[8], "<QI", 0, 0)  # never written (incomplete dump)
    mem = open_dump(str(path))
    for pfn in (2, 3, 4, 6, 8):
        with pytest.raises(MemoryReadError) as err:
            mem.read(pfn * PS + 1, 8)
        assert err.value.address == pfn * PS + 1, pfn
    with pytest.raises(PageNotInDumpError, match="beyond end of file"):
        mem.read(2 * PS, 8)
    with pytest.raises(MemoryReadError, match="corrupt zlib page"):
        mem.read(3 * PS, 8)
    assert mem.read(9 * PS, PS) == PAGES[9 * PS]


def test_kdump_truncated_file_reads_fail_cleanly(tmp_path: Path) -> None:
    layout = write_kdump(tmp_path / "dump", PAGES)
    raw = (tmp_path / "dump").read_bytes()
    for cut in (layout.desc_offset + 24 * 5 + 7, layout.data_offset + 1000, len(raw) - 10):
        (tmp_path / "cut").write_bytes(raw[:cut])
        if cut < layout.data_offset:  # no page data at all
            with pytest.raises(PageNotInDumpError, match="truncated"):
                open_dump(str(tmp_path / "cut")).read(PS, 8)
            continue
        mem = open_dump(str(tmp_path / "cut"))
        good = 0
        for paddr, data in PAGES.items():
            try:
                assert mem.read(paddr, PS) == data
                good += 1
            except PageNotInDumpError as err:
                assert "truncated" in str(err)
        assert 0 < good < len(PAGES)


# --- flattened ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["zlib", "lzo"])
def test_flattened_kdump(tmp_path: Path, codec: str) -> None:
    write_kdump(tmp_path / "dump", PAGES, compression=codec, excluded=EXCLUDED, vmcoreinfo=VMCOREINFO)
    write_flattened(tmp_path / "flat", tmp_path / "dump", seed=3)
    mem = open_dump(str(tmp_path / "flat"))
    assert mem.format_name == f"flattened KDUMP ({codec})"
    check_all_pages(mem, PAGES, EXCLUDED)
    assert mem.vmcoreinfo == VMCOREINFO
    with pytest.raises(PageExcludedError):
        mem.read(10 * PS, 8)


def test_flattened_elf(tmp_path: Path, elf_path: Path) -> None:
    write_flattened(tmp_path / "flat", elf_path, seed=4, max_record=300)
    mem = open_dump(str(tmp_path / "flat"))
    assert mem.format_name == "flattened ELF"
    check_all_pages(mem, PAGES)
    assert mem.vmcoreinfo == VMCOREINFO and mem.cpu_count == 2


@pytest.mark.parametrize("seed", range(4))
def test_flattened_view_matches_rearranged_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(50_000))
    data[10_000:30_000] = bytes(20_000)  # zero stretches become gaps in the stream
    write_flattened(tmp_path / "flat", bytes(data), seed=seed, max_record=rng.choice([7, 500, 4000]))
    view = FlattenedSource(FileSource(str(tmp_path / "flat")), "flat")
    assert view.size == len(data)
    for _ in range(500):
        start = rng.randrange(len(data) + 10)
        size = rng.randrange(1, 9000)
        assert view.pread(start, size) == bytes(data[start : start + size])
    view.close()


def test_flattened_bad_headers(tmp_path: Path) -> None:
    header = b"makedumpfile".ljust(16, b"\0")
    (tmp_path / "short").write_bytes(header + struct.pack(">qq", 1, 1))
    with pytest.raises(DumpError, match="truncated flattened header"):
        open_dump(str(tmp_path / "short"))
    (tmp_path / "version").write_bytes((header + struct.pack(">qq", 1, 2)).ljust(4096, b"\0"))
    with pytest.raises(DumpError, match="unsupported flattened format"):
        open_dump(str(tmp_path / "version"))
    bad = (header + struct.pack(">qq", 1, 1)).ljust(4096, b"\0") + struct.pack(">qq", -7, 5) + bytes(5)
    (tmp_path / "record").write_bytes(bad)
    with pytest.raises(DumpError, match="corrupt flattened record"):
        open_dump(str(tmp_path / "record"))
    empty = (header + struct.pack(">qq", 1, 1)).ljust(4096, b"\0") + struct.pack(">qq", -1, 0)
    (tmp_path / "empty").write_bytes(empty)
    with pytest.raises(DumpError, match="no data"):
        open_dump(str(tmp_path / "empty"))
    text = (header + struct.pack(">qq", 1, 1)).ljust(4096, b"\0") + struct.pack(">qq", 0, 5) + b"hello"
    (tmp_path / "text").write_bytes(text)
    with pytest.raises(DumpError, match="not a crash dump"):
        open_dump(str(tmp_path / "text"))


# --- not dumps, and fuzzing -----------------------------------------------------------------------


def test_not_dumps(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("hello, this is not a crash dump\n" * 10)
    (tmp_path / "empty").write_bytes(b"")
    cases = {
        "text": "not a crash dump (unknown format)",
        "empty": "empty file",
        "missing": "cannot read",
        ".": "is a directory",
    }
    for name, why in cases.items():
        with pytest.raises(DumpError) as err:
            open_dump(str(tmp_path / name))
        assert why in err.value.why
        assert err.value.path == str(tmp_path / name)
    # A dump is recognised by content, not by name.
    write_kdump(tmp_path / "vmcore.elf", PAGES)
    assert open_dump(str(tmp_path / "vmcore.elf")).format_name == "KDUMP (zlib)"


@pytest.mark.parametrize("kind", ["kdump", "elf", "flat"])
def test_fuzzed_headers_raise_only_dump_errors(tmp_path: Path, kind: str) -> None:
    pages = {p: d for p, d in PAGES.items() if p < 20 * PS}
    if kind == "elf":
        write_elf(tmp_path / "dump", pages, notes=NOTES, vmcoreinfo=VMCOREINFO)
    else:
        write_kdump(tmp_path / "dump", pages, notes=NOTES, vmcoreinfo=VMCOREINFO)
    if kind == "flat":
        write_flattened(tmp_path / "flat", tmp_path / "dump")
        (tmp_path / "dump").write_bytes((tmp_path / "flat").read_bytes())
    raw = (tmp_path / "dump").read_bytes()
    rng = random.Random(kind)
    limit = min(len(raw), 3 * PS + 200)
    for trial in range(300):
        mutated = bytearray(raw)
        if trial % 3 == 0:
            mutated = mutated[: rng.randrange(limit)]
        else:
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(limit)
                mutated[at] = rng.randrange(256)
        (tmp_path / "fuzz").write_bytes(mutated)
        try:
            mem = open_dump(str(tmp_path / "fuzz"))
        except DumpError:
            continue
        for paddr in (PS, 5 * PS + 3, 19 * PS, 0, 1 << 40):
            try:
                mem.read(paddr, 16)
            except MemoryReadError:
                pass
        mem.close()


def test_codecs_are_imported_lazily() -> None:
    code = (
        "import sys, kcrash.memory; print(sorted(m for m in ('lzallright', 'cramjam') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_paginate_helper() -> None:
    pages = paginate({0x1FF0: b"x" * 32, 0x5000: b"y"})
    assert sorted(pages) == [0x1000, 0x2000, 0x5000]
    assert pages[0x1000].endswith(b"x" * 16) and pages[0x2000].startswith(b"x" * 16)
