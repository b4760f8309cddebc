"""Bench plots, built to be read at any number of rows.

Per (task, pair): one accuracy figure, one accuracy-versus-training-CPU-time scatter and, where the
rows recorded them, the validation curves. Strategies are rows of a
dot-and-whisker chart (mean ± std over seeds), so labels are horizontal, never rotated into each
other, and the figure grows with the number of rows. The value axis always spans every error bar,
the ``ce`` baseline, the teacher and any reference row in full; titles wrap instead of being cut.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from typing import Any

from .tables import pairs_in_order

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


def _label_column(ax, fig, points: list[tuple[float, float]], labels: list[str], label_inches: float) -> None:
    """Label each point in a column right of the axes, in the points' vertical order, never overlapping.

    Each label starts at its point's height; a sweep from the top pushes a label down where it would
    touch the one above, and a sweep from the bottom pulls the column back inside the axes. A thin
    leader line joins a label to its point.
    """
    lo, hi = ax.get_ylim()
    height_in = ax.get_position().height * fig.get_figheight()
    gap = label_inches / height_in  # one label's height in axes fractions
    order = sorted(range(len(points)), key=lambda i: -points[i][1])
    ys = {i: (points[i][1] - lo) / (hi - lo) for i in order}
    top = 1.0
    for i in order:  # top to bottom: each at most one gap below the previous
        ys[i] = min(ys[i], top)
        top = ys[i] - gap
    bottom = 0.0
    for i in reversed(order):  # bottom to top: never below the axes
        ys[i] = max(ys[i], bottom)
        bottom = ys[i] + gap
    for i in order:
        ax.annotate(labels[i], xy=points[i], xycoords="data", xytext=(1.03, ys[i]), textcoords="axes fraction",
                    fontsize=8, va="center", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5, "shrinkA": 1, "shrinkB": 3})


def cost_figure(task: str, pair: str, entries: list[dict]):
    """Test metric against training CPU time per seed (both mean ± std over seeds): what each gain costs.

    One point per strategy with error bars on both axes, labelled in a column beside the plot; the
    ``ce`` baseline is a horizontal line. None when no row recorded its CPU time.
    """
    import matplotlib.pyplot as plt

    metric = entries[0]["metric"]
    timed = [e for e in entries if _pair(e.get("train_cpu_seconds") or e.get("train_seconds"))[0] is not None]
    if not timed:
        return None
    xs = [_pair(e.get("train_cpu_seconds") or e.get("train_seconds")) for e in timed]
    ys = [_pair(e[f"test_best_{metric}"]) for e in timed]
    labels = [e["variant"] for e in timed]
    label_inches = 0.17  # one 8-pt label line
    # the label column is as wide as the longest label (about 0.058 in per 8-pt character)
    right = 0.4 + 0.058 * max(len(s) for s in labels)
    plot_width, plot_height = 4.6, max(3.0, label_inches * len(timed) + 0.6)
    title = _title(task, pair, f"test {metric} against training CPU time per seed (mean\u00a0±\u00a0std)")
    left, bottom, top = 0.8, 0.6, 0.25 + 0.17 * (title.count("\n") + 1)
    fig = plt.figure(figsize=(max(WIDTH_INCHES, left + plot_width + right), bottom + plot_height + top))
    width, height = fig.get_figwidth(), fig.get_figheight()
    ax = fig.add_axes((left / width, bottom / height, plot_width / width, plot_height / height))
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
    ax.errorbar([x for x, _ in xs], [y for y, _ in ys], xerr=[s or 0.0 for _, s in xs], yerr=[s or 0.0 for _, s in ys],
                fmt="o", color=COLORS["bar"], ecolor=COLORS["bar"], capsize=2, ms=4, lw=0.8)
    base = next((e for e in entries if e["variant"] == "ce"), None)
    y_values = [y - (s or 0) for y, s in ys] + [y + (s or 0) for y, s in ys]
    if base is not None:
        ax.axhline(base[f"test_best_{metric}"][0], color=COLORS["baseline"], lw=0.8, ls="-")
        y_values.append(base[f"test_best_{metric}"][0])
    ax.set_ylim(*_limits(y_values))
    ax.set_xlim(0, _limits([x + (s or 0) for x, s in xs] + [0.0])[1])
    ax.set_xlabel("training CPU seconds per seed (one thread)", fontsize=9)
    ax.set_ylabel(f"test {metric} ({'higher' if metric == 'acc' else 'lower'} is better)", fontsize=9)
    ax.grid(color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    _label_column(ax, fig, [(x, y) for (x, _), (y, _) in zip(xs, ys)], labels, label_inches)
    return fig


def curves_figure(task: str, pair: str, entries: list[dict]):
    """Validation metric against optimiser step per strategy (mean over seeds), where rows recorded curves."""
    import matplotlib.pyplot as plt

    curved = [e for e in entries if (e.get("curve") or {}).get("step")]
    if not curved:
        return None
    curve_metric = curved[0]["curve"].get("metric", "acc")
    title = _title(task, pair, f"validation {curve_metric} during training (mean over seeds)")
    # as many legend columns as the longest name allows (about 0.058 in per 8-pt character, plus the line sample)
    entry_inches = 0.058 * max(len(e["variant"]) for e in curved) + 0.6
    ncol = max(1, min(3, len(curved), int((WIDTH_INCHES - 0.2) // entry_inches)))
    legend_rows = -(-len(curved) // ncol)
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.6 + 0.18 * legend_rows), layout="constrained")
    fig.suptitle(title, fontsize=9)
    for i, e in enumerate(curved):  # ten colours, then the next line style: no two strategies look alike
        ax.plot(e["curve"]["step"], e["curve"]["value"], lw=1, label=e["variant"], color=f"C{i % 10}",
                ls=("-", "--", ":", "-.")[i // 10 % 4])
    ax.set_xlabel("optimiser step", fontsize=9)
    ax.set_ylabel(f"validation {curve_metric}", fontsize=9)
    ax.grid(color="#dddddd", lw=0.6)
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    return fig


def _pair(v) -> tuple[float | None, float | None]:
    """``(mean, std)`` of a summary value: a pair, a bare number (std unknown) or None."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return v[0], v[1]
    return (float(v), None) if isinstance(v, (int, float)) else (None, None)


