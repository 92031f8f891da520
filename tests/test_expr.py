"""kcrash.expr over synthetic types and memory: every grammar construct, gdb's C semantics, and gdb's
value and type formatting (the real-dump differential test is test_p_real.py)."""

from __future__ import annotations

import struct

import pytest

from kcrash.debuginfo.symbols import Symbol, SymbolTable
from kcrash.debuginfo.types import Enumerator, Kind, Member, Parameter, Type
from kcrash.errors import FaultError, LookupFailedError
from kcrash.expr import (
    Evaluator,
    ExprError,
    ExprSyntaxError,
    PrintOptions,
    Scope,
    Unsupported,
    ValueFormatter,
    declaration,
    ptype,
    type_name,
)
from kcrash.expr.crashfmt import declaration_text, member_data, p_leader, whatis_variable
from kcrash.expr.valfmt import quote_bytes

# --- a synthetic kernel -----------------------------------------------------------------------------------

INT = Type(Kind.INT, "int", 4, signed=True)
UINT = Type(Kind.INT, "unsigned int", 4)
ULONG = Type(Kind.INT, "long unsigned int", 8)
LONG = Type(Kind.INT, "long int", 8, signed=True)
CHAR = Type(Kind.INT, "char", 1, signed=True)
U8 = Type(Kind.TYPEDEF, "u8", target=Type(Kind.INT, "unsigned char", 1))
BOOL = Type(Kind.BOOL, "_Bool", 1)
BOOL_T = Type(Kind.TYPEDEF, "bool", target=BOOL)
VOID = Type(Kind.VOID, "void")
PID_T = Type(Kind.TYPEDEF, "pid_t", target=INT)


def ptr(t: Type) -> Type:
    return Type(Kind.POINTER, None, 8, target=t)


def array(t: Type, n: int | None) -> Type:
    return Type(Kind.ARRAY, None, None, target=t, length=n)


def const(t: Type) -> Type:
    return Type(Kind.CONST, None, None, target=t)


LIST_HEAD = Type(Kind.STRUCT, "list_head", 16)
LIST_HEAD._members = [Member("next", ptr(LIST_HEAD), 0), Member("prev", ptr(LIST_HEAD), 64)]
STATE = Type(
    Kind.ENUM, "state", 4, enumerators=[Enumerator("ST_A", 0), Enumerator("ST_B", 1), Enumerator("ST_C", 3)]
)
FLAGS = Type(
    Kind.ENUM, "flags", 4, enumerators=[Enumerator("F_NONE", 0), Enumerator("F_X", 1), Enumerator("F_Y", 4)]
)
FUNC = Type(Kind.FUNCTION, None, None, target=VOID, params=[Parameter("x", INT)])
ANON = Type(Kind.UNION, None, 8, members=[Member("x", ULONG, 0), Member("y", INT, 0)])
TASK = Type(
    Kind.STRUCT,
    "task",
    120,
    members=[
        Member("pid", PID_T, 0),
        Member("comm", array(CHAR, 16), 32),
        Member("tasks", LIST_HEAD, 160),
        Member("flag_a", UINT, 288, 1),
        Member("flag_b", UINT, 289, 3),
        Member("parent", None, 320),  # filled below
        Member("on", BOOL_T, 384),
        Member("st", STATE, 416),
        Member(None, ANON, 448),
        Member("fn", ptr(FUNC), 512),
        Member("name", ptr(const(CHAR)), 576),
        Member("arr", array(LONG, 4), 640),
        Member("fl", FLAGS, 896),
        Member("b", U8, 928),
    ],
)
TASK._members[5]._type = ptr(TASK)

TASK_ADDR = 0xFFFFFFFF81000000
NAME_ADDR = 0xFFFFFFFF81000100
FUNC_ADDR = 0xFFFFFFFF81100000
JIFFIES_ADDR = 0xFFFFFFFF81000200
LONGSTR_ADDR = 0xFFFFFFFF81000400
TYPES = {
    "struct list_head": LIST_HEAD,
    "struct task": TASK,
    "enum state": STATE,
    "enum flags": FLAGS,
    "pid_t": PID_T,
    "bool": BOOL_T,
    "u8": U8,
}


