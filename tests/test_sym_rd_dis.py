"""Unit tests for sym/rd/dis building blocks: gdb-style disassembly text, module kallsyms parsing, crash's
symbol order, module lookups, rd's line layout.  No dump needed: the expected disassembly text of each
encoding below is what crash 8.0.2 (gdb 10.2) printed for those bytes in the Debian 6.1 kernel."""

from __future__ import annotations

import struct

import pytest

from kcrash.arch import x86_64_att as att
from kcrash.commands.rd import format_items, parse_count
from kcrash.commands.sym import parse_hex
from kcrash.kernel import disasm
from kcrash.kernel.modules import (
    Module,
    ModuleRegion,
    _module_resolve,
    crash_symbol_order,
    ordered_table,
    parse_kallsyms,
    strip_symbol_end,
)

# (bytes, gdb text) pairs seen in crash's `dis` output.
GDB_TEXT = [
    ("c3", "ret    "),
    ("cc", "int3   "),
    ("90", "nop"),
    ("9b", "fwait"),
    ("0f1f440000", "nopl   0x0(%rax,%rax,1)"),
    ("0f1f00", "nopl   (%rax)"),
    ("6690", "xchg   %ax,%ax"),
    ("66662e0f1f840000000000", "data16 nopw %cs:0x0(%rax,%rax,1)"),
    ("488d742600", "lea    0x0(%rsi,%riz,1),%rsi"),
    ("4863db", "movslq %ebx,%rbx"),
    ("65488b042528000000", "mov    %gs:0x28,%rax"),
    ("f348ab", "rep stos %rax,%es:(%rdi)"),
    ("f348a5", "rep movsq %ds:(%rsi),%es:(%rdi)"),
    ("488d04ed00000000", "lea    0x0(,%rbp,8),%rax"),
    ("480304fd60eb19ae", "add    -0x51e614a0(,%rdi,8),%rax"),
    ("48b80000000028000000", "movabs $0x2800000000,%rax"),
    ("0fb6442405", "movzbl 0x5(%rsp),%eax"),
    ("0f94c0", "sete   %al"),
    ("0f45442414", "cmovne 0x14(%rsp),%eax"),
    ("416b863402000003", "imul   $0x3,0x234(%r14),%eax"),
    ("4898", "cltq   "),
    ("4899", "cqto   "),
    ("410fbe07", "movsbl (%r15),%eax"),
    ("ff742408", "push   0x8(%rsp)"),
    ("68a0df11ae", "push   $0xffffffffae11dfa0"),
    ("6aff", "push   $0xffffffffffffffff"),
    ("4883c4f0", "add    $0xfffffffffffffff0,%rsp"),
    ("48c7c7c06f2e90", "mov    $0xffffffff902e6fc0,%rdi"),
    ("c744240801000000", "movl   $0x1,0x8(%rsp)"),
    ("48837f2000", "cmpq   $0x0,0x20(%rdi)"),
    ("f6401910", "testb  $0x10,0x19(%rax)"),
    ("a830", "test   $0x30,%al"),
    ("f00fc185dc000000", "lock xadd %eax,0xdc(%rbp)"),
    ("f00fb15378", "lock cmpxchg %edx,0x78(%rbx)"),
    ("f0480fba6e1004", "lock btsq $0x4,0x10(%rsi)"),
    ("480fa302", "bt     %rax,(%rdx)"),
    ("0fb9cc", "ud1    %esp,%ecx"),
    ("49d1e9", "shr    %r9"),
    ("c1e003", "shl    $0x3,%eax"),
    ("d0a7ed010000", "shlb   0x1ed(%rdi)"),
    ("41d37c2450", "sarl   %cl,0x50(%r12)"),
    ("9c", "pushf  "),
    ("9d", "popf   "),
    ("ec", "in     (%dx),%al"),
    ("e670", "out    %al,$0x70"),
    ("0f20e0", "mov    %cr4,%rax"),
    ("0f01f8", "swapgs "),
    ("0f30", "wrmsr  "),
    ("48cf", "iretq  "),
    ("ff6f00", "ljmp   *0x0(%rdi)"),
    ("ffe0", "jmp    *%rax"),
    ("f30f01d9", "vmgexit "),
    ("f20f01|ff4189c0", "repnz (bad) "),  # gdb leaves the ModRM byte for the next instruction
    ("06", "(bad)  "),
    ("488b4500", "mov    0x0(%rbp),%rax"),
    ("488b4424f8", "mov    -0x8(%rsp),%rax"),
    ("c8010000", "enter  $0x1,$0x0"),  # enter keeps Intel operand order in gdb
    ("dc01", "faddl  (%rcx)"),
    ("40f8", "rex clc "),  # a REX byte that changes nothing is printed by name
    ("4c1088c01a7f00", "rex.WR adc %r9b,0x7f1ac0(%rax)"),  # W unused with a byte operand
    ("0f01c8", "monitor %rax,%ecx,%edx"),
    ("0f02d2", "lar    %dx,%edx"),
    ("f36f", "rep outsl %ds:(%rsi),(%dx)"),
    ("48cb", "lretq  "),
    ("0f01e8", "serialize "),
    ("df2f", "fildll (%rdi)"),
]


