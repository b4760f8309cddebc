"""Rebuild the committed Fashion-MNIST results pages in the results format, without re-training.

The fashion bench's cells are not kept in the repository, only its ``results.csv`` (one row per cell)
and two hand-written tables in the previous format (``results.md``, ``breadth.md``). This script turns
them into results folders that ``kdzoo report`` can rebuild (``results.json`` + ``results.md`` + plots,
and ``breadth.json`` + ``breadth.md`` + plots beside them):

- ``results``: every cell from ``results.csv``; the verdicts are recomputed from the per-seed numbers
  (the same rule, so the same verdicts); the teacher's test accuracy (a column the old CSV writer
  left out) and the prose (command, machine, wall time, data) come from the previous ``results.md``.
- ``breadth``: the per-seed numbers of the DIST and logit-standardized rows were not kept, so its
  summary is read from the previous ``breadth.md`` table (marked ``"source": "table"``: the verdicts
  and Holm-adjusted p as published; the unadjusted p is unknown). Its ``ce`` and ``kd`` rows are the
  same cells as the fashion suite's, whose per-seed rows it carries. Training CPU time per seed,
  which that table did not list, is its CPU ms/step times the 1,500 steps.

The previous pages are read from git (``git show COMMIT:PATH``, by default the last commit before the
rebuild), so the script can be run again from a clone with its history::

    python benchmarks/rebuild_fashion_results.py               # writes benchmarks/results/fashion/
    kdzoo report benchmarks/results/fashion --no-open          # afterwards: rebuilds from results.json
    kdzoo report benchmarks/results/fashion/breadth.json       # and the breadth page

``report.html`` / ``breadth.html`` are written too; they are self-contained and not committed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

from kdzoo.bench.metrics import compare
from kdzoo.bench.report import aggregate, rows_from_csv, write_outputs

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path("benchmarks/results/fashion")
LEGACY_COMMIT = "8a240db"  # the last commit with the pages in the previous format
STEPS = 1500  # the students' budget in the fashion suite (registry.yaml)
VERDICT = re.compile(r"(beats|does not beat) \(([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\], "
                     r"p (< 0\.001|[\d.]+), (\d+)/(\d+)\)")


def legacy_page(commit: str, name: str) -> str:
    """A previous page as committed (read from git: the working tree holds the rebuilt one)."""
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{FOLDER / name}"], capture_output=True,
                          text=True, check=True).stdout


def split_page(text: str) -> tuple[str, str, list[list[str]], str]:
    """A previous page's title, prose before the table, table rows (cells) and the note after it."""
    lines = text.splitlines()
    title = lines[0].lstrip("# ").strip()
    first = next(i for i, line in enumerate(lines) if line.startswith("| "))
    last = max(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[first + 2:last + 1]]
    return title, "\n".join(lines[1:first]).strip(), rows, "\n".join(lines[last + 1:]).strip()


def _mean_std(text: str) -> list[float] | None:
    if not text:
        return None
    mean, _, std = text.partition(" ± ")
    return [float(mean), float(std) if std else None]


def _num(text: str) -> float | int | None:
    if not text:
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def teachers(rows: list[list[str]]) -> dict[tuple[str, str], float]:
    """The teacher row of each task and pair of a previous table: its test accuracy."""
    return {(r[0], r[1]): float(r[4]) for r in rows if r[2] == "teacher"}


def provenance_from(prose: str, command: str, commit: str | None, date: str) -> dict[str, Any]:
    """What the previous page said about its run, as the results format's provenance."""
    machine = re.search(r"\*\*Machine\*\*: (.+?), Python", prose, re.S)
    versions = {"kdzoo": "0.1.0"}  # pyproject.toml at the run's commit
    for dist in ("Python", "torch", "timm"):
        found = re.search(rf"{dist} ([\d.]+\d)", prose)
        if found:
            versions[dist.lower()] = found.group(1)
    return {"command": command, "date": date, "host": " ".join(machine.group(1).split()) if machine else None,
            "git_commit": commit, "versions": versions}


def commit_date(path: str) -> str:
    """When a page was first committed (the run's own date was not recorded)."""
    out = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%cI", "--", path],
                         capture_output=True, text=True, check=True).stdout.split()
    return f"{out[-1]} (committed; the run's date was not recorded)" if out else "not recorded"


def fashion(commit: str) -> dict[str, Any]:
    title, prose, table, _ = split_page(legacy_page(commit, "results.md"))
    rows = rows_from_csv((ROOT / FOLDER / "results.csv").read_text())
    teacher = teachers(table)
    for row in rows:
        if (row["task"], row["pair"]) in teacher and row.get("kind") != "reference" and "teacher_test" not in row:
            row["teacher_test"] = {"acc": teacher[(row["task"], row["pair"])]}
    command = re.search(r"^kdzoo bench .*$", prose, re.M).group(0)
    run_commit = re.search(r"commit `([0-9a-f]+)` for the run", prose)
    provenance = provenance_from(prose, command, run_commit.group(1) if run_commit else None,
                                 commit_date(str(FOLDER / "results.csv")))
    return {"suite": "fashion", "title": title, "notes": fashion_notes(prose, rows), "provenance": provenance,
            "rows": rows, "summary": aggregate(rows)}


