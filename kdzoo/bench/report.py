"""Bench outputs: results.csv/json, a Markdown table, plots and one self-contained HTML report."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..train.checkpoint import write_text
from .metrics import ALPHA, MIN_SEEDS, compare, holm_correct, mean_std
from .plots import plots


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
            if members[0].get("published"):  # a paper's number for this row, shown beside the measured one
                entry["published"] = members[0]["published"]
            base = [r for r in rows if r["task"] == task and r["pair"] == pair and r["variant"] == "ce" and r.get("status") == "ok"]
            not_applicable = any(str(r.get("status", "")).startswith("not applicable") for r in members)
            if variant != "ce" and base and not not_applicable:
                c = compare({r["seed"]: r[f"test_best_{metric}"] for r in ok},
                            {r["seed"]: r[f"test_best_{metric}"] for r in base}, higher)
                verdicts[task].append((entry, c))
        out.append(entry)
    for members in verdicts.values():
        corrected = holm_correct([c for _, c in members])
        for (entry, _), c in zip(members, corrected):
            entry["vs_ce"] = c.to_dict()
    return out


def holm_families(summary: list[dict]) -> dict[str, int]:
    """Per task, the number of rows whose p-values were Holm-corrected together."""
    return {e["task"]: e["vs_ce"]["family"] for e in summary if (e.get("vs_ce") or {}).get("family")}


def verdict_cell(v: dict[str, Any]) -> str:
    """The "vs ce" table cell: verdict, mean difference with its 95% CI, Holm-adjusted p and wins."""
    if v["verdict"] == "identical":
        return f"identical ({v['n']}/{v['n']} seeds equal)"
    head = f"{v['verdict']} ({v['mean_diff']:+.2f}"
    if v.get("ci_low") is not None:
        head += f" [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]"
    if v.get("p_adjusted") is not None:
        head += f", p {_p(v['p_adjusted'])}"
    elif v.get("p") is not None:
        head += f", p {_p(v['p'])} uncorrected"
    return head + f", {v['wins']}/{v['n']})"


def _p(v: float) -> str:
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def verdict_note(summary: list[dict], escape=lambda s: s) -> str:
    """The sentence under a table that says how 'vs ce' was decided, with the Holm family per task."""
    families = holm_families(summary)
    per_task = "; ".join(f"{escape(task)}: Holm-corrected over {n} row{'s' if n > 1 else ''}"
                         for task, n in families.items())
    return ("'vs ce' is a one-sided paired t-test of the row against ce over seeds (Student's t, n−1 degrees of "
            f"freedom, α = {ALPHA}): the verdict, the mean paired difference (positive: better than ce, also for "
            "lower-is-better metrics) with its 95% confidence interval, the p-value and the seeds won. Within a "
            f"task the p-values are Holm-corrected over the rows compared with ce ({per_task or 'no row tested'}); "
            f"the p shown is the adjusted one. Fewer than {MIN_SEEDS} paired seeds read 'too few seeds', "
            "bit-identical results 'identical'; neither is a win.")


def _mean(v: Any) -> Any:
    """The mean of a ``(mean, std)`` pair, or ``v`` itself."""
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 2 else v


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


COLUMNS = [("task", "task"), ("pair", "teacher -> student"), ("variant", "strategy"), ("seeds", "seeds"),
           ("best", "test (val-selected)"), ("paper", "paper"), ("last", "test (last)"), ("verdict", "vs ce"),
           ("agreement", "agree %"),
           ("test_best_ece", "ECE"), ("student_params", "params"), ("flops", "FLOPs"), ("latency_ms", "ms/img"),
           ("ms_per_step", "train CPU ms/step"), ("extra_params", "extra params")]


def table_rows(summary: list[dict]) -> list[dict[str, str]]:
    rows = []
    teachers_done = set()
    for e in summary:
        metric = e.get("metric", "acc")
        if "teacher" in e and (e["task"], e["pair"]) not in teachers_done:
            teachers_done.add((e["task"], e["pair"]))
            rows.append({"task": e["task"], "pair": e["pair"], "variant": "teacher", "best": _fmt(e["teacher"]),
                         "paper": _fmt((e.get("published") or {}).get("teacher"))})
        if e.get("kind") == "reference":
            rows.append({"task": e["task"], "pair": e["pair"], "variant": e["variant"],
                         "best": _fmt(e.get("test_best_acc")) if e["status"] == "ok" else e["status"],
                         "student_params": _fmt(e.get("student_params")), "latency_ms": _fmt(e.get("latency_ms"), 3)})
            continue
        verdict = verdict_cell(e["vs_ce"]) if "vs_ce" in e else ""
        rows.append({
            "task": e["task"], "pair": e["pair"], "variant": e["variant"], "seeds": str(e["seeds"]),
            "best": _fmt(e.get(f"test_best_{metric}")) if e["status"] == "ok" else e["status"],
            "paper": _fmt((e.get("published") or {}).get("row")), "last": _fmt(e.get(f"test_last_{metric}")), "verdict": verdict, "agreement": _fmt(e.get("agreement")),
            "test_best_ece": _fmt(e.get("test_best_ece"), 3), "student_params": _fmt(e.get("student_params")),
            "flops": _fmt(e.get("flops")), "latency_ms": _fmt(e.get("latency_ms"), 3),
            "ms_per_step": _fmt(_mean(e.get("ms_per_step")), 1), "extra_params": _fmt(e.get("extra_params")),
        })
    return rows


def columns(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """The table's columns: "paper" only when a suite stores published numbers for some row."""
    return [c for c in COLUMNS if c[0] != "paper" or any(r.get("paper") for r in rows)]