def _one(hexbytes: str, address: int = 0xFFFFFFFF81000000) -> att.Instruction:
    """Decode one instruction; bytes after a `|` follow it in memory."""
    head, _, tail = hexbytes.partition("|")
    code = bytes.fromhex(head)
    insn = next(att.disassemble(code + bytes.fromhex(tail) + b"\x90" * 16, address))
    assert insn.size == len(code), hexbytes
    return insn


@pytest.mark.parametrize(("hexbytes", "text"), GDB_TEXT)
def test_gdb_spelling(hexbytes, text):
    assert _one(hexbytes).text() == text


def test_branch_target_and_symbol():
    # call rel32 from 0xffffffff81000000 to 0xffffffff81000100
    insn = _one("e8fb000000")
    assert insn.target == 0xFFFFFFFF81000100
    assert insn.text() == "call   0xffffffff81000100"
    names = {0xFFFFFFFF81000100: "foo+16"}
    assert insn.text(names.get) == "call   0xffffffff81000100 <foo+16>"
    jcc = _one("7405")
    assert jcc.text() == "je     0xffffffff81000007"
    cs_call = _one("2ee8fa000000")
    assert cs_call.text() == "cs call 0xffffffff81000100"


def test_rip_relative_comment():
    # mov 0x10(%rip),%rax at 0xffffffff81000000 (7 bytes) refers to 0xffffffff81000017
    insn = _one("488b0510000000")
    assert insn.riprel == 0xFFFFFFFF81000017
    assert insn.text() == "mov    0x10(%rip),%rax        # 0xffffffff81000017"
    assert insn.text(lambda a: "bar") == "mov    0x10(%rip),%rax        # 0xffffffff81000017 <bar>"
    # a per-cpu %gs: operand: gdb prints the comment with no name when it has none
    insn = _one("65ff05fde56070")
    assert insn.text(lambda a: None) == "incl   %gs:0x7060e5fd(%rip)        # 0xfffffffff160e604"


def test_bad_bytes_and_truncation():
    insns = list(att.disassemble(bytes.fromhex("06c3"), 0x1000))
    assert [(i.address, i.text()) for i in insns] == [(0x1000, "(bad)  "), (0x1001, "ret    ")]
    # a truncated last instruction is not returned: the caller reads a few bytes more than it needs
    assert list(att.disassemble(bytes.fromhex("c3e8"), 0x1000))[-1].text() == "ret    "


def test_count_limit():
    insns = list(att.disassemble(bytes.fromhex("90" * 10), 0, count=3))
    assert [i.address for i in insns] == [0, 1, 2]


def test_gdb_symbol_rule():
    """crash's gdb names an address when the first sized symbol below it (same section) covers it or no
    unsized symbol lies between; past an unsized one only code addresses get a name; other sections'
    symbols are skipped."""
    g = object.__new__(disasm.GdbSymbols)
    g.kernel = None
    g.sections = [(0x1000, 0x2000, 1, True), (0x2000, 0x3000, 2, False)]
    g._starts = [0x1000, 0x2000]
    g.addresses = [0x1000, 0x1100, 0x1200, 0x2000, 0x2100, 0x2200]
    g.sizes = [0x40, 0, 0x10, 0x10, 0, 0x8]
    g.shndx = [1, 1, 1, 2, 2, 2]
    assert g.names(0x1000) and g.names(0x103F)
    assert g.names(0x1050)  # past the sized symbol's end, nothing unsized between: still named
    assert g.names(0x1150)  # the unsized text label at 0x1100
    assert g.names(0x1205) and g.names(0x1300)
    assert g.names(0x2008) and g.names(0x2204) and g.names(0x2300)
    assert not g.names(0x2150)  # an unsized data symbol passed first: dropped


