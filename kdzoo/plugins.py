"""Plugin discovery: a plugin-manager factory and the registries it fills.

Nothing happens at import time. :func:`load_zoo` builds a fresh pluggy manager, registers kdzoo's
own built-in plugin, then every ``kdzoo`` entry point one by one, so that one broken distribution
is reported (name and error, one line on stderr) while every other plugin keeps working.
``KDZOO_STRICT_PLUGINS=1`` makes any load error fatal; ``KDZOO_LOAD_PLUGINS=a,b`` loads only the
named entry points (empty: none).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, unknown

BUILTIN_COMMANDS = frozenset({"distill", "teacher", "eval", "compare", "bench", "report", "runs", "strategies", "plugins",
                              "models", "datasets", "completion"})
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
BUILTIN = "kdzoo"


@dataclass
class Entry:
    """One registered item (strategy, model or dataset) and the plugin it came from."""

    name: str
    obj: Any
    plugin: str
    distribution: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PluginRecord:
    """What ``kdzoo plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str]
    error: str | None = None


class Zoo:
    """The loaded plugins and everything they registered.

    Build one with :func:`load_zoo`; tests build one with ``entry_points=False`` and register their
    own plugin objects with :meth:`add_plugin`.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("kdzoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        self.strategies: dict[str, Entry] = {}
        self.models: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.references: dict[str, Entry] = {}
        self.loggers: dict[str, Entry] = {}
        self.commands: dict[str, Entry] = {}
        self._collected = False

    # -- loading ---------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str, distribution: str = "", version: str = "") -> bool:
        """Register one plugin object; record (not raise) an error unless strict mode is on."""
        record = PluginRecord(name, distribution or name, version, [])
        self.plugins[name] = record
        try:
            self.pm.register(plugin, name=name)
            _check_pending(self.pm, plugin)
        except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(record, exc)
            return False
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self._collected = False
        return True

    def load_entry_points(self, group: str = "kdzoo") -> None:
        """Load every entry point of ``group`` (filtered by ``KDZOO_LOAD_PLUGINS``)."""
        wanted = os.environ.get("KDZOO_LOAD_PLUGINS")
        allowed = None if wanted is None else {w.strip() for w in wanted.split(",") if w.strip()}
        for ep in sorted(md.entry_points(group=group), key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else ""
            if ep.name in self.plugins:
                self._fail(PluginRecord(ep.name, dist, version, []),
                           PluginError(f"two plugins are named {ep.name!r}: "
                                       f"{self.plugins[ep.name].distribution} and {dist}"))
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001
                record = PluginRecord(ep.name, dist, version, [])
                self.plugins[ep.name] = record
                self._fail(record, exc)
                continue
            self.add_plugin(plugin, ep.name, dist, version)

    def _fail(self, record: PluginRecord, exc: BaseException) -> None:
        record.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.plugins.setdefault(record.name, record)
        message = f'kdzoo: plugin "{record.name}" from {record.distribution} failed to load: {record.error}'
        if os.environ.get("KDZOO_STRICT_PLUGINS") == "1":
            raise PluginError(message) from exc
        print(message, file=sys.stderr)

    # -- registries ------------------------------------------------------------------------------
    def collect(self) -> Zoo:
        """Call every ``register_*`` hook once, crediting each item to its plugin."""
        if self._collected:
            return self
        from .strategy import Strategy

        self.strategies, self.models, self.datasets, self.references = {}, {}, {}, {}
        self.loggers, self.commands = {}, {}

        def check_strategy(name: str, obj: Any, meta: dict) -> None:
            if not (isinstance(obj, type) and issubclass(obj, Strategy)):
                raise PluginError(f"register_strategies got {obj!r}, not a kdzoo.Strategy subclass")

        def check_callable(hook: str):
            def check(name: str, obj: Any, meta: dict) -> None:
                if not callable(obj):
                    raise PluginError(f"{hook} got {obj!r} for {name!r}, not a callable")

            return check

        def check_command(name: str, obj: Any, meta: dict) -> None:
            check_callable("register_commands")(name, obj, meta)
            if name in BUILTIN_COMMANDS:
                raise PluginError(f"register_commands: {name!r} is a built-in kdzoo command; choose another name")
            if meta.get("setup") is not None and not callable(meta["setup"]):
                raise PluginError(f"register_commands got setup={meta['setup']!r} for {name!r}, not a callable")

        hooks: list[tuple[str, dict[str, Entry], Callable]] = [
            ("register_strategies", self.strategies, check_strategy),
            ("register_models", self.models, lambda n, o, m: None),
            ("register_datasets", self.datasets, lambda n, o, m: None),
            ("register_references", self.references, check_callable("register_references")),
            ("register_loggers", self.loggers, check_callable("register_loggers")),
            ("register_commands", self.commands, check_command),
        ]
        for hook_name, table, check in hooks:
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                record = self.plugins[impl.plugin_name]
                try:
                    impl.function(register=self._registrar(record, table, check, hook_name))
                except Exception as exc:  # noqa: BLE001
                    if isinstance(exc, PluginError) and "registered by both" in str(exc):
                        raise
                    self._fail(record, exc)
        self._collected = True
        return self

    def _registrar(self, record: PluginRecord, table: dict[str, Entry], check: Callable, hook: str):
        def register(obj_or_name: Any, obj: Any = None, **meta: Any) -> None:
            if hook == "register_strategies":
                name, obj = getattr(obj_or_name, "name", None), obj_or_name
            else:
                name = obj_or_name
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise PluginError(f"{record.name}: invalid name {name!r} (lower-case words joined by hyphens)")
            check(name, obj, meta)
            if name in table:
                other = table[name]
                raise PluginError(
                    f"{hook.removeprefix('register_')[:-1]} {name!r} is registered by both "
                    f"{other.distribution} (plugin {other.plugin}) and {record.distribution} (plugin {record.name})"
                )
            table[name] = Entry(name, obj, record.name, record.distribution, meta)

        return register

    def strategy(self, name: str) -> Entry:
        """The registered strategy called ``name``, or a ConfigError naming the closest ones."""
        self.collect()
        if name not in self.strategies:
            raise unknown("strategy", name, self.strategies)
        return self.strategies[name]

    def model(self, name: str) -> Entry | None:
        """The registered (non-timm) model called ``name``, or None."""
        return self.collect().models.get(name)

    def reference(self, name: str) -> Entry:
        """The registered reference row called ``name``, or a ConfigError naming the closest ones."""
        self.collect()
        if name not in self.references:
            raise unknown("reference", name, self.references)
        return self.references[name]

    def dataset(self, name: str) -> Entry:
        """The registered dataset called ``name``, or a ConfigError naming the closest ones."""
        self.collect()
        if name not in self.datasets:
            raise unknown("dataset", name, self.datasets)
        return self.datasets[name]


def _check_pending(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject a plugin that implements a hook kdzoo does not define (a misspelled hook)."""
    known = {name for name in dir(pm.hook) if not name.startswith("_") and getattr(pm.hook, name).has_spec()}
    for impl_caller in pm.get_hookcallers(plugin) or []:
        if not impl_caller.has_spec():
            import difflib

            close = difflib.get_close_matches(impl_caller.name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginError(f"unknown hook {impl_caller.name!r}{hint}")


def load_zoo(entry_points: bool = True) -> Zoo:
    """Build a plugin manager with kdzoo's built-ins and (optionally) every installed plugin.

    Args:
        entry_points: load the ``kdzoo`` entry-point group; tests pass False and add their own.
    """
    from . import builtin

    zoo = Zoo()
    zoo.add_plugin(builtin, BUILTIN, BUILTIN, _version())
    if entry_points:
        zoo.load_entry_points()
    return zoo


def _version() -> str:
    try:
        return md.version("kdzoo")
    except md.PackageNotFoundError:
        return "0+unknown"
