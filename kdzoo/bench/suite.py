"""``kdzoo bench``: strategies side by side on the same teacher, data, seeds and budget.

A suite (in ``registry.yaml`` or a YAML file) is a list of tasks; a task names its data, label
budget, teacher/student pairs, strategy variants, seeds and step budget. Every (task, pair,
variant, seed) is a *cell*: an ordinary ``kdzoo distill`` run whose directory is named by the hash
of its effective config (each strategy's full parameters) and code (kdzoo/torch/timm versions, each
member's distribution version and source hash; see :mod:`kdzoo.train.effective`), so a finished cell is
never run again and a change to a default, preset, plugin or loss re-runs exactly the cells it touches.
Teachers are trained once per suite (kdzoo's teacher cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, canonical, load_yaml, make_config, parse_strategy, to_dict
from ..train.effective import cell_key, keyed_data, versions
from .executors import NOT_APPLICABLE, drive
from .executors.cell import run_cell as _run_cell
from .schema import check_suite
from ..contract.errors import ConfigError, NotApplicable, unknown
from .tuned import is_tuned, tuned_members, tuned_variant, with_tuned_baseline

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
    from ..zoo.registry import load_registry

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
    from ..zoo.registry import load_registry

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


def _worker_init(parent_pid: int) -> None:
    """A bench worker: exits with its bench; Ctrl-C reaches it through the bench (which SIGTERMs its
    workers so each checkpoints), not directly as a KeyboardInterrupt mid-queue."""
    import signal

    from .claims import exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _run_cells(todo: list[Cell], jobs: int, bar, errors: dict[str, str], busy: list[Cell]) -> None:
    """Run cells serially or in ``jobs`` worker processes; record failures, never raise for one.

    With workers, a SIGINT/SIGTERM to the bench stops every worker (each saves a checkpoint, then
    is killed if it does not exit within a grace period) before the bench itself stops.
    """
    from ..contract.errors import Interrupted

    def done(cell: Cell, outcome: str | BaseException) -> None:
        if isinstance(outcome, BaseException):
            text = str(outcome) if isinstance(outcome, ConfigError) else f"{type(outcome).__name__}: {outcome}"
            if isinstance(outcome, NotApplicable):  # collect() shows it as the status, with no verdict
                text = f"{NOT_APPLICABLE}{text}"
            errors[cell.key] = " ".join(text.split())
        elif outcome == "busy":
            busy.append(cell)
        if bar is not None:
            bar.set_postfix_str(cell.label, refresh=False)
            bar.update(1)

    if jobs <= 1:
        for cell in todo:
            try:
                outcome: Any = _run_cell(to_dict(cell.config))
            except Interrupted as exc:
                exc.hint = "run the same kdzoo bench command again to resume"
                raise
            except Exception as exc:  # one failed cell must not stop the bench
                outcome = exc
            done(cell, outcome)
        return
    import multiprocessing as mp
    import signal
    from concurrent.futures import FIRST_COMPLETED, wait

    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        pending = {pool.submit(_run_cell, to_dict(c.config)): c for c in todo}
        while pending and not received:
            finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in finished:
                cell = pending.pop(fut)
                try:
                    done(cell, fut.result())
                except Exception as exc:
                    done(cell, exc)
        if received:
            _stop_workers(pool)
            raise Interrupted(received[0], hint="run the same kdzoo bench command again to resume")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_workers(pool: ProcessPoolExecutor, grace_seconds: float = 20.0) -> None:
    """SIGTERM every worker (its trainer checkpoints and stops), then SIGKILL whoever is left."""
    import signal

    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.time() + grace_seconds
    for proc in procs:
        proc.join(max(0.0, deadline - time.time()))
        if proc.is_alive():
            proc.kill()


def adopt_legacy_cells(cells: list[Cell], zoo: Any, log=None, refs: list[Reference] = ()) -> int:
    """Finished cells stored under a previous key (:func:`kdzoo.train.effective.legacy_cell_keys`: the
    same config and code, keyed in an earlier format) move to their key, so a bench keeps its results
    across key changes; so do reference rows keyed by their data's path. Returns how many moved."""
    from ..train.runs import read_seed_summary
    from ..train.effective import legacy_cell_keys

    moved = 0
    for cell in cells:
        if cell.missing or cell_summary(cell) is not None:
            continue
        folder = Path(cell.config.out)
        new = folder / cell.key
        for old_key in legacy_cell_keys(cell.config, zoo):
            old = folder / old_key
            if new.exists() or read_seed_summary(old / f"seed-{cell.seed}" / "summary.json") is None:
                continue
            try:
                os.rename(old, new)  # atomic; a concurrent bench that moved it first wins
            except OSError:
                continue
            moved += 1
            break
    ver = versions()
    for ref in refs:
        folder = Path(ref.config.out)
        old = folder / f"{_reference_key(ref.name, ref.config, ver, data_by_path=True)}.json"
        if old != folder / f"{ref.key}.json" and old.is_file() and reference_result(ref) is None:
            with contextlib.suppress(OSError):
                os.rename(old, folder / f"{ref.key}.json")
    if moved and log is not None:
        log(f"{moved} finished cells kept from the previous cell keys (same config and code)")
    return moved


