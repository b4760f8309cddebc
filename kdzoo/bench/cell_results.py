"""A bench's cell results: which cells have finished, and the rows and summary built from them.

It owns reading a finished cell's (or reference row's) result, adopting finished cells stored under a
previous key, and :func:`collect`: one row per cell and reference row (status, metrics, curve, the
teacher's test metrics) plus the per-variant aggregates with the paired verdict against ``ce``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..train.effective import versions
from .cells import Cell, Reference, _reference_key
from .executors import NOT_APPLICABLE
from ..train.effective import legacy_cell_keys
from ..train.run_dir import read_seed_summary
from ..zoo.registry import install_hint, load_registry
from .report import aggregate, read_curve


def adopt_legacy_cells(cells: list[Cell], zoo: Any, log=None, refs: list[Reference] = ()) -> int:
    """Finished cells stored under a previous key (:func:`kdzoo.train.effective.legacy_cell_keys`: the
    same config and code, keyed in an earlier format) move to their key, so a bench keeps its results
    across key changes; so do reference rows keyed by their data's path. Returns how many moved."""
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
    return read_seed_summary(Path(cell.config.out) / cell.key / f"seed-{cell.seed}" / "summary.json")


def reference_result(ref: Reference) -> dict[str, Any] | None:
    path = Path(ref.config.out) / f"{ref.key}.json"
    return json.loads(path.read_text()) if path.exists() else None



def collect(suite: dict, cells: list[Cell], errors: dict[str, str], timings: dict,
            refs: list[Reference] = ()) -> dict[str, Any]:
    """Per-cell rows plus per-variant aggregates with the paired verdict against ``ce``."""
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

    return {"suite": suite.get("name"), "versions": versions(), "rows": rows, "summary": aggregate(rows)}


def _teacher_meta(cell: Cell) -> dict | None:
    path = Path(cell.config.out).parent / "cells" / cell.key / "summary.json"
    if not path.exists():
        return None
    teacher = json.loads(path.read_text()).get("teacher") or {}
    return teacher.get("meta")
