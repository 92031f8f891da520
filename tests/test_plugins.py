"""The plugin system: entry points, `extend`, $KCRASH_PLUGINS, broken plugins, name clashes, and the real
third-party plugin package in plugins/kcrash-hung installed the way a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from shell_fakes import make_shell, run

from kcrash.shell.core import FAILED, OK
from kcrash.shell.registry import PluginError, Registry
from kcrash.shell.startup import load_env_plugins

REPO = Path(__file__).resolve().parent.parent
HUNG = REPO / "plugins" / "kcrash-hung"

GOOD = """
from kcrash.commands import command, Option

@command("hello", summary="say hello", options=[Option("-n", metavar="name", help="whom")])
def hello(ctx, args):
    ctx.print(f"hello {args.n or 'world'}")

@command("bye", aliases=("ciao",), summary="say bye")
def bye(ctx, args):
    ctx.print("bye")
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def builtin_registry() -> Registry:
    registry = Registry()
    registry.load_module("kcrash.commands", "kcrash", builtin=True)
    return registry


def test_entry_points_load_the_builtins_without_errors():
    registry = Registry()
    registry.load_entry_points()
    assert registry.errors == []
    plugin = registry.plugins["kcrash"]
    assert plugin.builtin and plugin.source == "entry point kcrash.commands"
    for name in ("help", "alias", "set", "eval", "extend", "exit", "q", "quit"):
        assert registry.lookup(name) is not None, name
        assert registry.lookup(name).plugin == "kcrash"


def test_load_file_and_unload(tmp_path):
    registry = builtin_registry()
    plugin = registry.load_file(write(tmp_path, "greet.py", GOOD))
    assert plugin.name == "greet" and sorted(plugin.commands) == ["bye", "hello"]
    assert registry.lookup("ciao") is registry.lookup("bye")
    with pytest.raises(PluginError, match="already loaded"):
        registry.load_file(str(tmp_path / "greet.py"))
    registry.unload("greet")
    assert registry.lookup("hello") is None and registry.lookup("ciao") is None
    with pytest.raises(PluginError, match="cannot be unloaded"):
        registry.unload("kcrash")
    with pytest.raises(PluginError, match="no such plugin"):
        registry.unload("greet")


@pytest.mark.parametrize(
    "source, message",
    [
        ("def broken(:\n", r"bad\.py: SyntaxError: .* \(line 1\)"),
        (
            "import kcrash_no_such_module\n",
            r"bad\.py: ModuleNotFoundError: No module named 'kcrash_no_such_module'",
        ),
        (
            "from kcrash.commands import command, Option\n"
            "@command('x', options=[Option('bad', help='no dash')])\n"
            "def x(ctx, args): pass\n",
            r"bad\.py: ValueError: option flag 'bad' must start with '-'",
        ),
        ("raise RuntimeError('exploded')\n", r"bad\.py: RuntimeError: exploded"),
        ("x = 1\n", r"bad\.py: defines no commands"),
    ],
)
def test_broken_plugin_file_is_one_error_naming_it(tmp_path, source, message):
    registry = builtin_registry()
    with pytest.raises(PluginError, match=message) as info:
        registry.load_file(write(tmp_path, "bad.py", source))
    assert "\n" not in str(info.value)
    assert registry.lookup("help") is not None and "bad" not in registry.plugins


def test_name_clash_rejects_only_the_clashing_command(tmp_path):
    registry = builtin_registry()
    registry.load_file(
        write(
            tmp_path,
            "clash.py",
            GOOD
            + """
@command("help", summary="my own help")
def myhelp(ctx, args):
    pass
""",
        )
    )
    assert registry.errors == ['plugin clash: command "help" clashes with "help" from kcrash']
    assert registry.lookup("help").plugin == "kcrash"
    assert registry.lookup("hello").plugin == "clash"


def test_clash_between_two_plugins(tmp_path):
    registry = builtin_registry()
    registry.load_file(write(tmp_path, "one.py", GOOD))
    with pytest.raises(PluginError, match='plugin two: command "hello" clashes with "hello" from one'):
        registry.load_file(write(tmp_path, "two.py", GOOD))


