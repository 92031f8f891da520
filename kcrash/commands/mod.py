"""`mod`: the loaded modules, and loading (or dropping) their object files' symbols and debug info."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kcrash.commands import Argument, CommandFailed, Option, UsageError, command
from kcrash.commands.ps import center
from kcrash.errors import DebugInfoError
from kcrash.kernel import module_debug as mdebug
from kcrash.kernel.modinfo import ModuleInfo, module_info, module_taints
from kcrash.kernel.modules import Module, find_module, module_at, modules
from kcrash.records import hex_field

_VADDR_PRLEN = 16

HELP = """
NAME
  mod - module information and loading of symbols and debugging data

SYNOPSIS
  mod -s module [objfile] | -d module | -S [directory] [-D|-t|-r|-R|-o|-g]

DESCRIPTION
  With no arguments, this command displays basic information of the currently
  installed modules, consisting of the module address, name, base address,
  size, the object file name (if known), and whether the module was compiled
  with CONFIG_KALLSYMS.

  The arguments are concerned with with the loading or deleting of symbolic
  and debugging data from a module's object file.  Debian ships the object
  files with debugging data in the kernel's -dbg package, under
  usr/lib/debug/lib/modules/<release>/.  An object file is used only when its
  build-id is the one of the module in the dump (when the dump keeps it).

  -s module [objfile]  Loads symbolic and debugging data from the object file
                       for the module specified.  If no objfile argument is
                       appended, a search will be made for an object file
                       consisting of the module name with a .ko or .ko.debug
                       suffix (dashes or underscores), in the directories
                       given with --debug-dir, /usr/lib/debug/lib/modules/<release>,
                       $CRASH_MODULE_PATH, /lib/modules/<release>, and the
                       directory tree containing the kernel namelist file.  If
                       an objfile argument is appended, then that file will be
                       used.
            -d module  Deletes the symbolic and debugging data of the module
                       specified.
       -S [directory]  Load symbolic and debugging data from the object file
                       for all loaded modules.  For each module, a search
                       will be made as with -s.  If a directory argument is
                       appended, then the search will be restricted to that
                       directory.
                   -D  Deletes the symbolic and debugging data of all modules.
                   -t  Display the contents of the module's "taints" bitmask
                       if it is non-zero, translated to the symbolic letters
                       of the taint types.
                   -r  Accepted for compatibility (gdb's -readnow); no effect.
                   -R  Reinitialize module data: all loaded symbolic and
                       debugging data is deleted and the module list shown.
                   -o  Accepted for compatibility (old add-symbol-file); no effect.
                   -g  Accepted for compatibility with -s and -S; no effect.

  After symbolic and debugging data have been loaded, the module's symbols
  are shown with their types by "sym", its source lines by "sym" and
  "dis -l", and its variables and types can be printed with "p" and
  "struct".  Backtraces unwind through module code with or without the object
  file (the module's unwind tables are read from the dump).

EXAMPLES
  Display the currently-installed modules:

    kcrash> mod
         MODULE       NAME               BASE         SIZE  OBJECT FILE
    ffffffffc051d2c0  qemu_fw_cfg  ffffffffc051a000  20480  (not loaded)  [CONFIG_KALLSYMS]

  Load the symbolic and debugging data of the qemu_fw_cfg module:

    kcrash> mod -s qemu_fw_cfg
         MODULE       NAME               BASE         SIZE  OBJECT FILE
    ffffffffc051d2c0  qemu_fw_cfg  ffffffffc051a000  20480  /usr/lib/debug/lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/firmware/qemu_fw_cfg.ko

  Delete it again:

    kcrash> mod -d qemu_fw_cfg

  Display the modules that taint the kernel:

    kcrash> mod -t
    no tainted modules
"""


@dataclass(frozen=True)
class ModuleRecord:
    """One `mod` row."""

    name: str
    size: int
    module: int = hex_field(default=0)  # the struct module
    base: int = hex_field(default=0)  # text base (crash's mod_base)
    object_file: str | None = None  # the loaded object file, None when not loaded
    kallsyms: bool = False


@dataclass(frozen=True)
class ModuleTaintRecord:
    """One `mod -t` row: a module whose taints bitmask is not zero."""

    name: str
    taints: int = hex_field(default=0)
    flags: str = ""


def _records(k, infos: list[ModuleInfo]) -> list[ModuleRecord]:
    out = []
    for info in infos:
        m = info.module
        loaded = mdebug.loaded_debuginfo(k, m.name)
        path = loaded.path if loaded else None
        out.append(ModuleRecord(m.name, info.size, m.address, m.base, path, info.kallsyms))
    return out


def _list_lines(k, infos: list[ModuleInfo], only: set[str] | None = None, header: bool = True) -> list[str]:
    """crash's module list: the header, then one line per module (those named in `only`, if given)."""
    width = max((len(i.module.name) for i in infos), default=0)
    size_width = max((len(str(i.size)) for i in infos), default=0)
    base_title = "TEXT_BASE" if any(i.module.split_layout for i in infos) else "BASE"
    lines = []
    if header:
        lines.append(
            f"{center('MODULE', _VADDR_PRLEN)}  {'NAME'.ljust(width)}  {center(base_title, _VADDR_PRLEN)}  "
            f"{'SIZE'.rjust(size_width)}  OBJECT FILE"
        )
    for rec in _records(k, infos):
        if only is not None and rec.name not in only:
            continue
        if rec.object_file is not None:
            where = f"{rec.object_file} "  # crash leaves a space for a " (temporary)" remote copy
        else:
            where = "(not loaded)" + ("  [CONFIG_KALLSYMS]" if rec.kallsyms else "")
        lines.append(
            f"{rec.module:16x}  {rec.name.ljust(width)}  {rec.base:16x}  {str(rec.size).rjust(size_width)}  {where}"
        )
    return lines


def _show(ctx, infos: list[ModuleInfo], only: set[str] | None = None) -> None:
    if ctx.json:
        for rec in _records(ctx.kernel, infos):
            if only is None or rec.name in only:
                ctx.emit(rec)
        return
    ctx.write("\n".join(_list_lines(ctx.kernel, infos, only)) + "\n")


def _taints(ctx, infos: list[ModuleInfo]) -> None:
    k = ctx.kernel
    rows = []
    for info in infos:
        taints, letters = module_taints(k, info.module)
        if taints:
            rows.append(ModuleTaintRecord(info.module.name, taints, letters))
    if ctx.json:
        for rec in rows:
            ctx.emit(rec)
        return
    if not rows:
        ctx.print("no tainted modules")
        return
    width = max(len(r.name) for r in rows)
    ctx.print(f"{'NAME'.ljust(width)}  TAINTS")
    for r in rows:
        ctx.print(f"{r.name.ljust(width)}  {r.flags}")


def _module(k, name: str) -> Module:
    """A loaded module by name, or by a 16-digit address in it or of its struct module (crash's forms)."""
    mod = find_module(k, name)
    if mod is None and len(name) == _VADDR_PRLEN:
        try:
            address = int(name, 16)
        except ValueError:
            address = None
        if address is not None:
            mod = module_at(k, address) or next((m for m in modules(k) if address == m.address), None)
    if mod is None:
        raise UsageError(f"{name}: not a loaded module name")
    return mod


def _load_one(ctx, mod: Module, objfile: str | None) -> None:
    """`mod -s`: load the named or the found object file of `mod`."""
    k = ctx.kernel
    if objfile is not None:
        path = objfile
        if not os.path.exists(path):
            found, _ = mdebug.find_module_file(k, mod)
            if found is None or os.path.basename(found) != os.path.basename(objfile):
                raise DebugInfoError(mod.name, f"cannot find or load object file: {objfile}")
            path = found
    else:
        found, skipped = mdebug.find_module_file(k, mod)
        if found is None:
            raise CommandFailed(_not_found(mod, skipped))
        path = found
    # Loaded already: kept (crash: "module symbols are already loaded"), but only once the file is found.
    mdebug.load_module_debuginfo(k, mod, path)


def _not_found(mod: Module, skipped: list[str]) -> str:
    message = f"cannot find or load object file for {mod.name} module"
    if skipped:
        message += f" ({skipped[0]} is another build)"
    return message


@command(
    "mod",
    summary="module information and loading of symbols and debugging data",
    options=[
        Option("-s", metavar="module", dest="load", help="load the module's symbolic and debugging data."),
        Option(
            "-d", metavar="module", dest="delete", help="delete the module's symbolic and debugging data."
        ),
        Option("-S", dest="load_all", help="load the symbolic and debugging data of every module."),
        Option("-D", dest="delete_all", help="delete the symbolic and debugging data of every module."),
        Option("-t", dest="taints", help="display the modules' taints."),
        Option("-r", dest="readnow", help="accepted for compatibility; no effect."),
        Option("-R", dest="reinit", help="reinitialize module data."),
        Option("-o", dest="old", help="accepted for compatibility; no effect."),
        Option("-g", dest="sections", help="accepted for compatibility; no effect."),
    ],
    arguments=[
        Argument(
            "rest",
            nargs="*",
            complete="file",
            metavar="objfile | directory",
            help="an object file or a directory.",
        )
    ],
    help=HELP,
)
def mod_command(ctx, args):
    k = ctx.kernel
    chosen = [n for n in ("load", "delete", "load_all", "delete_all", "taints", "reinit") if getattr(args, n)]
    if len(chosen) > 1:
        raise UsageError("only one of -s, -d, -S, -D, -t and -R at a time")
    infos = module_info(k)
    if not infos:
        ctx.print("no modules installed")
        return
    if args.taints:
        _taints(ctx, infos)
    elif args.delete_all:
        mdebug.unload_module_debuginfo(k)
    elif args.delete is not None:
        mdebug.unload_module_debuginfo(k, _module(k, args.delete))
    elif args.reinit:
        mdebug.unload_module_debuginfo(k)
        _show(ctx, infos)
    elif args.load is not None:
        mod = _module(k, args.load)
        if len(args.rest) > 1:
            raise UsageError("too many arguments")
        _load_checked(ctx, mod, args.rest[0] if args.rest else None)
        _show(ctx, infos, {mod.name})
    elif args.load_all:
        _load_all(ctx, infos, args.rest)
    else:
        _show(ctx, infos)


def _load_checked(ctx, mod: Module, objfile: str | None) -> None:
    try:
        _load_one(ctx, mod, objfile)
    except DebugInfoError as e:
        if e.why == "not an ELF format object file":
            raise UsageError(str(e)) from None
        raise


def _load_all(ctx, infos: list[ModuleInfo], rest: list[str]) -> None:
    """`mod -S [directory]`: each module's object file; the list of those loaded, a line for each not."""
    k = ctx.kernel
    if len(rest) > 1:
        raise UsageError("too many arguments")
    directory = rest[0] if rest else None
    if directory is not None and not os.path.isdir(directory):
        raise UsageError(f"{directory} is not a directory")
    shown: list[ModuleInfo] = []
    failed = False
    trees: dict = {}  # each searched tree is walked once for all the modules
    for info in infos:
        mod = info.module
        if mdebug.loaded_debuginfo(k, mod.name) is None:
            path, skipped = mdebug.find_module_file(k, mod, directory, trees)
            if path is None:
                ctx.warn(_not_found(mod, skipped))
                failed = True
                continue
            try:
                mdebug.load_module_debuginfo(k, mod, path)
            except DebugInfoError as e:
                ctx.warn(f"cannot load symbols from: {path} ({e.why})")
                failed = True
                continue
        shown.append(info)
        if ctx.json:
            _show(ctx, infos, {mod.name})
        else:
            lines = _list_lines(k, infos, {mod.name}, header=len(shown) == 1)
            ctx.write("\n".join(lines) + "\n")
    if failed:
        raise CommandFailed()