def cell_summary(cell: Cell) -> dict[str, Any] | None:
    """A finished cell's seed summary; ``None`` while it has none (never run, interrupted, failed)."""
    from ..train.runs import read_seed_summary

    return read_seed_summary(Path(cell.config.out) / cell.key / f"seed-{cell.seed}" / "summary.json")


def run_bench(suite_name: str, out: str | Path, *, jobs: int = 1, zoo: Any = None, progress: bool = True,
              log=print, data_root: str | None = None, executor: str | None = None,
              executor_options: dict[str, Any] | None = None, resources: dict[str, Any] | None = None,
              detach: bool = False) -> dict[str, Any]:
    """Run (or resume) a suite and write its results and report into ``out``.

    Args:
        suite_name: a suite in ``registry.yaml`` or a YAML file.
        out: the bench directory (cells, results, report).
        jobs: cells run in this many worker processes (latency is measured serially afterwards).
        data_root: replaces ``data.root`` of every task that reads data from a folder.
        executor: where cells run (:mod:`kdzoo.bench.executors`): ``local`` (default), ``slurm``, ``ray``
            or a plugin's; else the suite's ``executor:``.
        executor_options: over the suite's ``executor_options`` (``address``, ``retries``, ...).
        resources: per-cell resources over the suite's (``gpus``, ``cpus``, ``mem``, ``time``, ...).
        detach: submit the cells and return at once (``{"detached": N}``); the same call later collects them.
    """
    from ..zoo.plugins import load_zoo
    from .provenance import provenance
    from .report import write_outputs
    from .runindex import record

    zoo = zoo or load_zoo()
    suite = load_suite(suite_name, data_root)
    out = Path(out)
    cells, refs = expand_all(suite, zoo, out)
    executor, options = drive.executor_choice(suite, executor, executor_options)
    remote = drive.open_executor(executor, options, zoo, detach)  # a missing extra fails now, before any teacher
    adopt_legacy_cells(cells, zoo, log, refs)
    runnable = [c for c in cells if not c.missing]
    # two spellings of one effective config share a key: run it once, both rows read its result
    todo = list({c.key: c for c in runnable if cell_summary(c) is None}.values())
    log(f"bench {suite['name']}: {len(cells)} cells, {len(cells) - len(todo) - (len(cells) - len(runnable))} reused, "
        f"{len(todo)} to run, {len(cells) - len(runnable)} skipped (not installed)"
        + (f"; {len(refs)} reference rows" if refs else ""))
    _prepare_teachers(todo, zoo, log)
    errors: dict[str, str] = {}
    busy: list[Cell] = []
    started = time.time()
    bar = None
    if progress:  # one line for the whole suite: reused cells count as done
        from ..progress import bench_progress

        bar = bench_progress(len(runnable), len(runnable) - len(todo), f"bench {suite['name']}")
    try:
        if remote is None:
            _run_cells(todo, jobs, bar, errors, busy)
        elif not drive.run_on_executor(remote, todo, out, options, resources or {}, bar, errors, detach=detach, log=log):
            return {"suite": suite["name"], "detached": len(todo), "rows": [], "failed": []}
    finally:
        if bar is not None:
            bar.close()
        if remote is not None:
            remote.close()
    for cell in busy:  # claimed by another bench on the same folder: wait for it, then take its result
        from .claims import Claim

        log(f"cell {cell.label} is being run by another process; waiting for it")
        with Claim(Path(cell.config.out) / f"{cell.key}.claim", wait=True):
            pass
        if cell_summary(cell) is None:
            errors[cell.key] = "the other process running it stopped without a result; run the bench again"
    for ref in refs:
        if not ref.missing and reference_result(ref) is None:
            if bar is None:
                log(f"reference {ref.name}: {ref.task} | {ref.pair}")
            try:
                _run_reference(ref, zoo, log)
            except ConfigError as exc:
                errors[ref.key] = str(exc)
    timings = _timing_pass(cells, zoo)
    results = collect(suite, cells, errors, timings, refs)
    results["elapsed_seconds"] = time.time() - started
    results["provenance"] = provenance()
    write_outputs(results, out)
    failed = [r for r in results["rows"] if str(r.get("status", "")).startswith("failed")]
    results["failed"] = failed
    record("bench", out, {"suite": suite["name"], "cells": len(cells), "ran": len(todo), "failed": len(failed)},
           state="failed" if failed else "done")
    log(f"bench {suite['name']}: results in {out} (report: {out / 'report.html'})")
    return results


