"""Plugin discovery: a plugin-manager factory and the registries it fills.

Nothing happens at import time. :func:`load_zoo` builds a fresh pluggy manager, registers kdzoo's
own built-in plugin, then every ``kdzoo`` entry point one by one, so that one broken distribution
is reported (name, error and ``file:line``, one line on stderr) while every other plugin keeps working.
A plugin that fails contributes nothing; a distribution whose ``Requires-Dist`` on ``kdzoo`` excludes
the running version is refused before its code is imported.

Names never change meaning silently. A strategy name offered by two distributions is *ambiguous*:
both strategies stay loaded under their qualified names (``DIST:NAME``, e.g. ``kdzoo-logit:kd``),
the bare name is refused in one line that lists them, unless it is pinned (``plugins.prefer`` in a
run config, or ``KDZOO_PREFER="kd=kdzoo-logit,..."``). Every other strategy of both plugins stays
available. Other items (models, datasets, ...) keep one owner: the first plugin registered
(kdzoo's built-ins, then entry points by name) keeps the name; the later plugin's item is left out,
reported in one line, and its other items load.

``KDZOO_STRICT_PLUGINS=1`` makes any load error, and any unpinned strategy clash, fatal (for CI);
``KDZOO_DEBUG=1`` (``--debug``) prints tracebacks; ``KDZOO_LOAD_PLUGINS=a,b`` loads only the named
entry points (empty: none).
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from packaging.utils import canonicalize_name

from ..contract import hookspecs
from ..contract.errors import ConfigError, PluginError, unknown
from ..versions import kdzoo_version
from .checks import PluginLoadError, check_strategy_class, contract_refusal, dropped_label_message, source_line
from .registry import load_registry


ITEM_KIND = {"register_strategies": "strategy", "register_models": "model", "register_datasets": "dataset",
             "register_references": "reference", "register_loggers": "logger", "register_commands": "command",
             "register_executors": "executor"}
BUILTIN_COMMANDS = frozenset({"distill", "teacher", "eval", "compare", "bench", "report", "runs", "strategies", "plugins",
                              "models", "datasets", "completion", "tune", "cache"})
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
BUILTIN = "kdzoo"
QUALIFIER = ":"  # DIST:NAME; neither a distribution nor a strategy name contains it, nor the stack's "+"
PREFER_ENV = "KDZOO_PREFER"
PIN_HINT = f"plugins.prefer: {{NAME: DIST}} in the config, or {PREFER_ENV}=NAME=DIST"


def dist_key(distribution: str) -> str:
    """A distribution's name as written in a qualified strategy name: normalised (``My_Plugin`` -> ``my-plugin``)."""
    return canonicalize_name(distribution)


def split_qualified(name: str) -> tuple[str | None, str]:
    """``"kdzoo-logit:kd"`` -> ``("kdzoo-logit", "kd")``; a bare ``"kd"`` -> ``(None, "kd")``."""
    if QUALIFIER not in name:
        return None, name
    dist, _, bare = name.partition(QUALIFIER)
    return dist_key(dist.strip()), bare.strip()


def parse_prefer(text: str | None, source: str = PREFER_ENV) -> dict[str, str]:
    """``"kd=kdzoo-logit,dkd=other"`` -> ``{"kd": "kdzoo-logit", "dkd": "other"}`` (empty or unset: no pins).

    Raises:
        ConfigError: an item that is not ``NAME=DIST``.
    """
    pins: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, dist = item.partition("=")
        if not sep or not NAME_RE.match(name.strip()) or not dist.strip():
            raise ConfigError(f"{source}: {item.strip()!r} is not NAME=DIST (e.g. {source}=kd=kdzoo-logit)")
        pins[name.strip()] = dist.strip()
    return pins


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
    left_out: list[str] = field(default_factory=list)  # items refused because another plugin had the name first


