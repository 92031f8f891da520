"""p, struct, union, whatis and ptype through the shell, on the synthetic kernel of test_expr."""

from __future__ import annotations

import io
import json

import pytest
from test_expr import TASK_ADDR, FakeKernel

from kcrash.shell.context import Settings
from kcrash.shell.core import Shell
from kcrash.shell.registry import Registry

_registry = None


@pytest.fixture
def shell():
    global _registry
    if _registry is None:
        _registry = Registry()
        _registry.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(FakeKernel(), registry=_registry, stdout=out, stderr=err, settings=Settings(gdb=False))

    def run(line: str) -> tuple[str, str]:
        out.seek(0)
        out.truncate()
        err.seek(0)
        err.truncate()
        sh.execute(line)
        return out.getvalue(), err.getvalue()

    run.shell = sh
    return run


def test_p_leader_history_and_radix(shell):
    assert shell("p jiffies") == ("jiffies = $1 = 4294892296\n", "")
    assert shell("p jiffies + 1") == ("jiffies = $2 = 4294892297\n", "")
    assert shell("px jiffies") == ("jiffies = $3 = 0xfffedb08\n", "")
    assert shell("p/x jiffies") == ("$4 = 0xfffedb08\n", "")
    assert shell("pd init_task.pid") == ("$5 = 42\n", "")
    assert shell("p -x init_task.pid") == ("$6 = 0x2a\n", "")
    assert shell("p $1") == ("$7 = 4294892296\n", "")
    assert shell("p do_it") == (f"do_it = $8 = \n {{void (int)}} 0x{0xFFFFFFFF81100000:x} <do_it>\n", "")
    shell.shell.settings.radix = 16
    assert shell("p init_task.pid") == ("$9 = 0x2a\n", "")


def test_p_errors_are_one_line(shell):
    out, err = shell("p init_task.comn")
    assert not out and err == 'p: no member "comn" in struct task; did you mean "comm"?\n'
    out, err = shell("p 1 +")
    assert err == "p: syntax error: unexpected end of expression at column 4\n  1 +\n     ^\n"
    out, err = shell("p *(int *)0")
    assert err == 'p: invalid kernel virtual address: 0  type: "gdb_readmem_callback"\n'
    out, err = shell("p $_strlen(init_task.comm)")
    assert err.startswith("p: ") and "gdb fallback is off" in err
    out, err = shell("p -x -d 1")
    assert err == "p: -d and -x are mutually exclusive\n"
    assert shell("p 2")[0] == "$1 = 2\n"  # failures take no history number


def test_struct_definitions(shell):
    assert shell("struct list_head")[0] == (
        "struct list_head {\n    struct list_head *next;\n    struct list_head *prev;\n}\nSIZE: 16\n"
    )
    assert shell("struct -o list_head")[0].splitlines()[1] == "   [0] struct list_head *next;"
    assert shell("struct task.tasks")[0] == "struct task {\n   [20] struct list_head tasks;\n}\n"
    out, err = shell("struct task.pid,comm")
    assert err == "struct: multiple member format not supported in this syntax\n"
    out, err = shell("struct nosuch")
    assert err == "struct: invalid data structure reference: nosuch\n"
    out, err = shell("struct task.nosuch")
    assert err == "struct: invalid data structure reference: task.nosuch\n"


def test_struct_at_addresses(shell):
    out, err = shell(f"struct task.pid,comm {TASK_ADDR:x}")
    assert not err
    assert out == '  pid = 42,\n  comm = "swapper/0\\000\\000\\000\\000\\000\\000",\n'
    out, _ = shell("struct task.pid init_task")
    assert out == "  pid = 42,\n"
    out, _ = shell(f"struct list_head {TASK_ADDR + 20:x} 2")
    blocks = out.split("\n\n")
    assert len(blocks) == 2 and blocks[0].startswith("struct list_head {\n  next = ")
    out, _ = shell(f"struct list_head -o {TASK_ADDR + 20:x}")
    assert f"  [{TASK_ADDR + 20:x}] struct list_head *next;" in out
    out, _ = shell(f"struct task.tasks.next {TASK_ADDR:x}")
    assert out.startswith("  tasks.next = 0x")
    out, _ = shell(f"struct task -l task.tasks {TASK_ADDR + 20:x}")
    assert out.startswith("struct task {\n  pid = 42,")
    out, _ = shell(f"* list_head {TASK_ADDR + 20:x}")
    assert out.startswith("struct list_head {")
    out, err = shell("struct task 0")
    assert err == "struct: invalid kernel virtual address: 0\n"


def test_whatis_and_ptype(shell):
    assert shell("whatis init_task")[0] == "struct task init_task;\n"
    assert shell("whatis jiffies")[0] == "volatile unsigned long jiffies;\n"
    assert shell("whatis do_it")[0] == "void do_it(int);\n"
    assert shell("whatis asm_entry")[0] == "<text variable, no debug info> asm_entry;\n"
    assert shell("whatis pid_t")[0] == "typedef int pid_t;\nSIZE: 4\n"
    assert shell("whatis bool")[0] == "_Bool\n"
    assert shell("whatis state")[0] == "enum state {\n  ST_A = 0\n  ST_B = 1\n  ST_C = 3\n};\n"
    assert shell("whatis ST_C")[0] == "enum state = 3\n"
    assert shell("whatis list_head")[0].startswith("struct list_head {\n")
    assert shell("whatis init_task.comm")[0] == "char [16]\n"
    assert shell("whatis 1+1")[0] == "int\n"
    out, err = shell("whatis init_tsk.x")
    assert err == 'whatis: cannot resolve: init_tsk.x; did you mean "init_task"?\n'
    assert shell("ptype struct list_head")[0] == (
        "type = struct list_head {\n    struct list_head *next;\n    struct list_head *prev;\n}\n"
    )
    assert shell("ptype pid_t")[0] == "type = int\n"
    assert shell("ptype init_task.fn")[0] == "type = void (*)(int)\n"
    assert shell("ptype enum state")[0] == "type = enum state {ST_A, ST_B, ST_C = 3}\n"


def test_json_records(shell):
    shell.shell.settings.output = "json"
    out, _ = shell("p init_task.pid")
    assert json.loads(out) == {
        "record": "print",
        "schema": 2,
        "expression": "init_task.pid",
        "history": 1,
        "text": "42",
        "leader": None,
        "source": "native",
    }
    out, _ = shell("whatis init_task")
    assert json.loads(out)["text"] == "struct task init_task;\n"