class FakeKernel:
    """Just enough of Kernel for the expression engine: memory, symbols, types, functions, enums."""

    def __init__(self) -> None:
        self.memory: dict[int, int] = {}
        self.cache: dict = {}  # Kernel.cache
        task = bytearray(120)
        struct.pack_into("<i", task, 0, 42)
        task[4:20] = b"swapper/0".ljust(16, b"\0")  # comm
        struct.pack_into("<QQ", task, 20, TASK_ADDR + 20, TASK_ADDR + 20)  # tasks at byte 20
        task[36] = 0b1011  # flag_a = 1, flag_b = 0b101 = 5
        struct.pack_into("<Q", task, 40, TASK_ADDR)  # parent
        task[48] = 1  # on
        struct.pack_into("<i", task, 52, 3)  # st
        struct.pack_into("<Q", task, 56, 0x1122334455667788)  # anonymous union
        struct.pack_into("<Q", task, 64, FUNC_ADDR)  # fn
        struct.pack_into("<Q", task, 72, NAME_ADDR)  # name
        struct.pack_into("<4q", task, 80, 1, -2, 3, -4)  # arr
        struct.pack_into("<i", task, 112, 5)  # fl = F_X | F_Y
        task[116] = 65  # b
        self.poke(TASK_ADDR, bytes(task))
        self.poke(NAME_ADDR, b'say "hi"\\\n\0')
        self.poke(JIFFIES_ADDR, struct.pack("<Q", 4294892296))
        self.poke(LONGSTR_ADDR, b"x" * 300 + b"\0")
        self.symbols = SymbolTable.from_symbols(
            [
                Symbol("init_task", TASK_ADDR, 120, "D"),
                Symbol("task_name", NAME_ADDR, 16, "d"),
                Symbol("jiffies", JIFFIES_ADDR, 8, "D"),
                Symbol("long_string", LONGSTR_ADDR, 301, "d"),
                Symbol("do_it", FUNC_ADDR, 64, "T"),
                Symbol("asm_entry", FUNC_ADDR + 0x100, 0, "T"),
            ]
        )
        self.variables = {
            "init_task": (TASK_ADDR, TASK),
            "task_name": (NAME_ADDR, array(CHAR, 16)),
            "jiffies": (JIFFIES_ADDR, Type(Kind.VOLATILE, None, None, target=ULONG)),
            "long_string": (LONGSTR_ADDR, array(CHAR, 301)),
        }
        self.btf = _FakeBtf()
        self.dwarf = None
        self.kaslr_offset = 0
        self.nr_cpu_ids = 2

    def poke(self, address: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.memory[address + i] = b

    def read(self, address: int, size: int, physical: bool = False) -> bytes:
        out = bytearray()
        for a in range(address, address + size):
            if a not in self.memory:
                raise FaultError(a)
            out.append(self.memory[a])
        return bytes(out)

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit and self.memory.get(address + len(out), 0):
            out.append(self.memory[address + len(out)])
        return bytes(out)

    def find_type(self, name: str) -> Type | None:
        return TYPES.get(" ".join(name.split()))

    def type(self, name: str) -> Type:
        t = self.find_type(name)
        if t is None:
            raise LookupFailedError(f"no type named {name!r}")
        return t

    def variable_type(self, name: str) -> tuple[int, Type]:
        if name in self.variables:
            return self.variables[name]
        raise LookupFailedError(f'no symbol "{name}"')

    def symbol(self, name: str) -> Symbol:
        sym = self.symbols.lookup(name)
        if sym is None:
            near = "init_task" if name.startswith("init") else None
            raise LookupFailedError(f'no symbol "{name}"' + (f'; did you mean "{near}"?' if near else ""))
        return sym


class _FakeBtf:
    def type_names(self):
        return iter(TYPES)

    def find_function(self, name: str) -> Type | None:
        return FUNC if name == "do_it" else None

    def find_enumerator(self, name: str) -> tuple[Type, int] | None:
        for t in (STATE, FLAGS):
            for e in t.enumerators:
                if e.name == name:
                    return t, e.value
        return None


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def scope(kernel) -> Scope:
    return Scope(kernel)


def p(scope: Scope, text: str, **opts) -> str:
    value = Evaluator(scope).evaluate(text)
    return ValueFormatter(scope.kernel, scope.symbolizer.suffix, PrintOptions(**opts)).top(value)


def val(scope: Scope, text: str) -> int:
    return int(Evaluator(scope).evaluate(text).value())


def tname(scope: Scope, text: str) -> str:
    return type_name(Evaluator(scope).evaluate(text).type_)


# --- literals and types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, typ",
    [
        ("42", 42, "int"),
        ("0x7fffffff", 0x7FFFFFFF, "int"),
        ("2147483648", 2147483648, "unsigned int"),
        ("4294967295", 4294967295, "unsigned int"),
        ("4294967296", 4294967296, "long"),
        ("0xffffffffffffffff", 2**64 - 1, "unsigned long"),
        ("10u", 10, "unsigned int"),
        ("10L", 10, "long"),
        ("10ul", 10, "unsigned long"),
        ("010", 8, "int"),
        ("'A'", 65, "char"),
        ("'\\n'", 10, "char"),
        ("'\\0'", 0, "char"),
        ("'\\x41'", 65, "char"),
    ],
)
def test_literals(scope, text, value, typ):
    assert val(scope, text) == value
    assert tname(scope, text) == typ


