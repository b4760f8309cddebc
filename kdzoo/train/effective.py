"""The effective configuration of a run: what it used, recorded in its directory and keyed in a bench.

Two files describe a run directory:

* ``config.yaml`` is the *effective config*: every setting of the run (data, models, optimiser,
  schedule, seeds, runtime switches) with each strategy member's **full** parameter set (its
  defaults, then its preset, then the overrides, resolved once). ``out`` and ``name`` stay out of
  it, so ``kdzoo distill -c RUN/config.yaml`` re-runs the same experiment as it is.
* ``effective.yaml`` records what the run worked out from that config (step budget, steps per
  epoch, normalisation mean/std, input size, split sizes) and the code it ran (kdzoo, torch, timm
  and each member's distribution version and source hash). It is information only: a re-run or a
  resume recomputes these values and never reads them back.

A bench cell's key (:func:`cell_key`) hashes the effective config, with numbers normalised
(:func:`kdzoo.config.canonical`), together with :func:`code_identity` of its stack, so a changed
default, preset, plugin version or source file re-runs exactly the cells whose stack contains a
strategy that can reach it (:func:`strategy_sources`; in the core losses, the functions its source
names and those they use, :mod:`kdzoo.train.loss_reach`). Data read from files is keyed by what it is,
not where it lies (:func:`keyed_data`: the files' fingerprint replaces ``data.root``), so a moved copy
of the data or a cluster node that mounts it elsewhere finds every finished cell.

Keys of earlier kdzoo versions form one migration chain (:data:`PREVIOUS_KEYS`,
:func:`legacy_cell_keys`): a bench adopts a finished cell stored under any of them, since each is
computed from the same config and code as they are now.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig, canonical, key_dict, to_dict
from ..data.fingerprint import data_identity
from ..data.relabel import split_spec
from ..versions import dist_version
from ..zoo.stack import Member, resolve_stack
from .loss_reach import losses_reached_hash

CORE_DISTRIBUTION = "kdzoo"
_HASHES: dict[tuple[str, float, int], str] = {}  # (path, mtime, size) -> sha256: a re-run hashes nothing twice


def effective_strategy(members: Sequence[Member], *, for_key: bool = False) -> list[dict[str, Any]]:
    """Each stack member as ``{name, params}`` with its full parameter set (defaults, preset, overrides).

    The preset is folded into the parameters, so the result builds the same members again and two
    spellings of one configuration (``kd`` and ``{name: kd, params: {temperature: 4.0}}``) are equal.
    A member is named so that it means the same strategy whatever is pinned: ``DIST:NAME`` where
    two distributions offer the name (:attr:`kdzoo.zoo.stack.Member.spelling`). ``for_key``: its bare
    name, as a cell key hashes it; :func:`code_identity` names the distribution, so ``kd`` pinned to
    ``kdzoo-logit``, ``kdzoo-logit:kd`` and ``kd`` where nothing clashes are one cell.
    """
    return [{"name": m.name if for_key else m.spelling,
             "params": dataclasses.asdict(m.params) if dataclasses.is_dataclass(m.params) else {}}
            for m in members]


def effective_config(config: RunConfig, members: Sequence[Member], *, for_key: bool = False,
                     data_by_path: bool = False) -> dict[str, Any]:
    """The run's config as plain data, strategies resolved, without ``out`` and ``name`` (re-runnable).

    ``members``: the config's stack as resolved (:func:`kdzoo.zoo.stack.resolve_stack`).
    ``for_key``: as hashed into a cell key (:func:`kdzoo.config.key_dict`: switches at their default
    left out; data files by their fingerprint, :func:`keyed_data`). ``data_by_path``: the key as
    kdzoo 0.x wrote it, with the data's path (for :data:`PREVIOUS_KEYS`).
    """
    data = key_dict(config) if for_key else to_dict(config)
    data.pop("out")
    data.pop("name")
    data["strategy"] = effective_strategy(members, for_key=for_key)
    if for_key and not data_by_path:
        keyed_data(data, config)
    return data


def _without_path(spec: str) -> str:
    """A dataset spec with an ``imagefolder:PATH`` path left out (its files' fingerprint stands for it)."""
    data_spec, task = split_spec(spec)
    dataset, _, _ = data_spec.partition(":")
    if dataset != "imagefolder":
        return spec
    return f"{dataset}:{task}" if task else dataset


def keyed_data(data: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """Key ``data`` (a config as plain data) by what its data files are, not where they lie.

    Where the student's or the teacher's dataset reads files, ``data.root`` (and an
    ``imagefolder:PATH`` path) leave the dict and ``data_files`` records the files' fingerprint
    (:func:`kdzoo.data.fingerprint.data_fingerprint`). Data shipped in a package leaves ``data``
    as it was, so such keys are those of earlier versions. Returns ``data``, changed in place.
    """
    idents = {"data": data_identity(config.data.name, config.data.root)}
    if config.teacher_data and config.teacher_data != config.data.name:
        idents["teacher_data"] = data_identity(config.teacher_data, config.data.root)
    if all(ident is None for ident in idents.values()):
        return data
    section = data["data"]
    section.pop("root", None)
    section["name"] = _without_path(section["name"])
    if data.get("teacher_data"):
        data["teacher_data"] = _without_path(data["teacher_data"])
    data["data_files"] = {k: v for k, v in idents.items() if v is not None}
    return data


def versions() -> dict[str, str]:
    """Versions of the packages every run depends on."""
    import torch

    out = {"torch": str(torch.__version__)}
    for dist in ("kdzoo", "timm"):
        out[dist] = _dist_version(dist)
    return out


def _dist_version(dist: str) -> str:
    return dist_version(dist) or "?"  # "?", not None: the spelling cell keys were made with


def _file_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


def source_hash(paths: list[Path]) -> str:
    """One hash of the given source files and of every file under the given folders (bytecode caches excluded)."""
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
        for path in files:
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(_file_hash(path).encode())
    return digest.hexdigest()[:16]


def _package_root(module_name: str) -> Path | None:
    """The folder of the top-level package that holds ``module_name`` (or its file for a lone module)."""
    top = sys.modules.get(module_name.split(".")[0])
    if top is None:
        return None
    locations = list(getattr(top, "__path__", []) or [])
    if locations:
        return Path(locations[0])
    return Path(top.__file__) if getattr(top, "__file__", None) else None


def _module_file(root: Path, dotted: list[str]) -> Path | None:
    """The file of module ``dotted`` (relative to the package folder ``root``), if it is in the package."""
    base = root.joinpath(*dotted)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _own_imports(file: Path, root: Path, package: str) -> list[Path]:
    """Files of ``package`` (folder ``root``) that ``file`` imports, relative or absolute."""
    import ast

    here = list(file.relative_to(root).parent.parts)
    found: list[Path] = []
    for node in ast.walk(ast.parse(file.read_bytes(), str(file))):
        targets: list[list[str]] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            elif node.module and node.module.split(".")[0] == package:
                base = []
            else:
                continue
            mod = (node.module or "").split(".") if node.level else (node.module or "").split(".")[1:]
            mod = [part for part in mod if part]
            for alias in node.names:  # ``from . import kd`` names a module; ``from .kd import KD`` a name in one
                named = base + mod + [alias.name]
                targets.append(named if _module_file(root, named) is not None else base + mod)
        elif isinstance(node, ast.Import):
            targets += [alias.name.split(".")[1:] for alias in node.names if alias.name.split(".")[0] == package]
        for dotted in targets:
            path = _module_file(root, dotted)
            if path is not None:
                found.append(path)
    return found


def strategy_sources(module_name: str) -> list[Path]:
    """The source files a plugin strategy's code can reach inside its own package: its module, every
    module of the package it imports (transitively, relative or absolute), and the package's
    non-Python files (data any module may read). Sibling strategies it does not import are left out,
    so editing ``kd``'s module re-runs ``kd`` cells, not ``dkd`` cells of the same plugin."""
    root = _package_root(module_name)
    module = sys.modules.get(module_name)
    if root is None or root.is_file() or module is None or not getattr(module, "__file__", None):
        return [root] if root is not None else []
    package = module_name.split(".")[0]
    seen: set[Path] = set()
    todo = [Path(module.__file__)]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo += _own_imports(file, root, package)
    data = {p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    return sorted(seen | data)


def member_code(member: Member, *, whole_package: bool = False, losses_package: bool = False,
                losses_file: bool = False) -> dict[str, str]:
    """Where one strategy's code comes from: distribution, its version and hashes of its source.

    A plugin strategy hashes the source its module can reach inside its package
    (:func:`strategy_sources`: its module and the package modules it imports, transitively). A
    core strategy (``ce``) hashes the module that defines it and the strategy base class; the rest
    of the core engine is covered by the kdzoo version, so editing the report or the CLI does not
    re-run every bench cell. ``losses`` hashes the code of :mod:`kdzoo.losses` that this source
    reaches (:func:`kdzoo.train.loss_reach.losses_reached_hash`: the functions it names and those
    they use), so editing DKD's loss re-runs ``dkd`` cells only; a member that reaches no loss has
    no ``losses``. Earlier key forms (:data:`PREVIOUS_KEYS`): ``whole_package``, a plugin member
    hashed its whole package; ``losses_package``, every member hashed the whole losses package;
    ``losses_file``, every member hashed the losses while they were one file (:func:`losses_hash`).
    """
    core = Path(__file__).parent.parent
    module_name = member.cls.__module__
    if member.distribution == CORE_DISTRIBUTION:
        module = sys.modules[module_name]
        roots = reach = [Path(module.__file__), core / "contract" / "strategy.py"]
    else:
        reach = strategy_sources(module_name)
        roots = [root for root in [_package_root(module_name)] if root is not None] if whole_package else reach
    code = {"distribution": member.distribution, "version": _dist_version(member.distribution),
            "source": source_hash(roots)}
    losses = losses_hash(losses_file=losses_file) if losses_package or losses_file else losses_reached_hash(reach)
    if losses is not None:
        code["losses"] = losses
    return code


# ``kdzoo/losses.py`` became the package ``kdzoo/losses/``, its functions moved byte for byte. Keys
# made before hashed that one file (its ``source_hash``, "file" below); the package as the split
# left it hashes to "package". While the package is still exactly that, the file's hash stands for
# it in the earlier key forms, so a bench adopts the cells it finished before the split; after any
# edit of the losses those forms match no cell (the code is no longer what those cells ran).
LOSSES_SPLIT = {"file": "809e31d69c109d7c", "package": "b09578f781cee1a4"}


def losses_hash(*, losses_file: bool = False) -> str:
    """The hash of the whole losses package ``kdzoo/losses/`` (every file in it), as earlier key forms hashed it.

    ``losses_file``: the hash keys had while the losses were the one file ``kdzoo/losses.py``
    (:data:`LOSSES_SPLIT`), or, once the package has changed since the split, a value no such key
    had.
    """
    package = source_hash([Path(__file__).parent.parent / "losses"])
    if not losses_file:
        return package
    return LOSSES_SPLIT["file"] if package == LOSSES_SPLIT["package"] else f"changed since the split: {package}"


def code_identity(members: Sequence[Member], *, whole_package: bool = False, losses_package: bool = False,
                  losses_file: bool = False) -> dict[str, Any]:
    """Package versions plus each stack member's distribution, version and source hashes (:func:`member_code`)."""
    return {"versions": versions(),  # a member by its bare name: a pin or a DIST: is one member
            "members": {m.name: member_code(m, whole_package=whole_package, losses_package=losses_package,
                                            losses_file=losses_file)
                        for m in members}}


def cell_key(config: RunConfig, zoo: Any, extra: Any = None, **form: bool) -> str:
    """A bench cell's key: its effective config and code identity, numbers normalised (16 hex digits).

    ``form``: the switches of an earlier key format (:data:`PREVIOUS_KEYS`); none for today's key.
    """
    return _cell_key(config, resolve_stack(config.strategy, zoo), extra, **form)


def _cell_key(config: RunConfig, members: Sequence[Member], extra: Any = None, **form: bool) -> str:
    payload = canonical([effective_config(config, members, for_key=True, data_by_path=form.get("data_by_path", False)),
                         code_identity(members, whole_package=form.get("whole_package", False),
                                       losses_package=form.get("losses_package", False),
                                       losses_file=form.get("losses_file", False)), extra])
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# The one migration chain of cell keys, newest first: each earlier format, as the switches of
# :func:`cell_key` that rebuild it. A change to the key adds its line here (and nothing else), so a
# bench keeps every finished cell across it.
PREVIOUS_KEYS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("every member hashed the whole losses package, kdzoo/losses/", {"losses_package": True}),
    ("the losses were one file, kdzoo/losses.py", {"losses_file": True}),
    ("data keyed by its path (data.root), not its files", {"data_by_path": True, "losses_file": True}),
    ("plugin members hashed their whole package", {"data_by_path": True, "whole_package": True, "losses_file": True}),
)


def legacy_cell_keys(config: RunConfig, zoo: Any) -> list[str]:
    """The keys the same cell had under earlier formats (:data:`PREVIOUS_KEYS`), newest first, without
    repeats or today's key. Each is computed from the config and code as they are now, so a finished
    cell under one ran exactly this config and code: a bench adopts it
    (:func:`kdzoo.bench.cell_results.adopt_legacy_cells`) instead of running it again."""
    keys: list[str] = []
    members = resolve_stack(config.strategy, zoo)
    current = _cell_key(config, members)
    for _, form in PREVIOUS_KEYS:
        key = _cell_key(config, members, **form)
        if key != current and key not in keys:
            keys.append(key)
    return keys


def legacy_cell_key(config: RunConfig, zoo: Any) -> str:
    """The key the same cell had when a plugin member hashed its whole package (data keyed by path, the
    losses one file)."""
    return cell_key(config, zoo, **PREVIOUS_KEYS[-1][1])


__all__ = ["LOSSES_SPLIT", "PREVIOUS_KEYS", "cell_key", "code_identity", "effective_config", "effective_strategy",
           "keyed_data", "legacy_cell_key", "legacy_cell_keys", "losses_hash", "member_code",
           "source_hash", "strategy_sources",
           "versions"]
