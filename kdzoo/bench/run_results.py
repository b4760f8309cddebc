"""Reading finished runs' results: a run's summary and the paired verdict of one run against another.

This module owns what a reader of results does with run folders once they are finished
(:func:`load_run`, :func:`compare_runs`, behind ``kdzoo compare``); writing them is the run
driver's (:mod:`kdzoo.train.run_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .metrics import compare
from ..contract.errors import ConfigError
from ..models.evaluate import primary_metric
from ..train.run_dir import read_run_summary


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's ``summary.json``; a missing or damaged one is a one-line error."""
    return read_run_summary(run_dir)


def compare_runs(a: str | Path, b: str | Path) -> str:
    """The project's paired verdict of run A against run B as one sentence.

    A one-sided paired t-test on the primary test metric (``test_best``) over the seeds both runs
    have (:func:`kdzoo.bench.metrics.compare`); one pair of runs, so no multiple-testing correction.
    """
    ra, rb = load_run(a), load_run(b)
    metric = ra["metric"]
    if rb["metric"] != metric:
        raise ConfigError(f"cannot compare {str(a)!r} ({metric}) with {str(b)!r} ({rb['metric']}): the runs measure "
                          "different things (one task is classification, the other regression); compare runs of one task")
    _, higher = primary_metric("classification" if metric == "acc" else "regression")
    va = {int(k): v["test_best"][metric] for k, v in ra["seeds"].items()}
    vb = {int(k): v["test_best"][metric] for k, v in rb["seeds"].items()}
    c = compare(va, vb, higher)
    return c.line(Path(a).name, Path(b).name)


__all__ = ["compare_runs", "load_run"]