def test_string_literal(scope):
    assert p(scope, '"ab"') == '"ab"'
    assert tname(scope, '"ab"') == "char [3]"
    assert val(scope, 'sizeof("ab")') == 3


# --- arithmetic -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3"),
        ("-7 / 2", "-3"),
        ("(-5) % 3", "-2"),
        ("5 % -3", "2"),
        ("1 << 40", "0"),  # int result, truncated as gdb does
        ("1L << 40", "1099511627776"),
        ("-16 >> 2", "-4"),
        ("0x7fffffff + 1", "-2147483648"),
        ("10u - 20", "4294967286"),
        ("jiffies + 1", "4294892297"),
        ("jiffies * 2", "8589784592"),
        ("~0", "-1"),
        ("-1", "-1"),
        ("!0", "1"),
        ("!5", "0"),
        ("3 & 5", "1"),
        ("3 | 5", "7"),
        ("3 ^ 5", "6"),
        ("1 < 2", "1"),
        ("2 <= 1", "0"),
        ("-1 < 0u", "0"),  # usual arithmetic conversions: -1 becomes UINT_MAX
        ("1 == 1", "1"),
        ("1 != 1", "0"),
        ("0 && nosuchsym", "0"),  # short circuit: the unknown name is never looked up
        ("1 || nosuchsym", "1"),
        ("2 && 3", "1"),
        ("init_task.pid ? 10 : 20", "10"),
        ("0 ? 10 : 20", "20"),
        ("1, 2", "2"),
        ("+5", "5"),
    ],
)
def test_operators(scope, text, expected):
    assert p(scope, text) == expected


def test_result_types(scope):
    assert tname(scope, "jiffies * 2") == "unsigned long"
    assert tname(scope, "1 + 1") == "int"
    assert tname(scope, "'a' + 1") == "int"
    assert tname(scope, "10u + 1") == "unsigned int"
    assert tname(scope, "1 + 1L") == "long"
    assert tname(scope, "1 == 1") == "int"
    assert tname(scope, "-init_task.b") == "int"


def test_division_by_zero(scope):
    with pytest.raises(ExprError, match="Division by zero"):
        p(scope, "1 / 0")
    with pytest.raises(ExprError, match="Division by zero"):
        p(scope, "1 % 0")


# --- names, members, subscripts, dereference ----------------------------------------------------------------


