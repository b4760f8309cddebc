"""Plugin discovery: a plugin-manager factory and the registries it fills.

Nothing happens at import time. :func:`load_zoo` builds a fresh pluggy manager, registers kdzoo's
own built-in plugin, then every ``kdzoo`` entry point one by one, so that one broken distribution
is reported (name, error and ``file:line``, one line on stderr) while every other plugin keeps working.
A plugin that fails contributes nothing: a name registered twice stays with the plugin registered first
(kdzoo's built-ins, then entry points by name) and the later plugin is reported failed.
``KDZOO_STRICT_PLUGINS=1`` makes any load error fatal and ``KDZOO_DEBUG=1`` (``--debug``) prints its
traceback; ``KDZOO_LOAD_PLUGINS=a,b`` loads only the named entry points (empty: none).
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

from ..contract import hookspecs
from ..contract.errors import PluginError, unknown


class PluginLoadError(PluginError):
    """A plugin defect found while loading it, with the ``file:line`` it points at.

    Attributes:
        where: ``path:line`` of the offending definition (``""`` when unknown).
    """

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


ITEM_KIND = {"register_strategies": "strategy", "register_models": "model", "register_datasets": "dataset",
             "register_references": "reference", "register_loggers": "logger", "register_commands": "command"}
BUILTIN_COMMANDS = frozenset({"distill", "teacher", "eval", "compare", "bench", "report", "runs", "strategies", "plugins",
                              "models", "datasets", "completion", "cache"})
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
        self._order: dict[str, int] = {}  # plugin name -> registration order: the first to register a name keeps it
        self.loggers: dict[str, Entry] = {}
        self.commands: dict[str, Entry] = {}
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

    # -- registries ------------------------------------------------------------------------------
    def collect(self) -> Zoo:
        """Call every ``register_*`` hook once, crediting each item to its plugin."""
        if self._collected:
            return self
        from ..contract.strategy import Strategy

        self.strategies, self.models, self.datasets, self.references = {}, {}, {}, {}
        self.loggers, self.commands = {}, {}

        def check_strategy(name: str, obj: Any, meta: dict) -> None:
            if not (isinstance(obj, type) and issubclass(obj, Strategy)):
                raise PluginError(f"register_strategies got {obj!r}, not a kdzoo.Strategy subclass")
            try:
                check_strategy_class(obj)
            except PluginError as exc:
                raise PluginLoadError(str(exc), _where(obj)) from exc

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
        failed: set[str] = set()
        for hook_name, table, check in hooks:
            caller = getattr(self.pm.hook, hook_name)
            # registration order, not pluggy's call order (LIFO): the first plugin to register a name keeps it
            for impl in sorted(caller.get_hookimpls(), key=lambda i: self._order.get(i.plugin_name, len(self._order))):
                record = self.plugins[impl.plugin_name]
                if record.name in failed:
                    continue
                try:
                    impl.function(register=self._registrar(record, table, check, hook_name))
                except Exception as exc:  # noqa: BLE001 - a plugin's failure is reported, not fatal
                    failed.add(record.name)
                    self._fail(record, exc, _where(impl.function))
        for table in (self.strategies, self.models, self.datasets, self.references, self.loggers, self.commands):
            for name in [n for n, e in table.items() if e.plugin in failed]:  # a failed plugin contributes nothing
                del table[name]
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
            if name in table:
                other = table[name]
                raise PluginLoadError(
                    f"{ITEM_KIND[hook]} {name!r} is registered by both "
                    f"{other.distribution} (plugin {other.plugin}, kept: loaded first) and "
                    f"{record.distribution} (plugin {record.name})", _where(obj))
            check(name, obj, meta)
            table[name] = Entry(name, obj, record.name, record.distribution, meta)

        return register

    def strategy(self, name: str) -> Entry:
        """The registered strategy called ``name``, or a ConfigError naming the closest ones."""
        self.collect()
        if name not in self.strategies:
            raise unknown("strategy", name, self.strategies)
        return self.strategies[name]

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
            raise PluginLoadError(f"unknown hook {impl_caller.name!r}{hint}", _where(impl.function) if impl else "")


def _check_markers(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject a function named like a hook (or close to one) that lacks ``@kdzoo.hookimpl``.

    pluggy ignores such a function, so without this check the plugin loads and registers nothing.
    """
    known = _hook_names(pm)
    for attr in dir(plugin):
        fn = getattr(plugin, attr, None)
        if not inspect.isfunction(fn) or pm.parse_hookimpl_opts(plugin, attr) is not None:
            continue
        if attr in known or difflib.get_close_matches(attr, known, n=1, cutoff=0.85):
            raise PluginLoadError(f"function {attr!r} has no @kdzoo.hookimpl marker, so kdzoo would never call it; "
                                  f"hooks: {', '.join(known)}", _where(fn))


def check_strategy_class(cls: type) -> None:
    """Contract checks that need no run: what registration (and :func:`kdzoo.testing.check_strategy`) enforce.

    Checks that every ``Config`` default matches its field's type and bounds, and that the student
    requirement of ``needs()`` keeps the logits whenever the hard-label term is weighted (the trainer
    computes that term from the student's logits; without them it would vanish without a word).

    Raises:
        PluginError: one line naming the strategy and the defect.
    """
    from torch import nn

    from ..config import build, check_defaults
    from ..contract.errors import ConfigError
    from ..contract.strategy import label_weight_of

    for gone, instead in (("label_weight", "return it as term_weights()['label'] (kdzoo.alpha_blend for alpha)"),
                          ("teacher_grad", "remove it: the teacher's outputs are constants of the student's loss"),
                          ("smoke_params", "make it the 'smoke' preset")):
        if any(gone in vars(klass) for klass in cls.__mro__[:-1] if klass.__module__ != "kdzoo.contract.strategy"):
            raise PluginError(f"strategy {cls.name!r} defines {gone!r}, which kdzoo no longer reads; {instead}")

    try:
        check_defaults(cls.Config, f"strategy {cls.name!r}: Config.")
    except ConfigError as exc:
        raise PluginError(str(exc)) from exc
    try:  # a bare instance with the default config: needs() and the weights depend on the config only
        probe = cls.__new__(cls)
        nn.Module.__init__(probe)
        try:
            probe.config = build(cls.Config, {})
        except ConfigError:  # a parameter without a usable default (a path): the smoke preset fills it
            probe.config = build(cls.Config, dict(cls.presets.get("smoke", {})))
        needs, weight = probe.needs(), label_weight_of(probe)
    except Exception:  # noqa: BLE001 - needs() reads run state; the stack checks it when the run is built
        return
    if weight > 0 and not needs.student.logits:
        raise PluginError(dropped_label_message(cls.name, weight))


def dropped_label_message(strategy: str, weight: float) -> str:
    """The one line for a strategy whose student needs exclude the logits the hard-label term needs."""
    return (f"strategy {strategy!r}: needs() asks the student for no logits, so the hard-label loss "
            f"(weight {weight:g}) would be dropped; add logits=True to the student Requirement or weight "
            "the label term 0")


def _where(obj: Any) -> str:
    """``path:line`` where ``obj`` (function or class) is defined, or ``""``."""
    try:
        target = inspect.unwrap(obj)
        lines, start = inspect.getsourcelines(target)
        # the ``def``/``class`` line itself, not its first decorator
        offset = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def ", "class "))), 0)
        return f"{inspect.getsourcefile(target)}:{start + offset}"
    except (TypeError, OSError):
        return ""


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
