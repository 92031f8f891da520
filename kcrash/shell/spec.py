"""How a command declares itself: names, options, arguments and help, and the getopt-style parser for them.

Options follow crash's (GNU getopt) conventions: single-letter flags that cluster (`-sx`), values attached or
separate (`-c1` / `-c 1`), options anywhere on the line, `--` to end them, and whole-token options such as
`-64` or `-FF`.  A token that looks like a negative number is an argument unless a command defines it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcrash.errors import KcrashError

__all__ = [
    "Option",
    "Argument",
    "CommandSpec",
    "Args",
    "UsageError",
    "CommandFailed",
    "parse_arguments",
    "HELP_SECTIONS",
]

HELP_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "EXAMPLES")
_NEGATIVE_NUMBER = re.compile(r"^-(0[xX][0-9a-fA-F]+|\d+)$")
_COMPLETION_KINDS = ("symbol", "command", "file", "plugin", "none")


class UsageError(KcrashError):
    """Bad options or arguments: the shell prints the message, then the command's synopsis."""


class CommandFailed(KcrashError):
    """The command failed and has already said why (via ctx.warn): count the failure, print nothing more."""


class Option:
    """One option: `Option("-x", help=...)` is a flag; give `metavar` for an option that takes a value.

    `count=True` counts repeats (`-F`, `-FF`); `multiple=True` collects every value into a list; `type`
    converts a value (a ValueError becomes a usage error); `dest` names the attribute on Args (default:
    the longest flag without dashes, `-64` -> `opt_64`).
    """

    __slots__ = ("flags", "help", "metavar", "dest", "type", "default", "count", "multiple", "choices")

    def __init__(
        self,
        *flags: str,
        help: str,
        metavar: str | None = None,
        dest: str | None = None,
        type: Callable[[str], Any] = str,
        default: Any = None,
        count: bool = False,
        multiple: bool = False,
        choices: Sequence[str] | None = None,
    ) -> None:
        if not flags:
            raise ValueError("an option needs at least one flag")
        for flag in flags:
            if not flag.startswith("-") or flag in ("-", "--"):
                raise ValueError(f"option flag {flag!r} must start with '-'")
        if metavar is not None and count:
            raise ValueError(f"option {flags[0]}: count options take no value")
        self.flags = tuple(flags)
        self.help = help
        self.metavar = metavar if metavar is not None else ("VALUE" if choices else None)
        self.dest = dest or _dest_name(max(flags, key=len))
        self.type = type
        self.count = count
        self.multiple = multiple
        self.choices = tuple(choices) if choices else None
        if default is None:
            default = 0 if count else [] if multiple else None if self.takes_value else False
        self.default = default

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None

    def label(self) -> str:
        """How the option is shown in a help page: `-c cpu`, `-x`."""
        flags = ", ".join(self.flags)
        return f"{flags} {self.metavar}" if self.takes_value else flags

    def __repr__(self) -> str:
        return f"Option({self.label()!r})"


class Argument:
    """A positional argument. `nargs`: 1 (required), "?" (optional), "*" (any number), "+" (at least one).

    `complete` says what Tab completes here: "symbol" (kernel symbols, the default), "command", "file",
    "plugin", "none", or a function `(shell, prefix) -> iterable of strings`.
    """

    __slots__ = ("name", "help", "nargs", "type", "complete", "metavar")

    def __init__(
        self,
        name: str,
        *,
        help: str = "",
        nargs: int | str = 1,
        type: Callable[[str], Any] = str,
        complete: str | Callable[[Any, str], Iterable[str]] = "symbol",
        metavar: str | None = None,
    ) -> None:
        if nargs not in (1, "?", "*", "+"):
            raise ValueError(f"argument {name}: nargs must be 1, '?', '*' or '+'")
        if isinstance(complete, str) and complete not in _COMPLETION_KINDS:
            raise ValueError(f"argument {name}: unknown completion kind {complete!r}")
        self.name = name
        self.help = help
        self.nargs = nargs
        self.type = type
        self.complete = complete
        self.metavar = metavar or name

    def synopsis(self) -> str:
        m = self.metavar
        return {1: m, "?": f"[{m}]", "*": f"[{m} ...]", "+": f"{m} ..."}[self.nargs]

    def __repr__(self) -> str:
        return f"Argument({self.name!r}, nargs={self.nargs!r})"


@dataclass
class CommandSpec:
    """Everything the shell knows about one command."""

    name: str
    function: Callable[..., Any]
    summary: str
    aliases: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    arguments: tuple[Argument, ...] = ()
    help: dict[str, str] = field(default_factory=dict)
    render: Callable[[Any], str] | None = None
    raw: bool = False
    suffix: bool = False
    module: str = ""
    plugin: str = ""

    def __post_init__(self) -> None:
        seen: dict[str, Option] = {}
        for opt in self.options:
            for flag in opt.flags:
                if flag in seen:
                    raise ValueError(f"command {self.name}: option {flag} defined twice")
                seen[flag] = opt
        self._by_flag = seen
        names = [a.name for a in self.arguments]
        if len(set(names)) != len(names):
            raise ValueError(f"command {self.name}: argument names must be unique")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def option(self, flag: str) -> Option | None:
        return self._by_flag.get(flag)

    def synopsis(self) -> str:
        """The SYNOPSIS line: given in the help, or built from the options and arguments."""
        given = self.help.get("SYNOPSIS")
        if given:
            return given.strip()
        parts = [self.name]
        flags = "".join(o.flags[0][1:] for o in self.options if len(o.flags[0]) == 2 and not o.takes_value)
        if flags:
            parts.append(f"[-{flags}]")
        for o in self.options:
            if o.takes_value or len(o.flags[0]) != 2:
                parts.append(f"[{o.label() if o.takes_value else o.flags[0]}]")
        parts.extend(a.synopsis() for a in self.arguments)
        return " ".join(parts)


