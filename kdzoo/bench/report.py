"""A results folder: ``results.json``, ``results.csv``, ``results.md``, its plots and ``report.html``.

``results.json`` is the source of the rest (``kdzoo report`` rebuilds the page from it). Its fields:

- ``suite``, ``title`` (optional), ``notes`` (optional Markdown prose shown under the header);
- ``provenance``: ``command``, ``date`` (UTC), ``host``, ``git_commit`` and ``versions`` (every
  distribution), see :mod:`kdzoo.bench.provenance`;
- ``rows``: one per cell (task, pair, variant, seed, key, status and every measured number); a tuned
  cell carries ``tuned`` (``true`` or ``{trials, pruned, study, params}``) and a cell with a recorded
  learning curve ``curve`` (``{metric, split, step: [...], value: [...]}``);
- ``summary``: per (task, pair, variant) the mean ± std over seeds, the costs, the ``tuned`` marker, the
  mean curve and ``vs_ce``, the paired verdict against ``ce`` with its Holm family
  (:meth:`kdzoo.bench.metrics.Comparison.to_dict`); ``holm_families``: per task, how many rows its
  Holm correction spans. An entry with ``"source": "table"`` was read from a
  published table whose per-seed numbers were not kept; a summary holding one is never recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..contract.errors import ConfigError
from .metrics import compare, holm_correct, mean_std
from .page import html_report
from .plots import plots
from .tables import markdown, tuned_info, verdict_note
from .tuned import baseline_variant


def _metric(rows: list[dict]) -> tuple[str, bool]:
    ok = [r for r in rows if r.get("status") == "ok" and r.get("kind") != "reference"]
    if ok and "test_best_mse" in ok[0]:
        return "mse", False
    return "acc", True


def aggregate(rows: list[dict]) -> list[dict[str, Any]]:
    """Mean ± std per (task, pair, variant) and the paired verdict against ``ce``.

    Each variant is compared with the ``ce`` row of its task and pair (:func:`kdzoo.bench.metrics.compare`);
    the p-values of all rows of one task are then Holm-corrected together, so the chance of any false
    "beats" in a task stays at 5%. Rows whose status starts with "not applicable" get no verdict.
    """
    verdicts: dict[str, list[tuple[dict, Any]]] = defaultdict(list)  # task -> (entry, comparison)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["pair"], r["variant"])].append(r)
    out = []
    for (task, pair, variant), members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        entry: dict[str, Any] = {"task": task, "pair": pair, "variant": variant, "seeds": len(ok),
                                 "status": "ok" if ok else members[0].get("status")}
        if members[0].get("kind") == "reference":
            # one measurement, no seeds and no verdict: shown beside the students for scale
            entry.update(kind="reference", seeds=0, metric="acc")
            if ok:
                for col in ("test_best_acc", "val_best_acc", "student_params", "latency_ms"):
                    if ok[0].get(col) is not None:
                        entry[col] = ok[0][col]
            out.append(entry)
            continue
        if ok:
            metric, higher = _metric(ok)
            entry["metric"] = metric
            for col in (f"test_best_{metric}", f"test_last_{metric}", "test_best_nll", "test_best_ece", "agreement",
                        "train_seconds", "train_cpu_seconds", "ms_per_step"):
                vals = [r[col] for r in ok if r.get(col) is not None]
                if vals:
                    entry[col] = mean_std(vals)
            for col in ("student_params", "flops", "extra_params", "latency_ms"):
                if ok[0].get(col) is not None:
                    entry[col] = ok[0][col]
            teacher = ok[0].get("teacher_test") or {}
            if metric in teacher:
                entry["teacher"] = teacher[metric]
            tuned = tuned_info(members[0].get("tuned"))
            if tuned is not None:
                entry["tuned"] = tuned
            curve = mean_curve([r.get("curve") for r in ok])
            if curve:
                entry["curve"] = curve
            if members[0].get("published"):  # a paper's number for this row, shown beside the measured one
                entry["published"] = members[0]["published"]
            baseline = baseline_variant(rows, task, pair, members[0].get("tuned"))  # a tuned row: the tuned ce
            base = [r for r in rows if r["task"] == task and r["pair"] == pair and r["variant"] == baseline and r.get("status") == "ok"]
            not_applicable = any(str(r.get("status", "")).startswith("not applicable") for r in members)
            if variant != baseline and base and not not_applicable:
                c = compare({r["seed"]: r[f"test_best_{metric}"] for r in ok},
                            {r["seed"]: r[f"test_best_{metric}"] for r in base}, higher)
                verdicts[task].append((entry, c))
        out.append(entry)
    for members in verdicts.values():
        corrected = holm_correct([c for _, c in members])
        for (entry, _), c in zip(members, corrected):
            entry["vs_ce"] = c.to_dict()
    return out




def mean_curve(curves: list[dict | None]) -> dict[str, Any] | None:
    """The mean over seeds of per-seed learning curves, at the steps every seed recorded; None without curves."""
    curves = [c for c in curves if c and c.get("step")]
    if not curves:
        return None
    common = set(curves[0]["step"]).intersection(*(c["step"] for c in curves[1:]))
    steps = sorted(common)
    by_seed = [dict(zip(c["step"], c["value"])) for c in curves]
    return {"metric": curves[0].get("metric", "acc"), "split": curves[0].get("split", "val"), "seeds": len(curves),
            "step": steps, "value": [sum(s[t] for s in by_seed) / len(by_seed) for t in steps]}


def read_curve(metrics_jsonl: Path, metric: str) -> dict[str, Any] | None:
    """A run's validation curve from its ``metrics.jsonl`` (the last record of a step wins after a resume)."""
    try:
        lines = metrics_jsonl.read_text().splitlines()
    except OSError:
        return None
    points: dict[int, float] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut by a kill mid-write
            continue
        value = record.get(f"val/{metric}")
        if isinstance(value, (int, float)) and isinstance(record.get("step"), int):
            points[record["step"]] = float(value)
    if not points:
        return None
    steps = sorted(points)
    return {"metric": metric, "split": "val", "step": steps, "value": [points[t] for t in steps]}