class Zoo:
    """The loaded plugins and everything they registered.

    Build one with :func:`load_zoo`; tests build one with ``entry_points=False`` and register their
    own plugin objects with :meth:`add_plugin`.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("kdzoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        # the strategies by the names they answer to: a name one distribution offers, or DIST:NAME for a clash
        self.strategies: dict[str, Entry] = {}
        self.offers: dict[str, list[Entry]] = {}  # strategy name -> each distribution's strategy, in load order
        self.prefer: dict[str, str] = {}  # strategy name -> the distribution its bare name means (KDZOO_PREFER)
        self.lost: dict[str, PluginRecord] = {}  # strategy name -> the failed plugin that registered it
        self.models: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.references: dict[str, Entry] = {}
        self._order: dict[str, int] = {}  # plugin name -> registration order: the first to register a name keeps it
        self._part_of: dict[str, str] = {}  # pluggy name of an added part -> the plugin it belongs to
        self.loggers: dict[str, Entry] = {}
        self.commands: dict[str, Entry] = {}
        self.executors: dict[str, Entry] = {}
        self._collected = False

    # -- loading ---------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str, distribution: str = "", version: str = "") -> bool:
        """Register one plugin object; record (not raise) an error unless strict mode is on."""
        record = PluginRecord(name, distribution or name, version, [])
        self.plugins[name] = record
        self._order[name] = len(self._order)
        try:
            self.pm.register(plugin, name=name)
            _check_pending(self.pm, plugin)
            _check_markers(self.pm, plugin)
        except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(record, exc)
            return False
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self._collected = False
        return True

    def add_part(self, plugin: object, of: str = BUILTIN) -> None:
        """Register one more module of an already added plugin; what it registers is credited to that plugin.

        How a room above the zoo adds to kdzoo's own plugin without the zoo importing it: the bench
        adds its built-in executors (:func:`kdzoo.bench.executors.builtin.with_builtin_executors`).
        The part keeps its plugin's place in the registration order, so its names win as the
        plugin's own would. Adding the same part twice does nothing.
        """
        name = f"{of}/{getattr(plugin, '__name__', type(plugin).__name__)}"
        if name in self._part_of or of not in self.plugins:
            return
        self.pm.register(plugin, name=name)
        _check_pending(self.pm, plugin)
        _check_markers(self.pm, plugin)
        self._part_of[name] = of
        record = self.plugins[of]
        record.hooks = sorted(set(record.hooks) | {h.name for h in self.pm.get_hookcallers(plugin) or []})
        self._collected = False

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
            refusal = contract_refusal(ep.dist, kdzoo_version()) if ep.dist else None
            if refusal is not None:  # built for another kdzoo: its code is never imported
                record = PluginRecord(ep.name, dist, version, [])
                self.plugins[ep.name] = record
                self._fail(record, PluginError(refusal))
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001
                record = PluginRecord(ep.name, dist, version, [])
                self.plugins[ep.name] = record
                self._fail(record, exc)
                continue
            self.add_plugin(plugin, ep.name, dist, version)

    def _fail(self, record: PluginRecord, exc: BaseException, where: str = "") -> None:
        """Record and report (or, in strict mode, raise) a plugin's failure, naming its ``file:line``."""
        where = getattr(exc, "where", "") or _origin(exc) or where  # the most precise line known
        text = " ".join(str(exc).split())
        record.error = f"{type(exc).__name__}: {text}" + (f" ({where})" if where else "")
        self.plugins.setdefault(record.name, record)
        message = f'kdzoo: plugin "{record.name}" from {record.distribution} failed to load: {record.error}'
        strict = os.environ.get("KDZOO_STRICT_PLUGINS") == "1"
        if strict or os.environ.get("KDZOO_DEBUG") == "1":
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        if strict:
            raise PluginError(message) from exc
        print(message, file=sys.stderr)

    def _owner(self, pluggy_name: str) -> str:
        """The plugin a registered pluggy object belongs to (itself, or the plugin a part was added to)."""
        return self._part_of.get(pluggy_name, pluggy_name)

    # -- registries ------------------------------------------------------------------------------
    def collect(self) -> Zoo:
        """Call every ``register_*`` hook once, crediting each item to its plugin."""
        if self._collected:
            return self
        from ..contract.strategy import Strategy  # lazy: start-up cost (torch)

        self.strategies, self.models, self.datasets, self.references = {}, {}, {}, {}
        for record in self.plugins.values():
            record.left_out = []
        self.loggers, self.commands, self.offers, self.lost = {}, {}, {}, {}
        self.executors = {}

        def check_strategy(name: str, obj: Any, meta: dict) -> None:
            if not (isinstance(obj, type) and issubclass(obj, Strategy)):
                raise PluginError(f"register_strategies got {obj!r}, not a kdzoo.plugin.Strategy subclass")
            try:
                check_strategy_class(obj)
            except PluginLoadError:
                raise
            except PluginError as exc:
                raise PluginLoadError(str(exc), source_line(obj)) from exc

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
            ("register_executors", self.executors, check_callable("register_executors")),
        ]
        failed: set[str] = set()
        for hook_name, table, check in hooks:
            caller = getattr(self.pm.hook, hook_name)
            # registration order, not pluggy's call order (LIFO): the first plugin to register a name keeps it
            for impl in sorted(caller.get_hookimpls(), key=lambda i: self._order.get(self._owner(i.plugin_name),
                                                                                      len(self._order))):
                record = self.plugins[self._owner(impl.plugin_name)]
                if record.name in failed:
                    continue
                try:
                    impl.function(register=self._registrar(record, table, check, hook_name))
                except Exception as exc:  # noqa: BLE001 - a plugin's failure is reported, not fatal
                    failed.add(record.name)
                    self._fail(record, exc, source_line(impl.function))
        for table in (self.models, self.datasets, self.references, self.loggers, self.commands,
                      self.executors):
            for name in [n for n, e in table.items() if e.plugin in failed]:  # a failed plugin contributes nothing
                del table[name]
        for name, entries in list(self.offers.items()):
            for entry in entries:
                if entry.plugin in failed:
                    self.lost[name] = self.plugins[entry.plugin]
            self.offers[name] = [e for e in entries if e.plugin not in failed]
            if not self.offers[name]:
                del self.offers[name]
        self._collected = True
        self._index_strategies()
        return self

    def _index_strategies(self) -> None:
        """Fill :attr:`strategies` from :attr:`offers`. An unpinned clash is refused in strict mode; otherwise
        it shows in ``kdzoo strategies``, and only a use of the bare name fails (one line, the choices)."""
        for name, entries in sorted(self.offers.items()):
            if len(entries) == 1:
                self.strategies[name] = entries[0]
                continue
            for entry in entries:
                self.strategies[qualified(entry)] = entry
            if name in self.prefer:
                continue
            message = (f"strategy {name!r} is offered by {' and '.join(e.distribution for e in entries)}: "
                       f"use {' or '.join(qualified(e) for e in entries)}, or pin the bare name ({PIN_HINT})")
            if os.environ.get("KDZOO_STRICT_PLUGINS") == "1":
                raise PluginError(message)

    def _registrar(self, record: PluginRecord, table: dict[str, Entry], check: Callable, hook: str):
        def register(obj_or_name: Any, obj: Any = None, **meta: Any) -> None:
            if hook == "register_strategies":
                name, obj = getattr(obj_or_name, "name", None), obj_or_name
            else:
                name = obj_or_name
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise PluginError(f"{record.name}: invalid name {name!r} (lower-case words joined by hyphens)")
            if hook == "register_strategies":  # a name two distributions offer is qualified, not first-come
                mine = dist_key(record.distribution)
                same = [e for e in self.offers.get(name, []) if dist_key(e.distribution) == mine]
                if same:
                    raise PluginLoadError(f"strategy {name!r} is registered twice by {record.distribution} "
                                          f"(plugins {same[0].plugin} and {record.name})", source_line(obj))
                check(name, obj, meta)
                self.offers.setdefault(name, []).append(Entry(name, obj, record.name, record.distribution, meta))
                return
            if name in table:  # one owner per name; only this item is left out, the plugin's others load
                other = table[name]
                where = source_line(obj)
                text = (f"{ITEM_KIND[hook]} {name!r} is registered by both {other.distribution} "
                        f"(plugin {other.plugin}, kept: loaded first) and {record.distribution} "
                        f"(plugin {record.name}), whose {ITEM_KIND[hook]} is left out")
                text += f" ({where})" if where else ""
                if os.environ.get("KDZOO_STRICT_PLUGINS") == "1":
                    raise PluginLoadError(text, where)
                record.left_out.append(text)
                print(f'kdzoo: plugin "{record.name}" from {record.distribution}: {text}', file=sys.stderr)
                return
            check(name, obj, meta)
            table[name] = Entry(name, obj, record.name, record.distribution, meta)

        return register

    def strategy(self, name: str) -> Entry:
        """The strategy ``name`` means: ``NAME`` or ``DIST:NAME``.

        A bare name offered by two distributions means the one it is pinned to (``KDZOO_PREFER``;
        a run config's ``plugins.prefer`` arrives here already qualified) and is refused otherwise.

        Raises:
            ConfigError: one line: the closest names, the qualified choices of an ambiguous name, or
                the load error of the plugin that would have offered it.
        """
        self.collect()
        dist, bare = split_qualified(name)
        entries = self.offers.get(bare, [])
        choices = ", ".join(qualified(e) for e in entries)
        if dist is not None:
            match = next((e for e in entries if dist_key(e.distribution) == dist), None)
            if match is not None:
                return match
            if entries:
                raise ConfigError(f"strategy {name!r}: distribution {dist!r} offers no strategy {bare!r}; "
                                  f"offered by: {choices}")
            raise self._unknown_strategy(name)
        if not entries:
            raise self._unknown_strategy(name)
        pinned = self.prefer.get(bare)
        if pinned is not None:
            match = next((e for e in entries if dist_key(e.distribution) == dist_key(pinned)), None)
            if match is None:
                raise ConfigError(f"{PREFER_ENV} pins strategy {bare!r} to {pinned!r}, which does not offer it; "
                                  f"offered by: {choices}")
            return match
        if len(entries) > 1:
            raise ConfigError(f"strategy {bare!r} is ambiguous: {len(entries)} plugins offer it; name one "
                              f"({choices}) or pin the bare name ({PIN_HINT})")
        return entries[0]

    def strategy_names(self) -> set[str]:
        """Every spelling that names an installed strategy (an ambiguous bare name included: using it says why not)."""
        self.collect()
        return set(self.strategies) | set(self.offers) | {qualified(e) for es in self.offers.values() for e in es}

    def spelling(self, entry: Entry) -> str:
        """How a config names ``entry`` so that it means it on this installation whatever is pinned:
        its bare name, or ``DIST:NAME`` when another distribution offers the name too."""
        self.collect()
        return entry.name if len(self.offers.get(entry.name, [])) <= 1 else qualified(entry)

    def _unknown_strategy(self, name: str) -> ConfigError:
        """"unknown strategy", saying so when a plugin that failed to load would have offered it."""
        dist, bare = split_qualified(name)
        record = self.lost.get(bare) or self._catalogued_failure(bare)
        if record is not None and (dist is None or dist == dist_key(record.distribution)):
            return ConfigError(f"unknown strategy {name!r}: plugin {record.name!r} ({record.distribution}) "
                               f"failed to load: {record.error}")
        failed = [r for r in self.plugins.values() if r.error]
        error = unknown("strategy", name, self.strategies)
        if failed:  # one of them may have offered it: say why it is not here, before the long list of choices
            head = f"unknown strategy {name!r}"
            why = "; ".join(f"plugin {r.name!r} ({r.distribution}) failed to load: {r.error}" for r in failed)
            error = ConfigError(f"{head}; not loaded, so unknown what they offer: {why}{str(error)[len(head):]}")
        return error

    def _catalogued_failure(self, name: str) -> PluginRecord | None:
        """The failed plugin whose distribution the catalog credits with strategy ``name`` (one that failed
        before registering anything, e.g. on import or for its kdzoo version)."""
        failed = [r for r in self.plugins.values() if r.error]
        if not failed:
            return None

        owner = (load_registry().get("strategies", {}).get(name) or {}).get("plugin")
        return next((r for r in failed if owner and dist_key(r.distribution) == dist_key(owner)), None)

    def model(self, name: str) -> Entry | None:
        """The registered (non-timm) model called ``name`` or registered with ``aliases=[name, ...]``, or None.

        Aliases let a plugin accept another codebase's spelling (RepDistiller's ``wrn_40_2`` for ``wrn-40-2``).
        """
        models = self.collect().models
        if name in models:
            return models[name]
        return next((e for e in models.values() if name in e.meta.get("aliases", ())), None)

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