def markdown(results: dict[str, Any]) -> str:
    rows = table_rows(results["summary"])
    cols = columns(rows)
    head = "| " + " | ".join(t for _, t in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(r.get(k, "") for k, _ in cols) + " |\n" for r in rows)
    note = (f"\nMean ± std over seeds. {verdict_note(results['summary'])} '(reference)' rows are one "
            "measurement on the frozen teacher with the same labels (e.g. a probe on its features); their params "
            "and ms/img include the teacher.\n")
    return f"# Bench `{results['suite']}`\n\n" + head + body + note


def html_report(results: dict[str, Any], images: dict[str, tuple[str, bytes]]) -> str:
    """One self-contained page: per task a heading, its table and its plots (images inlined as data URIs)."""
    rows = table_rows(results["summary"])
    cols = columns(rows)
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    sections = []
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for i, task in enumerate(tasks):
        body = "".join("<tr>" + "".join(f"<td>{html.escape(r.get(k, ''))}</td>" for k, _ in cols) + "</tr>"
                       for r in rows if r["task"] == task)
        imgs = "".join(f'<img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                       for n, (t, b) in images.items() if t == task)
        sections.append(f'<section id="task-{i}"><h2>{html.escape(task)}</h2>'
                        f'<table class="task-table" data-task="{html.escape(task)}"><tr>{head}</tr>{body}</table>'
                        f"<div>{imgs}</div></section>")
    ver = html.escape(json.dumps(results.get("versions", {})))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>kdzoo bench {html.escape(str(results['suite']))}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
            "img{margin:6px;border:1px solid #ddd;max-width:100%}</style></head><body>"
            f"<h1>kdzoo bench <code>{html.escape(str(results['suite']))}</code></h1><p>versions: {ver}</p>"
            f"<p>Mean ± std over seeds. {verdict_note(results['summary'], html.escape)} '(reference)' rows are one "
            "measurement on the frozen teacher with the same labels; their params and ms/img include the teacher.</p>"
            f"{''.join(sections)}</body></html>")


def write_outputs(results: dict[str, Any], out: Path) -> None:
    """Write every output file of a bench into ``out`` (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    keys = sorted({k for r in results["rows"] for k in r if not isinstance(r[k], dict)})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results["rows"])
    write_text(out / "results.csv", buf.getvalue())
    write_text(out / "results.md", markdown(results))
    images = plots(results)
    for name, (_, data) in images.items():
        (out / name).write_bytes(data)
    write_text(out / "report.html", html_report(results, images))


def open_report(bench_dir: str | Path, open_browser: bool = True) -> Path:
    """Rebuild the report from ``results.json`` and return its path (opened in a browser if one exists).

    The summary and its verdicts are recomputed from the per-cell rows. No browser is opened with
    ``open_browser=False``, under CI (``$CI`` set) or on a Linux machine with no display.
    """
    from ..contract.errors import ConfigError

    path = Path(bench_dir) / "results.json"
    if not path.exists():
        raise ConfigError(f"{str(bench_dir)!r} has no results.json (not a kdzoo bench directory)")
    try:
        results = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{str(path)!r} is damaged (not JSON); run the same kdzoo bench command again to rewrite "
                          "it") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise ConfigError(f"{str(path)!r} is not a kdzoo bench result (no 'rows' list)")
    results["summary"] = aggregate(results["rows"])  # verdicts by the current rule, also for older benches
    write_outputs(results, Path(bench_dir))
    report = Path(bench_dir) / "report.html"
    if not (open_browser and can_open_browser()):
        return report
    try:
        import webbrowser

        webbrowser.get()
        webbrowser.open(report.resolve().as_uri())
    except Exception:  # noqa: BLE001 - headless: printing the path is enough
        pass
    return report


def can_open_browser() -> bool:
    """Whether a browser could show a page here: not under CI, and on Linux only with a display."""
    if os.environ.get("CI"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True
