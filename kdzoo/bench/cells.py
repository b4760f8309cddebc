"""A bench suite expanded into cells: loading a suite, reading its tasks, and keying each cell.

It owns :class:`Cell` and :class:`Reference` (one run, one reference row), loading a suite from the
registry or a YAML file (``--data-root`` included), a task's settings, row and pair names, and
:func:`expand_all`, which validates every cell and gives it its key: the hash of its effective config
and code (:func:`kdzoo.train.effective.cell_key`; a reference row's of its data and teacher only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, canonical, load_yaml, make_config, parse_strategy, to_dict
from ..contract.errors import ConfigError, unknown
from ..train.effective import cell_key, keyed_data, versions
from .schema import check_suite
from .tuned import is_tuned, tuned_members, tuned_variant, with_tuned_baseline
from ..zoo.registry import load_registry

TASK_KEYS = {"name", "pairs", "strategies", "seeds", "steps", "epochs", "references", "resources"}


@dataclass
class Cell:
    """One run of the bench."""

    task: str
    pair: str
    variant: str
    seed: int
    config: RunConfig
    key: str
    missing: list[str] = field(default_factory=list)  # strategies that are not installed
    published: dict[str, float] | None = None  # a paper's numbers for this row: {"row": %, "teacher": %}
    tuned: dict[str, Any] | None = None  # a tuned row: its study, trials run and pruned, chosen values (.tuned)
    resources: dict[str, Any] = field(default_factory=dict)  # the task's ``resources:`` (for slurm and ray)

    @property
    def label(self) -> str:
        return f"{self.task} | {self.pair} | {self.variant} | seed {self.seed}"


@dataclass
class Reference:
    """One reference row (a registered ``register_references`` item) for a task and pair."""

    task: str
    pair: str
    name: str
    config: RunConfig
    key: str
    missing: bool = False

    @property
    def variant(self) -> str:
        return f"{self.name} (reference)"


def variant_name(members: list[dict]) -> str:
    """``kd``, ``kd(temperature=2)`` or ``weight-selection+kd``: named by its parameters."""
    parts = []
    for m in members:
        params = dict(m.get("params") or {})
        if m.get("preset"):
            params = {"preset": m["preset"], **params}
        args = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        parts.append(f"{m['name']}({args})" if args else m["name"])
    return "+".join(parts)


def published_numbers(pair: dict, members: list[dict]) -> dict[str, float] | None:
    """A pair's published top-1 (``published: {teacher: 79.42, student: 72.50, kd: 73.33, ...}`` in a
    suite) for one row: ``ce`` is the paper's student trained alone; other rows by their stack's names."""
    published = pair.get("published")
    if not isinstance(published, dict):
        return None
    row = "student" if [m["name"] for m in members] == ["ce"] else "+".join(m["name"] for m in members)
    return {k: float(v) for k, v in (("row", published.get(row)), ("teacher", published.get("teacher")))
            if isinstance(v, (int, float))} or None


def pair_name(pair: dict) -> str:
    def one(m: Any) -> str:
        m = {"name": m} if isinstance(m, str) else m
        extra = ",".join(f"{k}={v}" for k, v in sorted((m.get("kwargs") or {}).items()))
        return f"{m['name']}({extra})" if extra else m["name"]

    return pair.get("label") or f"{one(pair['teacher'])} -> {one(pair['student'])}"


def load_suite(name_or_path: str, data_root: str | None = None) -> dict[str, Any]:
    """A suite by name from the shipped registry, or from a YAML file.

    Args:
        name_or_path: a suite name in ``registry.yaml`` or a YAML file.
        data_root: where this machine keeps the suite's data files: replaces ``data.root`` of every
            task that reads its data from a folder (``--data-root``); the other tasks are unchanged.
    """
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        suite = load_yaml(name_or_path)
        suite.setdefault("name", Path(name_or_path).stem)
    else:
        suites = load_registry().get("suites", {})
        if name_or_path not in suites:
            raise unknown("suite", name_or_path, suites)
        suite = dict(suites[name_or_path], name=name_or_path)
    check_suite(suite, suite.get("name", name_or_path) if isinstance(suite, dict) else name_or_path)
    if data_root is not None:
        suite = _with_data_root(suite, data_root)
    return suite


def _with_data_root(suite: dict[str, Any], data_root: str) -> dict[str, Any]:
    tasks, replaced = [], 0
    for task in suite.get("tasks") or []:
        data = task.get("data") if isinstance(task, dict) else None
        if isinstance(data, dict) and "root" in data:
            task, replaced = dict(task, data=dict(data, root=str(data_root))), replaced + 1
        tasks.append(task)
    if not replaced:
        raise ConfigError(f"--data-root {data_root!r}: suite {suite.get('name')!r} has no task that reads data from "
                          f"a folder (no task sets data.root); suites that do: fashion, cifar100-mdistiller")
    return dict(suite, tasks=tasks)


def task_settings(suite: dict[str, Any], task: Any, index: int) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """A suite task's run settings: ``(config sections, seeds, train section with the task's budget)``.

    The bench and ``kdzoo tune --suite`` read a task the same way through this.
    """
    if not isinstance(task, dict) or "pairs" not in task or "strategies" not in task:
        raise ConfigError(f"suite {suite.get('name')!r} task {index}: needs 'pairs' and 'strategies'")
    base = {k: v for k, v in task.items() if k not in TASK_KEYS}
    seeds = task.get("seeds", suite.get("seeds", [0]))
    train = dict(base.pop("train", {}) or {})
    if "steps" in task:
        train.update(steps=task["steps"], epochs=None)
    elif "epochs" in task:
        train["epochs"] = task["epochs"]
    return base, seeds, train


def expand(suite: dict[str, Any], zoo: Any, out: Path, threads: int | None = 1) -> list[Cell]:
    """Every cell of a suite, validated (bad keys fail before anything runs)."""
    return expand_all(suite, zoo, out, threads)[0]


def expand_all(suite: dict[str, Any], zoo: Any, out: Path, threads: int | None = 1) -> tuple[list[Cell], list[Reference]]:
    """Every cell and every reference row of a suite, validated before anything runs."""
    cells: list[Cell] = []
    refs: list[Reference] = []
    ver = versions()
    installed = zoo.collect().strategy_names()  # DIST:NAME too; an ambiguous bare name is refused when keyed

    catalogued = set(load_registry().get("strategies", {}))
    for t_i, task in enumerate(suite.get("tasks") or []):
        base, seeds, train = task_settings(suite, task, t_i)
        tname = task.get("name") or f"task{t_i}"
        ref_names = task.get("references") or []
        if not isinstance(ref_names, list) or not all(isinstance(r, str) for r in ref_names):
            raise ConfigError(f"suite {suite.get('name')!r} task {tname!r}: 'references' must be a list of names")
        strategies = list(task["strategies"])
        if not any(parse_strategy(e) == parse_strategy("ce") for e in strategies):
            strategies.insert(0, "ce")  # a ce row is always in the table: every verdict is against it
        strategies = with_tuned_baseline(strategies)
        for pair in task["pairs"]:
            for ref in ref_names:
                data = dict(base, teacher=pair.get("teacher"), student=pair["student"], strategy="ce",
                            train=dict(train, seeds=[seeds[0]]),
                            runtime=dict(base.get("runtime") or {}, progress=False, threads=threads))
                config = make_config(data)
                if config.teacher is None:
                    raise ConfigError(f"suite {suite.get('name')!r} task {tname!r}: reference {ref!r} needs a teacher")
                key = _reference_key(ref, config, ver)
                config.out, config.name = str(out / "references"), key
                refs.append(Reference(tname, pair_name(pair), ref, config, key, ref not in zoo.collect().references))
            for entry in strategies:
                members = parse_strategy(entry)
                missing = [m["name"] for m in members if m["name"] not in installed]
                for name in missing:  # catalogued but not installed: skipped with a hint; unknown: a typo
                    if name not in catalogued:
                        raise unknown(f"strategy in suite {suite.get('name')!r} task {tname!r}", name,
                                      installed | catalogued)
                cell_base, tuned = dict(base), None
                variant = tuned_variant(members) if is_tuned(members) else variant_name(members)
                if is_tuned(members) and not missing:
                    members, cell_base, variant, tuned = _tuned_entry(suite, base, pair, members, train, seeds, out,
                                                                      zoo, threads)
                for seed in seeds:
                    data = dict(cell_base, teacher=pair.get("teacher"), student=pair["student"], strategy=members,
                                train=dict(train, seeds=[seed]),
                                runtime=dict(base.get("runtime") or {}, progress=False, threads=threads))
                    config = make_config(data)
                    key = _cell_key(config, zoo, ver, missing)
                    config.out, config.name = str(out / "cells"), key
                    cells.append(Cell(tname, pair_name(pair), variant, seed, config, key, missing,
                                      published_numbers(pair, members), tuned,
                                      dict(task.get("resources") or {})))
    if not cells:
        raise ConfigError(f"suite {suite.get('name')!r} has no cells")
    return cells, refs


def _tuned_entry(suite: dict, base: dict, pair: dict, members: list[dict], train: dict, seeds: list[int], out: Path,
                 zoo: Any, threads: int | None) -> tuple[list[dict], dict, str, dict]:
    """A ``params: tuned`` entry at its study's best trial: members, task data with the chosen learning rate,
    the row's variant name and its ``tuned`` marker (see :mod:`kdzoo.bench.tuned`)."""
    data = dict(base, teacher=pair.get("teacher"), student=pair["student"], strategy=members,
                train=dict(train, seeds=seeds), runtime=dict(base.get("runtime") or {}, progress=False, threads=threads))
    chosen, lr, marker = tuned_members(suite, data, members, out, zoo, list(seeds))
    return chosen, dict(base, optim=dict(base.get("optim") or {}, lr=lr)), tuned_variant(members), marker


def _reference_key(ref: str, config: RunConfig, ver: dict[str, str], data_by_path: bool = False) -> str:
    """A reference row depends on its data (files by fingerprint, :func:`keyed_data`) and teacher only."""
    resolved = to_dict(config)
    if not data_by_path:
        keyed_data(resolved, config)
    for k in ("out", "name", "strategy", "train"):
        resolved.pop(k)
    return hashlib.sha256(json.dumps(canonical([ref, resolved, ver]), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell_key(config: RunConfig, zoo: Any, ver: dict[str, str], missing: list[str]) -> str:
    """The key of a cell: its effective config and code (:func:`kdzoo.train.effective.cell_key`); a cell whose
    strategy is not installed has no effective config, so its key is its config as written."""
    if not missing:
        return cell_key(config, zoo)
    resolved = to_dict(config)
    resolved.pop("out"), resolved.pop("name")
    return hashlib.sha256(json.dumps(canonical([resolved, ver]), sort_keys=True, default=str).encode()).hexdigest()[:16]