class Args:
    """Parsed arguments: one attribute per option `dest` and per Argument name.

    Also `argv` (the tokens after the command name), `raw` (the argument text as typed, before
    tokenising), `suffix` (what followed a `/` in the command word, as in `p/x`, or None).
    """

    def __init__(self, argv: list[str], raw: str, suffix: str | None = None) -> None:
        self.argv = argv
        self.raw = raw
        self.suffix = suffix

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("raw",))
        return f"Args({fields})"

    if TYPE_CHECKING:
        # The attributes come from each command's spec: typed as Any for the commands reading them.
        def __getattr__(self, name: str) -> Any: ...


def _dest_name(flag: str) -> str:
    name = flag.lstrip("-").replace("-", "_")
    return f"opt_{name}" if not name.isidentifier() else name


def _convert(opt_or_arg: Option | Argument, value: str, what: str) -> Any:
    choices = getattr(opt_or_arg, "choices", None)
    if choices and value not in choices:
        raise UsageError(f"invalid {what} value: {value} (choose from {', '.join(choices)})")
    try:
        return opt_or_arg.type(value)
    except (ValueError, TypeError) as e:
        detail = f" ({e})" if str(e) else ""
        raise UsageError(f"invalid {what} value: {value}{detail}") from None


def parse_arguments(spec: CommandSpec, argv: list[str], raw: str = "", suffix: str | None = None) -> Args:
    """Parse `argv` against `spec` (permuting like GNU getopt) into an Args."""
    args = Args(list(argv), raw, suffix)
    opt: Option | None
    for opt in spec.options:
        value = opt.default
        setattr(args, opt.dest, list(value) if isinstance(value, list) else value)
    positional: list[str] = []
    if spec.raw:
        positional = list(argv)
        argv = []

    def store(opt: Option, value: str | None) -> None:
        if opt.count:
            setattr(args, opt.dest, getattr(args, opt.dest) + 1)
        elif not opt.takes_value:
            setattr(args, opt.dest, True)
        else:
            converted = _convert(opt, value or "", f"{opt.flags[0]}")
            if opt.multiple:
                getattr(args, opt.dest).append(converted)
            else:
                setattr(args, opt.dest, converted)

    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            positional.extend(argv[i:])
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            opt = spec.option(name)
            if opt is None:
                raise UsageError(f"unrecognized option '{name}'")
            if opt.takes_value:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '{name}' requires an argument")
                    value = argv[i]
                    i += 1
                store(opt, value)
            elif eq:
                raise UsageError(f"option '{name}' doesn't allow an argument")
            else:
                store(opt, None)
            continue
        whole = spec.option(token)
        if whole is not None and (len(token) > 2 or not whole.takes_value):
            # A whole-token option (`-64`, `-FF` if defined, or a plain `-x`).
            if whole.takes_value:
                if i >= len(argv):
                    raise UsageError(f"option requires an argument -- '{token[1:]}'")
                store(whole, argv[i])
                i += 1
            else:
                store(whole, None)
            continue
        if _NEGATIVE_NUMBER.match(token) and spec.option(token[:2]) is None:
            positional.append(token)
            continue
        j = 1
        while j < len(token):
            letter = token[j]
            opt = spec.option("-" + letter)
            if opt is None:
                raise UsageError(f"invalid option -- '{letter}'")
            j += 1
            if opt.takes_value:
                if j < len(token):
                    store(opt, token[j:])
                elif i < len(argv):
                    store(opt, argv[i])
                    i += 1
                else:
                    raise UsageError(f"option requires an argument -- '{letter}'")
                break
            store(opt, None)

    _assign_positionals(spec, args, positional)
    return args


def _assign_positionals(spec: CommandSpec, args: Args, tokens: list[str]) -> None:
    specs = spec.arguments
    minimum = [1 if a.nargs in (1, "+") else 0 for a in specs]
    n = len(tokens)
    if n < sum(minimum):
        missing = next(a for k, a in enumerate(specs) if minimum[k] and sum(minimum[: k + 1]) > n)
        raise UsageError(f"missing argument: {missing.metavar}")
    pos = 0
    for k, arg in enumerate(specs):
        reserve = sum(minimum[k + 1 :])
        available = n - pos - reserve
        if arg.nargs == 1:
            take = 1
        elif arg.nargs == "?":
            take = 1 if available >= 1 else 0
        else:
            later_variadic = any(a.nargs in ("*", "+") for a in specs[k + 1 :])
            take = max(minimum[k], available if not later_variadic else minimum[k])
        chunk = tokens[pos : pos + take]
        pos += take
        values = [_convert(arg, t, arg.metavar) for t in chunk]
        if arg.nargs in (1,):
            setattr(args, arg.name, values[0])
        elif arg.nargs == "?":
            setattr(args, arg.name, values[0] if values else None)
        else:
            setattr(args, arg.name, values)
    if pos < n:
        extra = tokens[pos]
        raise UsageError(f"unexpected argument: {extra}")


def parse_help_text(text: str | None) -> dict[str, str]:
    """Split help text into NAME/SYNOPSIS/DESCRIPTION/EXAMPLES sections (headings alone on a line).

    Text before any heading is DESCRIPTION.
    """
    sections: dict[str, list[str]] = {}
    current = "DESCRIPTION"
    for line in textwrap.dedent(text or "").strip("\n").splitlines():
        heading = line.strip()
        if heading in HELP_SECTIONS:
            current = heading
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    return {k: textwrap.dedent("\n".join(v)).strip("\n") for k, v in sections.items() if "".join(v).strip()}