def test_gdb_function_end():
    g = object.__new__(disasm.GdbSymbols)
    g.kernel = None
    g.sections = [(0x1000, 0x2000, 1, True)]
    g._starts = [0x1000]
    g.addresses = [0x1000, 0x1000, 0x1010, 0x1100, 0x1180]
    g.sizes = [0, 0x40, 0, 0, 0x10]
    g.shndx = [1, 1, 1, 1, 1]
    assert g.function_end(0x1000) == 0x1040  # the sized symbol at the address
    assert g.function_end(0x1010) == 0x1040  # a label inside a sized routine
    assert g.function_end(0x1100) == 0x1180  # an unsized label: up to the next symbol
    assert g.function_end(0x1190) is None  # past the last routine: the caller uses the next symbol
    assert g.function_end(0x3000) is None


# --- module kallsyms --------------------------------------------------------------------------------


def _elf_sym(name_off, info, shndx, value, size):
    return struct.pack("<IBBHQQ", name_off, info, 0, shndx, value, size)


def test_parse_kallsyms():
    names = b"\0fw_show\0cleanup_module\0.LC5\0data.20\0undef\0foo.isra.0\0outside\0"
    off = {
        n: names.index(n.encode() + b"\0")
        for n in ["fw_show", "cleanup_module", ".LC5", "data.20", "undef", "foo.isra.0", "outside"]
    }
    base = 0xFFFFFFFFC0000000
    symtab = b"".join(
        [
            _elf_sym(0, 0, 0, 0, 0),  # entry 0 is skipped
            _elf_sym(off["fw_show"], 0x02, 1, base + 0x10, 0x20),  # local func -> t
            _elf_sym(off["cleanup_module"], 0x12, 1, base + 0x40, 0x8),  # global func -> T
            _elf_sym(off[".LC5"], 0x00, 3, base + 0x1000, 0),  # notype -> ?
            _elf_sym(off["data.20"], 0x01, 4, base + 0x2000, 8),  # object -> ?
            _elf_sym(off["undef"], 0x10, 0, 0, 0),  # undefined: skipped
            _elf_sym(off["foo.isra.0"], 0x02, 1, base + 0x80, 0x10),  # crash strips .isra.N
            _elf_sym(off["outside"], 0x02, 1, 0xFFFFFFFF81000000, 0x10),  # not in the module: skipped
            _elf_sym(0, 0x02, 1, base + 0x90, 0),  # unnamed: skipped
        ]
    )
    syms = parse_kallsyms(symtab, names, [(base, base + 0x5000)])
    assert [(s.name, s.address - base, s.type, s.size) for s in syms] == [
        ("fw_show", 0x10, "t", 0x20),
        ("cleanup_module", 0x40, "T", 0x8),
        (".LC5", 0x1000, "?", 0),
        ("data.20", 0x2000, "?", 8),
        ("foo", 0x80, "t", 0x10),
    ]


def test_parse_kallsyms_old_kernels_type_letter():
    # Before the typetab, the kernel overwrote st_info with the nm letter; crash shows it as is.
    names = b"\0x\0"
    symtab = _elf_sym(0, 0, 0, 0, 0) + _elf_sym(1, ord("d"), 2, 0x5000, 4)
    assert [(s.name, s.type) for s in parse_kallsyms(symtab, names, [(0x5000, 0x6000)])] == [("x", "d")]


def _module(symbols) -> Module:
    base = 0xFFFFFFFFC0000000
    table = ordered_table(symbols, module="m")
    mod = Module(
        address=base + 0x3000,
        name="m",
        base=base,
        size=0x5000,
        text_size=0x1000,
        regions=(ModuleRegion("core", base, 0x5000),),
    )
    mod._symbols = table
    return mod