def test_variables_and_members(scope):
    assert p(scope, "init_task.pid") == "42"
    assert p(scope, "init_task.comm") == '"swapper/0\\000\\000\\000\\000\\000\\000"'
    assert p(scope, "init_task.comm[1]") == "119 'w'"
    assert p(scope, "init_task.x") == str(0x1122334455667788)  # through the anonymous union
    assert p(scope, "init_task.y") == str(0x55667788)
    assert p(scope, "init_task.parent->pid") == "42"
    assert p(scope, "init_task.parent.pid") == "42"  # gdb lets . follow a pointer
    assert p(scope, "(&init_task)->pid") == "42"
    assert p(scope, "init_task.arr[1]") == "-2"
    assert p(scope, "init_task.arr[3]") == "-4"
    assert (
        p(scope, "init_task.tasks.next->next->prev")
        == f"(struct list_head *) 0x{TASK_ADDR + 20:x} <init_task+20>"
    )


def test_bitfields(scope):
    assert p(scope, "init_task.flag_a") == "1"
    assert p(scope, "init_task.flag_b") == "5"
    assert p(scope, "init_task.flag_b + 1") == "6"
    with pytest.raises(ExprError, match="not located in memory"):
        p(scope, "&init_task.flag_b")


def test_enums_bools_functions(scope):
    assert p(scope, "init_task.st") == "ST_C"
    assert p(scope, "init_task.fl") == "(F_X | F_Y)"
    assert p(scope, "ST_B") == "ST_B"
    assert p(scope, "ST_B + 1") == "2"
    assert p(scope, "(enum state)2") == "2"
    assert p(scope, "(enum flags)8") == "(unknown: 0x8)"
    assert p(scope, "(enum flags)0") == "F_NONE"
    assert p(scope, "init_task.on") == "true"
    assert p(scope, "(bool)0") == "false"
    assert p(scope, "(bool)7") == "true"
    assert p(scope, "do_it") == f"{{void (int)}} 0x{FUNC_ADDR:x} <do_it>"
    assert p(scope, "&do_it") == f"(void (*)(int)) 0x{FUNC_ADDR:x} <do_it>"
    assert p(scope, "*do_it") == f"{{void (int)}} 0x{FUNC_ADDR:x} <do_it>"
    assert p(scope, "init_task.fn") == f"(void (*)(int)) 0x{FUNC_ADDR:x} <do_it>"
    assert p(scope, "asm_entry") == f"{{<text variable, no debug info>}} 0x{FUNC_ADDR + 0x100:x} <asm_entry>"


def test_subscripts_and_deref(scope):
    assert p(scope, "*init_task.comm") == "115 's'"
    assert p(scope, "init_task.name[0]") == "115 's'"
    assert p(scope, "*init_task.name") == "115 's'"
    assert p(scope, "1[init_task.arr]") == "-2"
    assert p(scope, f"*(int *){TASK_ADDR:#x}") == "42"
    assert p(scope, f"*{TASK_ADDR:#x}") == "42"  # gdb reads an int at an integer address
    assert p(scope, f"{{int}}{TASK_ADDR:#x}") == "42"
    assert p(scope, "*&init_task.pid") == "42"
    with pytest.raises(ExprError, match="non-pointer"):
        p(scope, "*(void *)0")


def test_address_of_and_symbols(scope):
    assert p(scope, "&init_task") == f"(struct task *) 0x{TASK_ADDR:x} <init_task>"
    assert p(scope, "&init_task.comm") == f"(char (*)[16]) 0x{TASK_ADDR + 4:x} <init_task+4>"
    assert p(scope, "&init_task.comm[1]") == f'0x{TASK_ADDR + 5:x} <init_task+5> "wapper/0"'
    assert p(scope, "init_task.comm + 1") == f'0x{TASK_ADDR + 5:x} <init_task+5> "wapper/0"'
    assert p(scope, "(void *)0") == "(void *) 0x0"
    assert p(scope, "(char *)0") == "0x0"
    assert p(scope, "(int *)16") == "(int *) 0x10"
    assert p(scope, f"(void *){TASK_ADDR + 120:#x}") == f"(void *) 0x{TASK_ADDR + 120:x}"  # past the symbol