def test_package_with_a_broken_module_loads_the_rest(tmp_path, monkeypatch):
    package = tmp_path / "kctest_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(textwrap.dedent(GOOD))
    (package / "bad.py").write_text("import kcrash_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = builtin_registry()
    registry.load_module("kctest_pkg", "kctest")
    assert registry.errors == [
        "plugin kctest: cannot import kctest_pkg.bad: ModuleNotFoundError: No module named 'kcrash_no_such_module'"
    ]
    assert registry.lookup("hello").plugin == "kctest"
    registry.load_module("kctest_missing_pkg", "missing")
    assert registry.errors[-1].startswith(
        "plugin missing: cannot import kctest_missing_pkg: ModuleNotFoundError"
    )


def test_kcrash_plugins_environment_variable(tmp_path, monkeypatch):
    good = write(tmp_path, "greet.py", GOOD)
    bad = write(tmp_path, "bad.py", "def f(:\n")
    registry = builtin_registry()
    errors = load_env_plugins(registry, os.pathsep.join([good, bad, str(tmp_path / "none.py")]))
    assert registry.lookup("hello") is not None
    assert len(errors) == 2
    assert errors[0].startswith(f"plugin {bad}: SyntaxError")
    assert errors[1] == f"plugin {tmp_path / 'none.py'}: no such file"


def test_extend_command(tmp_path):
    shell = make_shell()
    path = write(tmp_path, "greet.py", GOOD)
    assert run(shell, f"extend {path}") == (OK, f"{path}: plugin loaded\n", "")
    assert run(shell, "hello -n you")[1] == "hello you\n"
    listing = run(shell, "extend")[1].splitlines()
    assert listing[0] == "PLUGIN               COMMANDS"
    assert "greet                bye hello" in listing
    assert run(shell, f"extend {path}") == (FAILED, "", f"extend: {path}: plugin already loaded\n")
    assert run(shell, "extend -u greet") == (OK, "greet: plugin unloaded\n", "")
    assert run(shell, "hello")[2] == "kcrash: command not found: hello\n"
    bad = write(tmp_path, "bad.py", "raise RuntimeError('exploded')\n")
    assert run(shell, f"extend {bad}") == (FAILED, "", f"extend: {bad}: RuntimeError: exploded\n")
    assert run(shell, "extend -u kcrash")[2] == "extend: kcrash: built-in commands cannot be unloaded\n"


def test_extend_reports_clashes(tmp_path):
    shell = make_shell()
    path = write(tmp_path, "clash.py", GOOD.replace('"bye"', '"eval"'))
    status, out, err = run(shell, f"extend {path}")
    assert status == OK and out == f"{path}: plugin loaded\n"
    assert err == 'extend: plugin clash: command "eval" clashes with "eval" from kcrash\n'


# --- the third-party package in plugins/ ------------------------------------------------------------


@pytest.fixture(scope="module")
def hung_installed(tmp_path_factory) -> Path:
    """plugins/kcrash-hung installed with pip (as a user would) into a private directory.

    Built from a copy, so setuptools leaves no build/ or egg-info behind in the source tree.
    """
    source = tmp_path_factory.mktemp("src") / "kcrash-hung"
    shutil.copytree(HUNG, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert list(target.glob("kcrash_hung-*.dist-info"))
    return target


def env_with(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def test_hung_plugin_is_found_through_its_entry_point(hung_installed):
    code = (
        "from kcrash.shell.registry import Registry\n"
        "r = Registry(); r.load_entry_points()\n"
        "print(r.errors, r.plugins['hung'].source, r.lookup('hung').plugin)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env_with(hung_installed), check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[] entry point kcrash_hung hung"


def test_hung_help_page(hung_installed, monkeypatch):
    monkeypatch.syspath_prepend(str(hung_installed))
    registry = builtin_registry()
    registry.load_module("kcrash_hung", "hung")
    shell = make_shell(registry)
    page = run(shell, "help hung")[1]
    assert "NAME\n  hung - list tasks in uninterruptible sleep" in page and "-t seconds" in page


def test_hung_on_a_real_dump(hung_installed, fixtures61):
    dump = next(iter(fixtures61.dumps))
    result = subprocess.run(
        ["kcrash", "-s", "--no-rc", fixtures61.vmlinux, fixtures61.path(dump), "-c", "hung -a; hung -t 0"],
        env=env_with(hung_installed),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    header = "    PID  TASK              CPU  ST        WAITED  COMM"
    assert lines[0] == header and lines.count(header) == 2
    rows = [line for line in lines if line != header]
    assert rows, "hung -a found no D-state task (idle kernel threads sleep in TASK_IDLE)"
    for row in rows:
        pid, task, cpu, state, waited, comm = row.split(None, 5)
        assert int(pid) >= 0 and task.startswith("ffff") and state in ("UN", "ID") and comm


# --- the example in docs/plugins.md -------------------------------------------------------------------


def docs_example(tmp_path: Path) -> str:
    text = (REPO / "docs" / "plugins.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    return write(tmp_path, "pidof.py", code)


def test_docs_example_loads_and_documents_itself(tmp_path):
    shell = make_shell()
    path = docs_example(tmp_path)
    assert run(shell, f"extend {path}")[0] == OK
    page = run(shell, "help pidof")[1]
    assert "NAME\n  pidof - find tasks by command name" in page and "  -x  also print" in page


def test_docs_example_on_a_real_dump(fixtures61, tmp_path):
    env = dict(os.environ, KCRASH_PLUGINS=docs_example(tmp_path), HOME=str(tmp_path))
    result = subprocess.run(
        [
            "kcrash",
            "-s",
            fixtures61.vmlinux,
            fixtures61.path("kdump-lzo.kdump"),
            "-c",
            "pidof -x kc-sleeper; pidof nosuch",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3
    assert result.stderr == "pidof: no task named nosuch\n"
    pid, task, comm = result.stdout.split()
    assert int(pid) > 1 and task.startswith("ffff") and comm == "kc-sleeper"