def list_cells(suite_name: str, out: str | Path, zoo: Any = None, data_root: str | None = None,
               status: bool = False, executor: str | None = None, executor_options: dict | None = None) -> str:
    """The cells of a suite, one per line with its key and state (``done``: reused; ``to run``; ``skipped``).

    Nothing is trained or loaded: the suite is expanded and validated, and each cell's directory looked
    up (finished cells under their previous key move to their key, :func:`adopt_legacy_cells`).
    ``status``: cells submitted to a scheduler show as queued or running with their job or task id, and
    failed cells as failed (``--status``).
    """
    from ..zoo.plugins import load_zoo

    suite = load_suite(suite_name, data_root)
    zoo = zoo or load_zoo()
    cells, refs = expand_all(suite, zoo, Path(out))
    adopt_legacy_cells(cells, zoo, refs=refs)
    lines = []
    cell_states = ["skipped (not installed)" if c.missing else "done" if cell_summary(c) is not None else "to run"
                   for c in cells]
    name, options = drive.executor_choice(suite, executor, executor_options)
    if name not in zoo.collect().executors:
        raise unknown("executor", name, zoo.collect().executors)
    if status:
        remote = drive.open_executor(name, options, zoo)
        try:
            cell_states = drive.cell_states(cells, Path(out), remote, lambda c: cell_summary(c) is not None)
        finally:
            if remote is not None:
                remote.close()
    ref_states = ["skipped (not installed)" if r.missing else "done" if reference_result(r) else "to run" for r in refs]
    lines += [f"{c.key}  {c.label}  [{state}]" for c, state in zip(cells, cell_states)]
    lines += [f"{r.key}  {r.task} | {r.pair} | {r.variant}  [{state}]" for r, state in zip(refs, ref_states)]

    def counts(states: list[str]) -> str:
        kinds = [state.split(" (")[0] if state.startswith(("queued", "running", "failed")) else state
                 for state in states]
        return ", ".join(f"{kinds.count(s)} {s}" for s in ("done", "queued", "running", "failed", "to run",
                                                             "skipped (not installed)")
                         if kinds.count(s) or s in ("done", "to run", "skipped (not installed)"))

    lines.append(f"bench {suite['name']}: {len(cells)} cells ({counts(cell_states)})"
                 + (f"; {len(refs)} reference rows ({counts(ref_states)})" if refs else ""))
    return "\n".join(lines)


def reference_result(ref: Reference) -> dict[str, Any] | None:
    path = Path(ref.config.out) / f"{ref.key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _run_reference(ref: Reference, zoo: Any, log) -> dict[str, Any]:
    """Compute one reference row with the task's (cached) teacher; written atomically, reused on re-runs."""
    from ..train.checkpoint import write_text
    from ..train.runs import task_teacher

    teacher, bundle, splits = task_teacher(ref.config, zoo, log=lambda *a, **k: None)
    result = dict(zoo.reference(ref.name).obj(teacher, bundle, splits))
    if not isinstance(result.get("test_acc"), (int, float)):
        raise ConfigError(f"reference {ref.name!r} returned no numeric 'test_acc' (got keys {sorted(result)})")
    result["labelled"] = int(len(splits.labelled))
    write_text(Path(ref.config.out) / f"{ref.key}.json", json.dumps(result, indent=2, default=float))
    return result


def _prepare_teachers(cells: list[Cell], zoo: Any, log) -> None:
    """Train or load each distinct teacher once, before any cell (and any worker) needs it."""
    from ..train.runs import task_teacher
    from ..train.teacher import teacher_key

    seen = set()
    for cell in cells:
        if cell.config.teacher is None or cell.config.teacher.checkpoint:
            continue
        key = teacher_key(cell.config)
        if key in seen:
            continue
        seen.add(key)
        task_teacher(cell.config, zoo, log=log)


