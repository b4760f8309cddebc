"""What the fast CLI paths show without importing torch: a listing cache of the installed plugins.

Loading plugins imports their strategies, hence torch (seconds on a small machine). ``kdzoo --help``,
the listings (``kdzoo strategies``, ``models``, ``datasets``, ``plugins``) and shell completion read a
JSON snapshot of the registries instead, stored under ``$KDZOO_CACHE/listing/`` and keyed by a
fingerprint of what could change it: every ``kdzoo`` entry point with its distribution's name and
version, the modification times of kdzoo's and each plugin's source files (editable installs keep
their version while their code changes), the timm version and the plugin-selection variables. A
snapshot is written only when every plugin loaded cleanly (no error, no item left out), so load
problems are reported on every run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..versions import dist_version, kdzoo_version
from ..paths import cache_root
from .plugins import dist_key, load_zoo, qualified
from .registry import load_registry

FORMAT = 2  # bump when the snapshot's layout changes


def _source_stamp(module: str) -> list[Any]:
    """``[path, newest mtime, file count]`` of a top-level module's sources, found without importing it."""
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return [module, None]
    if spec is None or not spec.origin:
        return [module, None]
    origin = Path(spec.origin)
    if origin.name != "__init__.py":
        return [str(origin), _mtime(origin), 1]
    newest, count = 0, 0
    for folder, _, files in os.walk(origin.parent):
        for name in files:
            if name.endswith(".py"):
                newest, count = max(newest, _mtime(Path(folder) / name)), count + 1
    return [str(origin.parent), newest, count]


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def fingerprint() -> str:
    """A hash of everything the registries depend on (cheap: no plugin is imported)."""
    parts: list[Any] = [FORMAT, dist_version("kdzoo"), dist_version("timm"), _source_stamp("kdzoo"),
                        os.environ.get("KDZOO_LOAD_PLUGINS"), os.environ.get("KDZOO_STRICT_PLUGINS"),
                        os.environ.get("KDZOO_PREFER")]
    for ep in sorted(md.entry_points(group="kdzoo"), key=lambda e: (e.name, e.value)):
        dist = ep.dist.name if ep.dist else None
        parts.append([ep.name, ep.value, dist, ep.dist.version if ep.dist else None, _source_stamp(ep.value.split(":")[0])])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]


def build_listing(zoo: Any) -> dict[str, Any]:
    """The registries of a loaded zoo as plain data (what the listings and completion show)."""
    import timm

    zoo.collect()

    def rows(table: dict, describe: bool) -> list[dict[str, Any]]:
        out = []
        for name, e in sorted(table.items()):
            row = {"name": name, "plugin": e.plugin, "distribution": e.distribution}
            row.update(e.obj.describe() if describe else {k: str(v) for k, v in e.meta.items()})
            row["name"] = name  # the name it answers to (DIST:NAME for a clash), not the class's bare name
            out.append(row)
        return out

    strategies = rows(zoo.strategies, True)
    for row in strategies:  # a name two distributions offer: each row names the others and whether it is pinned
        entry = zoo.strategies[row["name"]]
        others = [qualified(e) for e in zoo.offers.get(entry.name, []) if e is not entry]
        if others:
            pin = zoo.prefer.get(entry.name)
            row.update(clash=others, pinned=pin is not None and dist_key(pin) == dist_key(entry.distribution))
    return {
        "strategies": strategies, "models": rows(zoo.models, False),
        "datasets": rows(zoo.datasets, False), "loggers": rows(zoo.loggers, False),
        "plugins": [dict(vars(r)) for r in zoo.plugins.values()],
        "commands": [{"name": name, "help": e.meta.get("help", ""), "distribution": e.distribution}
                     for name, e in sorted(zoo.commands.items())],
        "timm_models": timm.list_models(),
        "suites": [{"name": name, "description": suite.get("description", "")}
                   for name, suite in sorted(load_registry().get("suites", {}).items())],
    }


def listing(zoo: Any = None) -> dict[str, Any]:
    """The snapshot for this installation: read from the cache, or built (loading every plugin) and cached."""
    path = cache_root() / "listing" / f"{fingerprint()}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass

    if zoo is None:  # loading every plugin imports torch: seconds of silence without this line
        print("kdzoo: indexing the installed plugins (once after an install or a change; a few seconds) ...",
              file=sys.stderr, flush=True)
    data = build_listing(zoo or load_zoo())
    if not any(p.get("error") or p.get("left_out") for p in data["plugins"]):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
        except OSError:
            pass  # a read-only cache only costs speed
    return data


def version_text() -> str:
    """``kdzoo 0.2.0`` and one indented line per installed plugin distribution (read from metadata: no torch)."""
    plugins = {}
    for entry in md.entry_points(group="kdzoo"):
        dist = getattr(entry, "dist", None)
        if dist is not None:
            plugins[dist.metadata["Name"]] = dist.version
    lines = [f"kdzoo {kdzoo_version()}"]
    lines += [f"  {name} {plugins[name]}" for name in sorted(plugins)]
    return "\n".join(lines) + "\n"


__all__ = ["build_listing", "fingerprint", "listing", "version_text"]