def test_char_pointer_strings(scope):
    assert p(scope, "init_task.name") == f'0x{NAME_ADDR:x} <task_name> "say \\"hi\\"\\\\\\n"'
    assert p(scope, "(unsigned char *)init_task.name").startswith(
        f'(unsigned char *) 0x{NAME_ADDR:x} <task_name> "say'
    )
    text = p(scope, "(char *)&long_string")
    assert text.endswith('x"...') and text.count("x") == 256 + 1  # 256 characters and the 0x


def test_casts(scope):
    assert p(scope, "(char)65") == "65 'A'"
    assert p(scope, "(char)200") == "-56 '\\310'"
    assert p(scope, "(unsigned char)200") == "200 '\\310'"
    assert p(scope, "(unsigned long)-1") == "18446744073709551615"
    assert p(scope, "(int)4294967297") == "1"
    assert p(scope, "(pid_t)7") == "7"
    assert tname(scope, "(pid_t)7") == "pid_t"
    assert p(scope, f"((struct task *){TASK_ADDR:#x})->pid") == "42"
    assert (
        p(scope, "(struct list_head *)init_task.tasks.next")
        == f"(struct list_head *) 0x{TASK_ADDR + 20:x} <init_task+20>"
    )
    assert p(scope, "(unsigned long)&init_task") == str(TASK_ADDR)
    with pytest.raises(ExprError, match="Invalid cast"):
        p(scope, "(struct list_head)1")


def test_sizeof_and_offsetof(scope):
    assert p(scope, "sizeof(struct task)") == "120"
    assert p(scope, "sizeof(init_task)") == "120"
    assert p(scope, "sizeof init_task.comm") == "16"
    assert p(scope, "sizeof(long)") == "8"
    assert p(scope, "sizeof(char *)") == "8"
    assert p(scope, "sizeof(int [4])") == "16"
    assert tname(scope, "sizeof(int)") == "int"
    assert p(scope, "&((struct task *)0)->tasks") == "(struct list_head *) 0x14"
    assert p(scope, "(unsigned long)&((struct task *)0)->arr[2]") == "96"


def test_pointer_arithmetic(scope):
    assert p(scope, "&init_task.tasks + 1") == f"(struct list_head *) 0x{TASK_ADDR + 36:x} <init_task+36>"
    assert p(scope, "&init_task.arr[3] - &init_task.arr[1]") == "2"
    assert tname(scope, "&init_task.arr[3] - &init_task.arr[1]") == "long"
    assert p(scope, "(void *)16 + 1") == "(void *) 0x11"
    assert p(scope, "init_task.arr + 1") == f"(long *) 0x{TASK_ADDR + 88:x} <init_task+88>"
    assert p(scope, "&init_task.arr[1] > &init_task.arr[0]") == "1"
    assert p(scope, "init_task.parent == &init_task") == "1"
    assert p(scope, "!init_task.parent") == "0"


def test_artificial_arrays(scope):
    assert p(scope, "*init_task.comm@3") == '"swa"'
    assert p(scope, "init_task.arr[0]@2") == "{1, -2}"
    assert tname(scope, "init_task.pid@2") == "pid_t [2]"
    with pytest.raises(ExprError, match="in memory"):
        p(scope, "1@2")


def test_history(scope):
    ev = Evaluator(scope)
    scope.history.record(ev.evaluate("init_task.pid"))
    scope.history.record(ev.evaluate("&init_task"))
    scope.history.record(ev.evaluate("7"))
    assert p(scope, "$") == "7"
    assert p(scope, "$1") == "42"
    assert p(scope, "$$") == f"(struct task *) 0x{TASK_ADDR:x} <init_task>"
    assert p(scope, "$$2") == "42"
    assert p(scope, "$2->comm[0]") == "115 's'"
    assert p(scope, "$1 + $3") == "49"
    with pytest.raises(ExprError, match="History has not yet reached"):
        p(scope, "$9")


