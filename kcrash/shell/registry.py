"""The command registry: the `@command` decorator, plugins found through the `kcrash.commands` entry-point
group, plugins loaded from files (`extend FILE.py`, $KCRASH_PLUGINS), and unloading.

The decorator does not touch any registry: it records the command on its own module (in the module global
`__kcrash_commands__`), and a Registry collects a module's commands when it loads that module.  So the same
module can be loaded into several registries (tests), and a plugin's commands are known by the plugin that
brought them, which is what `extend -u` and the name-clash errors need.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kcrash.errors import KcrashError
from kcrash.shell.spec import Argument, CommandSpec, Option, parse_help_text

__all__ = ["command", "context_hook", "Registry", "Plugin", "PluginError", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "kcrash.commands"
_MODULE_COMMANDS = "__kcrash_commands__"
_MODULE_HOOKS = "__kcrash_hooks__"


class PluginError(KcrashError):
    """A plugin that cannot be loaded or unloaded (the message names it)."""


def command(
    name: str,
    *,
    summary: str | None = None,
    aliases: Iterable[str] = (),
    options: Iterable[Option] = (),
    arguments: Iterable[Argument] = (),
    help: str | dict[str, str] | None = None,
    render: Callable[[Any], str] | None = None,
    raw: bool = False,
    suffix: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a kcrash command. The decorated function is called as `function(ctx, args)`.

    name, aliases: what the user types. summary: one line for `help`. options/arguments: the argument
    spec (Option, Argument). help: the man page text with NAME / SYNOPSIS / DESCRIPTION / EXAMPLES
    headings (or a dict of them); defaults to the function's docstring. render: turns a record the
    command emits into crash-style text. raw: pass every token through as positional (no option
    parsing; the command reads `args.raw`). suffix: accept `name/x` (`args.suffix == "x"`).
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        text = help if help is not None else function.__doc__
        sections = dict(text) if isinstance(text, dict) else parse_help_text(text)
        one_line = summary
        if one_line is None:
            one_line = (sections.get("DESCRIPTION") or "").strip().split("\n", 1)[0].rstrip(".")
        spec = CommandSpec(
            name=name,
            function=function,
            summary=one_line,
            aliases=tuple(aliases),
            options=tuple(options),
            arguments=tuple(arguments),
            help=sections,
            render=render,
            raw=raw,
            suffix=suffix,
            module=function.__module__,
        )
        _validate_name(name)
        for alias in spec.aliases:
            _validate_name(alias)
        function.__globals__.setdefault(_MODULE_COMMANDS, []).append(spec)
        function.__kcrash_command__ = spec  # type: ignore[attr-defined]
        return function

    return decorate


def context_hook(function: Callable[[Any, list[str]], bool]) -> Callable[[Any, list[str]], bool]:
    """Register `function(ctx, words)` with the `set` command, for arguments that are not shell variables.

    `set 1234`, `set ffff8881...`, `set -c 1`, `set -p` call it with the words after `set`; bare `set`
    calls it with [] (show the current context). It returns True when it handled them, False to let
    the next hook (or `set`'s own error) answer. This is how the task-context code plugs into `set`.
    """
    function.__globals__.setdefault(_MODULE_HOOKS, []).append(function)
    return function


def _validate_name(name: str) -> None:
    if not name or any(c.isspace() or c in "|<>;#!\"'" for c in name) or name.startswith("-"):
        raise ValueError(f"invalid command name {name!r}")


@dataclass
class Plugin:
    """One loaded plugin: an entry point, a module, or a file."""

    name: str
    source: str
    modules: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    hooks: list[Callable[..., Any]] = field(default_factory=list)
    builtin: bool = False


class Registry:
    """The commands a shell can run, by name and alias, and the plugins that provided them."""

    def __init__(self) -> None:
        self._by_name: dict[str, CommandSpec] = {}
        self.plugins: dict[str, Plugin] = {}
        self.errors: list[str] = []

    # --- lookup -----------------------------------------------------------------------------------
    def lookup(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def commands(self) -> list[CommandSpec]:
        """Every command once (primary names), sorted by name."""
        unique = {id(s): s for s in self._by_name.values()}
        return sorted(unique.values(), key=lambda s: s.name)

    def names(self) -> list[str]:
        """Every name a user can type, aliases included, sorted."""
        return sorted(self._by_name)

    def hooks(self) -> Iterator[Callable[..., Any]]:
        for plugin in self.plugins.values():
            yield from plugin.hooks

    # --- registration -----------------------------------------------------------------------------
    def add(self, spec: CommandSpec, plugin: Plugin) -> None:
        """Register one command for `plugin`; a name already taken by another command is an error."""
        for name in spec.names:
            other = self._by_name.get(name)
            if other is not None and other is not spec:
                owner = other.plugin or other.module
                raise PluginError(
                    f'plugin {plugin.name}: command "{name}" clashes with "{other.name}" from {owner}'
                )
        spec.plugin = plugin.name
        for name in spec.names:
            self._by_name[name] = spec
        if spec.name not in plugin.commands:
            plugin.commands.append(spec.name)

    def _collect(self, module: types.ModuleType, plugin: Plugin) -> None:
        plugin.modules.append(module.__name__)
        for spec in getattr(module, _MODULE_COMMANDS, ()):
            try:
                self.add(spec, plugin)
            except PluginError as e:
                self.errors.append(str(e))
        for hook in getattr(module, _MODULE_HOOKS, ()):
            if hook not in plugin.hooks:
                plugin.hooks.append(hook)

    def _new_plugin(self, name: str, source: str, builtin: bool = False) -> Plugin:
        if name in self.plugins:
            raise PluginError(f"plugin {name}: already loaded from {self.plugins[name].source}")
        plugin = Plugin(name, source, builtin=builtin)
        self.plugins[name] = plugin
        return plugin

    def load_module(self, module_name: str, plugin_name: str | None = None, builtin: bool = False) -> Plugin:
        """Import a module (or every module of a package) and register its commands as one plugin.

        A module that fails to import is recorded in `errors` (one line naming it) and skipped; the
        rest of the plugin still loads.
        """
        plugin = self._new_plugin(plugin_name or module_name, module_name, builtin)
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # a broken plugin must not take the shell down
            self.errors.append(f"plugin {plugin.name}: cannot import {module_name}: {_describe(e)}")
            return plugin
        self._load_tree(module, plugin)
        return plugin

    def _load_tree(self, module: types.ModuleType, plugin: Plugin) -> None:
        self._collect(module, plugin)
        path = getattr(module, "__path__", None)
        if path is None:
            return
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            name = f"{module.__name__}.{info.name}"
            try:
                sub = importlib.import_module(name)
            except Exception as e:
                self.errors.append(f"plugin {plugin.name}: cannot import {name}: {_describe(e)}")
                continue
            self._load_tree(sub, plugin)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every plugin declared in the entry-point group: kcrash's own first, then the others."""
        from importlib.metadata import entry_points

        found = list(entry_points(group=group))

        def order(ep: Any) -> tuple[bool, str]:
            dist = getattr(ep, "dist", None)
            return (getattr(dist, "name", "") != "kcrash", ep.name)

        seen_builtin = False
        for ep in sorted(found, key=order):
            if ep.name in self.plugins:
                continue
            dist = getattr(ep, "dist", None)
            builtin = getattr(dist, "name", "") == "kcrash"
            seen_builtin |= builtin or ep.value == "kcrash.commands"
            self._load_entry_point(ep, builtin)
        if not seen_builtin and "kcrash" not in self.plugins:
            # Running from a checkout that was never pip-installed: load the built-ins directly.
            self.load_module("kcrash.commands", "kcrash", builtin=True)

    def _load_entry_point(self, ep: Any, builtin: bool) -> None:
        plugin = self._new_plugin(ep.name, f"entry point {ep.value}", builtin)
        try:
            target = ep.load()
        except Exception as e:
            self.errors.append(f"plugin {ep.name}: cannot load {ep.value}: {_describe(e)}")
            return
        if isinstance(target, types.ModuleType):
            self._load_tree(target, plugin)
        else:
            module = sys.modules.get(getattr(target, "__module__", ""))
            if module is not None:
                self._collect(module, plugin)

    def load_file(self, path: str) -> Plugin:
        """Load a plugin from a Python file (`extend FILE.py`). Raises PluginError if it cannot load."""
        full = os.path.abspath(os.path.expanduser(path))
        for plugin in self.plugins.values():
            if plugin.source == full:
                raise PluginError(f"{path}: plugin already loaded")
        if not os.path.isfile(full):
            raise PluginError(f"{path}: no such file")
        stem = os.path.splitext(os.path.basename(full))[0]
        digest = hashlib.sha1(full.encode()).hexdigest()[:8]
        module_name = f"kcrash_plugin_{_identifier(stem)}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, full)
        if spec is None or spec.loader is None:
            raise PluginError(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(module_name, None)
            raise PluginError(f"{path}: {_describe(e)}") from None
        name = stem if stem not in self.plugins else full
        plugin = self._new_plugin(name, full)
        clashes_before = len(self.errors)
        self._collect(module, plugin)
        if not plugin.commands and not plugin.hooks:
            del self.plugins[plugin.name]
            sys.modules.pop(module_name, None)
            errors = self.errors[clashes_before:]
            del self.errors[clashes_before:]
            raise PluginError(errors[0] if errors else f"{path}: defines no commands")
        return plugin

    def unload(self, name: str) -> Plugin:
        """Forget a plugin and its commands; `name` is the plugin name or its file path."""
        plugin = self.plugins.get(name)
        if plugin is None:
            full = os.path.abspath(os.path.expanduser(name))
            plugin = next((p for p in self.plugins.values() if p.source == full), None)
        if plugin is None:
            raise PluginError(f"{name}: no such plugin loaded")
        if plugin.builtin:
            raise PluginError(f"{name}: built-in commands cannot be unloaded")
        for key in [k for k, s in self._by_name.items() if s.plugin == plugin.name]:
            del self._by_name[key]
        del self.plugins[plugin.name]
        for module_name in plugin.modules:
            if module_name.startswith("kcrash_plugin_"):
                sys.modules.pop(module_name, None)
        return plugin


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _describe(e: BaseException) -> str:
    """One line for an exception raised while loading a plugin."""
    if isinstance(e, SyntaxError):
        where = f" (line {e.lineno})" if e.lineno else ""
        return f"SyntaxError: {e.msg}{where}"
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {message}" if message else type(e).__name__