def test_module_lookup_like_crash():
    from kcrash.debuginfo.symbols import Symbol

    base = 0xFFFFFFFFC0000000
    mod = _module(
        [
            Symbol("a", base, 0x20, "t"),
            Symbol("exit_fn", base + 0x40, 0x10, "t"),
            Symbol("cleanup_module", base + 0x40, 0x10, "T"),
            Symbol(".LC1", base + 0x1000, 0, "?"),
            Symbol("str", base + 0x1000, 0, "?"),
        ]
    )
    assert mod.is_text(base + 0x10) and not mod.is_text(base + 0x1000)
    sym, off = _module_resolve(mod, base + 0x40)
    assert (sym.name, off, sym.module) == ("exit_fn", 0, "m")  # exact: the first name at the address
    sym, off = _module_resolve(mod, base + 0x41)
    assert (sym.name, off) == ("cleanup_module", 1)  # inside: the last one
    assert _module_resolve(mod, base + 0x1000)[0].name == "str"  # ".name" aliases give way
    assert _module_resolve(mod, base + 0x4FFF)[0].name == "str"
    assert _module_resolve(mod, base + 0x5000) is None  # MODULE END
    assert _module_resolve(mod, base - 1) is None


def test_module_regions_64():
    mod = Module(
        address=0,
        name="m",
        base=0x1000,
        size=0x1000,
        text_size=0x1000,
        regions=(ModuleRegion("text", 0x1000, 0x1000), ModuleRegion("data", 0x8000, 0x2000)),
    )
    assert 0x8100 in mod and 0x3000 not in mod
    assert mod.is_text(0x1800) and not mod.is_text(0x8100)


# --- crash's vmlinux symbol table ---------------------------------------------------------------------


def test_crash_symbol_order():
    rows = [
        (0xFFFFFFFF81000000, "startup_64", "T", 0),
        (0xFFFFFFFF81000000, "_text", "T", 0),
        (0xFFFFFFFF81000000, ".text", "t", 0),
        (0xFFFFFFFF81000000, "_stext", "T", 0),
        (0x0, "__per_cpu_start", "D", 0),
        (0x0, "fixed_percpu_data", "D", 0x28),
        (0x0, "8250_core.c", "a", 0),
        (0x10, "sp_offset", "a", 0),
        (0x100, "runqueues", "D", 8),
        (0x200, "__per_cpu_end", "D", 0),
        (0x300, "text_size", "A", 0),
        (0xFFFFFFFF81000010, "b_func", "t", 4),
        (0xFFFFFFFF82000000, ".data", "d", 0),
        (0xFFFFFFFF82000000, "_sdata", "D", 0),
    ]
    kept = [r[1] for r in crash_symbol_order(rows)]
    assert kept == [
        "__per_cpu_start",
        "fixed_percpu_data",
        "runqueues",
        "__per_cpu_end",
        "_stext",
        "_text",
        "startup_64",
        "b_func",
        ".data",
        "_sdata",
    ]


@pytest.mark.parametrize(
    ("name", "stripped"),
    [
        ("foo.isra.0", "foo"),
        ("foo.part.3", "foo"),
        ("foo.constprop.0.isra.0", "foo.constprop.0"),
        ("foo.cold", "foo.cold"),
        ("foo.part.0.cold", "foo"),
        ("bar", "bar"),
    ],
)
def test_strip_symbol_end(name, stripped):
    assert strip_symbol_end(name) == stripped


# --- rd layout ----------------------------------------------------------------------------------------


def _lines(data: bytes, size: int, **kw) -> list[str]:
    opts = dict(mode="hex", ascii_column=True, symbolic=False, network=False, radix=10)
    opts.update(kw)
    return [line.text for line in format_items(None, 0xFFFFFFFF81000000, data, size, **opts)]


BANNER = b"Linux version 6.1.0-56-cloud-amd64 "


def test_rd_64_layout():
    assert _lines(BANNER[:24], 8) == [
        "ffffffff81000000:  65762078756e694c 2e36206e6f697372   Linux version 6.",
        "ffffffff81000010:  632d36352d302e31                    1.0-56-c",
    ]
    assert _lines(BANNER[:16], 8, ascii_column=False) == [
        "ffffffff81000000:  65762078756e694c 2e36206e6f697372 "
    ]


def test_rd_other_sizes():
    assert _lines(BANNER[:8], 1) == [
        "ffffffff81000000:  4c 69 6e 75 78 20 76 65                           Linux ve"
    ]
    assert _lines(BANNER[:8], 2) == ["ffffffff81000000:  694c 756e 2078 6576                       Linux ve"]
    assert _lines(BANNER[:8], 4) == ["ffffffff81000000:  756e694c 65762078                     Linux ve"]
    # -N: network byte order, and the ASCII column shows the swapped bytes as crash does
    assert _lines(BANNER[:16], 4, network=True) == [
        "ffffffff81000000:  4c696e75 78207665 7273696f 6e20362e   uniLev xoisr.6 n"
    ]


