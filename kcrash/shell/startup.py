"""What runs before the first prompt: plugins named by $KCRASH_PLUGINS, ~/.kcrashrc and ./.kcrashrc, and -i
files. (The banner is crash's `sys` block: kcrash.commands.sys.banner_lines.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from kcrash.shell.core import FAILED, Shell
from kcrash.shell.registry import PluginError, Registry

__all__ = ["load_env_plugins", "rc_files", "run_rc_files", "run_file", "untrusted_reason"]

RC_NAME = ".kcrashrc"


def load_env_plugins(registry: Registry, value: str | None = None) -> list[str]:
    """Load the plugin files listed in $KCRASH_PLUGINS (":"-separated). Returns error lines."""
    value = os.environ.get("KCRASH_PLUGINS", "") if value is None else value
    errors = []
    for path in filter(None, (p.strip() for p in value.split(os.pathsep))):
        try:
            registry.load_file(path)
        except PluginError as e:
            errors.append(f"plugin {e}")
    return errors


def rc_files() -> list[str]:
    """~/.kcrashrc then ./.kcrashrc (once if they are the same file), as crash reads its .crashrc."""
    files: list[str] = []
    home = os.path.join(os.path.expanduser("~"), RC_NAME)
    local = os.path.abspath(RC_NAME)
    for path in (home, local):
        if os.path.isfile(path) and not any(os.path.samefile(path, f) for f in files):
            files.append(path)
    return files


def untrusted_reason(path: str) -> str | None:
    """Why an rc file must not be run (someone else could have written it), or None."""
    try:
        st = os.stat(path)
    except OSError as e:
        return e.strerror
    if st.st_uid != os.getuid():
        return "not owned by you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by group or others"
    return None


def run_rc_files(shell: Shell) -> None:
    for path in rc_files():
        reason = untrusted_reason(path)
        if reason is not None:
            shell.warn(f"ignoring {path}: {reason}")
            continue
        shell.source = "rcfile"
        try:
            run_file(shell, path)
        finally:
            shell.source = "runtime"
        if shell.exited:
            return


def _lines(path: str) -> Iterator[str]:
    with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as f:
        yield from f


def run_file(shell: Shell, path: str) -> int:
    """Run the commands of a file (`-i FILE`, an rc file); `q` in it ends the session."""
    try:
        lines = list(_lines(path))
    except OSError as e:
        shell.warn(f"{path}: {e.strerror}")
        return FAILED
    return shell.run_lines(lines)
