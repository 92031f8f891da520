"""kcrash commands, and the public API for writing them (built-in and third-party alike).

    from kcrash.commands import command, Option, Argument

    @command("hello", summary="greet a task", options=[Option("-u", help="upper case")],
             arguments=[Argument("name", help="who to greet")])
    def hello(ctx, args):
        text = f"hello {args.name}"
        ctx.print(text.upper() if args.u else text)

A command receives `ctx` (kcrash.shell.context.Context: `ctx.kernel`, `ctx.print`, `ctx.emit`,
`ctx.settings`, `ctx.state`) and `args` (one attribute per option and argument).  It reports failure by
raising a KcrashError.  See docs/plugins.md.

This package is also the entry point of kcrash's own commands (`kcrash = "kcrash.commands"` in the
`kcrash.commands` group): loading it imports every module in it, so a new command module needs no
registration anywhere else.
"""

from kcrash.errors import KcrashError
from kcrash.shell.context import Context, Settings
from kcrash.shell.registry import command, context_hook
from kcrash.shell.spec import Args, Argument, CommandFailed, Option, UsageError

__all__ = [
    "command",
    "context_hook",
    "Option",
    "Argument",
    "Args",
    "Context",
    "Settings",
    "UsageError",
    "CommandFailed",
    "KcrashError",
]
