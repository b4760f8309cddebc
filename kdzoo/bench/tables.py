"""The tables of a results page, one section per task and pair, and their Markdown.

A section holds what a reader compares side by side (strategy, seeds, test metric, the difference to
``ce`` and the verdict as a short word), the verdicts in full (95% CI, Holm-adjusted and raw p, seeds
won) for whoever asks, and the costs (params, FLOPs, latency, training CPU time) in a second table.
The HTML page (:mod:`kdzoo.bench.page`) renders the same sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .metrics import ALPHA, MIN_SEEDS
from .provenance import host_line


@dataclass(frozen=True)
class Column:
    """A table column: its row key, heading and kind (``text`` left-aligned, ``num`` right, ``verdict``)."""

    key: str
    title: str
    kind: str = "num"


VERDICT_WORDS = {"beats": "beats", "does not beat": "does not beat", "too few seeds": "too few seeds",
                 "identical": "identical"}
"""The verdict as shown in a table cell: the words of :data:`kdzoo.bench.metrics.VERDICTS`, never more."""


@dataclass
class Section:
    """One task and pair: its tables, the Holm family and the names of its plots."""

    index: int
    task: str
    pair: str
    metric: str
    main_columns: list[Column]
    main: list[dict[str, str]]
    cost_columns: list[Column]
    costs: list[dict[str, str]]
    detail_columns: list[Column]
    details: list[dict[str, str]]
    not_run: list[tuple[str, str]] = field(default_factory=list)  # (strategy, full status) of rows without a result
    family: int | None = None
    tuned: bool = False

    @property
    def heading(self) -> str:
        return f"{self.task}: {self.pair}"


def pairs_in_order(summary: list[dict]) -> list[tuple[str, str]]:
    """Every (task, pair) of a summary in first-seen order: the sections' and the plots' numbering."""
    return list(dict.fromkeys((e["task"], e["pair"]) for e in summary))


def tuned_info(value: Any) -> dict[str, Any] | None:
    """A row's ``tuned`` field as a dict (``{}`` for a bare ``True``), or None for a row at its defaults.

    The field (written by ``kdzoo tune`` into a tuned cell's row) is ``true`` or a dict with optional
    ``trials`` (trials run), ``pruned`` (of those, stopped early), ``study`` (where the study lives) and
    ``params`` (the selected values).
    """
    if not value:
        return None
    return dict(value) if isinstance(value, dict) else {}


def tuned_text(value: Any) -> str:
    """The "tuned" cell: ``40 trials, 12 pruned``, ``yes`` when the counts are unknown, empty at the defaults."""
    info = tuned_info(value)
    if info is None:
        return ""
    parts = []
    if info.get("trials") is not None:
        parts.append(f"{info['trials']} trial{'s' if info['trials'] != 1 else ''}")
    if info.get("pruned") is not None:
        parts.append(f"{info['pruned']} pruned")
    return ", ".join(parts) or "yes"


def p_text(v: float | None) -> str:
    if v is None:
        return ""
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def mean_text(v: Any, digits: int = 2, seeds: int | None = None, mark: bool = True) -> str:
    """``86.81 ± 0.42``; one seed (no spread to show) reads ``86.81 (1 seed)`` (``86.81`` without ``mark``)."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        if v[0] is None:
            return ""
        if seeds == 1 or v[1] is None:
            return f"{v[0]:.{digits}f}" + (" (1 seed)" if seeds == 1 and mark else "")
        return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def count_text(v: Any) -> str:
    """A count for reading: ``15,760``; from a million on ``1.23 M`` (the exact number stays in results.json)."""
    if v is None or v == "":
        return ""
    v = float(v)
    if abs(v) >= 1e9:
        return f"{v / 1e9:.2f} G"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M"
    return f"{v:,.0f}"


def _mean(v: Any) -> Any:
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 2 else v


def _short_status(status: str) -> str:
    """The first words of a status (``failed``, ``skipped``, ``not applicable``); the rest goes under the table."""
    return str(status).split(":", 1)[0]


MAIN_COLUMNS = [Column("strategy", "strategy", "text"), Column("seeds", "seeds"), Column("best", "test (val-selected)"),
                Column("paper", "paper"), Column("diff", "Δ vs ce"), Column("verdict", "vs ce", "verdict"),
                Column("tuned", "tuned", "text"), Column("last", "test (last)"), Column("agreement", "agree %"),
                Column("ece", "ECE")]
COST_COLUMNS = [Column("strategy", "strategy", "text"), Column("params", "params"),
                Column("extra_params", "extra params"), Column("flops", "FLOPs"), Column("latency_ms", "ms/img"),
                Column("cpu_seconds", "train CPU s/seed"), Column("ms_per_step", "CPU ms/step")]
DETAIL_COLUMNS = [Column("strategy", "strategy", "text"), Column("diff_ci", "mean Δ [95% CI]"),
                  Column("p_adjusted", "p (Holm-adjusted)"), Column("p", "p (unadjusted)"),
                  Column("wins", "seeds won")]
ALWAYS = {"strategy", "best"}


def _kept(columns: list[Column], rows: list[dict[str, str]]) -> list[Column]:
    """Columns with a value in some row (a regression task has no ECE, a suite without papers no "paper")."""
    return [c for c in columns if c.key in ALWAYS or any(r.get(c.key) for r in rows)]


def _metric_title(metric: str) -> str:
    return {"acc": "test acc %", "mse": "test MSE"}.get(metric, f"test {metric}")


def section(index: int, task: str, pair: str, entries: list[dict]) -> Section:
    """The section of one task and pair from its summary entries (:func:`kdzoo.bench.report.aggregate`)."""
    metric = next((e["metric"] for e in entries if e.get("metric") and e.get("kind") != "reference"), "acc")
    main, costs, details, not_run = [], [], [], []
    students = [e for e in entries if e.get("kind") != "reference"]
    references = [e for e in entries if e.get("kind") == "reference"]
    teacher = next((e["teacher"] for e in students if e.get("teacher") is not None), None)
    published = next((e["published"] for e in students if e.get("published")), {}) or {}
    if teacher is not None or published.get("teacher") is not None:
        main.append({"strategy": "teacher", "best": mean_text(teacher), "paper": mean_text(published.get("teacher")),
                     "verdict": "", "kind": "teacher"})
    family = None
    for e in students:
        ok = e.get("status") == "ok"
        verdict = e.get("vs_ce") or {}
        family = family or verdict.get("family")
        row = {"strategy": e["variant"], "tuned": tuned_text(e.get("tuned")), "seeds": str(e.get("seeds", "")),
               "best": mean_text(e.get(f"test_best_{metric}"), seeds=e.get("seeds")) if ok
               else _short_status(e.get("status", "")),
               "paper": mean_text((e.get("published") or {}).get("row")),
               "last": mean_text(e.get(f"test_last_{metric}"), seeds=e.get("seeds"), mark=False) if ok else "",
               "agreement": mean_text(e.get("agreement"), seeds=e.get("seeds"), mark=False),
               "ece": mean_text(e.get("test_best_ece"), 3, seeds=e.get("seeds"), mark=False), "kind": "student"}
        if e["variant"] == "ce" and ok:
            row["verdict"], row["verdict_class"] = "baseline", "baseline"
        elif verdict:
            row["verdict"], row["verdict_class"] = VERDICT_WORDS.get(verdict["verdict"], verdict["verdict"]), \
                verdict["verdict"].replace(" ", "-")
            row["diff"] = f"{verdict['mean_diff']:+.2f}"
            row["verdict_detail"] = verdict_detail(verdict)
            details.append(detail_row(e["variant"], verdict))
        if not ok:
            not_run.append((e["variant"], str(e.get("status", ""))))
        main.append(row)
        if ok:
            costs.append({"strategy": e["variant"], "params": count_text(e.get("student_params")),
                          "extra_params": count_text(e.get("extra_params")), "flops": count_text(e.get("flops")),
                          "latency_ms": mean_text(e.get("latency_ms"), 3),
                          "cpu_seconds": mean_text(e.get("train_cpu_seconds"), 1, seeds=e.get("seeds"), mark=False),
                          "ms_per_step": mean_text(_mean(e.get("ms_per_step")), 1)})
    for e in references:
        ok = e.get("status") == "ok"
        main.append({"strategy": e["variant"], "best": mean_text(e.get("test_best_acc")) if ok
                     else _short_status(e.get("status", "")), "verdict": "reference", "verdict_class": "reference",
                     "kind": "reference"})
        if ok:
            costs.append({"strategy": e["variant"], "params": count_text(e.get("student_params")),
                          "latency_ms": mean_text(e.get("latency_ms"), 3)})
        else:
            not_run.append((e["variant"], str(e.get("status", ""))))
    main_columns = [Column(c.key, _metric_title(metric) + " (val-selected)" if c.key == "best"
                           else _metric_title(metric) + " (last)" if c.key == "last" else c.title, c.kind)
                    for c in MAIN_COLUMNS]
    return Section(index, task, pair, metric, _kept(main_columns, main), main, _kept(COST_COLUMNS, costs), costs,
                   DETAIL_COLUMNS, details, not_run, family, any(r.get("tuned") for r in main))


def sections(summary: list[dict]) -> list[Section]:
    """One :class:`Section` per task and pair, in the summary's order."""
    return [section(i, task, pair, [e for e in summary if e["task"] == task and e["pair"] == pair])
            for i, (task, pair) in enumerate(pairs_in_order(summary))]


def verdict_detail(v: dict[str, Any]) -> str:
    """The verdict in one line: mean difference, 95% CI, Holm-adjusted p (and the p of the row alone), wins."""
    if v["verdict"] == "identical":
        return f"identical: every paired difference is 0 ({v['n']}/{v['n']} seeds)"
    text = f"{v['verdict']}: Δ {v['mean_diff']:+.2f}"
    if v.get("ci_low") is not None:
        text += f" [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]"
    if v.get("p_adjusted") is not None:
        text += f", Holm-adjusted p {p_text(v['p_adjusted'])} over {v['family']} rows"
        if v.get("p") is not None:
            text += f" (unadjusted {p_text(v['p'])})"
    elif v.get("p") is not None:
        text += f", p {p_text(v['p'])} (not tested: {v['verdict']})" if v["verdict"] == "too few seeds" \
            else f", p {p_text(v['p'])} (not Holm-adjusted)"
    return text + f", {v['wins']}/{v['n']} seeds won"


def detail_row(variant: str, v: dict[str, Any]) -> dict[str, str]:
    ci = f" [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]" if v.get("ci_low") is not None else ""
    return {"strategy": variant, "diff_ci": f"{v['mean_diff']:+.2f}{ci}",
            "p_adjusted": p_text(v.get("p_adjusted")) or f"not tested ({v['verdict']})",
            "p": p_text(v.get("p")), "wins": f"{v['wins']}/{v['n']}"}


def verdict_note(summary: list[dict]) -> str:
    """How "vs ce" was decided, with each task's Holm family."""
    families = {e["task"]: e["vs_ce"]["family"] for e in summary if (e.get("vs_ce") or {}).get("family")}
    per_task = "; ".join(f"{task}: Holm-corrected over {n} row{'s' if n > 1 else ''}" for task, n in families.items())
    return (f"'vs ce' is a one-sided paired t-test of the row against ce over seeds (Student's t, n−1 degrees of "
            f"freedom, α = {ALPHA}); 'Δ vs ce' is the mean paired difference (positive: better than ce, also for "
            "lower-is-better metrics). Within a task the p-values of the rows compared with ce are Holm-corrected "
            f"together ({per_task or 'no row tested'}) and the verdict is decided by the Holm-adjusted p; the "
            "details under each table give the 95% confidence interval, the Holm-adjusted p, the unadjusted p "
            f"and the seeds won. Fewer than {MIN_SEEDS} paired seeds read 'too few seeds', bit-identical "
            "results 'identical'; neither is a win.")


REFERENCE_NOTE = ("'(reference)' rows are one measurement on the frozen teacher with the same labels (e.g. a probe "
                  "on its features); their params and ms/img include the teacher.")


def _md_table(columns: list[Column], rows: list[dict[str, str]], bold_beats: bool = True) -> str:
    def cell(row: dict[str, str], c: Column) -> str:
        text = str(row.get(c.key, "")).replace("|", "\\|")
        if c.kind == "verdict" and text == "beats" and bold_beats:
            return "**beats**"
        return text

    head = "| " + " | ".join(c.title for c in columns) + " |\n"
    rule = "|" + "|".join(":--" if c.kind != "num" else "--:" for c in columns) + "|\n"
    return head + rule + "".join("| " + " | ".join(cell(r, c) for c in columns) + " |\n" for r in rows)


def provenance_lines(results: dict[str, Any]) -> list[str]:
    """The header lines of a page: command, date, host, git commit and versions."""
    prov = results.get("provenance") or {}
    versions = prov.get("versions") or results.get("versions") or {}
    lines = []
    if prov.get("command"):
        lines.append(f"**Command**: `{prov['command']}`")
    facts = [f"**Date**: {prov['date']}" if prov.get("date") else None,
             f"**Host**: {host_line(prov.get('host'))}" if prov.get("host") else None,
             f"**Git commit**: `{prov['git_commit']}`" if prov.get("git_commit") else None]
    if any(facts):
        lines.append(" · ".join(f for f in facts if f))
    if versions:
        lines.append("**Versions**: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines


def markdown(results: dict[str, Any], images: dict[str, Any] | None = None) -> str:
    """The whole results page in Markdown: header, notes, then per task and pair its tables and plots.

    Args:
        results: a results dict (``summary`` and optionally ``provenance``, ``notes``, ``title``).
        images: file names of the plots written beside the page (``accuracy_0.png`` ...), linked per section.
    """
    summary = results["summary"]
    title = results.get("title") or f"Bench `{results.get('suite')}`"
    out = [f"# {title}\n"]
    header = provenance_lines(results)
    if header:
        out.append("  \n".join(header) + "\n")
    if results.get("notes"):
        out.append(results["notes"].strip() + "\n")
    out.append(f"Mean ± std over seeds. {verdict_note(summary)} {REFERENCE_NOTE}\n")
    for s in sections(summary):
        out.append(f"## {s.task}\n\n{s.pair}\n")
        out.append(_md_table(s.main_columns, s.main))
        if s.details:
            family = f", Holm over {s.family} rows" if s.family else ""
            out.append(f"<details><summary>vs ce in full (95% CI, p{family}, seeds won)</summary>\n\n"
                       + _md_table(s.detail_columns, s.details) + "\n</details>\n")
        if s.not_run:
            out.append("\n".join(f"- {name}: {status}" for name, status in s.not_run) + "\n")
        if s.costs and len(s.cost_columns) > 1:  # a table of names alone says nothing
            out.append("Costs (params and FLOPs of the student; training CPU time per seed, one thread):\n\n"
                       + _md_table(s.cost_columns, s.costs))
        plots = [name for name in (images or {}) if _plot_index(name) == s.index]
        if plots:
            out.append(" ".join(f"[![{_plot_title(n)}]({n})]({n})" for n in plots) + "\n")
    return "\n".join(out)


def _plot_index(name: str) -> int | None:
    stem = name.rsplit(".", 1)[0]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _plot_title(name: str) -> str:
    kind = name.rsplit("/", 1)[-1].rsplit("_", 1)[0].rsplit("-", 1)[-1]
    return {"accuracy": "test metric per strategy", "cost": "test metric versus training CPU time",
            "curves": "validation curves"}.get(kind, kind)


__all__ = ["Column", "Section", "markdown", "pairs_in_order", "sections", "tuned_info", "tuned_text",
           "verdict_detail", "verdict_note"]
