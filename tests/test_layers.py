"""kcrash's layers, read from the source with `ast`: imports point down only, and nothing imports in a cycle.

Layers, bottom up: errors; memory and debuginfo; arch; program/objects; kernel; expr and gdb; shell; commands;
cli. A module may import its own layer or a lower one. Imports under `if TYPE_CHECKING:` are for annotations
and do not count. Imports inside functions count like module-level ones: a function-level import that would
close a cycle at module level is one placed to dodge it, so the cycle check runs over both kinds together.
(Function-level imports that point down and close no cycle are lazy loading, kept off start-up.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "kcrash"

# Module name prefix -> layer; the longest matching prefix wins.
LAYERS = {
    "kcrash": 0,  # the package itself: __version__
    "kcrash.errors": 0,
    "kcrash.records": 0,  # record helpers (hex fields, JSON encoding): no kcrash imports
    "kcrash.memory": 1,
    "kcrash.debuginfo": 1,
    "kcrash.arch": 2,
    "kcrash.program": 3,
    "kcrash.objects": 3,
    "kcrash.kernel": 4,
    "kcrash.expr": 5,
    "kcrash.gdb": 5,
    "kcrash.shell": 6,
    "kcrash.commands": 7,
    "kcrash.cli": 8,
}
LAYER_NAMES = [
    "errors",
    "memory and debuginfo",
    "arch",
    "program/objects",
    "kernel",
    "expr and gdb",
    "shell",
    "commands",
    "cli",
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _target(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The kcrash modules an import statement loads (a submodule when `from pkg import sub` names one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "kcrash" or a.name.startswith("kcrash.")]
    base = node.module or ""
    if node.level:
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    if base != "kcrash" and not base.startswith("kcrash."):
        return []
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in MODULES else base)
    return out


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every run-time kcrash import of `module`."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_one(sub, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend((target, node.lineno, in_function) for target in _target(module, node))
            return
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        visit(node, inner)

    visit(tree, False)
    return [(t, line, f) for t, line, f in found if t != module]


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    assert "kcrash.kernel.tasks" in MODULES and "kcrash.cli" in MODULES
    for module in MODULES:
        assert layer(module) >= 0


def test_imports_point_down():
    upward = [
        f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {m} ({LAYER_NAMES[layer(m)]}) imports {t} "
        f"({LAYER_NAMES[layer(t)]}){' inside a function' if in_function else ''}"
        for m, edges in GRAPH.items()
        for t, line, in_function in edges
        if layer(t) > layer(m)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles() -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in {t for t, _, _ in GRAPH[v] if t in GRAPH}:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            strongconnect(v)
    return out


def test_no_import_cycles():
    """Module-level and function-level imports together: a cycle through a function-level import is one
    the import was moved into the function to dodge."""
    problems = []
    for component in _cycles():
        members = set(component)
        edges = [
            f"  {MODULES[m].relative_to(ROOT.parent)}:{line}: imports {t}{' (inside a function)' if f else ''}"
            for m in component
            for t, line, f in GRAPH[m]
            if t in members
        ]
        problems.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_kernel_helpers_import_at_module_level():
    """The helper library loads what it uses up front: a function-level import there is how the old
    tasks/sysinfo/stack/printk cycle was held together."""
    inside = [
        f"{MODULES[m].relative_to(ROOT.parent)}:{line}: imports {t} inside a function"
        for m, edges in GRAPH.items()
        if m.startswith("kcrash.kernel.")
        for t, line, in_function in edges
        if in_function
    ]
    assert not inside, "\n".join(inside)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from kcrash.kernel import tasks\n", ["kcrash.kernel.tasks"]),
        ("from kcrash.commands import command\n", ["kcrash.commands"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kcrash.cli import main\n", []),
        ("def f():\n    from kcrash.cli import main\n", ["kcrash.cli"]),
    ],
)
def test_import_reader(source, expected, tmp_path, monkeypatch):
    """The reader itself: submodules, packages, TYPE_CHECKING blocks, imports in functions."""
    path = ROOT / "errors.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **kw: source if self == path else "")
    assert [t for t, _, _ in imports("kcrash.errors")] == expected
