"""kcrash.debuginfo.dwarf, .lines and .cache: objects compiled by gcc (DWARF 4 and 5), DWARF assembled
DIE by DIE for the forms gcc rarely emits and for bad input, then the real vmlinux."""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from kcrash.debuginfo import cache
from kcrash.debuginfo.btf import BtfTypes
from kcrash.debuginfo.dwarf import DwarfIndex
from kcrash.debuginfo.dwarf import constants as dwarf_constants
from kcrash.debuginfo.dwarf import index as dwarf_index
from kcrash.debuginfo.lines import LineTable
from kcrash.debuginfo.types import Kind, Type, declaration, type_name
from kcrash.errors import DebugInfoError
from tests.synth.elfdebug import Die, DwarfBuilder, elf_image, gnu_build_id_note, real_vmlinux

D = dwarf_constants  # DWARF constants


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path_factory.mktemp("index-cache")
    monkeypatch.setenv("KCRASH_CACHE_DIR", str(directory))
    return directory


# --- objects compiled by gcc ---------------------------------------------------------------------------
SOURCE_A = r"""
#include <stdarg.h>
struct list_head { struct list_head *next, *prev; };
struct opaque;
typedef int pid_t;
enum color { RED, GREEN = 5, BLUE = -1 };
enum big { BIG = 0xffffffff80000000UL };
struct flags { unsigned a:1, b:3; int c:5; unsigned long rest; };
union u { int i; char c[3]; };
struct task {
	volatile long state;
	pid_t pid;
	char comm[16];
	struct list_head tasks;
	int grid[2][3];
	const char *name;
	struct flags f;
	union u un;
	struct { int x, y; } anon_named;
	union { long p; int q; };
	struct opaque *op;
	int (*fn)(int, const char *, ...);
	int zero[0];
	char buf[256];
	char tail[];
};
extern struct task init_task;
struct task init_task = { .pid = 0, .comm = "swapper/0" };
volatile unsigned long jiffies = 5;
int used(void)
{
	return (int)jiffies + 1;
}
int sum(int n, ...)
{
	va_list ap;
	va_start(ap, n);
	int s = va_arg(ap, int);
	va_end(ap);
	return s + n;
}
void (*cb)(void);
enum color col = GREEN;
enum big bigv;
_Bool flag;
double dbl;
struct task *tasks[4];
"""

SOURCE_B = r"""
struct opaque { long secret; int more; };
struct opaque the_opaque;
"""


def _gcc(tmp_path: Path, version: int) -> Path:
    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("gcc/ld not installed")
    (tmp_path / "a.c").write_text(SOURCE_A)
    (tmp_path / "b.c").write_text(SOURCE_B)
    for name in ("a", "b"):
        subprocess.run(
            ["gcc", f"-gdwarf-{version}", "-O1", "-c", f"{name}.c", "-o", f"{name}.o"],
            cwd=tmp_path,
            check=True,
        )
    # One relocatable object with two units, as a kernel module is.
    subprocess.run(["ld", "-r", "a.o", "b.o", "-o", "ab.o"], cwd=tmp_path, check=True)
    return tmp_path / "ab.o"


@pytest.fixture(params=[4, 5], ids=["dwarf4", "dwarf5"])
def compiled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[DwarfIndex, Path]:
    path = _gcc(tmp_path, request.param)
    return DwarfIndex.open(str(path), path.read_bytes()), path


