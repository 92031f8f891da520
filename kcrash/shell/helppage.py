"""Help output in crash's layout: the command menu in five columns, and one man-style page per command
(NAME / SYNOPSIS / DESCRIPTION / EXAMPLES) built from the command's own declaration.
"""

from __future__ import annotations

import platform
import re
import textwrap

from kcrash import __version__
from kcrash.shell.spec import CommandSpec

__all__ = ["command_menu", "help_page", "mentions", "TOPICS"]

HELP_COLUMNS = 5
COLUMN_WIDTH = 15
PAGE_WIDTH = 78
LABEL_WIDTH = 12


def command_menu(names: list[str]) -> str:
    """crash's `help` screen (help.c display_help_screen): names down five columns, then the footer."""
    names = sorted(names)
    rows = (len(names) + HELP_COLUMNS - 1) // HELP_COLUMNS
    lines = [""]
    for i in range(rows):
        row = "".join(f"{names[j]:<{COLUMN_WIDTH}}" for j in range(i, len(names), rows))
        lines.append(row.rstrip())
    lines.append("")
    lines.append(f"kcrash version: {__version__:<6}   python version: {platform.python_version()}")
    lines.append('For help on any command above, enter "help <command>".')
    lines.append('For help on input options, enter "help input".')
    lines.append('For help on output options, enter "help output".')
    lines.append("")
    return "\n".join(lines) + "\n"


def mentions(text: str, flag: str) -> bool:
    """Whether help text mentions an option flag (`-x` not as part of `-xy` or `--x`)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w])", text) is not None


def _labelled(label: str, text: str) -> list[str]:
    """One option/argument entry laid out as crash does: label right-aligned, text wrapped beside it."""
    if len(label) <= LABEL_WIDTH:
        first = f"{label:>{LABEL_WIDTH}}  "
    else:
        first = f"  {label}  "
    indent = " " * (LABEL_WIDTH + 2)
    body = " ".join(text.split()) or "(undocumented)"
    return textwrap.wrap(
        body, width=PAGE_WIDTH - 2, initial_indent=first, subsequent_indent=indent, break_on_hyphens=False
    ) or [first.rstrip()]


def help_page(spec: CommandSpec) -> str:
    """The full help page of a command. Options the description does not explain are listed after it."""
    sections = spec.help
    name = sections.get("NAME") or f"{spec.name} - {spec.summary}"
    description = sections.get("DESCRIPTION", "")
    extra: list[str] = []
    for arg in spec.arguments:
        if arg.help and not re.search(rf"\b{re.escape(arg.metavar)}\b", description):
            extra.extend(_labelled(arg.metavar, arg.help))
    for opt in spec.options:
        if not any(mentions(description, f) for f in opt.flags):
            extra.extend(_labelled(opt.label(), opt.help))
    if extra:
        description = (description + "\n\n" if description else "") + "\n".join(extra)
    if spec.aliases:
        names = ", ".join(spec.aliases)
        description += f"\n\n  Also available as: {names}."
    out = [""]
    for title, body in (
        ("NAME", name),
        ("SYNOPSIS", spec.synopsis()),
        ("DESCRIPTION", description.strip("\n")),
        ("EXAMPLES", sections.get("EXAMPLES", "")),
    ):
        if not body.strip():
            continue
        out.append(title)
        out.extend(("  " + line).rstrip() for line in body.splitlines())
        out.append("")
    return "\n".join(out) + "\n"


TOPICS = {
    "input": """
Input to kcrash is a command line, as in crash:

  COMMAND [ARGUMENTS] [| SHELL PIPELINE]     pipe the output through a shell pipeline
  COMMAND [ARGUMENTS] > FILE                 write the output to FILE
  COMMAND [ARGUMENTS] >> FILE                append the output to FILE
  !SHELL COMMAND                             run a shell command ("!" alone starts a shell)
  COMMAND; COMMAND                           several commands on one line
  # comment                                  ignored, as is anything after " #"

  "|", ">", ";" and "#" inside quotes or parentheses are not special: "eval (1 << 3)".
  Aliases ("alias") replace the first word. A bare kernel symbol runs "p SYMBOL" and a bare
  structure name "struct NAME", when those commands are available.

  Interactive editing: the history is kept in ~/.kcrash_history ($KCRASH_HISTORY); Tab completes
  command names, options and kernel symbol names; Ctrl-R searches the history; Ctrl-C cancels the
  running command; Ctrl-D or "q" ends the session.

  Start-up: ~/.kcrashrc and then ./.kcrashrc are run (each only if owned by you and not writable
  by others), then the plugins named in $KCRASH_PLUGINS are loaded, then "-i FILE" is run.
  Commands may also come from "-c 'CMD; CMD'" or from standard input when it is not a terminal.
""",
    "output": """
Output of kcrash commands:

  On a terminal, output longer than the screen goes through a pager ($KCRASH_PAGER, or
  "less -E -X -R"); "set scroll off" (alias "sf") turns it off, "set scroll on" ("sn") back on.
  "| PIPELINE", "> FILE" and ">> FILE" send the output elsewhere, without the pager.

  Colour is used only on a terminal (never in pipes, files or batches; NO_COLOR turns it off).

  "set output json" (or "kcrash --json") makes commands that produce records print one JSON
  object per line instead of text; other commands print text as usual.
  "set radix 16" ("hex") and "set radix 10" ("dec") set the default output radix.

  Errors are printed on standard error as "COMMAND: message".
""",
}
