"""Shared pytest fixtures: the real Debian dumps built by tests/fixtures/build.py, opened once per session.

Real-dump tests fail (never silently skip) when the fixtures are missing; a developer may opt out for a
quick run with KCRASH_SKIP_FIXTURES=1, and those tests then show as skipped, not passed.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "fixtures"))
import locate  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


def _fixture_set(series: str) -> tuple[pathlib.Path, dict]:
    d = locate.fixture_dir(series)
    if d is None:
        msg = f"no real {series} fixture dumps: run `python3 tests/fixtures/build.py --kernel {series}`"
        if os.environ.get("KCRASH_SKIP_FIXTURES") == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return d, json.loads((d / "manifest.json").read_text())


class FixtureSet:
    def __init__(self, directory: pathlib.Path, manifest: dict) -> None:
        self.dir = directory
        self.manifest = manifest
        self.vmlinux = str(directory / manifest["vmlinux"]["file"])
        self.dumps = {d["file"]: d for d in manifest["dumps"]}

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def dump_paths(self) -> list[str]:
        return [self.path(n) for n in self.dumps]


# Series whose every dump Debian 12's crash 8.0.2 reads: the differential tests against crash run on each.
CRASH_SERIES = tuple(name for name, series in locate.SERIES.items() if series.crash_opens)
# Series whose dumps crash 8.0.2 cannot read: drgn is their oracle ("sid" is Debian unstable's cloud
# kernel, whatever version it is when the fixtures are built).
DRGN_SERIES = tuple(name for name, series in locate.SERIES.items() if not series.crash_opens)

# Series whose every dump unstable's crash 9 (tests/fixtures/crash9.py) reads: the main oracle of the
# commands born after crash 8.0.2 stopped reading Debian's kernels.
CRASH9_SERIES = tuple(name for name, series in locate.SERIES.items() if series.crash9_opens)

_sets: dict[str, FixtureSet] = {}


def fixture_set(series: str) -> FixtureSet:
    """The fixture set of a kernel series (see locate.SERIES), found once per test session."""
    if series not in _sets:
        _sets[series] = FixtureSet(*_fixture_set(series))
    return _sets[series]


@pytest.fixture(scope="session", params=CRASH_SERIES)
def fixtures_crash(request) -> FixtureSet:
    """Each fixture set crash 8.0.2 reads in full: a test taking it runs once per such series."""
    return fixture_set(request.param)


@pytest.fixture(scope="session", params=CRASH9_SERIES)
def fixtures_crash9(request) -> FixtureSet:
    """Each fixture set crash 9 reads in full: a test taking it runs once per such series."""
    return fixture_set(request.param)


@pytest.fixture(scope="session")
def fixtures61() -> FixtureSet:
    return fixture_set("6.1")


@pytest.fixture(scope="session")
def fixtures612() -> FixtureSet:
    return fixture_set("6.12")


@pytest.fixture(scope="session")
def fixtures_sid() -> FixtureSet:
    return fixture_set("sid")


_kernels: dict[str, object] = {}


def open_fixture_kernel(fs: FixtureSet, name: str):
    """A Kernel for one dump of a fixture set, opened once per test session."""
    from kcrash.program import Kernel

    key = f"{fs.dir}/{name}"
    if key not in _kernels:
        _kernels[key] = Kernel(fs.vmlinux, fs.path(name))
    return _kernels[key]


_registry = None


def run_command(kernel, line: str) -> tuple[str, str]:
    """Run one kcrash command line in-process on `kernel`; returns (stdout, stderr)."""
    import io

    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    global _registry
    if _registry is None:
        _registry = Registry()
        _registry.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(kernel, registry=_registry, stdout=out, stderr=err)
    shell.execute(line)
    return out.getvalue(), err.getvalue()