def qualified(entry: Entry) -> str:
    """``DIST:NAME`` of a registered strategy: the name that always means it."""
    return f"{dist_key(entry.distribution)}{QUALIFIER}{entry.name}"


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name in dir(pm.hook) if not name.startswith("_") and getattr(pm.hook, name).has_spec())


def _check_pending(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject a plugin that implements a hook kdzoo does not define (a misspelled hook)."""
    known = _hook_names(pm)
    for impl_caller in pm.get_hookcallers(plugin) or []:
        if not impl_caller.has_spec():
            close = difflib.get_close_matches(impl_caller.name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            impl = next((i for i in impl_caller.get_hookimpls() if i.plugin is plugin), None)
            raise PluginLoadError(f"unknown hook {impl_caller.name!r}{hint}",
                                  source_line(impl.function) if impl else "")


def _check_markers(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject a function named like a hook (or close to one) that lacks ``@kdzoo.plugin.hookimpl``.

    pluggy ignores such a function, so without this check the plugin loads and registers nothing.
    """
    known = _hook_names(pm)
    for attr in dir(plugin):
        fn = getattr(plugin, attr, None)
        if not inspect.isfunction(fn) or pm.parse_hookimpl_opts(plugin, attr) is not None:
            continue
        if attr in known or difflib.get_close_matches(attr, known, n=1, cutoff=0.85):
            raise PluginLoadError(f"function {attr!r} has no @kdzoo.plugin.hookimpl marker, so kdzoo would never "
                                  f"call it; hooks: {', '.join(known)}", source_line(fn))


def _origin(exc: BaseException) -> str:
    """``path:line`` of the plugin code that raised ``exc``: its syntax error or its innermost own frame."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    # the plugin's frames: not kdzoo's, the standard library's, or those of a library it called into
    libraries = tuple(os.path.dirname(mod.__file__) + os.sep for mod in
                      (sys.modules[__package__], pluggy, sys.modules.get("torch"), sys.modules.get("timm")) if mod)
    stdlib = sysconfig.get_paths()["stdlib"] + os.sep
    installed = tuple(sysconfig.get_paths()[k] + os.sep for k in ("purelib", "platlib"))  # may lie inside stdlib

    def in_plugin(filename: str) -> bool:
        if filename.startswith("<") or filename.startswith(libraries):
            return False
        return filename.startswith(installed) or not filename.startswith(stdlib)

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if in_plugin(f.filename)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def load_zoo(entry_points: bool = True) -> Zoo:
    """Build a plugin manager with kdzoo's built-ins and (optionally) every installed plugin.

    Args:
        entry_points: load the ``kdzoo`` entry-point group; tests pass False and add their own.
    """
    from . import builtin  # lazy: start-up cost (torch)

    zoo = Zoo()
    zoo.prefer = parse_prefer(os.environ.get(PREFER_ENV))
    zoo.add_plugin(builtin, BUILTIN, BUILTIN, kdzoo_version())
    if entry_points:
        zoo.load_entry_points()
    return zoo


__all__ = ["BUILTIN", "Entry", "PluginLoadError", "PluginRecord", "Zoo", "check_strategy_class", "dist_key",
           "dropped_label_message", "load_zoo", "parse_prefer", "qualified", "split_qualified"]