def test_index_holds_top_level_names(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    assert {"init_task", "jiffies", "cb", "col", "bigv", "flag", "dbl", "tasks", "the_opaque"} <= set(
        index.variable_names()
    )
    assert {"used", "sum"} <= set(index.function_names())
    names = set(index.type_names())
    assert {
        "struct task",
        "struct opaque",
        "union u",
        "enum color",
        "pid_t",
        "int",
        "long unsigned int",
    } <= names


def test_struct_layout(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    task = index.find_type("struct task")
    assert task is not None and task.kind is Kind.STRUCT
    layout = {m.name: (m.offset, declaration(m.type, m.name or "")) for m in task.members}
    assert layout["state"] == (0, "volatile long int state")
    assert layout["pid"] == (8, "pid_t pid")
    assert layout["comm"] == (12, "char comm[16]")
    assert layout["tasks"] == (32, "struct list_head tasks")
    assert layout["grid"] == (48, "int grid[2][3]")
    assert layout["name"] == (72, "const char *name")
    assert layout["f"] == (80, "struct flags f")
    assert layout["un"] == (96, "union u un")
    assert layout["anon_named"] == (100, "struct {...} anon_named")
    assert layout["op"] == (120, "struct opaque *op")
    assert layout["fn"] == (128, "int (*fn)(int, const char *, ...)")
    assert layout["zero"] == (136, "int zero[0]")
    assert layout["buf"] == (136, "char buf[256]")
    assert layout["tail"] == (392, "char tail[]")
    assert task.size == 392 and task.sizeof() == 392
    # an anonymous union's members are reachable by name
    q, bit_offset = task.member("q")
    assert bit_offset == 112 * 8 and q.type.name == "int"
    grid = task.member("grid")[0].type
    assert grid.length == 2 and grid.target.length == 3 and grid.sizeof() == 24


def test_bit_fields(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    flags = index.find_type("struct flags")
    assert [(m.name, m.bit_offset, m.bit_size) for m in flags.members] == [
        ("a", 0, 1),
        ("b", 1, 3),
        ("c", 4, 5),
        ("rest", 64, 0),
    ]


def test_variables_and_their_types(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    address, init = index.find_variable("init_task")
    assert type_name(init) == "struct task" and init.size == 392
    assert address is not None
    _, jiffies = index.find_variable("jiffies")
    assert jiffies.kind is Kind.VOLATILE and jiffies.strip().name == "long unsigned int"
    assert declaration(index.find_variable("cb")[1], "cb") == "void (*cb)(void)"
    assert declaration(index.find_variable("tasks")[1], "tasks") == "struct task *tasks[4]"
    assert index.find_variable("flag")[1].kind is Kind.BOOL
    dbl = index.find_variable("dbl")[1]
    assert dbl.kind is Kind.FLOAT and dbl.size == 8
    assert index.find_variable("nosuch") is None


def test_declaration_resolves_to_definition_in_another_unit(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    op = index.find_type("struct task").member("op")[0].type.target
    assert op.size == 16 and [m.name for m in op.members] == ["secret", "more"]


def test_enums(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    color, value = index.find_enumerator("BLUE")
    assert value == -1 and color.signed and type_name(color) == "enum color"
    assert index.find_enumerator("GREEN")[1] == 5
    big, value = index.find_enumerator("BIG")
    assert value == 0xFFFFFFFF80000000 and not big.signed and big.size == 8
    assert index.find_type("enum color").enumerator_value("RED") == 0


def test_functions(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    assert declaration(index.find_function("sum"), "sum") == "int sum(int, ...)"
    used = index.find_function("used")
    assert used.kind is Kind.FUNCTION and not used.variadic and type_name(used) == "int (void)"
    assert index.find_function("nosuch") is None


def test_base_type_names(compiled: tuple[DwarfIndex, Path]) -> None:
    index, _ = compiled
    ul = index.find_type("unsigned long")
    assert ul is not None and ul.name == "long unsigned int" and ul.size == 8 and not ul.signed
    assert index.find_type("long unsigned int") is ul
    assert index.find_type("char").size == 1
    pid_t = index.find_type("pid_t")
    assert pid_t.kind is Kind.TYPEDEF and pid_t.sizeof() == 4
    assert index.find_type("struct nosuch") is None and index.find_type("union task") is None


def test_lines(compiled: tuple[DwarfIndex, Path]) -> None:
    index, path = compiled
    lines = LineTable(path.read_bytes(), index)
    # Sections of an object start at 0: the first function's first instruction is at .text+0.
    file, line = lines.lookup(0)
    assert file == str(path.parent / "a.c")
    assert SOURCE_A.splitlines()[line - 1].startswith(("int used", "{", "\treturn"))
    assert lines.lookup(0x7FFF_0000) is None


# --- caching -----------------------------------------------------------------------------------------
def test_index_is_cached_and_reloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obj = _gcc(tmp_path, 5)
    data = obj.read_bytes()
    first = DwarfIndex.open(str(obj), data)

    def no_scan(*_args: object) -> None:
        raise AssertionError("the index should have come from the cache")

    monkeypatch.setattr(dwarf_index, "_scan", no_scan)
    second = DwarfIndex.open(str(obj), data)
    assert second._vars == first._vars and second._names == first._names
    assert type_name(second.find_variable("init_task")[1]) == "struct task"


def test_cache_version_and_corruption_rebuild(tmp_path: Path) -> None:
    cache.store("abc", "thing", 1, {"x": [1, 2]})
    assert cache.load("abc", "thing", 1) == {"x": [1, 2]}
    assert cache.load("abc", "thing", 2) is None  # another format version
    assert cache.load("other", "thing", 1) is None
    (cache.cache_dir("abc") / "thing").write_bytes(b"garbage")
    assert cache.load("abc", "thing", 1) is None
    leftovers = [p.name for p in cache.cache_dir("abc").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # atomic writes leave no temporary files


def test_cache_key_is_the_build_id(tmp_path: Path) -> None:
    build = DwarfBuilder()
    build.unit(Die(D.TAG_compile_unit, [(D.AT_name, D.FORM_string, "x.c")], [_int(build)]))
    image = elf_image(build.sections(), notes={".notes": gnu_build_id_note(bytes.fromhex("c0ffee00"))})
    sections = cache.elf_sections(image)
    assert cache.build_id(image, sections) == "c0ffee00"
    path = tmp_path / "vmlinux"
    path.write_bytes(image)
    DwarfIndex.open(str(path), image)
    assert (cache.cache_dir("c0ffee00") / "dwarf-index").is_file()


# --- DWARF assembled by hand -------------------------------------------------------------------------
def _int(build: DwarfBuilder, label: str = "int") -> Die:
    return Die(
        D.TAG_base_type,
        [
            (D.AT_name, D.FORM_string, "int"),
            (D.AT_byte_size, D.FORM_data1, 4),
            (D.AT_encoding, D.FORM_data1, 5),
        ],
        label=label,
    )


def _handmade() -> bytes:
    b = DwarfBuilder()
    cu_attrs = [
        (D.AT_name, D.FORM_line_strp, "one.c"),
        (D.AT_str_offsets_base, D.FORM_sec_offset, 8),
        (D.AT_addr_base, D.FORM_sec_offset, 8),
    ]
    unit1 = Die(
        D.TAG_compile_unit,
        cu_attrs,
        [
            _int(b, "int1"),
            Die(
                D.TAG_base_type,
                [
                    (D.AT_name, D.FORM_strx1, "long unsigned int"),
                    (D.AT_byte_size, D.FORM_implicit_const, 8),
                    (D.AT_encoding, D.FORM_data1, 7),
                ],
                label="ulong",
            ),
            Die(
                D.TAG_pointer_type, [(D.AT_type, D.FORM_ref_udata, "node")], label="node_ptr"
            ),  # no byte_size
            # a declaration, completed in unit 2
            Die(
                D.TAG_structure_type,
                [(D.AT_name, D.FORM_strx, "node"), (D.AT_declaration, D.FORM_flag, True)],
                label="node",
            ),
            # a sibling-linked struct with DWARF 2-style member locations and bit fields
            Die(
                D.TAG_structure_type,
                [
                    (D.AT_name, D.FORM_strp, "old"),
                    (D.AT_byte_size, D.FORM_data1, 8),
                    (D.AT_sibling, D.FORM_ref4, "matrix"),
                ],
                [
                    Die(
                        D.TAG_member,
                        [
                            (D.AT_name, D.FORM_string, "x"),
                            (D.AT_type, D.FORM_ref4, "int1"),
                            (D.AT_data_member_location, D.FORM_block1, bytes([D.OP_plus_uconst, 4])),
                        ],
                    ),
                    Die(
                        D.TAG_member,
                        [
                            (D.AT_name, D.FORM_string, "bits"),
                            (D.AT_type, D.FORM_ref4, "int1"),
                            (D.AT_byte_size, D.FORM_data1, 4),
                            (D.AT_bit_size, D.FORM_data1, 3),
                            (D.AT_bit_offset, D.FORM_data1, 27),  # big-endian numbering: bits 2..4
                            (D.AT_data_member_location, D.FORM_udata, 0),
                        ],
                    ),
                    Die(
                        D.TAG_member,
                        [
                            (D.AT_name, D.FORM_string, "wide"),
                            (D.AT_type, D.FORM_ref4, "int1"),
                            (0x3FF0, D.FORM_data16, b"\x01" * 16),  # an attribute nobody knows
                            (D.AT_data_member_location, D.FORM_data1, 0),
                        ],
                    ),
                ],
            ),
            Die(
                D.TAG_array_type,
                [(D.AT_type, D.FORM_ref4, "int1")],
                [
                    Die(D.TAG_subrange_type, [(D.AT_count, D.FORM_udata, 3)]),
                    Die(D.TAG_subrange_type, [(D.AT_upper_bound, D.FORM_sdata, 1)]),
                ],
                label="matrix",
            ),
            Die(
                D.TAG_variable,
                [
                    (D.AT_name, D.FORM_string, "matrix"),
                    (D.AT_type, D.FORM_ref4, "matrix"),
                    (D.AT_location, D.FORM_exprloc, bytes([D.OP_addrx]) + b"\x00"),
                ],
                label="matrix_var",
            ),
            # declared here, defined below through DW_AT_specification (as gcc does for an extern)
            Die(
                D.TAG_variable,
                [
                    (D.AT_name, D.FORM_strp, "counter"),
                    (D.AT_type, D.FORM_ref4, "ulong"),
                    (D.AT_declaration, D.FORM_flag_present, None),
                ],
                label="counter_decl",
            ),
            Die(
                D.TAG_variable,
                [
                    (D.AT_specification, D.FORM_ref4, "counter_decl"),
                    (
                        D.AT_location,
                        D.FORM_exprloc,
                        bytes([D.OP_addr]) + struct.pack("<Q", 0xFFFFFFFF82000000),
                    ),
                ],
            ),
            Die(
                D.TAG_enumeration_type,
                [
                    (D.AT_name, D.FORM_strp, "level"),
                    (D.AT_byte_size, D.FORM_data1, 4),
                    (D.AT_type, D.FORM_ref4, "int1"),
                ],
                [
                    Die(
                        D.TAG_enumerator,
                        [(D.AT_name, D.FORM_strp, "LOW"), (D.AT_const_value, D.FORM_data8, (1 << 64) - 1)],
                    ),
                    Die(
                        D.TAG_enumerator,
                        [(D.AT_name, D.FORM_string, "HI"), (D.AT_const_value, D.FORM_sdata, 7)],
                    ),
                    # dataN is unsigned even in a signed enum: gcc spells 128 as data1 0x80
                    Die(
                        D.TAG_enumerator,
                        [(D.AT_name, D.FORM_strp, "MID"), (D.AT_const_value, D.FORM_data1, 0x80)],
                    ),
                ],
            ),
            Die(
                D.TAG_variable,
                [(D.AT_name, D.FORM_string, "typed"), (D.AT_type, D.FORM_ref_sig8, 0x1122334455667788)],
            ),
            Die(
                D.TAG_variable, [(D.AT_name, D.FORM_string, "pointer"), (D.AT_type, D.FORM_ref4, "node_ptr")]
            ),
        ],
    )
    b.addr_index(0xFFFFFFFF81000000)  # index 0, for matrix's DW_OP_addrx 0
    b.unit(unit1)
    unit2 = Die(
        D.TAG_compile_unit,
        [(D.AT_name, D.FORM_string, "two.c")],
        [
            Die(
                D.TAG_structure_type,
                [(D.AT_name, D.FORM_strp, "node"), (D.AT_byte_size, D.FORM_data1, 16)],
                [
                    Die(
                        D.TAG_member,
                        [
                            (D.AT_name, D.FORM_strp, "next"),
                            (D.AT_type, D.FORM_ref_addr, "node_ptr"),  # a reference into unit 1
                            (D.AT_data_member_location, D.FORM_data1, 0),
                        ],
                    ),
                    Die(
                        D.TAG_member,
                        [
                            (D.AT_name, D.FORM_strp, "value"),
                            (D.AT_type, D.FORM_ref4, "int2"),
                            (D.AT_data_bit_offset, D.FORM_data2, 64),
                        ],
                    ),
                ],
            ),
            _int(b, "int2"),
        ],
    )
    b.unit(unit2, version=4)
    type_unit = Die(
        D.TAG_type_unit,
        [],
        [
            Die(
                D.TAG_typedef,
                [(D.AT_name, D.FORM_string, "sig_t"), (D.AT_type, D.FORM_ref4, "int3")],
                label="sig",
            ),
            _int(b, "int3"),
        ],
    )
    b.unit(type_unit, signature=0x1122334455667788, type_label="sig")
    return elf_image(b.sections())


@pytest.fixture(scope="module")
def handmade() -> DwarfIndex:
    image = _handmade()
    return DwarfIndex(
        "handmade",
        image,
        cache.elf_sections(image),
        DwarfIndex.build("handmade", image, cache.elf_sections(image)),
    )


def test_handmade_index(handmade: DwarfIndex) -> None:
    assert set(handmade.variable_names()) == {"matrix", "counter", "typed", "pointer"}
    assert {"struct old", "struct node", "enum level", "int", "long unsigned int", "sig_t"} <= set(
        handmade.type_names()
    )


def test_handmade_forms(handmade: DwarfIndex) -> None:
    ulong = handmade.find_type("unsigned long")
    assert ulong.name == "long unsigned int" and ulong.size == 8  # strx1 name, implicit_const size
    old = handmade.find_type("struct old")
    assert [(m.name, m.bit_offset, m.bit_size) for m in old.members] == [
        ("x", 32, 0),
        ("bits", 2, 3),
        ("wide", 0, 0),
    ]
    address, matrix = handmade.find_variable("matrix")
    assert address == 0xFFFFFFFF81000000  # DW_OP_addrx through .debug_addr
    assert type_name(matrix) == "int [3][2]" and matrix.sizeof() == 24


def test_handmade_specification_and_declarations(handmade: DwarfIndex) -> None:
    address, counter = handmade.find_variable("counter")
    assert address == 0xFFFFFFFF82000000 and counter.name == "long unsigned int"
    _, pointer = handmade.find_variable("pointer")
    assert pointer.size == 8  # pointer without DW_AT_byte_size: the unit's address size
    node = pointer.target  # declared in unit 1 (DW_FORM_flag), defined in unit 2 (DWARF 4)
    assert node.size == 16 and [(m.name, m.bit_offset) for m in node.members] == [("next", 0), ("value", 64)]
    assert node.members[0].type is pointer  # DW_FORM_ref_addr back into unit 1


def test_handmade_enum_and_type_unit(handmade: DwarfIndex) -> None:
    level, low = handmade.find_enumerator("LOW")
    assert low == -1 and level.signed  # data8 all-ones in an enum whose type is signed (gdb reads -1)
    assert handmade.find_enumerator("HI")[1] == 7
    assert handmade.find_enumerator("MID")[1] == 128
    _, typed = handmade.find_variable("typed")
    assert type_name(typed) == "sig_t" and typed.strip().size == 4  # DW_FORM_ref_sig8 → type unit


def test_64bit_dwarf_is_refused() -> None:
    b = DwarfBuilder()
    b.unit(Die(D.TAG_compile_unit), dwarf64=True)
    image = elf_image(b.sections())
    with pytest.raises(DebugInfoError, match="64-bit DWARF is not supported"):
        DwarfIndex.build("x", image, cache.elf_sections(image))


@pytest.mark.parametrize("version", [1, 6])
def test_unsupported_version(version: int) -> None:
    b = DwarfBuilder()
    b.unit(Die(D.TAG_compile_unit, [(D.AT_name, D.FORM_string, "x.c")]), version=version)
    image = elf_image(b.sections())
    with pytest.raises(DebugInfoError, match=f"unsupported DWARF version {version}"):
        DwarfIndex.build("x", image, cache.elf_sections(image))


def test_corrupt_input() -> None:
    b = DwarfBuilder()
    b.unit(Die(D.TAG_compile_unit, [(D.AT_name, D.FORM_string, "x.c")], [_int(b)]))
    sections = b.sections()
    info = bytearray(sections[".debug_info"])
    info[12 + 1 + 4] = 0x7E  # the base type's DIE: an abbreviation code that does not exist
    image = elf_image({**sections, ".debug_info": bytes(info)})
    with pytest.raises(DebugInfoError, match="corrupt DIE|bad abbreviation"):
        DwarfIndex.build("x", image, cache.elf_sections(image))
    truncated = elf_image({**sections, ".debug_info": sections[".debug_info"][:-4]})
    with pytest.raises(DebugInfoError):
        DwarfIndex.build("x", truncated, cache.elf_sections(truncated))
    with pytest.raises(DebugInfoError, match="no DWARF debug info"):
        image = elf_image({".text": b"\x90"})
        DwarfIndex.build("x", image, cache.elf_sections(image))
    with pytest.raises(DebugInfoError, match="not an ELF file"):
        cache.elf_sections(b"\0" * 100, "junk")


# --- the real vmlinux ---------------------------------------------------------------------------------
VMLINUX = real_vmlinux()

COMMON_STRUCTS = [
    "task_struct", "mm_struct", "pid", "list_head", "rq", "page", "file", "inode", "dentry", "super_block",
    "vm_area_struct", "cred", "sched_entity", "hlist_node", "kobject", "module", "net_device", "sk_buff",
    "signal_struct", "pt_regs", "cfs_rq", "files_struct",
]  # fmt: skip


class Real:
    def __init__(self, path: str, cache_dir: Path) -> None:
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 - closed by the fixture
        self.mm = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        self.sections = cache.elf_sections(self.mm, path)
        start = time.perf_counter()
        self.index = DwarfIndex.open(path, self.mm)
        self.open_seconds = time.perf_counter() - start
        self.cache_dir = cache_dir
        self._symbols: dict[str, int] = {}

    def symbol(self, name: str) -> int:
        """An ELF .symtab symbol's value (the test's own reader: nothing of kcrash's)."""
        strtab, symtab = self.sections[".strtab"], self.sections[".symtab"]
        needle = name.encode() + b"\0"  # .strtab shares tails: "init_task" may end a longer name
        strings = self.mm[strtab.offset : strtab.offset + strtab.size]
        name_offs = set()
        at = strings.find(needle)
        while at >= 0:
            name_offs.add(at)
            at = strings.find(needle, at + 1)
        raw = self.mm[symtab.offset : symtab.offset + symtab.size]
        for st_name, _info, _other, shndx, value, _size in struct.iter_unpack("<IBBHQQ", raw):
            if st_name in name_offs and shndx != 0:
                return value
        raise KeyError(name)

    def close(self) -> None:
        self.mm.close()
        self.file.close()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    if VMLINUX is None:
        if os.environ.get("KCRASH_SKIP_FIXTURES") != "1":  # missing fixtures fail unless opted out
            pytest.fail("no real vmlinux: set KCRASH_VMLINUX or build the fixtures (tests/fixtures/build.py)")
        pytest.skip("no real vmlinux (KCRASH_VMLINUX, ~/.cache/kcrash/fixtures/*/, /tmp/k61)")
    cache_dir = tmp_path_factory.mktemp("real-index")
    old = os.environ.get("KCRASH_CACHE_DIR")
    os.environ["KCRASH_CACHE_DIR"] = str(cache_dir)
    try:
        r = Real(VMLINUX, cache_dir)  # a cold build into an empty cache
    finally:
        if old is None:
            del os.environ["KCRASH_CACHE_DIR"]
        else:
            os.environ["KCRASH_CACHE_DIR"] = old
    yield r
    r.close()


@pytest.mark.fixture
def test_real_cold_build_then_warm_load(real: Real, monkeypatch: pytest.MonkeyPatch) -> None:
    # How long the cold build and the warm load take is measured in bench/, not asserted here (CI machines
    # vary in load); this test checks that the second open uses the cache and yields the same index.
    monkeypatch.setenv("KCRASH_CACHE_DIR", str(real.cache_dir))
    monkeypatch.setattr(dwarf_index, "_scan", lambda *_: pytest.fail("the cache was not used"))
    warm = DwarfIndex.open(real.path, real.mm)
    assert warm._vars == real.index._vars and warm._enumerators == real.index._enumerators


@pytest.mark.fixture
def test_real_init_task(real: Real) -> None:
    address, task = real.index.find_variable("init_task")
    assert address == real.symbol("init_task")
    assert type_name(task) == "struct task_struct"
    assert type_name(task.member("comm")[0].type) == "char [16]"
    assert type_name(task.member("tasks")[0].type) == "struct list_head"
    assert task.find_member("__state") or task.find_member("state")
    assert task.member("pid")[0].type.sizeof() == 4


@pytest.mark.fixture
def test_real_jiffies_list_head_pid_type(real: Real) -> None:
    _, jiffies = real.index.find_variable("jiffies")
    assert jiffies.unqualified().strip().name == "long unsigned int" and jiffies.sizeof() == 8
    assert real.index.find_type("struct list_head").size == 16
    enum, value = real.index.find_enumerator("PIDTYPE_PID")
    assert value == 0 and type_name(enum) == "enum pid_type"
    assert type_name(real.index.find_function("schedule")) == "void (void)"


@pytest.mark.fixture
def test_real_lines_for_schedule(real: Real) -> None:
    lines = LineTable(real.mm, real.index)
    hit = lines.lookup(real.symbol("schedule"))
    assert hit is not None
    path, line = hit
    assert path.endswith("kernel/sched/core.c") and 1 < line < 20000


def _layout(t: Type) -> list[tuple[str | None, int, int, int]]:
    return [(m.name, m.bit_offset, m.bit_size, m.type.sizeof()) for m in t.strip().members]


@pytest.mark.fixture
def test_real_btf_and_dwarf_agree(real: Real) -> None:
    sec = real.sections[".BTF"]
    btf = BtfTypes(real.mm[sec.offset : sec.offset + sec.size])
    checked = 0
    for name in COMMON_STRUCTS:
        from_btf = btf.find_type(f"struct {name}")
        from_dwarf = real.index.find_type(f"struct {name}")
        assert from_btf is not None and from_dwarf is not None, name
        assert from_btf.size == from_dwarf.size, name
        assert _layout(from_btf) == _layout(from_dwarf), name
        checked += 1
    assert checked >= 20


@pytest.mark.fixture
def test_real_lines_agree_with_gdb(real: Real, tmp_path: Path) -> None:
    """crash prints gdb's answer; ours must be the same (inline headers, non-statement rows)."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb not installed")
    import json
    import random

    start, end = real.symbol("_stext"), real.symbol("_etext")
    rng = random.Random(7)
    addresses = sorted(rng.randrange(start, end) for _ in range(150))
    (tmp_path / "addrs.json").write_text(json.dumps(addresses))
    script = tmp_path / "lines.py"
    script.write_text(
        "import gdb, json\n"
        f"out = [[a, *((s.symtab.fullname(), s.line) if s.symtab else (None, 0))]"
        f" for a in json.load(open({str(tmp_path / 'addrs.json')!r})) for s in [gdb.find_pc_line(a)]]\n"
        f"json.dump(out, open({str(tmp_path / 'gdb.json')!r}, 'w'))\n"
    )
    subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", f"source {script}", real.path], capture_output=True, timeout=300
    )
    expected = json.loads((tmp_path / "gdb.json").read_text())
    lines = LineTable(real.mm, real.index)
    for address, path, line in expected:
        want = (path, line) if path else None
        assert lines.lookup(address) == want, hex(address)