def figures(results: dict[str, Any], prefix: str = "") -> list[tuple[str, str, Any]]:
    """Every figure of a bench as ``(file name, task, matplotlib Figure)``; the caller closes them.

    Per task and pair (numbered as the tables' sections, :func:`kdzoo.bench.tables.pairs_in_order`):
    ``accuracy_N.png``, ``cost_N.png`` (test metric versus training CPU time) and, where the rows
    recorded validation curves, ``curves_N.png``; each name starts with ``prefix``.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = []
    groups, references = _groups(results)
    for i, (task, pair) in enumerate(pairs_in_order(results["summary"])):
        entries = groups.get((task, pair))
        if not entries:
            continue
        out.append((f"{prefix}accuracy_{i}.png", task,
                    accuracy_figure(task, pair, entries, references.get((task, pair), []))))
        for kind, make in (("cost", cost_figure), ("curves", curves_figure)):
            fig = make(task, pair, entries)
            if fig is not None:
                out.append((f"{prefix}{kind}_{i}.png", task, fig))
    return out


def plots(results: dict[str, Any], prefix: str = "") -> dict[str, tuple[str, bytes]]:
    """Every figure rendered as PNG: ``{file name: (task, bytes)}``."""
    import matplotlib.pyplot as plt

    images = {}
    for name, task, fig in figures(results, prefix):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        images[name] = (task, buf.getvalue())
        plt.close(fig)
    return images


__all__ = ["accuracy_figure", "cost_figure", "curves_figure", "figures", "plots"]
