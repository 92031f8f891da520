"""The shell's own commands: help, alias, set, extend, q/quit/exit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcrash.commands import Args, Argument, CommandFailed, Context, Option, UsageError, command
from kcrash.errors import KcrashError
from kcrash.shell.core import ExitShell
from kcrash.shell.helppage import TOPICS, command_menu, help_page
from kcrash.shell.output import pager_command
from kcrash.shell.registry import PluginError

# --- help ---------------------------------------------------------------------------------------------


@command(
    "help",
    summary="get help",
    arguments=[Argument("topic", nargs="*", complete="command", help='a command name, "input" or "output".')],
    help="""
    SYNOPSIS
    help [command | input | output] ...

    DESCRIPTION
    When entered with no argument, a list of all kcrash commands is displayed.
    If one or more command names are given, the help page of each is shown.
    "help input" explains the command-line grammar (pipes, redirects, aliases,
    start-up files) and "help output" the pager, colour and JSON output.

    EXAMPLES
      kcrash> help
      kcrash> help eval
      kcrash> help input
    """,
)
def help_command(ctx: Context, args: Args) -> None:
    shell = ctx.shell
    if not args.topic:
        ctx.write(command_menu([s.name for s in shell.registry.commands()]))
        return
    unknown = 0
    for topic in args.topic:
        spec, _ = shell.resolve(topic)
        if spec is None and topic in shell.aliases:
            spec, _ = shell.resolve(shell.expand_alias(topic).split(" ", 1)[0])
        if spec is not None:
            ctx.write(help_page(spec))
        elif topic in TOPICS:
            ctx.write(TOPICS[topic])
        else:
            ctx.warn(f'no such command or help topic: "{topic}"')
            unknown += 1
    if unknown:
        raise CommandFailed()


# --- alias --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasRecord:
    origin: str
    alias: str
    command: str


def _alias_text(record: AliasRecord) -> str:
    return f"{record.origin:<7}  {record.alias:<7}  {record.command}"


@command(
    "alias",
    summary="command aliases",
    arguments=[
        Argument("alias", nargs="?", complete="none", help="the new name."),
        Argument("command", nargs="*", complete="command", help="what it stands for."),
    ],
    raw=True,
    render=_alias_text,
    help="""
    SYNOPSIS
    alias [alias] [command string]

    DESCRIPTION
    This command creates an alias for a given command string. If no arguments
    are entered, the current list of aliases is displayed. If one argument is
    entered, the command string for that alias, if any, is displayed. An alias
    whose command string is an empty string ("") is deleted. If the command
    string contains redirection characters, it must be quoted.

    Aliases may be created in ~/.kcrashrc or ./.kcrashrc, in an input file run
    with -i, or during the session with this command.

    EXAMPLES
      kcrash> alias kp kmem -p
      ORIGIN   ALIAS    COMMAND
      runtime  kp       kmem -p

      kcrash> alias ksd "kmem -p | grep slab | grep DMA"
      kcrash> alias kp ""
      alias deleted: kp
    """,
)
def alias_command(ctx: Context, args: Args) -> None:
    shell = ctx.shell
    if args.alias is None:
        if not ctx.json:
            ctx.print("ORIGIN   ALIAS    COMMAND")
        for name, (text, origin) in shell.aliases.items():
            ctx.emit(AliasRecord(origin, name, text))
        return
    name = args.alias
    if not args.command:
        entry = shell.aliases.get(name)
        if entry is None:
            raise KcrashError(f"alias does not exist: {name}")
        if not ctx.json:
            ctx.print("ORIGIN   ALIAS    COMMAND")
        ctx.emit(AliasRecord(entry[1], name, entry[0]))
        return
    text = " ".join(args.command).strip()
    if not text:
        if shell.aliases.pop(name, None) is None:
            raise KcrashError(f"alias does not exist: {name}")
        ctx.print(f"alias deleted: {name}")
        return
    if shell.registry.lookup(name) is not None:
        raise KcrashError(f"cannot alias an existing command: {name}")
    target = text.split(None, 1)[0]
    if shell.resolve(target)[0] is None and target not in shell.aliases:
        raise KcrashError(f"invalid alias attempt on non-existent command: {target}")
    origin = shell.source
    shell.aliases[name] = (text, origin)
    if origin == "rcfile":
        return  # crash reads its .crashrc aliases silently
    if not ctx.json:
        ctx.print("ORIGIN   ALIAS    COMMAND")
    ctx.emit(AliasRecord(origin, name, text))


# --- set ----------------------------------------------------------------------------------------------


def _on_off(value: str) -> bool:
    word = value.lower()
    if word in ("on", "1", "yes", "true"):
        return True
    if word in ("off", "0", "no", "false"):
        return False
    raise ValueError(value)


def _radix(value: str) -> int:
    word = value.lower()
    if word == "10" or word.startswith(("dec", "ten")):
        return 10
    if word == "16" or word.startswith(("hex", "six")):
        return 16
    raise ValueError(value)


def _output(value: str) -> str:
    if value.lower() in ("text", "json"):
        return value.lower()
    raise ValueError(value)


def _show_scroll(ctx) -> str:
    command = pager_command()
    return f"{'on' if ctx.settings.scroll else 'off'} ({' '.join(command) if command else 'none'})"


def _apply_zero_excluded(ctx, value: bool) -> None:
    memory = getattr(ctx.kernel, "memory", None)
    if memory is not None and hasattr(memory, "zero_excluded"):
        memory.zero_excluded = value


@dataclass(frozen=True)
class Variable:
    name: str
    attribute: str | None  # on ctx.settings; None = read-only
    parse: Callable[[str], Any] | None
    show: Callable[[Any], str]
    label: str = ""  # what `set NAME VALUE` prints before the value (crash's words)
    changed: Callable[[Any, Any], None] | None = None


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("scroll", "scroll", _on_off, _show_scroll),
        Variable(
            "radix",
            "radix",
            _radix,
            lambda ctx: f"{ctx.settings.radix} ({'decimal' if ctx.settings.radix == 10 else 'hex'})",
            label="output radix",
        ),
        Variable("output", "output", _output, lambda ctx: ctx.settings.output),
        Variable(
            "zero_excluded",
            "zero_excluded",
            _on_off,
            lambda ctx: "on" if ctx.settings.zero_excluded else "off",
            changed=_apply_zero_excluded,
        ),
        Variable("debug", "debug", _on_off, lambda ctx: "on" if ctx.settings.debug else "off"),
        Variable("color", "colour", _on_off, lambda ctx: "on" if ctx.settings.colour else "off"),
        Variable("namelist", None, None, lambda ctx: getattr(ctx.kernel, "vmlinux_path", "(none)")),
        Variable("dumpfile", None, None, lambda ctx: getattr(ctx.kernel, "dump_path", "(none)")),
    )
}
_SYNONYMS = {"colour": "color"}


@dataclass(frozen=True)
class SettingRecord:
    name: str
    value: str


@command(
    "set",
    summary="set a process context or internal kcrash variable",
    options=[
        Option("-v", help="display the current state of the kcrash variables."),
        Option("-c", metavar="cpu", help="set the context to the active task on a cpu."),
        Option("-p", help="set the context to the panic task."),
        Option("-a", metavar="task", help="set the context to a task and make it the active one on its cpu."),
    ],
    arguments=[Argument("setting", nargs="*", complete=lambda shell, prefix: sorted(VARIABLES))],
    raw=True,
    help="""
    SYNOPSIS
    set [pid | taskp | [-c cpu] | -p] | [variable [setting]] | -v

    DESCRIPTION
    This command either sets a new context, or shows and changes the shell's
    variables. With no arguments it displays the current context (or, before
    the task code is available, the variables).

            pid  a process PID.
          taskp  a hexadecimal task_struct pointer.
         -c cpu  the task running on the cpu.
             -p  the panic task.
        -a task  the task, made the active task of its cpu.
             -v  display the current state of the variables.

    Variables ("set NAME" shows one, "set NAME VALUE" changes it):

           scroll  on | off: page long output on a terminal.
            radix  10 | 16 (also dec, hex): the default output radix.
           output  text | json: JSON lines from commands that produce records.
    zero_excluded  on | off: read pages the dump filtered out as zeroes.
            debug  on | off: print the traceback of unexpected errors.
            color  on | off: colour on the terminal.
         namelist  the vmlinux (read-only).
         dumpfile  the dump (read-only).

    EXAMPLES
      kcrash> set scroll off
      scroll: off (less -E -X -R)
      kcrash> set radix 16
      output radix: 16 (hex)
      kcrash> set output json
      output: json
    """,
)
def set_command(ctx: Context, args: Args) -> None:
    words = list(args.setting)
    if words == ["-v"]:
        _show_variables(ctx)
        return
    if not words or words[0] not in VARIABLES and words[0] not in _SYNONYMS:
        for hook in ctx.shell.registry.hooks():
            if hook(ctx, words):
                return
        if not words:
            _show_variables(ctx)
            return
        if words[0].startswith("-"):
            raise UsageError(f"{words[0]}: no task context support loaded")
        raise KcrashError(f"unknown variable or task: {words[0]}")
    var = VARIABLES[_SYNONYMS.get(words[0], words[0])]
    if len(words) > 2:
        raise UsageError(f"too many arguments for {var.name}")
    if len(words) == 2:
        if var.attribute is None or var.parse is None:
            raise KcrashError(f"{var.name} cannot be changed")
        try:
            value = var.parse(words[1])
        except ValueError:
            raise KcrashError(f"invalid command: set {var.name} {words[1]}") from None
        setattr(ctx.settings, var.attribute, value)
        if var.changed is not None:
            var.changed(ctx, value)
        if ctx.shell.source == "rcfile":
            return  # settings from ~/.kcrashrc are applied silently, as crash does
    shown = var.show(ctx)
    if ctx.json:
        ctx.emit(SettingRecord(var.name, shown))
    else:
        ctx.print(f"{var.label or var.name}: {shown}")


def _show_variables(ctx) -> None:
    for var in VARIABLES.values():
        shown = var.show(ctx)
        ctx.emit(SettingRecord(var.name, shown), text=f"{var.name:>14}: {shown}")


# --- extend -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginRecord:
    name: str
    source: str
    commands: list[str]


def _plugin_text(record: PluginRecord) -> str:
    return f"{record.name:<20} {' '.join(record.commands)}"


@command(
    "extend",
    summary="extend the kcrash command set",
    options=[Option("-u", help="unload the named plugins (all run-time plugins if none is named).")],
    arguments=[Argument("plugin", nargs="*", complete="file", help="a plugin file (FILE.py) or name.")],
    render=_plugin_text,
    help="""
    SYNOPSIS
    extend [plugin.py] ... | -u [plugin] ...

    DESCRIPTION
    This command loads commands from Python files at run time. A plugin file
    defines commands with the @command decorator of kcrash.commands; see
    docs/plugins.md. With no arguments, the loaded plugins and their commands
    are listed. Plugins installed as packages are found at start-up through
    the "kcrash.commands" entry-point group; $KCRASH_PLUGINS may name more
    files (separated by ":") to load at start-up.

      -u  unload the named plugins (a name from the list, or the file);
          with no name, every plugin loaded at run time.

    EXAMPLES
      kcrash> extend ~/kcrash/hello.py
      /root/kcrash/hello.py: plugin loaded
      kcrash> extend
      PLUGIN               COMMANDS
      kcrash               alias eval exit extend help set
      hello                hello
      kcrash> extend -u hello
      hello: plugin unloaded
    """,
)
def extend_command(ctx: Context, args: Args) -> None:
    registry = ctx.shell.registry
    if args.u:
        names = args.plugin or [p.name for p in registry.plugins.values() if not p.source.startswith("entry")]
        failed = 0
        for name in names:
            try:
                registry.unload(name)
            except PluginError as e:
                ctx.warn(str(e))
                failed += 1
                continue
            ctx.print(f"{name}: plugin unloaded")
        if failed:
            raise CommandFailed()
        return
    if not args.plugin:
        if not ctx.json:
            ctx.print(f"{'PLUGIN':<20} COMMANDS")
        for plugin in registry.plugins.values():
            ctx.emit(PluginRecord(plugin.name, plugin.source, sorted(plugin.commands)))
        return
    failed = 0
    for path in args.plugin:
        before = len(registry.errors)
        try:
            registry.load_file(path)
        except PluginError as e:
            ctx.warn(str(e))
            failed += 1
            continue
        for message in registry.errors[before:]:
            ctx.warn(message)
        ctx.print(f"{path}: plugin loaded")
    if failed:
        raise CommandFailed()


# --- exit ---------------------------------------------------------------------------------------------


@command(
    "exit",
    aliases=("q", "quit"),
    summary="exit this session",
    help="""
    SYNOPSIS
    exit | q | quit

    DESCRIPTION
    Ends the kcrash session (Ctrl-D at the prompt does the same). In an input
    file run with -i, or in commands read from standard input, it ends the
    session at that line.
    """,
)
def exit_command(ctx: Context, args: Args) -> None:
    raise ExitShell()
