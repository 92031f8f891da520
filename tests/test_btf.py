"""kcrash.debuginfo.btf: synthetic BTF blobs for every kind and bad input, then the real vmlinux's .BTF."""

from __future__ import annotations

import mmap
import os
import struct
import time

import pytest

from kcrash.debuginfo import cache
from kcrash.debuginfo.btf import BtfTypes, canonical_base_name, parse_type_name
from kcrash.debuginfo.types import Kind, type_name
from kcrash.errors import DebugInfoError
from tests.synth.elfdebug import BtfBuilder, elf_image, real_vmlinux


def sample() -> tuple[BtfBuilder, dict[str, int]]:
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["int"] = b.int("int", 4, signed=True)
    ids["uint"] = b.int("unsigned int", 4)
    ids["ulong"] = b.int("long unsigned int", 8)
    ids["char"] = b.int("char", 1, signed=True, char=True)
    ids["bool"] = b.int("_Bool", 1, bool_=True)
    ids["fwd_node"] = b.fwd("node")
    ids["node_ptr"] = b.ptr(ids["fwd_node"])
    ids["comm"] = b.array(ids["char"], ids["int"], 16)
    ids["volatile_ulong"] = b.qualifier("volatile", ids["ulong"])
    ids["const_char"] = b.qualifier("const", ids["char"])
    ids["const_char_ptr"] = b.ptr(ids["const_char"])
    ids["restrict_ptr"] = b.qualifier("restrict", ids["const_char_ptr"])
    ids["pid_t"] = b.typedef("pid_t", ids["int"])
    ids["node"] = b.struct("node", 16, [("next", ids["node_ptr"], 0), ("prev", ids["node_ptr"], 64)])
    ids["flags"] = b.struct(
        "flags", 4, [("a", ids["uint"], 0, 1), ("b", ids["uint"], 1, 3), ("c", ids["uint"], 8, 0)]
    )
    ids["anon_union"] = b.struct(None, 8, [("x", ids["ulong"], 0), ("y", ids["int"], 0)], union=True)
    ids["task"] = b.struct(
        "task",
        48,
        [("pid", ids["pid_t"], 0), ("comm", ids["comm"], 32), (None, ids["anon_union"], 192 + 64 * 0)],
    )
    ids["pid_type"] = b.enum("pid_type", 4, [("PIDTYPE_PID", 0), ("PIDTYPE_TGID", 1), ("PIDTYPE_MAX", 4)])
    ids["signed_enum"] = b.enum("s", 4, [("NEG", -2), ("POS", 3)], signed=True)
    ids["big"] = b.enum64("big", 8, [("BIG", 1 << 40), ("HUGE", (1 << 64) - 1)])
    ids["big_signed"] = b.enum64(None, 8, [("MINUS_ONE", -1)], signed=True)
    ids["proto"] = b.func_proto(ids["int"], [("fmt", ids["const_char_ptr"])], variadic=True)
    ids["printk"] = b.func("_printk", ids["proto"])
    ids["void_proto"] = b.func_proto(0, [])
    ids["schedule"] = b.func("schedule", ids["void_proto"])
    ids["double"] = b.float("double", 8)
    ids["tagged"] = b.type_tag("user", ids["int"])
    ids["tagged_ptr"] = b.ptr(ids["tagged"])
    ids["decl_tag"] = b.decl_tag("noinline", ids["schedule"])
    ids["var_rq"] = b.var("runqueues", ids["node"])
    ids["var_cpu"] = b.var("cpu_number", ids["int"])
    ids["percpu"] = b.datasec(".data..percpu", 0x40, [(ids["var_cpu"], 0x8, 4), (ids["var_rq"], 0x20, 16)])
    ids["lonely"] = b.fwd("lonely", union=True)
    ids["old_bits"] = b.int("unsigned int", 4, bits=3, offset=2)  # pre-kind_flag bit field encoding
    ids["old_style"] = b.struct("old_style", 4, [("f", ids["old_bits"], 4)])
    return b, ids


@pytest.fixture(scope="module")
def btf() -> tuple[BtfTypes, dict[str, int]]:
    b, ids = sample()
    return BtfTypes(b.blob()), ids


