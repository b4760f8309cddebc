"""Bench plots, built to be read at any number of rows.

One accuracy figure and one training-cost figure per (task, pair). Strategies are rows of a
dot-and-whisker chart (mean ± std over seeds), so labels are horizontal, never rotated into each
other, and the figure grows with the number of rows. The value axis always spans every error bar,
the ``ce`` baseline, the teacher and any reference row in full; titles wrap instead of being cut.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from typing import Any

ROW_INCHES = 0.28  # vertical space per strategy row: 9-pt labels never touch
WIDTH_INCHES = 7.0
TITLE_CHARS = 70  # wrap width of a title at WIDTH_INCHES and 9 pt
COLORS = {"bar": "#4c72b0", "baseline": "#333333", "teacher": "#c44e52",
          "references": ("#55a868", "#8172b2", "#937860")}


def _groups(results: dict[str, Any]) -> tuple[dict[tuple, list[dict]], dict[tuple, list[dict]]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    references: dict[tuple, list[dict]] = defaultdict(list)
    for e in results["summary"]:
        if e["status"] == "ok":
            (references if e.get("kind") == "reference" else groups)[(e["task"], e["pair"])].append(e)
    return groups, references


def _limits(values: list[float], pad_fraction: float = 0.08) -> tuple[float, float]:
    """Axis limits that contain every value with a margin (a flat range still gets a visible width)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * pad_fraction or max(abs(hi) * 0.02, 0.5)
    return lo - pad, hi + pad


def _row_figure(plt, title: str, labels: list[str], legend_rows: int):
    height = max(2.4, ROW_INCHES * len(labels) + 1.4 + 0.18 * title.count("\n") + 0.15 * legend_rows)
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, height), layout="constrained")  # labels and legend sized in
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top, as in the table
    fig.suptitle(title, fontsize=9)  # centred on the figure, not on the axes that long labels push right
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _title(task: str, pair: str, what: str) -> str:
    return "\n".join(textwrap.wrap(f"{task}: {pair} — {what}", TITLE_CHARS, break_on_hyphens=False))


def accuracy_figure(task: str, pair: str, entries: list[dict], references: list[dict]):
    """Test metric per strategy (mean ± std over seeds) with the ce baseline, teacher and references."""
    import matplotlib.pyplot as plt

    metric = entries[0]["metric"]
    means = [e[f"test_best_{metric}"][0] for e in entries]
    stds = [e[f"test_best_{metric}"][1] for e in entries]
    labels = [f"{e['variant']} (n={e['seeds']})" for e in entries]
    lines: list[tuple[str, float, str, str]] = []  # (label, value, colour, style)
    base = next((e for e in entries if e["variant"] == "ce"), None)
    if base is not None:
        lines.append(("ce (baseline)", base[f"test_best_{metric}"][0], COLORS["baseline"], "-"))
    if entries[0].get("teacher") is not None:
        lines.append(("teacher", entries[0]["teacher"], COLORS["teacher"], "--"))
    for ref, color in zip(references, COLORS["references"]):
        lines.append((ref["variant"], ref["test_best_acc"], color, ":"))
    title = _title(task, pair, f"test {metric} at the validation-selected step (mean\u00a0±\u00a0std over seeds)")
    fig, ax = _row_figure(plt, title, labels, len(lines))
    ax.errorbar(means, range(len(entries)), xerr=stds, fmt="o", color=COLORS["bar"], ecolor=COLORS["bar"], capsize=3)
    for label, value, color, style in lines:
        ax.axvline(value, color=color, ls=style, lw=1, label=label)
    ax.set_xlim(*_limits([m - s for m, s in zip(means, stds)] + [m + s for m, s in zip(means, stds)]
                         + [v for _, v, _, _ in lines]))
    ax.set_xlabel(f"test {metric} ({'higher' if metric == 'acc' else 'lower'} is better)")
    if lines:
        fig.legend(loc="outside lower center", ncol=min(3, len(lines)), fontsize=8, frameon=False)
    return fig


def time_figure(task: str, pair: str, entries: list[dict]):
    """Training CPU time per seed per strategy (mean ± std over seeds), in the accuracy figure's row order."""
    import matplotlib.pyplot as plt

    timed = [e for e in entries if e.get("train_cpu_seconds") or e.get("train_seconds")]
    if not timed:
        return None
    values = [e.get("train_cpu_seconds") or e.get("train_seconds") for e in timed]
    means = [v[0] for v in values]
    stds = [v[1] for v in values]
    title = _title(task, pair, "training CPU time per seed (mean\u00a0±\u00a0std over seeds)")
    fig, ax = _row_figure(plt, title, [e["variant"] for e in timed], 0)
    ax.barh(range(len(timed)), means, xerr=stds, capsize=3, color=COLORS["bar"], height=0.6)
    ax.set_xlim(0, _limits([m + s for m, s in zip(means, stds)] + [0.0])[1])
    ax.set_xlabel("seconds of CPU time (one thread)")
    return fig


def figures(results: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Every figure of a bench as ``(file name, task, matplotlib Figure)``; the caller closes them."""
    import matplotlib

    matplotlib.use("Agg")
    out = []
    groups, references = _groups(results)
    for i, ((task, pair), entries) in enumerate(groups.items()):
        out.append((f"accuracy_{i}.png", task, accuracy_figure(task, pair, entries, references.get((task, pair), []))))
        fig = time_figure(task, pair, entries)
        if fig is not None:
            out.append((f"time_{i}.png", task, fig))
    return out


def plots(results: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """Every figure rendered as PNG: ``{file name: (task, bytes)}``."""
    import matplotlib.pyplot as plt

    images = {}
    for name, task, fig in figures(results):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        images[name] = (task, buf.getvalue())
        plt.close(fig)
    return images


__all__ = ["accuracy_figure", "figures", "plots", "time_figure"]
