"""``kdzoo bench``: strategies side by side on the same teacher, data, seeds and budget.

A suite (in ``registry.yaml`` or a YAML file) is a list of tasks; a task names its data, label
budget, teacher/student pairs, strategy variants, seeds and step budget. Every (task, pair,
variant, seed) is a *cell*: an ordinary ``kdzoo distill`` run whose directory is named by the hash
of its effective config (each strategy's full parameters) and code (kdzoo/torch/timm versions, each
member's distribution version and source hash; see :mod:`kdzoo.train.effective`), so a finished cell is
never run again and a change to a default, preset, plugin or loss re-runs exactly the cells it touches.
Teachers are trained once per suite (kdzoo's teacher cache).

Expanding a suite into keyed cells lives in :mod:`kdzoo.bench.cells`, reading and collecting their
results in :mod:`kdzoo.bench.cell_results`; this module drives a suite: it runs the cells (here, in
worker processes or on an executor), the reference rows and the latency pass, and writes the results.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..contract.errors import ConfigError, NotApplicable, unknown
from .cell_results import adopt_legacy_cells, cell_summary, collect, reference_result
from .cells import (Cell, Reference, expand, expand_all, load_suite, pair_name, published_numbers, task_settings,
                    variant_name)
from .executors import NOT_APPLICABLE, drive, with_builtin_executors
from .executors.cell import run_cell as _run_cell
from ..contract.errors import Interrupted
from ..data import load_dataset, to_float
from ..models.wrapper import load_model
from ..progress import bench_progress
from ..train.checkpoint import write_text
from ..train.runs import task_teacher
from ..train.teacher import teacher_key
from ..zoo.plugins import load_zoo
from .claims import Claim, exit_with_parent
from .metrics import latency_ms
from .provenance import provenance
from .report import write_outputs
from .runindex import record

# run_bench and list_cells, then the names this module held before cells.py and cell_results.py took them
# (re-exported: code and scripts import them from here)
__all__ = ["run_bench", "list_cells", "Cell", "Reference", "expand", "expand_all", "load_suite", "task_settings",
           "pair_name", "variant_name", "published_numbers", "adopt_legacy_cells", "cell_summary", "collect",
           "reference_result"]


def _worker_init(parent_pid: int) -> None:
    """A bench worker: exits with its bench; Ctrl-C reaches it through the bench (which SIGTERMs its
    workers so each checkpoints), not directly as a KeyboardInterrupt mid-queue."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _run_cells(todo: list[Cell], jobs: int, bar, errors: dict[str, str], busy: list[Cell]) -> None:
    """Run cells serially or in ``jobs`` worker processes; record failures, never raise for one.

    With workers, a SIGINT/SIGTERM to the bench stops every worker (each saves a checkpoint, then
    is killed if it does not exit within a grace period) before the bench itself stops.
    """
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
    suite = load_suite(suite_name, data_root)
    zoo = zoo or load_zoo()
    cells, refs = expand_all(suite, zoo, Path(out))
    adopt_legacy_cells(cells, zoo, refs=refs)
    lines = []
    cell_states = ["skipped (not installed)" if c.missing else "done" if cell_summary(c) is not None else "to run"
                   for c in cells]
    name, options = drive.executor_choice(suite, executor, executor_options)
    if name not in with_builtin_executors(zoo).collect().executors:
        raise unknown("executor", name, zoo.executors)
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


def _run_reference(ref: Reference, zoo: Any, log) -> dict[str, Any]:
    """Compute one reference row with the task's (cached) teacher; written atomically, reused on re-runs."""
    teacher, bundle, splits = task_teacher(ref.config, zoo, log=lambda *a, **k: None)
    result = dict(zoo.reference(ref.name).obj(teacher, bundle, splits))
    if not isinstance(result.get("test_acc"), (int, float)):
        raise ConfigError(f"reference {ref.name!r} returned no numeric 'test_acc' (got keys {sorted(result)})")
    result["labelled"] = int(len(splits.labelled))
    write_text(Path(ref.config.out) / f"{ref.key}.json", json.dumps(result, indent=2, default=float))
    return result


def _prepare_teachers(cells: list[Cell], zoo: Any, log) -> None:
    """Train or load each distinct teacher once, before any cell (and any worker) needs it."""
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
