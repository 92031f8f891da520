"""The `kcrash` command: parse the command line, open the dump, print the banner, then run the REPL or a batch.

Exit status (also in docs/usage.md):
  0    the session ended normally and every command of a batch (-c, -i, rc files excluded, stdin) succeeded
  1    the dump or the vmlinux could not be opened (or another start-up failure)
  2    bad command-line usage
  3    a command of a batch failed (error, unknown command, bad arguments)
  130  interrupted by Ctrl-C outside the interactive prompt

Kept light at import time: the shell, prompt_toolkit and pygments are imported only when needed.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "EXIT_OK", "EXIT_OPEN_FAILED", "EXIT_USAGE", "EXIT_COMMAND_FAILED", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_OPEN_FAILED = 1
EXIT_USAGE = 2
EXIT_COMMAND_FAILED = 3
EXIT_INTERRUPTED = 130
DEBUG_HINT = "(run with --debug for the traceback)"


def build_parser() -> argparse.ArgumentParser:
    from kcrash import __version__

    parser = argparse.ArgumentParser(
        prog="kcrash",
        usage="kcrash [options] VMLINUX VMCORE",
        description="Analyse a Linux kernel crash dump, with crash's commands and output.",
        epilog="VMLINUX and VMCORE may be given in either order. Exit status: 0 ok, 1 the dump could not "
        "be opened, 2 bad usage, 3 a batch command failed, 130 interrupted.",
    )
    parser.add_argument("files", nargs=2, metavar="VMLINUX VMCORE", help=argparse.SUPPRESS)
    parser.add_argument(
        "-i",
        dest="input_files",
        action="append",
        default=[],
        metavar="FILE",
        help="run the commands in FILE before the prompt (q/quit/exit in it ends the session)",
    )
    parser.add_argument(
        "-c",
        dest="commands",
        action="append",
        default=[],
        metavar="'CMD; CMD'",
        help="run these commands and exit",
    )
    parser.add_argument("-s", dest="silent", action="store_true", help="silent: no banner")
    parser.add_argument("--json", action="store_true", help="JSON lines from commands that produce records")
    parser.add_argument(
        "--zero-excluded", action="store_true", help="read pages the dump filtered out as zeroes"
    )
    parser.add_argument("--no-gdb", action="store_true", help="never fall back to gdb for expressions")
    parser.add_argument(
        "--force-mismatch", action="store_true", help="open even if the vmlinux does not match the dump"
    )
    parser.add_argument("--no-rc", action="store_true", help="do not run ~/.kcrashrc and ./.kcrashrc")
    parser.add_argument(
        "--debug-dir",
        metavar="DIR",
        action="append",
        default=[],
        help="search this directory tree first for modules' object files (mod -s, mod -S); repeatable",
    )
    parser.add_argument(
        "--gdbserver",
        metavar="unix:PATH",
        help="serve the dump to gdb over the remote protocol at this address instead of starting the shell",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"kcrash {__version__}")
    return parser


def _err(message: str) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    sys.stderr.write(f"kcrash: {message}\n")
    sys.stderr.flush()


class _Progress:
    """`please wait... (what)` on a terminal while something slow runs, erased afterwards."""

    def __init__(self) -> None:
        self.active = sys.stderr.isatty()
        self.shown = False

    def show(self, what: str) -> None:
        if self.active:
            sys.stderr.write(f"\rplease wait... ({what})\x1b[K")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def open_dump(a: str, b: str, *, zero_excluded: bool, force_mismatch: bool):
    """Open the kernel (a seam the tests replace)."""
    from kcrash.program import open_kernel

    return open_kernel(a, b, zero_excluded=zero_excluded, force_mismatch=force_mismatch)


def _unexpected(e: BaseException, debug: bool, what: str) -> None:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    if debug:
        import traceback

        _err(f"unexpected error {what}: {text}")
        traceback.print_exception(e, file=sys.stderr)
    else:
        _err(f"unexpected error {what}: {text} {DEBUG_HINT}")


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    ns = build_parser().parse_args(argv)
    try:
        status = _run(ns)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read our output (`kcrash ... | head`) went away: not an error, and no noise at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return status


def _run(ns: argparse.Namespace) -> int:
    from kcrash.errors import KcrashError

    progress = _Progress()
    progress.show("loading the vmlinux and the dump")
    try:
        kernel = open_dump(
            ns.files[0], ns.files[1], zero_excluded=ns.zero_excluded, force_mismatch=ns.force_mismatch
        )
    except KcrashError as e:
        progress.clear()
        _err(str(e))
        return EXIT_OPEN_FAILED
    except OSError as e:
        progress.clear()
        _err(f"{e.filename or ns.files[0]}: {e.strerror}")
        return EXIT_OPEN_FAILED
    except KeyboardInterrupt:
        progress.clear()
        raise
    except Exception as e:
        progress.clear()
        _unexpected(e, ns.debug, "while opening the dump")
        return EXIT_OPEN_FAILED
    if ns.debug_dir and hasattr(kernel, "release"):
        from kcrash.kernel.module_debug import add_debug_dirs

        add_debug_dirs(kernel, ns.debug_dir)
    try:
        if ns.gdbserver:
            return _gdbserver(ns, kernel, progress)
        return _session(ns, kernel, progress)
    finally:
        if kernel is not None:
            try:
                kernel.close()
            except Exception:  # the session is over; nothing useful to report
                pass


def _gdbserver(ns: argparse.Namespace, kernel, progress: _Progress) -> int:
    """`--gdbserver ADDRESS`: hand the open Kernel to kcrash.gdb.server.serve(kernel, address) -> status."""
    from kcrash.errors import KcrashError

    progress.clear()
    try:
        from kcrash.gdb.server import serve
    except ImportError:
        _err("--gdbserver: the gdb server is not available in this version")
        return EXIT_OPEN_FAILED
    try:
        return int(serve(kernel, ns.gdbserver) or 0)
    except KcrashError as e:
        _err(f"--gdbserver: {e}")
        return EXIT_OPEN_FAILED


def _session(ns: argparse.Namespace, kernel, progress: _Progress) -> int:
    from kcrash import __version__
    from kcrash.commands.sys import banner_lines
    from kcrash.shell.context import Settings
    from kcrash.shell.core import FAILED, INTERRUPTED, Shell
    from kcrash.shell.registry import Registry
    from kcrash.shell.startup import load_env_plugins, run_file, run_rc_files

    registry = Registry()
    registry.load_entry_points()
    env_errors = load_env_plugins(registry)
    settings = Settings(
        output="json" if ns.json else "text",
        zero_excluded=ns.zero_excluded,
        gdb=not ns.no_gdb,
        debug=ns.debug,
    )
    shell = Shell(kernel, registry=registry, settings=settings)
    try:
        kernel.prefetch_debuginfo()  # first open of this vmlinux: index DWARF while the user reads
    except Exception as e:  # a failed prefetch only means the index is built when first needed
        _unexpected(e, ns.debug, "while starting the debug-info index build")
    if not ns.silent:
        progress.show("gathering system information")
        try:
            lines = banner_lines(kernel)
        except Exception as e:  # the banner must never stop the session
            lines = [f"{'KERNEL':>12}: {kernel.vmlinux_path}", f"{'DUMPFILE':>12}: {kernel.dump_path}"]
            progress.clear()
            _unexpected(e, ns.debug, "while reading the system information")
        progress.clear()
    progress.clear()
    for message in list(kernel.warnings):
        _err(message if message.startswith("WARNING") else f"WARNING: {message}")
    for message in registry.errors + env_errors:
        _err(message)
    if not ns.silent:
        sys.stdout.write(f"kcrash {__version__}\n\n" + "\n".join(lines) + "\n\n")
        sys.stdout.flush()

    worst = 0
    if not ns.no_rc:
        run_rc_files(shell)
    for path in ns.input_files:
        if shell.exited:
            break
        worst = max(worst, run_file(shell, path))
    if worst == INTERRUPTED:
        return EXIT_INTERRUPTED
    if ns.commands:
        for text in ns.commands:
            if shell.exited:
                break
            status = shell.execute(text)
            if status == INTERRUPTED:
                return EXIT_INTERRUPTED
            worst = max(worst, status)
    elif not shell.exited:
        if sys.stdin.isatty():
            if sys.stdout.isatty():
                from kcrash.shell.repl import run_repl

                run_repl(shell)
            else:
                from kcrash.shell.repl import run_plain_repl

                run_plain_repl(shell)
        else:
            status = shell.run_lines(sys.stdin)
            if status == INTERRUPTED:
                return EXIT_INTERRUPTED
            worst = max(worst, status)
    return EXIT_COMMAND_FAILED if worst == FAILED else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