# --- what only gdb evaluates, and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "$_strlen(init_task.comm)",
        "$rip",
        "$myvar",
        "do_it(1)",
        "1.5",
        "init_task.pid = 3",
        "init_task.pid++",
        "--init_task.pid",
        "sched::x",
    ],
)
def test_unsupported_goes_to_gdb(scope, text):
    with pytest.raises(Unsupported):
        p(scope, text)


@pytest.mark.parametrize(
    "text, column",
    [
        ("1 +", 3),
        ("init_task.", 10),
        ("(1", 2),
        ("1 2", 2),
        ("init_task[", 10),
        ("'ab'", 0),
        ("#", 0),
        ("0x", 0),
    ],
)
def test_syntax_errors_point_at_the_column(scope, text, column):
    with pytest.raises(ExprSyntaxError) as info:
        p(scope, text)
    assert info.value.column == column
    assert "^" in str(info.value).splitlines()[-1]


def test_unknown_names_suggest(scope):
    with pytest.raises(ExprError, match='no member "comn" in struct task; did you mean "comm"\\?'):
        p(scope, "init_task.comn")
    with pytest.raises(ExprError, match='no symbol "init_tsk"; did you mean "init_task"'):
        p(scope, "init_tsk")
    with pytest.raises(ExprError, match='no struct "tsk"'):
        p(scope, "sizeof(struct tsk)")
    with pytest.raises(ExprError, match="not a struct or union"):
        p(scope, "init_task.pid.x")
    with pytest.raises(ExprError, match="type name"):
        p(scope, "pid_t")


def test_bad_address_gives_the_read_error(scope):
    with pytest.raises(FaultError, match="invalid kernel virtual address: 0"):
        p(scope, "*(int *)0")
    assert p(scope, "(char *)8").startswith("0x8 <error: Cannot access memory at address 0x8>")


# --- value formatting --------------------------------------------------------------------------------------


def test_struct_pretty(scope):
    text = p(scope, "init_task")
    assert text.startswith(
        '{\n  pid = 42,\n  comm = "swapper/0\\000\\000\\000\\000\\000\\000",\n  tasks = {\n    next = '
    )
    assert "  flag_a = 1,\n  flag_b = 5,\n" in text
    assert "  {\n    x = 1234605616436508552,\n    y = 1432778632\n  },\n" in text
    assert "  arr = {1, -2, 3, -4},\n" in text
    assert text.endswith("  b = 65 'A'\n}")


def test_radix_and_formats(scope):
    assert p(scope, "init_task.comm", radix16=True).startswith('"swapper')
    assert p(scope, "init_task.comm", format="x").startswith("{0x73, 0x77, ")
    assert p(scope, "init_task.comm[0]", radix16=True) == "0x73"
    assert p(scope, "init_task.st", radix16=True) == "ST_C"
    assert p(scope, "init_task.st", format="x") == "0x3"
    assert p(scope, "init_task.on", radix16=True) == "0x1"
    assert p(scope, "&init_task", radix16=True) == f"(struct task *) 0x{TASK_ADDR:x} <init_task>"
    assert p(scope, "&init_task", format="x") == f"0x{TASK_ADDR:x}"
    assert p(scope, "&init_task", format="a") == f"0x{TASK_ADDR:x} <init_task>"
    assert p(scope, "-1", format="x") == "0xffffffff"
    assert p(scope, "-1", format="u") == "4294967295"
    assert p(scope, "0x10", format="d") == "16"
    assert p(scope, "8", format="o") == "010"
    assert p(scope, "0", format="o") == "0"
    assert p(scope, "5", format="t") == "101"
    assert p(scope, "65", format="c") == "65 'A'"
    assert p(scope, "init_task.pid", format="z") == "0x0000002a"
    assert p(scope, "init_task.arr", format="x") == "{0x1, 0xfffffffffffffffe, 0x3, 0xfffffffffffffffc}"


