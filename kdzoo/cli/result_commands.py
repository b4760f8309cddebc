"""The commands that read finished results: ``kdzoo compare``, ``runs`` and ``report``."""

from __future__ import annotations

import argparse
import json
from typing import Any
from ..bench.runindex import query


def cmd_compare(args: argparse.Namespace) -> int:
    from ..bench.run_results import compare_runs  # lazy: start-up cost (torch)

    print(compare_runs(args.run_a, args.run_b))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..bench.report import open_report  # lazy: start-up cost (torch)

    print(open_report(args.bench_dir, open_browser=not args.no_open))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    rows = query(args.kind, strategy=args.strategy, data=args.data, student=args.student)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        score = f"{r['metric']} {r['mean']:.2f} {_spread(r)}" if r["mean"] is not None else ""
        print(f"{r['id']:>5} {r['kind']:<5} {r.get('state') or '':<6} {r['strategy'] or '':<24} {r['student'] or '':<14} {r['data'] or '':<10} "
              f"{score:<22} {r['path']}")
    return 0


def _spread(row: dict[str, Any]) -> str:
    """``± 0.41`` over several seeds; ``(1 seed)`` for one, where a standard deviation means nothing."""
    try:
        seeds = json.loads(row.get("info") or "{}").get("seeds")
    except ValueError:
        seeds = None
    return "(1 seed)" if isinstance(seeds, list) and len(seeds) == 1 else f"± {row['std']:.2f}"
