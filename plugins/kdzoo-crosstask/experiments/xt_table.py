"""Markdown table of ``xt_mnist5k.py`` reports: test accuracy mean ± std over seeds, controls, probe.

    python experiments/xt_table.py /tmp/xt/runs/mod3/report.json [more reports ...]
"""

from __future__ import annotations

import json
import sys


def fmt(ms: list[float]) -> str:
    return f"{ms[0]:.1f} ± {ms[1]:.1f}"


def table(report: dict) -> str:
    budgets = sorted(report["budgets"], key=int)
    head = "| row | " + " | ".join(f"k={k} test acc % | k={k} random teacher | k={k} beats ce & random?" for k in budgets)
    lines = [f"### {report['scenario']}", "", head + " |", "|---" * (1 + 3 * len(budgets)) + "|"]
    first = report["budgets"][budgets[0]]
    lines.append("| ce | " + " | ".join(f"{fmt(report['budgets'][k]['ce']['test'])} | – | –" for k in budgets) + " |")
    for row in [r for r in first if r not in ("ce", "probe")]:
        cells = []
        for k in budgets:
            r = report["budgets"][k][row]
            params = ", ".join(f"{a}={b}" for a, b in r["params"].items()) or "defaults"
            cells.append(f"{fmt(r['test'])} ({params}) | {fmt(r['random_teacher_test'])} | "
                         f"{'**yes**' if r['beats_both'] else 'no'}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for which in ("trained", "random"):
        cells = [f"{report['budgets'][k]['probe'][which]['test_acc']:.1f} (val "
                 f"{report['budgets'][k]['probe'][which]['val_acc']:.1f}) | – | –" for k in budgets]
        lines.append(f"| probe: NCM of the {which} teacher's embedding | " + " | ".join(cells) + " |")
    lines += ["", "Paired verdicts (`kdzoo compare`; the project's rule):", ""]
    for k in budgets:
        for row, r in report["budgets"][k].items():
            if row in ("ce", "probe"):
                continue
            lines += [f"- k={k} {row}: {r['vs_ce']}; {r['vs_random']}; control: {r['random_vs_ce']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(table(json.load(f)) + "\n")