def fashion_notes(prose: str, rows: list[dict]) -> str:
    """The previous page's prose without what the header now shows (command, machine), plus what the
    cells say about their CPU time."""
    run = re.search(r"\*\*Command\*\* \((.*?)\):\n\n```bash\n(.*?)\n```\n", prose, re.S)
    data_step = next(line for line in run.group(2).splitlines() if not line.startswith("kdzoo "))
    threads = re.search(r"\*\*Machine\*\*: .+?\. (Cells run .+?\.)\n\n", prose, re.S)
    prose = prose.replace(run.group(0), f"**Run**: {' '.join(run.group(1).split())}. The data folder came from "
                                        f"`{data_step}`. {' '.join(threads.group(1).split())}\n")
    prose = prose.replace(threads.group(0), "")
    prose = prose.replace("(see the note under the table)", "(see the note above the tables)")
    by_group: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("train_cpu_seconds") is not None:
            by_group.setdefault((r["task"], r["variant"]), []).append(r["train_cpu_seconds"])
    short = [r for r in rows if r.get("train_cpu_seconds") is not None
             and r["train_cpu_seconds"] < 0.5 * sorted(by_group[(r["task"], r["variant"])])[2]]
    if short:
        cells = "; ".join(f"{r['task']} {r['variant']} seed {r['seed']}: {r['train_cpu_seconds']:.2f} s" for r in short)
        prose += ("\n\n**CPU time of resumed cells**: a cell continued from its checkpoint records the training CPU "
                  f"time after the resume only ({cells}), which lowers its row's mean training CPU time and widens "
                  "its spread in the cost table and the CPU-time plot.")
    return prose


def breadth(commit: str, fashion_rows: list[dict], host: Any) -> dict[str, Any]:
    title, prose, table, note = split_page(legacy_page(commit, "breadth.md"))
    families = {task: int(n) for task, n in re.findall(r"([\w-]+): Holm-corrected over (\d+) row", note)}
    teacher = teachers(table)
    summary = []
    for r in table:
        task, pair, variant = r[0], r[1], r[2]
        if variant == "teacher":
            continue
        entry: dict[str, Any] = {"task": task, "pair": pair, "variant": variant, "seeds": int(r[3]), "status": "ok",
                                 "metric": "acc", "source": "table", "test_best_acc": _mean_std(r[4]),
                                 "test_last_acc": _mean_std(r[5]), "agreement": _mean_std(r[7]),
                                 "test_best_ece": _mean_std(r[8]), "student_params": _num(r[9]), "flops": _num(r[10]),
                                 "latency_ms": _num(r[11]), "ms_per_step": _num(r[12]), "extra_params": _num(r[13]),
                                 "teacher": teacher.get((task, pair))}
        entry["train_cpu_seconds"] = [entry["ms_per_step"] * STEPS / 1000, None]
        found = VERDICT.fullmatch(r[6])
        if found:
            verdict, diff, low, high, p, wins, n = found.groups()
            if p.startswith("<"):  # the table gives a bound, not a p; none of its rows does today
                raise SystemExit(f"{variant}: p {p} is a bound; store it before rebuilding this row")
            entry["vs_ce"] = {"verdict": verdict, "n": int(n), "wins": int(wins), "mean_diff": float(diff),
                              "ci_low": float(low), "ci_high": float(high), "p": None,
                              "p_adjusted": float(p), "family": families[task],
                              "seeds": list(range(int(n))), "beats": verdict == "beats"}
        summary.append(entry)
    variants = {(e["task"], e["pair"], e["variant"]) for e in summary}
    rows = [r for r in fashion_rows if (r["task"], r["pair"], r["variant"]) in variants]
    for e in summary:  # where the per-seed numbers are here, the unadjusted p is too
        mine = {r["seed"]: r["test_best_acc"] for r in rows if (r["task"], r["pair"], r["variant"]) == (
            e["task"], e["pair"], e["variant"])}
        base = {r["seed"]: r["test_best_acc"] for r in rows if (r["task"], r["pair"], r["variant"]) == (
            e["task"], e["pair"], "ce")}
        if e.get("vs_ce") and mine and base:
            e["vs_ce"]["p"] = compare(mine, base).p
    shared = ", ".join(sorted({r["variant"] for r in rows}))
    notes = (prose + f"\n\nPer-seed numbers: the {shared} rows are the fashion suite's cells, whose per-seed numbers "
             "are in `breadth.json` (and `results.json`). Those of the other rows were not kept: their mean ± std, "
             "verdicts and Holm-adjusted p are the published table's (their unadjusted p is not known), and their "
             f"training CPU time per seed is the table's CPU ms/step times the {STEPS:,} steps.")
    command = re.search(r"^kdzoo bench .*$", prose, re.M).group(0)
    return {"suite": "fashion-breadth", "title": title, "notes": notes,
            "provenance": {"command": command, "date": commit_date(str(FOLDER / "breadth.md")), "host": host,
                           "git_commit": None, "versions": {"kdzoo": "0.1.0"}},
            "rows": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--legacy-commit", default=LEGACY_COMMIT,
                        help=f"the commit whose results.md and breadth.md are read (default {LEGACY_COMMIT})")
    parser.add_argument("--out", default=str(ROOT / FOLDER), help="where the pages are written")
    args = parser.parse_args()
    out = Path(args.out)
    main_page = fashion(args.legacy_commit)
    write_outputs(main_page, out)
    write_outputs(breadth(args.legacy_commit, main_page["rows"], main_page["provenance"]["host"]), out, "breadth")
    print(f"wrote {out}/results.json, results.md, breadth.json, breadth.md and their plots")


if __name__ == "__main__":
    main()
