"""The debug files (.ko with DWARF) of the modules in a fixture set's dumps, for the `mod -s` tests.

Sets built by tests/fixtures/build.py since it learnt to keep them have them beside the vmlinux
(usr/lib/debug/lib/modules/<release>/…, listed in manifest.json's `module_debug`). For older sets they are
taken from the -dbg package the build left in ~/.cache/kcrash/debs, once, into
~/.cache/kcrash/module-debug/<release>/ (same layout), so the tests run on either kind of set.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / "fixtures"))
import build  # noqa: E402
from debian import cache_root  # noqa: E402

__all__ = ["module_debug_dir", "module_debug_file"]


def _have(directory: pathlib.Path, release: str, names: list[str]) -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    root = directory / "usr/lib/debug"
    if root.is_dir():
        for path in root.rglob("*.ko*"):
            rel = str(path.relative_to(directory))
            if build.module_debug_path(release, rel) is not None:
                found.setdefault(build.module_file_name(rel), path)
    return {n: found[n] for n in names if n in found}


def _dbg_deb(release: str, version: str | None) -> pathlib.Path | None:
    debs = sorted((cache_root() / "debs").glob(f"linux-image-{release}-dbg_*.deb"))
    exact = [d for d in debs if version and f"_{version.replace(':', '%3a')}_" in d.name]
    return (exact or debs or [None])[-1]


def module_debug_dir(fs, names: list[str]) -> pathlib.Path:
    """A directory whose usr/lib/debug tree holds the debug files of the modules `names` of fixture set
    `fs` (a conftest.FixtureSet)."""
    release = fs.manifest["kernel_release"]
    if len(_have(fs.dir, release, names)) == len(names):
        return fs.dir
    dest = cache_root() / "module-debug" / release
    if len(_have(dest, release, names)) == len(names):
        return dest
    deb = _dbg_deb(release, fs.manifest.get("package_version"))
    if deb is None:
        raise RuntimeError(
            f"no debug files of {names} beside {fs.vmlinux} and no linux-image-{release}-dbg package in "
            f"{cache_root() / 'debs'}: rebuild the fixtures (tests/fixtures/build.py)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers extract once
        if len(_have(dest, release, names)) < len(names):
            tmp = dest.parent / f".{release}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            if dest.is_dir():
                shutil.copytree(dest, tmp)
            build.extract_dbg_files(deb, release, tmp, names)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
    return dest


def module_debug_file(fs, name: str) -> pathlib.Path:
    """The debug file of one module of fixture set `fs`."""
    directory = module_debug_dir(fs, [name])
    return _have(directory, fs.manifest["kernel_release"], [name])[name]