def holm_families(summary: list[dict]) -> dict[str, int]:
    """Per task, the number of rows whose p-values were Holm-corrected together."""
    return {e["task"]: e["vs_ce"]["family"] for e in summary if (e.get("vs_ce") or {}).get("family")}


CSV_NESTED = {"teacher_test": "teacher_test_"}
"""Dict columns flattened into the CSV (``teacher_test.acc`` -> ``teacher_test_acc``); other dicts stay in JSON."""


def csv_rows(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """The cells as flat CSV rows: scalars as they are, the teacher's test metrics flattened, the rest left out."""
    flat = []
    for r in rows:
        out = {k: v for k, v in r.items() if not isinstance(v, (dict, list, tuple))}
        for key, prefix in CSV_NESTED.items():
            for k, v in (r.get(key) or {}).items():
                out[prefix + k] = v
        if isinstance(r.get("tuned"), dict):  # a tuned cell's marker survives in the CSV as its counts
            out["tuned"] = True
            out.update({f"tuned_{k}": r["tuned"][k] for k in ("trials", "pruned") if k in r["tuned"]})
        flat.append(out)
    return sorted({k for r in flat for k in r}), flat


def rows_from_csv(text: str) -> list[dict]:
    """Cells read back from ``results.csv``: numbers as numbers, empty cells dropped, the teacher's metrics nested."""
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {}
        for k, v in raw.items():
            if v is None or v == "":
                continue
            row[k] = _number(v) if k not in ("task", "pair", "variant", "key", "status", "kind", "teacher",
                                              "student") else v
        for key, prefix in CSV_NESTED.items():
            nested = {k[len(prefix):]: row.pop(k) for k in list(row) if k.startswith(prefix)}
            if nested:
                row[key] = nested
        if row.get("tuned") in ("True", "true", True, 1):
            row["tuned"] = {k: row.pop(f"tuned_{k}") for k in ("trials", "pruned") if f"tuned_{k}" in row}
        rows.append(row)
    return rows


def _number(v: str) -> Any:
    try:
        n = float(v)
    except ValueError:
        return v
    return int(n) if n.is_integer() and "." not in v and "e" not in v.lower() else n


def paths(target: str | Path) -> tuple[Path, str]:
    """The folder and the stem of a results page: a bench folder means ``results``, ``x/breadth.json`` ``breadth``."""
    target = Path(target)
    if target.suffix == ".json":
        return target.parent, target.stem
    return target, "results"


def write_outputs(results: dict[str, Any], out: Path, name: str = "results") -> dict[str, tuple[str, bytes]]:
    """Write every output of a results page into ``out``, each atomically; returns the plots.

    ``name`` is the stem: ``results`` writes ``results.json``, ``results.csv``, ``results.md``,
    ``accuracy_0.png``... and ``report.html``; any other stem (a second page in one folder, e.g.
    ``breadth``) writes ``breadth.json``, ``breadth.csv``, ``breadth.md``, ``breadth-accuracy_0.png``...
    and ``breadth.html``.
    """
    out.mkdir(parents=True, exist_ok=True)
    prefix = "" if name == "results" else f"{name}-"
    results = dict(results, holm_families=holm_families(results["summary"]))  # stated once for readers of the JSON
    write_text(out / f"{name}.json", json.dumps(results, indent=2, default=_json_default))
    keys, flat = csv_rows(results["rows"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    write_text(out / f"{name}.csv", buf.getvalue())
    images = plots(results, prefix)
    ours = re.compile(rf"{re.escape(prefix)}(accuracy|time|cost|curves)_\d+\.png")
    for old in out.glob("*.png"):  # this page's plots of a previous layout (time_0.png) or of fewer sections
        if ours.fullmatch(old.name) and old.name not in images:
            old.unlink()
    for file, (_, data) in images.items():
        (out / file).write_bytes(data)
    write_text(out / f"{name}.md", markdown(results, images))
    write_text(out / ("report.html" if name == "results" else f"{name}.html"), html_report(results, images))
    return images


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


def rebuild(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with its summary recomputed from the cells, by the current rule (also for older benches).

    A summary read from a published table (entries with ``"source": "table"``) is kept as it is: its
    per-seed numbers are not there to recompute it from.
    """
    if any(e.get("source") == "table" for e in results.get("summary", [])):
        return results
    return dict(results, summary=aggregate(results["rows"]))


def open_report(target: str | Path, open_browser: bool = True) -> Path:
    """Rebuild a results page from its JSON and return the HTML path (opened in a browser if one exists).

    The summary and its verdicts are recomputed from the per-cell rows. No browser is opened with
    ``open_browser=False``, under CI (``$CI`` set) or on a Linux machine with no display.

    Args:
        target: a bench folder (its ``results.json``) or a results JSON file (``breadth.json``).
        open_browser: False to only write the files.
    """
    folder, name = paths(target)
    path = folder / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"{str(target)!r} has no {name}.json (not a kdzoo bench directory or results file)")
    try:
        results = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{str(path)!r} is damaged (not JSON); run the same kdzoo bench command again to rewrite "
                          "it") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise ConfigError(f"{str(path)!r} is not a kdzoo results file (no 'rows' list)")
    write_outputs(rebuild(results), folder, name)
    report = folder / ("report.html" if name == "results" else f"{name}.html")
    if open_browser and can_open_browser():
        try:
            import webbrowser  # only when a page is to be opened

            webbrowser.get()
            webbrowser.open(report.resolve().as_uri())
        except Exception:  # noqa: BLE001 - headless: printing the path is enough
            pass
    return report


__all__ = ["aggregate", "csv_rows", "holm_families", "html_report", "markdown", "mean_curve", "open_report",
           "read_curve", "rebuild", "rows_from_csv", "verdict_note", "write_outputs", "can_open_browser"]


def can_open_browser() -> bool:
    """Whether a browser could show a page here: not under CI, and on Linux only with a display."""
    if os.environ.get("CI"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True