def test_every_record_is_indexed(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, ids = btf
    assert len(types) == max(ids.values()) + 1  # id 0 is void


def test_base_types_and_name_grammar(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    i = types.find_type("int")
    assert i is not None and i.kind is Kind.INT and i.size == 4 and i.signed
    ul = types.find_type("unsigned long")
    assert ul is not None and ul.name == "long unsigned int" and not ul.signed
    assert types.find_type("long unsigned int") is ul
    char = types.find_type("char")
    assert char is not None and char.signed and char.size == 1
    b = types.find_type("_Bool")
    assert b is not None and b.kind is Kind.BOOL
    d = types.find_type("double")
    assert d is not None and d.kind is Kind.FLOAT and d.size == 8
    assert types.find_type("void") is not None and types.find_type("void").kind is Kind.VOID
    assert types.find_type("struct pid_t") is None and types.find_type("nosuch") is None


def test_struct_members_are_lazy_and_correct(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    task = types.find_type("struct task")
    assert task is not None and task.kind is Kind.STRUCT and task.size == 48
    assert callable(task._members)  # not built until asked for
    pid, off = task.member("pid")
    assert off == 0 and type_name(pid.type) == "pid_t" and pid.type.strip().name == "int"
    comm, off = task.member("comm")
    assert off == 32 and type_name(comm.type) == "char [16]" and comm.type.sizeof() == 16
    # through the anonymous union, as C does
    y, off = task.member("y")
    assert off == 192 and y.type.name == "int"
    assert task.find_member("nosuch") is None


def test_bitfields_kind_flag_and_old_style(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    flags = types.find_type("struct flags")
    assert flags is not None
    assert [(m.name, m.bit_offset, m.bit_size) for m in flags.members] == [
        ("a", 0, 1),
        ("b", 1, 3),
        ("c", 8, 0),
    ]
    old = types.find_type("struct old_style")
    assert old is not None
    (f,) = old.members
    assert (f.bit_offset, f.bit_size) == (6, 3)


def test_forward_declaration_resolves_to_definition(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, ids = btf
    node = types.find_type("struct node")
    assert node is not None and node.size == 16
    nxt, _ = node.member("next")
    assert nxt.type.kind is Kind.POINTER and nxt.type.target is node  # FWD → the full struct
    lonely = types.find_type("union lonely")
    assert lonely is not None and lonely.kind is Kind.UNION and lonely.size is None and not lonely.is_complete


def test_qualifiers_typedefs_pointers(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, ids = btf
    assert type_name(types.type(ids["volatile_ulong"])) == "volatile long unsigned int"
    assert type_name(types.type(ids["const_char_ptr"])) == "const char *"
    assert type_name(types.type(ids["restrict_ptr"])) == "const char * restrict"
    assert types.type(ids["const_char_ptr"]).size == 8
    # TYPE_TAG is an annotation: transparent
    assert type_name(types.type(ids["tagged_ptr"])) == "int *"


def test_enums(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    pid_type = types.find_type("enum pid_type")
    assert pid_type is not None and pid_type.size == 4 and not pid_type.signed
    assert pid_type.enumerator_value("PIDTYPE_MAX") == 4
    hit = types.find_enumerator("PIDTYPE_PID")
    assert hit is not None and hit[0] is pid_type and hit[1] == 0
    neg = types.find_enumerator("NEG")
    assert neg is not None and neg[1] == -2 and neg[0].signed
    assert types.find_enumerator("HUGE")[1] == (1 << 64) - 1
    assert types.find_enumerator("BIG")[1] == 1 << 40
    assert types.find_enumerator("MINUS_ONE")[1] == -1
    assert types.find_enumerator("NOPE") is None


def test_functions(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    printk = types.find_function("_printk")
    assert printk is not None and printk.kind is Kind.FUNCTION and printk.variadic
    assert [p.name for p in printk.params] == ["fmt"]
    assert type_name(printk) == "int (const char *, ...)"
    assert type_name(types.find_function("schedule")) == "void (void)"
    assert types.find_function("nosuch") is None


def test_percpu_variables(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    types, _ = btf
    percpu = types.percpu_variables()
    assert set(percpu) == {"cpu_number", "runqueues"}
    offset, rq = percpu["runqueues"]
    assert offset == 0x20 and type_name(rq) == "struct node"
    assert percpu["cpu_number"][0] == 0x8
    assert types.percpu_variables() is percpu  # computed once


def test_type_names_for_completion(btf: tuple[BtfTypes, dict[str, int]]) -> None:
    names = set(btf[0].type_names())
    assert {"struct task", "enum pid_type", "pid_t", "int", "union lonely"} <= names


def test_name_grammar() -> None:
    assert parse_type_name("struct  task_struct") == ("struct", "task_struct")
    assert parse_type_name("enum pid_type") == ("enum", "pid_type")
    assert parse_type_name("pid_t") == ("", "pid_t")
    assert canonical_base_name("unsigned long") == "long unsigned int"
    assert canonical_base_name("long long unsigned") == "long long unsigned int"
    assert canonical_base_name("unsigned") == "unsigned int"
    assert canonical_base_name("short") == "short int"
    assert canonical_base_name("signed char") == "signed char"
    assert canonical_base_name("unsigned char") == "unsigned char"
    assert canonical_base_name("long") == "long int"
    assert canonical_base_name("signed") == "int"
    assert canonical_base_name("u64") == "u64"


def test_loads_from_elf_mmap_without_copy(tmp_path) -> None:
    b, _ = sample()
    path = tmp_path / "vmlinux"
    path.write_bytes(elf_image({".text": b"\x90" * 16, ".BTF": b.blob()}))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        types = BtfTypes.from_elf(mm, cache.elf_sections(mm), str(path))
        assert types is not None and types.find_type("struct task").size == 48
        assert BtfTypes.from_elf(mm, {}, str(path)) is None
        types.close()


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda blob: b"\xeb\x9f" + blob[2:], "bad BTF magic"),
        (lambda blob: blob[:2] + b"\x02" + blob[3:], "unsupported BTF version"),
        (lambda blob: blob[:40], "past the end"),
        (lambda blob: blob[:10], "too short"),
    ],
)
def test_bad_headers(mutate, why: str) -> None:
    b, _ = sample()
    with pytest.raises(DebugInfoError, match=why):
        BtfTypes(mutate(b.blob()), path="x.btf")


def test_unknown_kind_and_torn_record() -> None:
    b = BtfBuilder()
    b.int("int", 4, signed=True)
    b.records.append(struct.pack("<III", 0, 25 << 24, 0))
    with pytest.raises(DebugInfoError, match="unknown BTF kind 25"):
        BtfTypes(b.blob())
    b = BtfBuilder()
    b.struct("s", 4, [("a", 0, 0)])
    b.records[-1] = b.records[-1][:-4]
    with pytest.raises(DebugInfoError, match="ends inside a record"):
        BtfTypes(b.blob())


# --- the real vmlinux ---------------------------------------------------------------------------------
VMLINUX = real_vmlinux()


@pytest.fixture(scope="module")
def real_btf() -> BtfTypes:
    if VMLINUX is None:
        if os.environ.get("KCRASH_SKIP_FIXTURES") != "1":  # missing fixtures fail unless opted out
            pytest.fail("no real vmlinux: set KCRASH_VMLINUX or build the fixtures (tests/fixtures/build.py)")
        pytest.skip("no real vmlinux (KCRASH_VMLINUX, ~/.cache/kcrash/fixtures/*/, /tmp/k61)")
    f = open(VMLINUX, "rb")  # noqa: SIM115 - kept open for the module's tests
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    start = time.perf_counter()
    types = BtfTypes.from_elf(mm, cache.elf_sections(mm, VMLINUX), VMLINUX)
    elapsed = time.perf_counter() - start
    assert types is not None
    assert len(types) > 50_000
    assert elapsed < 1.0, f"indexing .BTF took {elapsed:.2f}s"
    return types


@pytest.mark.fixture
def test_real_task_struct(real_btf: BtfTypes) -> None:
    task = real_btf.find_type("struct task_struct")
    assert task is not None and task.size and task.size > 4000
    assert type_name(task.member("comm")[0].type) == "char [16]"
    assert type_name(task.member("tasks")[0].type) == "struct list_head"
    assert task.find_member("__state") or task.find_member("state")
    assert real_btf.find_type("struct list_head").size == 16


@pytest.mark.fixture
def test_real_enums_functions_percpu(real_btf: BtfTypes) -> None:
    enum, value = real_btf.find_enumerator("PIDTYPE_PID")
    assert value == 0 and type_name(enum) == "enum pid_type"
    assert type_name(real_btf.find_function("schedule")) == "void (void)"
    percpu = real_btf.percpu_variables()
    assert type_name(percpu["runqueues"][1]) == "struct rq"
    assert type_name(percpu["current_task"][1]) == "struct task_struct *"