def test_rd_decimal():
    data = struct.pack("<qQ", -2, 4294893104)
    assert _lines(data, 8, mode="signed", ascii_column=False) == [
        "ffffffff81000000:               -2      4294893104 "
    ]
    assert _lines(data[:8], 8, mode="unsigned", ascii_column=False) == [
        "ffffffff81000000:  18446744073709551614 "
    ]
    assert _lines(b"\xff\xff\xff\xff", 4, mode="signed", ascii_column=False) == [
        "ffffffff81000000:            -1 "
    ]
    # bytes and shorts print unsigned even with -d, as crash's %d of a promoted u8/u16
    assert _lines(b"\xff", 1, mode="signed", ascii_column=False) == ["ffffffff81000000:  255 "]


def test_numbers():
    assert parse_hex("ffff") == 0xFFFF and parse_hex("0x10") == 16 and parse_hex("xyz") is None
    assert parse_hex("") is None and parse_hex("-1") is None
    assert parse_count("20") == 20 and parse_count("1a") == 26 and parse_count("0x10") == 16


# --- reading code and naming read errors ------------------------------------------------------------


class _FakeElf:
    def __init__(self, data: dict[int, bytes]):
        self.data = data

    def read_at_address(self, addr: int, size: int):
        page = self.data.get(addr & ~4095)
        return None if page is None else page[addr & 4095 : (addr & 4095) + size]


class _FakeKernel:
    """Just what read_code and Reader.message use."""

    kaslr_offset = 0x1000000

    def __init__(self, pages: dict[int, bytes], elf_pages: dict[int, bytes], fmt: str = "KDUMP"):
        self.pages = pages
        self.cache: dict = {}  # Kernel.cache
        self.elf = _FakeElf(elf_pages)
        self.memory = type("M", (), {"format_name": fmt})()
        self.symbols = type("S", (), {"lookup": staticmethod(lambda name: None)})()

    def read(self, address: int, size: int, physical: bool = False) -> bytes:
        from kcrash.errors import PageExcludedError

        page = self.pages.get(address & ~4095)
        if page is None:
            raise PageExcludedError(address, physical=False)
        return page[address & 4095 : (address & 4095) + size]


def test_read_code_falls_back_to_vmlinux():
    from kcrash.commands.dis import read_code

    text = 0xFFFFFFFF81000000
    k = _FakeKernel({text: b"\xc3" * 4096}, {text + 0x1000 - 0x1000000: b"\x90" * 4096})
    code = read_code(k, text + 4094, 4)
    assert code == b"\xc3\xc3\x90\x90"  # second page: not in the dump, taken from the vmlinux
    assert read_code(k, text + 0x2000, 4) == b""  # in neither


def test_read_error_messages_like_crash():
    from kcrash.commands.rd import Reader
    from kcrash.errors import FaultError, PageExcludedError, PageNotInDumpError

    k = _FakeKernel({}, {})
    kv = Reader(k, "KVADDR")
    assert kv.message(PageExcludedError(0xFFFF888000120000, physical=False), "64-bit KVADDR") == (
        'page excluded: kernel virtual address: ffff888000120000  type: "64-bit KVADDR"'
    )
    # an unmapped vmalloc address: invalid; an address crash takes through the direct map: seek error
    assert kv.message(FaultError(0xFFFFC90000001000), "64-bit KVADDR").startswith("invalid kernel virtual")
    assert kv.message(FaultError(0xFFFFFF0000000000), "8-bit KVADDR") == (
        'seek error: kernel virtual address: ffffff0000000000  type: "8-bit KVADDR"'
    )
    phys = Reader(k, "PHYSADDR")
    assert phys.message(PageNotInDumpError(0), "64-bit PHYSADDR") == (
        'seek error: physical address: 0  type: "64-bit PHYSADDR"'
    )
    elf = Reader(_FakeKernel({}, {}, fmt="ELF"), "PHYSADDR")
    assert elf.message(PageNotInDumpError(0), "64-bit PHYSADDR").startswith("read error: physical address: 0")
    user = Reader(k, "UVADDR", 0x1000)
    assert user.message(FaultError(0x400000), "64-bit UVADDR") == (
        'invalid user virtual address: 400000  type: "64-bit UVADDR"'
    )