def test_strings_and_escapes():
    opts = PrintOptions()
    assert quote_bytes(b"abc\0\0\0", False, opts) == '"abc\\000\\000"'  # the final NUL is dropped
    assert quote_bytes(b"\0", False, opts) == '""'
    assert quote_bytes(b"\xff8", False, opts) == '"\\377\\070"'  # a digit after an octal escape
    assert quote_bytes(b"\n8", False, opts) == '"\\n8"'
    assert quote_bytes(b'"\\\x1b\t', False, opts) == '"\\"\\\\\\033\\t"'
    assert quote_bytes(b"x" * 300, False, opts) == '"' + "x" * 300 + '"'  # a run is taken whole
    assert quote_bytes(b"xy" * 150, False, opts) == '"' + "xy" * 128 + '"...'
    assert quote_bytes(b"ab", True, opts) == '"ab"...'
    repeats = PrintOptions(repeats=10)
    assert quote_bytes(b"ab" + b"\0" * 20, False, repeats) == "\"ab\", '\\000' <repeats 19 times>"


def test_array_limits(kernel):
    scope = Scope(kernel)
    kernel.poke(0x1000, struct.pack("<300i", *range(300)))
    kernel.variables["numbers"] = (0x1000, array(INT, 300))
    kernel.symbols = SymbolTable.from_symbols([*kernel.symbols, Symbol("numbers", 0x1000, 1200, "d")])
    text = p(scope, "numbers")
    assert text.startswith("{0, 1, 2,") and text.endswith("255...}")
    kernel.poke(0x2000, struct.pack("<20i", *([7] * 20)))
    kernel.variables["sevens"] = (0x2000, array(INT, 20))
    assert p(scope, "sevens") == "{" + ", ".join(["7"] * 20) + "}"
    assert p(scope, "sevens", repeats=10) == "{7 <repeats 20 times>}"


# --- type names and ptype ----------------------------------------------------------------------------------


def test_type_names():
    assert type_name(ULONG) == "unsigned long"
    assert type_name(Type(Kind.INT, "short unsigned int", 2)) == "unsigned short"
    assert type_name(Type(Kind.INT, "long long int", 8, signed=True)) == "long long"
    assert type_name(ptr(TASK)) == "struct task *"
    assert type_name(ptr(const(CHAR))) == "const char *"
    assert type_name(const(ptr(CHAR))) == "char * const"
    assert type_name(array(CHAR, 16)) == "char [16]"
    assert type_name(array(ptr(CHAR), 4)) == "char *[4]"
    assert type_name(ptr(array(CHAR, 16))) == "char (*)[16]"
    assert type_name(ptr(FUNC)) == "void (*)(int)"
    assert type_name(FUNC) == "void (int)"
    assert (
        type_name(
            Type(
                Kind.FUNCTION,
                None,
                None,
                target=INT,
                params=[Parameter(None, ptr(const(CHAR)))],
                variadic=True,
            )
        )
        == "int (const char *, ...)"
    )
    assert type_name(Type(Kind.FUNCTION, None, None, target=ptr(TASK), params=[])) == "struct task *(void)"
    assert type_name(Type(Kind.VOLATILE, None, None, target=ULONG)) == "volatile unsigned long"
    assert type_name(ANON) == "union {...}"
    assert (
        declaration(
            ptr(Type(Kind.FUNCTION, None, None, target=ptr(TASK), params=[Parameter(None, INT)])), "pick"
        )
        == "struct task *(*pick)(int)"
    )


def test_ptype():
    assert (
        ptype(LIST_HEAD) == "struct list_head {\n    struct list_head *next;\n    struct list_head *prev;\n}"
    )
    assert ptype(PID_T) == "int"
    assert ptype(STATE) == "enum state {ST_A, ST_B, ST_C = 3}"
    text = ptype(TASK)
    assert "    unsigned int flag_b : 3;\n" in text
    assert "    union {\n        unsigned long x;\n        int y;\n    };\n" in text
    assert "    void (*fn)(int);\n" in text
    assert "    const char *name;\n" in text
    assert "    long arr[4];\n" in text
    assert ptype(ptr(TASK)).endswith("} *")


def test_whatis_and_type_of(scope):
    ev = Evaluator(scope)
    assert type_name(ev.type_of("init_task.comm")[0]) == "char [16]"
    t, named = ev.type_of("struct task")
    assert named and t is TASK
    t, named = ev.type_of("pid_t")
    assert named and t is PID_T
    assert type_name(ev.type_of("(char)1")[0]) == "char"
    assert type_name(ev.type_of("unsigned long")[0]) == "unsigned long"