def _timing_pass(cells: list[Cell], zoo: Any) -> dict[str, dict[str, float]]:
    """Inference latency per (task, pair, variant), measured serially after every cell has run.

    Training cost needs no re-run: it is each cell's own process CPU time per optimiser step (one
    thread per cell), which cells running side by side do not inflate as they inflate wall time. A
    short serial re-run would misstate strategies whose cost is front-loaded (DeepInversion's
    inversion rounds all fall into the first steps of a short run).
    """
    import torch

    from ..train.checkpoint import write_text
    from ..data import load_dataset, to_float
    from .metrics import latency_ms
    from ..models.wrapper import load_model

    timings: dict[str, dict[str, float]] = {}
    samples: dict[tuple, Any] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cell in cells:
            group = f"{cell.task}|{cell.pair}|{cell.variant}"
            if group in timings or cell_summary(cell) is None:
                continue
            # measured once per cell and kept beside it: a re-run with nothing changed loads no model or data
            saved = Path(cell.config.out) / cell.key / f"seed-{cell.seed}" / "latency.json"
            try:
                timings[group] = {"latency_ms": float(json.loads(saved.read_text())["latency_ms"])}
                continue
            except (OSError, ValueError, KeyError, TypeError):
                pass
            model = load_model(saved.with_name("student.safetensors"), zoo)
            data = (cell.config.data.name, cell.config.data.root)
            if data not in samples:  # loading a dataset costs seconds (mnist5k); once per dataset
                samples[data] = to_float(load_dataset(*data, zoo).x[:1])
            timings[group] = {"latency_ms": latency_ms(model, samples[data])}
            write_text(saved, json.dumps(timings[group]))
    finally:
        torch.set_num_threads(threads)
    return timings


def collect(suite: dict, cells: list[Cell], errors: dict[str, str], timings: dict,
            refs: list[Reference] = ()) -> dict[str, Any]:
    """Per-cell rows plus per-variant aggregates with the paired verdict against ``ce``."""
    from ..zoo.registry import install_hint, load_registry
    from .report import read_curve

    catalog = load_registry().get("strategies", {})
    ref_rows = []
    for ref in refs:
        row: dict[str, Any] = {"task": ref.task, "pair": ref.pair, "variant": ref.variant, "seed": None,
                               "key": ref.key, "kind": "reference", "teacher": ref.config.teacher.name,
                               "student": None}
        result = reference_result(ref)
        if ref.missing:
            hint = install_hint(load_registry().get("references", {}).get(ref.name, {}).get("plugin"))
            row["status"] = f"skipped: reference {ref.name} not installed (pip install {hint})"
        elif result is None:
            row["status"] = f"failed: {errors.get(ref.key, 'no result')}"
        else:
            row.update(status="ok", test_best_acc=result["test_acc"], val_best_acc=result.get("val_acc"),
                       student_params=result.get("params"), latency_ms=result.get("ms_per_image"))
        ref_rows.append(row)
    rows = []
    for cell in cells:
        row = {"task": cell.task, "pair": cell.pair, "variant": cell.variant, "seed": cell.seed, "key": cell.key,
               "teacher": cell.config.teacher.name if cell.config.teacher else None, "student": cell.config.student.name}
        if cell.published:
            row["published"] = cell.published
        if cell.tuned:
            row["tuned"] = cell.tuned
        summary = cell_summary(cell)
        if cell.missing:
            hints = dict.fromkeys(install_hint(catalog.get(m, {}).get("plugin")) for m in cell.missing)
            row["status"] = f"skipped: {', '.join(cell.missing)} not installed (pip install {' '.join(hints)})"
        elif summary is None:
            error = errors.get(cell.key, "no result")
            row["status"] = error if error.startswith(NOT_APPLICABLE) else f"failed: {error}"
        else:
            row["status"] = "ok"
            for split in ("test_best", "test_last", "val_best"):
                for k, v in (summary.get(split) or {}).items():
                    row[f"{split}_{k}"] = v
            for k, v in (summary.get("test_teacher") or {}).items():
                row[k] = v
            row.update(student_params=summary["student_params"], flops=summary.get("student_flops"),
                       extra_params=summary["strategy_params"], train_seconds=summary.get("train_seconds"),
                       cpu_seconds=summary["cpu_seconds"], steps=summary["steps"])
            train_cpu = summary.get("train_cpu_seconds", summary["cpu_seconds"])
            row.update(train_cpu_seconds=train_cpu, ms_per_step=train_cpu / max(1, summary["steps"]) * 1000)
            row.update(timings.get(f"{cell.task}|{cell.pair}|{cell.variant}", {}))
            curve = read_curve(Path(cell.config.out) / cell.key / f"seed-{cell.seed}" / "metrics.jsonl",
                               "acc" if "acc" in (summary.get("test_best") or {}) else "mse")
            if curve:
                row["curve"] = curve
            meta = _teacher_meta(cell)
            if meta:
                row["teacher_test"] = (meta.get("test") or {})
        rows.append(row)
    rows.extend(ref_rows)  # after the strategies, in the table as in the plots
    from .report import aggregate

    return {"suite": suite.get("name"), "versions": versions(), "rows": rows, "summary": aggregate(rows)}


def _teacher_meta(cell: Cell) -> dict | None:
    path = Path(cell.config.out).parent / "cells" / cell.key / "summary.json"
    if not path.exists():
        return None
    teacher = json.loads(path.read_text()).get("teacher") or {}
    return teacher.get("meta")