# --- crash's rewriting --------------------------------------------------------------------------------------


def test_declaration_text():
    assert (
        declaration_text(LIST_HEAD)
        == "struct list_head {\n    struct list_head *next;\n    struct list_head *prev;\n}\nSIZE: 16\n"
    )
    assert declaration_text(LIST_HEAD, offsets=True) == (
        "struct list_head {\n   [0] struct list_head *next;\n   [8] struct list_head *prev;\n}\nSIZE: 16\n"
    )
    assert declaration_text(LIST_HEAD, offsets=True, vaddr=0x1000) == (
        "struct list_head {\n  [1000] struct list_head *next;\n  [1008] struct list_head *prev;\n}\nSIZE: 16\n"
    )
    assert declaration_text(TASK, member="tasks") == "struct task {\n   [20] struct list_head tasks;\n}\n"
    assert declaration_text(TASK, member="y") == "struct task {\n   [56]     int y;\n}\n"
    text = declaration_text(TASK, offsets=True)
    assert "  [36] unsigned int flag_b : 3;\n" in text
    assert "       union {\n   [56]     unsigned long x;\n" in text
    assert "   [64] void (*fn)(int);\n" in text
    assert declaration_text(PID_T, "pid_t") == "typedef int pid_t;\nSIZE: 4\n"
    assert declaration_text(LIST_HEAD, radix=16).endswith("SIZE: 0x10\n")


def test_member_data(scope, kernel):
    full = (
        "struct task "
        + ValueFormatter(kernel, scope.symbolizer.suffix).value(
            TASK, kernel.read(TASK_ADDR, 120), 0, TASK_ADDR, 0
        )
        + "\n"
    )
    assert member_data(full, "pid") == "  pid = 42,\n"
    assert member_data(full, "b") == "  b = 65 'A'\n"
    assert member_data(full, "tasks").startswith("  tasks = {\n    next = ")
    assert member_data(full, "tasks").endswith("  },\n")
    assert member_data(full, "y") == "    y = 1432778632\n"
    assert member_data(full, "tasks.next") == f"  tasks.next = 0x{TASK_ADDR + 20:x} <init_task+20>,\n"
    assert member_data(full, "nosuch") is None


def test_whatis_variable_and_leader():
    assert whatis_variable("init_task", TASK) == "struct task init_task;"
    assert whatis_variable("name", ptr(CHAR)) == "char *name;"
    assert whatis_variable("banner", const(array(CHAR, 4))) == "const char banner[4];"
    assert whatis_variable("do_it", FUNC) == "void do_it(int);"
    assert whatis_variable("hook", ptr(FUNC)) == "void (*hook)(int);"
    assert p_leader("jiffies", "$1 = 5") == "jiffies = $1 = 5"
    assert p_leader("do_it", "$2 = {void (int)} 0x1 <do_it>") == "do_it = $2 = \n {void (int)} 0x1 <do_it>"
    assert p_leader("init_task", "$3 = {\n  pid = 1\n}") == "init_task = $3 = {\n  pid = 1\n}"


def test_char_arrays_print_utf8_as_gdb_does_under_a_utf8_locale():
    """Seen in a 5.10 task's FPU state: crash's gdb printed the bytes e0 a8 bc as the character they encode,
    and kept octal escapes for bytes that are no valid UTF-8 (and for a digit after an escape)."""
    from kcrash.expr.valfmt import PrintOptions, quote_bytes

    opts = PrintOptions()
    assert quote_bytes(b"a\xe0\xa8\xbc9\xff7\x00", False, opts) == '"a\u0a3c9\\377\\067"'
    assert quote_bytes(b"\xe0\xa8", False, opts) == '"\\340\\250"'  # cut short: no character
    assert quote_bytes(b"\xc3\xa9t\xc3\xa9\x00", False, opts) == '"\u00e9t\u00e9"'
